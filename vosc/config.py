"""The one configuration error of vosc and the parsing of settings that have more than one spelling.

Each constructor checks its own arguments (``VOSModule``: alpha and depths; ``CompressionSpec``: the codec
and q; ``TimmBackbone``: the encoder) and raises :class:`ConfigError`; settings that span groups (dataset
roots, checkpoints, enhancer stages, evaluation depths against the model) are checked by the builders in
:mod:`vosc.lit.builders` and :mod:`vosc.evaluation.builders` before any work starts.

On the command line (:func:`run_cli`, used by ``train.py`` and ``evaluate.py``) a :class:`ConfigError` or a
Hydra composition error is one line with the fix and no traceback (``HYDRA_FULL_ERROR=1`` gives Hydra's full
report): a key that is not in the config names the closest valid keys (``trainer.max_step`` ->
``trainer.max_steps``), an unknown option of a group the closest options.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RENAMED_OVERRIDES", "ConfigError", "check_composition", "check_renamed_overrides", "closest",
           "exit_on_config_error", "first_job", "instantiate", "one_line", "parse_alpha", "run_cli"]

# `inf` in YAML/overrides is parsed by OmegaConf as a float; also accept the string forms.
_INF_STRINGS = {"inf", "+inf", "infinity", ".inf"}


#: Override spellings that earlier versions documented: old key prefix -> the key prefix that replaced it.
RENAMED_OVERRIDES: dict[str, str] = {
    "codec.codec_kwargs.": "codec.codec.",  # the codec is a node of its own (conf/codec/coder/)
}


class ConfigError(ValueError):
    """An invalid configuration, reported before any work starts; the message names the key and the valid
    choices."""


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, _convert_="all")`` that surfaces a constructor's :class:`ConfigError`
    (Hydra wraps it in an ``InstantiationException``) as the same error type, with its own message."""
    import hydra.utils
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause: BaseException | None = exc.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise type(cause)(str(cause)) from exc


def parse_alpha(value: Any) -> float:
    """Scalable-supervision base ``alpha`` from a number or ``"inf"`` (deepest-only supervision).

    Raises:
        ConfigError: Not a number (the range ``> 0`` is checked by ``VOSModule``).
    """
    if isinstance(value, str) and value.strip().lower() in _INF_STRINGS:
        return math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"lit.alpha={value!r} is not a number; use a value > 0 or inf") from None


def check_renamed_overrides(overrides: list[str]) -> None:
    """Fail on a command-line override that uses a spelling vosc no longer has, naming the new one.

    Args:
        overrides: ``key=value`` arguments as given on the command line (``+``/``~`` prefixes allowed).

    Raises:
        ConfigError: The first override whose key starts with an old prefix of :data:`RENAMED_OVERRIDES`.
    """
    for arg in overrides:
        key = arg.split("=", 1)[0].lstrip("+~")
        for old, new in RENAMED_OVERRIDES.items():
            if key.startswith(old):
                raise ConfigError(f"{key} was renamed: use {new}{key[len(old):]} (got {arg!r})")


def closest(word: str, choices: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``word`` (``difflib``), best first; for a dotted key, keys under
    the same parent are tried first (``trainer.max_step`` -> ``trainer.max_steps``)."""
    parent = word.rsplit(".", 1)[0] + "." if "." in word else ""
    siblings = [c for c in choices if parent and c.startswith(parent)]
    found = difflib.get_close_matches(word, siblings, n=n, cutoff=0.6) if siblings else []
    return found or difflib.get_close_matches(word, choices, n=n, cutoff=0.6)


def _keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every node (leaves and inner nodes) of a plain nested dict."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out += [key, *_keys(v, key)]
    return out


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of the first job of a (multirun) sweep: ``a=1,2`` -> ``a=1``.

    Raises:
        ConfigError: An override that does not parse (Hydra's override grammar).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    out = []
    for arg in overrides:
        try:
            (ov,) = OverridesParser.create().parse_overrides([arg])
        except OverrideParseException as exc:
            raise ConfigError(f"cannot parse the override {arg!r}: {str(exc).splitlines()[0]} (quote values "
                              "with spaces or brackets: 'key=[1,2]')") from None
        if ov.is_sweep_override():
            out.append(f"{ov.get_key_element()}={next(iter(ov.sweep_string_iterator()))}")
        else:
            out.append(ov.input_line or arg)
    return out


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def check_composition(config_dir: Path, config_name: str, overrides: list[str]) -> None:
    """Compose ``config_name`` with the first job of ``overrides`` as Hydra will; a failure becomes one
    :class:`ConfigError` line with the fix.

    Raises:
        ConfigError: An override that does not parse, a key that is not in the config (with the closest
            keys), an unknown option of a config group (with the closest options), or another composition
            error (its first line).
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import OmegaConf

    job = first_job(overrides)
    try:
        _compose(config_dir, config_name, job)
    except MissingConfigException as exc:
        m = re.search(r"Could not find '([^']+)'", str(exc))
        group, _, option = (m.group(1) if m else str(exc.missing_cfg_file)).rpartition("/")
        options = [str(o) for o in (exc.options or [])]
        near = closest(option, options)
        hint = f"did you mean {group}={' or '.join(near)}? " if near else ""
        raise ConfigError(f"{group}={option}: no such option of '{group}'; {hint}options: "
                          f"{', '.join(options)}") from None
    except ConfigCompositionException as exc:
        m = re.search(r"Could not override '([^']+)'", str(exc))
        if m is None:
            raise ConfigError(str(exc).splitlines()[0]) from None
        key = m.group(1)
        rest = [o for o in job if o.split("=", 1)[0].lstrip("+~") != key]
        try:
            cfg = OmegaConf.to_container(_compose(config_dir, config_name, rest), resolve=False)
        except Exception:  # noqa: BLE001 - the suggestion is a courtesy; the error stands without it
            cfg = {}
        keys = [k for k in _keys(cfg) if key.startswith("hydra") or not k.startswith("hydra")]
        near = closest(key, keys)
        value = next((o.split("=", 1)[1] for o in job if o.split("=", 1)[0] == key), "...")
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ConfigError(f"{key} is not a key of the config; {hint}(a new key is added with "
                          f"+{key}={value})") from None


def one_line(exc: BaseException) -> str:
    """``error: <first line of the message>``, saying where the rest is when the message has more lines."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    more = f" ({len(lines) - 1} more lines with HYDRA_FULL_ERROR=1)" if len(lines) > 1 else ""
    return f"error: {lines[0]}{more}"


def run_cli(main: Callable[[], Any], config_dir: Path, config_name: str, argv: list[str]) -> None:
    """Run a Hydra entry point with one-line configuration errors (module docstring).

    Before ``main`` (Hydra's), the overrides are checked (:func:`check_renamed_overrides`) and composed
    (:func:`check_composition`; skipped for Hydra's own flags such as ``--help`` or ``--cfg``); a
    :class:`ConfigError` raised while the job runs exits with its one line too (``main`` must let it through:
    see :func:`exit_on_config_error`). ``HYDRA_FULL_ERROR=1`` skips all of this: Hydra's full report.
    """
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    if not full:
        try:
            check_renamed_overrides(overrides)
            if not any(a.startswith("-") for a in overrides):
                check_composition(config_dir, config_name, overrides)
        except ConfigError as exc:
            sys.exit(one_line(exc))
    main()


def exit_on_config_error(job: Callable[[], Any]) -> Any:
    """Run ``job`` (a Hydra task's body); a :class:`ConfigError`, or a checkpoint that does not fit the
    configured model (its message starts with the variant whose keys match, before the key lists), exits
    with its one line (``SystemExit``, which Hydra lets through) unless ``HYDRA_FULL_ERROR=1``."""
    from vosc.checkpoints.errors import CheckpointError

    try:
        return job()
    except (ConfigError, CheckpointError, KeyError) as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or not _is_config_error(exc):
            raise
        raise SystemExit(one_line(exc)) from None


def _is_config_error(exc: BaseException) -> bool:
    from vosc.checkpoints.errors import CheckpointError, CheckpointMismatchError

    return isinstance(exc, (ConfigError, CheckpointError, CheckpointMismatchError))
