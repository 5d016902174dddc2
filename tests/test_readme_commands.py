"""Every command that the README, docker/README.md and the docs pages (``docs/**/*.md``) document is
checked against today's code:

* ``python train.py ...`` / ``python evaluate.py ...`` (also behind ``torchrun`` and the Docker image, whose
  entry point is ``train.py``) compose with today's configuration: a renamed or removed key or group option
  fails here. Placeholders (``<last.ckpt>``, ``$(ls ...)``) become a file name; multirun sweeps (``-m a=1,2``)
  compose their first job.
* every other ``python -m <module> ...``, ``python <script>.py ...``, ``vosc-segment ...`` and
  ``bash bench/gpu_check.sh ...`` line of a shell block has its arguments parsed by the real argument
  parser of that module or script (run in this process, stopped right after parsing): a renamed or removed
  flag fails.
* a command of any other program must be one this test knows (:data:`EXTERNAL`), so that no documented command
  goes unchecked unnoticed.

Only composition and argument parsing are checked (no file needs to exist); running the commands is the job
of the training, evaluation, segmentation and benchmark tests.
"""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from vosc.config import check_renamed_overrides

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docker" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_SCRIPTS = {"train.py": "train", "evaluate.py": "evaluate"}
_SHELL = ("bash", "sh", "console")
#: Programs whose documented commands are not vosc's to check (installers, build tools, shell utilities).
EXTERNAL = {"pip", "ruff", "mypy", "docker", "git", "tar", "mkdir", "$FFMPEG", "mkdocs", "wandb", "sbatch",
            "scontrol", ".ci/run", "cd", "export"}


def _fenced_commands(text: str, fences: tuple[str, ...] = ("", *_SHELL)) -> list[str]:
    """Lines of the shell code blocks (continuations joined)."""
    out: list[str] = []
    fence: str | None = None
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, block = line[3:].strip(), []
                continue
            if fence in fences:
                out += [c.strip() for c in re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines()]
            fence = None
        elif fence is not None:
            block.append(line)
    return out


def _readme_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for every documented train/evaluate command line."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        if not doc.is_file():
            continue
        text = doc.read_text()
        lines = _fenced_commands(text) + re.findall(r"`(python (?:train|evaluate)\.py[^`]*)`", text)
        for line in lines:
            line = re.sub(r"^torchrun\s.*?\s(train|evaluate)\.py", r"python \1.py", line)  # torchrun ...
            line = re.sub(r"^docker run\s.*?--entrypoint python\s.*?\svosc:\S+", "python", line)
            line = re.sub(r"^docker run\s.*?\svosc:\S+", "python train.py", line)  # the image's entry point
            m = re.search(r"python (train|evaluate)\.py.*", line)
            where = str(doc.relative_to(REPO))
            if m and (m.group(0), where) not in {(c, w) for w, c in found}:
                found.append((where, m.group(0)))
    return found


def _variants(command: str) -> list[tuple[str, list[str]]]:
    """``(config name, overrides)`` of each alternative of a documented command line."""
    choice = re.search(r"<([^<>]*\|[^<>]*)>", command)  # experiment=<a | b | c>: each alternative
    if choice:
        return [v for alt in choice.group(1).split("|")
                for v in _variants(command[: choice.start()] + alt.strip() + command[choice.end():])]
    command = re.sub(r"\$\([^)]*\)", "X.ckpt", command)
    command = re.sub(r"<[^>]*>", "X.ckpt", command)
    command = re.sub(r"\s\d?>>?&?\s*\S+", " ", command)  # redirections (> train.log 2>&1)
    tokens = [t for t in shlex.split(command, comments=True) if t != "..."]  # "...": a documented elision
    config = _SCRIPTS[tokens[1]]
    groups: list[list[str]] = [[]]
    for tok in tokens[2:]:
        if tok == "|":
            groups.append([])
        elif tok not in ("-m", "--multirun") and not tok.startswith("--"):
            groups[-1].append(tok)
    parser = OverridesParser.create()
    variants = []
    for group in groups:
        first_job = []
        for ov in parser.parse_overrides(group):
            if ov.is_sweep_override():
                value = next(iter(ov.sweep_string_iterator()))
                first_job.append(f"{ov.get_key_element()}={value}")
            else:
                first_job.append(ov.input_line or "")
        variants.append((config, first_job))
    return variants


COMMANDS = _readme_commands()


def test_the_readme_documents_commands() -> None:
    assert len(COMMANDS) >= 20, COMMANDS  # the parser still finds the README's commands


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_composes(where: str, command: str, tmp_path: Path) -> None:
    for config, overrides in _variants(command):
        check_renamed_overrides(overrides)
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config, overrides=[*overrides, f"paths.root_dir={tmp_path}"],
                          return_hydra_config=True)
        assert cfg.task_name, f"{where}: {command}"


# --- every other command: its program is known, its arguments parse --------------------------------------


class _Parsed(Exception):
    """Raised by the patched ``parse_args`` once the documented arguments have parsed."""


def _simple_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every simple command of the shell blocks (``&&``, ``|``, ``;`` split; leading
    ``VAR=value`` assignments and comments dropped; ``...`` elisions removed)."""
    found: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        if not doc.is_file():
            continue
        where = str(doc.relative_to(REPO))
        for line in _fenced_commands(doc.read_text(), _SHELL):
            line = _without_substitutions(line)
            line = re.sub(r"<[^<>|]*>", "X", line)  # <placeholders>
            line = re.sub(r"\s\d?>>?&?\s*\S+", " ", line)  # redirections
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lex.whitespace_split, lex.commenters = True, "#"
            parts: list[list[str]] = [[]]
            for tok in _tokens(lex, f"{where}: {line}"):
                if tok in ("&&", "||", ";", "|", "&"):
                    parts.append([])
                elif tok != "...":  # a documented elision
                    parts[-1].append(tok)
            for argv in parts:
                while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
                    argv = argv[1:]  # environment assignments
                if argv and (where, argv) not in found:
                    found.append((where, argv))
    return found


def _without_substitutions(line: str) -> str:
    """``$(command ...)`` (parentheses balanced) replaced by the word ``X``."""
    while (start := line.find("$(")) >= 0:
        depth, end = 0, start + 1
        for end in range(start + 1, len(line)):
            depth += {"(": 1, ")": -1}.get(line[end], 0)
            if depth == 0:
                break
        line = line[:start] + "X" + line[end + 1:]
    return line


def _tokens(lex: shlex.shlex, where: str) -> list[str]:
    try:
        return list(lex)
    except ValueError as exc:
        raise AssertionError(f"{where}: not a shell command line ({exc})") from None


def _target(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """``("module"|"script", name, args)`` of a command vosc can check, ``None`` for a known program or a
    train/evaluate command (composed above); raises for an unknown program."""
    prog = argv[0]
    if prog in ("python", "python3"):
        if len(argv) > 1 and argv[1] == "-m" and argv[2] != "pytest":
            return "module", argv[2], argv[3:]
        if len(argv) > 1 and argv[1].endswith(".py") and argv[1] not in _SCRIPTS:
            return "script", argv[1], argv[2:]
        return None  # train.py / evaluate.py (composed above), python -m pytest, python -c
    if prog in ("vosc-segment", "torchrun") or (prog == "bash" and argv[1:2] == ["bench/gpu_check.sh"]):
        if prog == "torchrun":
            return None  # its train.py command is composed above
        return ("module", "vosc.segment", argv[1:]) if prog == "vosc-segment" else \
            ("script", "bench/gpu_check.py", argv[2:])  # gpu_check.sh execs gpu_check.py "$@"
    if prog in EXTERNAL:
        return None
    raise AssertionError(f"unknown program {prog!r} in a documented command: {' '.join(argv)} (check it here "
                         "or add it to EXTERNAL)")


SIMPLE = _simple_commands()
CHECKED = [(w, argv) for w, argv in SIMPLE if _target(argv) is not None]


def test_every_documented_program_is_known() -> None:
    programs = {argv[0] for _, argv in SIMPLE}
    assert {"python", "vosc-segment", "pip"} <= programs, programs
    assert len(CHECKED) >= 20, CHECKED
    for _, argv in SIMPLE:
        _target(argv)  # raises on an unknown program


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")  # runpy
@pytest.mark.parametrize(("where", "argv"), CHECKED, ids=[" ".join(a)[:80] for _, a in CHECKED])
def test_documented_command_arguments_parse(where: str, argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = _target(argv)
    assert target is not None
    kind, name, args = target
    path = REPO / name if kind == "script" else None
    if path is not None:
        assert path.is_file(), f"{where}: {name} does not exist"
        source = path.read_text()
    else:
        import importlib.util

        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{where}: no module {name}"
        if spec.submodule_search_locations:  # a package: python -m runs its __main__
            spec = importlib.util.find_spec(f"{name}.__main__")
            assert spec is not None and spec.origin, f"{where}: {name} has no __main__"
        source = Path(spec.origin).read_text()
    # only run what stops at its parser: a script without argparse would do its work here
    assert "parse_args(" in source, f"{where}: {name} has no argparse parser; check it another way"
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        raise _Parsed(original(self, *a, **kw))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [name, *args])
    monkeypatch.syspath_prepend(str(REPO))
    try:
        if path is not None:
            runpy.run_path(str(path), run_name="__main__")
        else:
            runpy.run_module(name, run_name="__main__", alter_sys=True)
    except _Parsed:
        return
    except SystemExit as exc:
        raise AssertionError(f"{where}: {' '.join(argv)}: {capsys.readouterr().err.strip()[-600:]}") from exc
    raise AssertionError(f"{where}: {' '.join(argv)} ran without parsing its arguments with argparse")
