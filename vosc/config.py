"""The one configuration error of vosc and the parsing of settings that have more than one spelling.

Each constructor checks its own arguments (``VOSModule``: alpha and depths; ``CompressionSpec``: the codec
and q; ``TimmBackbone``: the encoder) and raises :class:`ConfigError`; settings that span groups (dataset
roots, checkpoints, enhancer stages, evaluation depths against the model) are checked by the builders in
:mod:`vosc.lit.builders` and :mod:`vosc.evaluation.builders` before any work starts.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ConfigError", "parse_alpha"]

# `inf` in YAML/overrides is parsed by OmegaConf as a float; also accept the string forms.
_INF_STRINGS = {"inf", "+inf", "infinity", ".inf"}


class ConfigError(ValueError):
    """An invalid configuration, reported before any work starts; the message names the key and the valid
    choices."""


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
