"""Every ``python train.py ...`` and ``python evaluate.py ...`` command the README (and docker/README.md)
documents composes with today's configuration: a renamed or removed key or group option fails here.

Placeholders (``<last.ckpt>``, ``$(ls ...)``) become a file name; multirun sweeps (``-m a=1,2``) compose
their first job. Only composition is checked (no file needs to exist); running the commands is the job of
the training and evaluation tests.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from vosc.config import check_renamed_overrides

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docker" / "README.md"]
_SCRIPTS = {"train.py": "train", "evaluate.py": "evaluate"}


def _fenced_commands(text: str) -> list[str]:
    """Lines of the shell code blocks (continuations joined)."""
    out: list[str] = []
    fence: str | None = None
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, block = line[3:].strip(), []
                continue
            if fence in ("", "bash", "sh", "console"):
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
            m = re.search(r"python (train|evaluate)\.py.*", line)
            if m and (m.group(0), doc.name) not in {(c, w) for w, c in found}:
                found.append((doc.name, m.group(0)))
    return found


def _variants(command: str) -> list[tuple[str, list[str]]]:
    """``(config name, overrides)`` of each alternative of a documented command line."""
    choice = re.search(r"<([^<>]*\|[^<>]*)>", command)  # experiment=<a | b | c>: each alternative
    if choice:
        return [v for alt in choice.group(1).split("|")
                for v in _variants(command[: choice.start()] + alt.strip() + command[choice.end():])]
    command = re.sub(r"\$\([^)]*\)", "X.ckpt", command)
    command = re.sub(r"<[^>]*>", "X.ckpt", command)
    tokens = shlex.split(command, comments=True)
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
            cfg = compose(config, overrides=[*overrides, f"paths.root_dir={tmp_path}"], return_hydra_config=True)
        assert cfg.task_name, f"{where}: {command}"
