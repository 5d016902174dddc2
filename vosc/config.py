"""The one configuration error of vosc and the parsing of settings that have more than one spelling.

Each constructor checks its own arguments (``VOSModule``: alpha and depths; ``CompressionSpec``: the codec
and q; ``TimmBackbone``: the encoder) and raises :class:`ConfigError`; settings that span groups (dataset
roots, checkpoints, enhancer stages, evaluation depths against the model) are checked by the builders in
:mod:`vosc.lit.builders` and :mod:`vosc.evaluation.builders` before any work starts.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RENAMED_OVERRIDES", "ConfigError", "check_renamed_overrides", "instantiate", "parse_alpha"]

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
