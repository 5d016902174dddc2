"""The codec ladder of an evaluation: ``x265:42``-style operating points parsed and checked against the
configured codecs before any work starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vosc.codecs.base import Codec
from vosc.types import OperatingPoint

__all__ = ["parse_ladder"]


def parse_ladder(entries: Sequence[Any], codecs: Mapping[str, Codec]) -> list[OperatingPoint]:
    """Parse a codec ladder: ``"x265:42"``, ``"none"``, ``{"codec": "x265", "q": 42}`` or ``["x265", 42]``.

    Raises:
        ValueError: Empty ladder, malformed entry, unknown codec (listing the known ones), ``q`` missing or
            out of the codec's range, or a duplicate point.
    """
    if not entries:
        raise ValueError("ladder: the codec ladder is empty; give e.g. ladder=[x265:32,x265:42]")
    points: list[OperatingPoint] = []
    for i, entry in enumerate(entries):
        try:
            name, q = OperatingPoint.split(entry)
        except ValueError as exc:
            raise ValueError(f"ladder[{i}]: {exc}") from None
        if name not in codecs:
            raise ValueError(f"ladder[{i}]: unknown codec {name!r}; configured codecs: {sorted(codecs)}")
        try:
            values = OperatingPoint.parse_q(q)
        except ValueError:
            values = []
        if name == "none":
            if values or q not in (None, "", "null"):
                raise ValueError(f"ladder[{i}]: codec 'none' takes no quality parameter, got q={q!r}")
            point = OperatingPoint("none", None)
        else:
            if len(values) != 1:
                raise ValueError(f"ladder[{i}]: codec {name!r} needs an integer q, got {q!r}")
            try:
                codecs[name].check_q(values[0])
            except ValueError as exc:
                raise ValueError(f"ladder[{i}]: {exc}") from None
            point = OperatingPoint(name, values[0])
        if point in points:
            raise ValueError(f"ladder[{i}]: duplicate operating point {point.tag}")
        points.append(point)
    return points
