"""Rate–accuracy (RD) curves: a JSON schema with round trip and atomic writes, and Bjøntegaard deltas.

RD JSON (``schema: "vosc.rd/1"``), one file per curve (codec × depth × model × enhancer)::

    {"schema": "vosc.rd/1",
     "provenance": {"codec", "encoder_version", "ffmpeg_version", "model", "checkpoint",
                    "checkpoint_hash", "depth", "dataset", "enhancer", "created", "vosc_version", "extra"},
     "points": [{"q", "bpp", "J&F", "J", "F", "PSNR", "num_sequences",
                 "runtimes": {"encode", "decode", "vos", "total", "frames", "fps", "vos_fps"}, "extra"}]}

``J&F``/``J``/``F`` are fractions in ``[0, 1]`` (as the official toolkit), or ``null`` where the dataset
has no ground truth; ``PSNR`` is PSNR-Y in dB (``null`` for ``codec: none``); runtimes are seconds summed
over the dataset, ``fps = frames / total`` and ``vos_fps = frames / vos`` (written, recomputed on load).

Bjøntegaard deltas use the piecewise cubic Hermite (PCHIP) interpolation of the log10 rate, integrated
over the overlapping interval (the VCEG-AL22 / JVET "pchip" variant):

* :func:`bd_rate`: average rate difference of ``test`` against ``anchor`` at equal quality, in percent
  (negative = ``test`` needs fewer bits).
* :func:`bd_quality` (``bd_jf``): average quality difference at equal rate, in the curve's unit
  (J&F fraction, or dB for PSNR); positive = ``test`` is better.

Monotonic handling: points are sorted by rate and only the Pareto front is kept — a point is dropped,
with a :class:`NonMonotonicWarning`, when a point of lower or equal rate already reaches the same or a
higher quality (PCHIP needs strictly increasing abscissae). At least two points must remain. Curves whose
quality (for BD-rate) or rate (for BD-quality) ranges do not overlap raise :class:`NoOverlapError`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from vosc.utils.io import atomic_write_bytes

SCHEMA = "vosc.rd/1"
#: Quality keys accepted by the BD functions: attribute name → JSON key.
QUALITY_KEYS: dict[str, str] = {"jf": "J&F", "j": "J", "f": "F", "psnr": "PSNR"}

__all__ = [
    "SCHEMA",
    "NoOverlapError",
    "NonMonotonicWarning",
    "Provenance",
    "RDCurve",
    "RDPoint",
    "RDSchemaError",
    "Runtimes",
    "bd_jf",
    "bd_quality",
    "bd_rate",
]


class RDSchemaError(ValueError):
    """An RD JSON file or dict does not follow the schema; the message names the file and key."""


class NoOverlapError(ValueError):
    """Two curves do not overlap in the range needed for a Bjøntegaard delta."""


class InsufficientPointsError(ValueError):
    """A curve has fewer than two usable (positive-rate, finite, Pareto) points."""


class NonMonotonicWarning(UserWarning):
    """A curve point was dropped because a lower-rate point reaches the same or a higher quality."""


@dataclass
class Runtimes:
    """Seconds spent, summed over the dataset, and the frames processed.

    Attributes:
        encode: Encoder seconds (0 for cache hits / ``none``).
        decode: Decoder seconds.
        vos: Segmentation-model seconds.
        total: Wall seconds of the whole operating point (>= the parts when run serially).
        frames: Frames processed.
    """

    encode: float = 0.0
    decode: float = 0.0
    vos: float = 0.0
    total: float = 0.0
    frames: int = 0

    @property
    def fps(self) -> float | None:
        """``frames / total``, ``None`` when ``total`` is 0."""
        return self.frames / self.total if self.total > 0 else None

    @property
    def vos_fps(self) -> float | None:
        """``frames / vos``, ``None`` when ``vos`` is 0."""
        return self.frames / self.vos if self.vos > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON dict including the derived ``fps`` and ``vos_fps``."""
        return {**asdict(self), "fps": self.fps, "vos_fps": self.vos_fps}


@dataclass
class RDPoint:
    """One operating point of a curve.

    Attributes:
        q: Quality parameter (CRF / QP), ``None`` for ``codec: none``.
        bpp: Bits per pixel (pixel-weighted over the dataset).
        jf: J&F-Mean fraction, ``None`` without ground truth.
        j: J-Mean fraction.
        f: F-Mean fraction.
        psnr: PSNR-Y in dB, ``None`` if not measured.
        runtimes: Timing of this point.
        num_sequences: Sequences evaluated.
        extra: Free-form JSON-serialisable details (e.g. recall/decay, per-sequence file).
    """

    q: int | None
    bpp: float
    jf: float | None = None
    j: float | None = None
    f: float | None = None
    psnr: float | None = None
    runtimes: Runtimes = field(default_factory=Runtimes)
    num_sequences: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON dict with the schema's key names."""
        return {
            "q": self.q,
            "bpp": self.bpp,
            "J&F": self.jf,
            "J": self.j,
            "F": self.f,
            "PSNR": self.psnr,
            "num_sequences": self.num_sequences,
            "runtimes": self.runtimes.to_dict(),
            "extra": self.extra,
        }


@dataclass
class Provenance:
    """Where a curve comes from.

    Attributes:
        codec: ``none``, ``x265`` or ``vvenc``.
        model: Model name (e.g. ``aost``).
        dataset: Dataset name (e.g. ``davis2017-val``).
        depth: Inference depth ``n'`` (``None`` for non-scalable models).
        encoder_version: Encoder library / binary version.
        ffmpeg_version: FFmpeg version used (``None`` when unused).
        checkpoint: Checkpoint path or name.
        checkpoint_hash: SHA-256 (or prefix) of the checkpoint file.
        enhancer: Enhancer name, ``None`` when off.
        created: ISO-8601 UTC creation time.
        vosc_version: Package version.
        extra: Free-form details (codec parameters, host, ...).
    """

    codec: str
    model: str
    dataset: str
    depth: int | None = None
    encoder_version: str | None = None
    ffmpeg_version: str | None = None
    checkpoint: str | None = None
    checkpoint_hash: str | None = None
    enhancer: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    vosc_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _get(data: dict[str, Any], key: str, types: tuple[type, ...], where: str, optional: bool = False) -> Any:
    if key not in data:
        if optional:
            return None
        raise RDSchemaError(f"{where}: missing key {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, types):
        names = "/".join(t.__name__ for t in types)
        raise RDSchemaError(
            f"{where}: key {key!r} must be {names}{' or null' if optional else ''}, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise RDSchemaError(f"{where}: key {key!r} is not finite ({value})")
    return value


def _point_from_dict(data: dict[str, Any], where: str) -> RDPoint:
    num = (int, float)
    rt = _get(data, "runtimes", (dict,), where)
    rt_where = f"{where}.runtimes"
    encode, decode, vos, total = (float(_get(rt, k, num, rt_where))
                                  for k in ("encode", "decode", "vos", "total"))
    runtimes = Runtimes(encode, decode, vos, total, frames=int(_get(rt, "frames", (int,), rt_where)))
    bpp = float(_get(data, "bpp", num, where))
    if bpp < 0:
        raise RDSchemaError(f"{where}: bpp must be >= 0, got {bpp}")
    values = {k: _get(data, key, num, where, optional=True) for k, key in QUALITY_KEYS.items()}
    return RDPoint(
        q=_get(data, "q", (int,), where, optional=True),
        bpp=bpp,
        **{k: None if v is None else float(v) for k, v in values.items()},
        runtimes=runtimes,
        num_sequences=int(_get(data, "num_sequences", (int,), where)),
        extra=_get(data, "extra", (dict,), where, optional=True) or {},
    )


@dataclass
class RDCurve:
    """A rate–accuracy curve: provenance and points (kept in the given order; BD functions sort).

    Attributes:
        provenance: Where the curve comes from.
        points: Operating points.
        name: Optional display name (default: :attr:`label`).
    """

    provenance: Provenance
    points: list[RDPoint] = field(default_factory=list)
    name: str | None = None

    @property
    def label(self) -> str:
        """``name`` or ``<codec> d<depth>[ +<enhancer>]``."""
        if self.name:
            return self.name
        p = self.provenance
        depth = f" d{p.depth}" if p.depth is not None else ""
        return f"{p.codec}{depth}" + (f" +{p.enhancer}" if p.enhancer else "")

    def to_dict(self) -> dict[str, Any]:
        """The schema dict."""
        return {
            "schema": SCHEMA,
            "name": self.name,
            "provenance": asdict(self.provenance),
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> RDCurve:
        """Validate and parse a schema dict.

        Raises:
            RDSchemaError: Wrong schema tag, missing/ill-typed key (message names ``source`` and key).
        """
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RDSchemaError(f"{source}: not an RD curve (expected schema {SCHEMA!r})")
        prov = _get(data, "provenance", (dict,), source)
        where = f"{source}: provenance"
        strings = (
            "encoder_version",
            "ffmpeg_version",
            "checkpoint",
            "checkpoint_hash",
            "enhancer",
            "vosc_version",
        )
        provenance = Provenance(
            codec=_get(prov, "codec", (str,), where),
            model=_get(prov, "model", (str,), where),
            dataset=_get(prov, "dataset", (str,), where),
            depth=_get(prov, "depth", (int,), where, optional=True),
            **{k: _get(prov, k, (str,), where, optional=True) for k in strings},
            created=_get(prov, "created", (str,), where),
            extra=_get(prov, "extra", (dict,), where, optional=True) or {},
        )
        points = _get(data, "points", (list,), source)
        parsed = [
            _point_from_dict(p if isinstance(p, dict) else {}, f"{source}: points[{i}]")
            for i, p in enumerate(points)
        ]
        return cls(provenance, parsed, _get(data, "name", (str,), source, optional=True))

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (temp file + ``os.replace``)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        return atomic_write_bytes(path, text.encode())

    @classmethod
    def load(cls, path: str | Path) -> RDCurve:
        """Read and validate a curve file.

        Raises:
            FileNotFoundError: ``path`` is missing.
            RDSchemaError: Invalid JSON or schema, naming ``path``.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise RDSchemaError(f"{path}: invalid JSON ({error})") from error
        return cls.from_dict(data, str(path))

    def pairs(self, quality: str = "jf") -> list[tuple[float, float]]:
        """``(bpp, quality)`` of every point that has the quality.

        Raises:
            KeyError: Unknown ``quality`` (one of ``jf``, ``j``, ``f``, ``psnr``).
        """
        if quality not in QUALITY_KEYS:
            raise KeyError(f"unknown quality {quality!r}; expected one of {sorted(QUALITY_KEYS)}")
        return [(p.bpp, getattr(p, quality)) for p in self.points if getattr(p, quality) is not None]


# ----------------------------------------------------------------------------------------------------
# Bjøntegaard deltas
# ----------------------------------------------------------------------------------------------------
CurveLike = RDCurve | Sequence[tuple[float, float]]


def pareto_points(
    pairs: Sequence[tuple[float, float]], label: str = "curve"
) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``(rate, quality)`` pairs by rate and keep the Pareto front (see the module docstring).

    Returns:
        ``(log10 rate, quality)`` arrays, both strictly increasing.

    Raises:
        ValueError: A rate is not positive/finite or a quality is not finite.
        InsufficientPointsError: Fewer than two points remain.
    """
    rates = np.array([float(r) for r, _ in pairs], dtype=np.float64)
    quality = np.array([float(q) for _, q in pairs], dtype=np.float64)
    if np.any(~np.isfinite(rates)) or np.any(rates <= 0):
        raise ValueError(f"{label}: every rate must be positive and finite for BD (got {rates.tolist()})")
    if np.any(~np.isfinite(quality)):
        raise ValueError(f"{label}: every quality must be finite for BD (got {quality.tolist()})")
    order = np.lexsort((-quality, rates))
    keep: list[int] = []
    for index in order:
        if keep and quality[index] <= quality[keep[-1]]:
            warnings.warn(
                f"{label}: dropped point (rate {rates[index]:.6g}, quality {quality[index]:.6g}); a point "
                f"of lower or equal rate reaches quality {quality[keep[-1]]:.6g}",
                NonMonotonicWarning,
                stacklevel=3,
            )
            continue
        keep.append(int(index))
    if len(keep) < 2:
        raise InsufficientPointsError(f"{label}: {len(keep)} usable point(s); a BD delta needs at least 2")
    return np.log10(rates[keep]), quality[keep]


def _curve(curve: CurveLike, quality: str, default: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Pareto ``(log10 rate, quality)`` of ``curve``; messages and warnings name the curve and the metric."""
    if isinstance(curve, RDCurve):
        return (*pareto_points(curve.pairs(quality), f"{curve.label} [{QUALITY_KEYS[quality]}]"), curve.label)
    return (*pareto_points(list(curve), f"{default} [{QUALITY_KEYS[quality]}]"), default)


def _overlap(a: np.ndarray, b: np.ndarray, what: str, labels: tuple[str, str]) -> tuple[float, float]:
    low, high = max(a.min(), b.min()), min(a.max(), b.max())
    if not high > low:
        raise NoOverlapError(
            f"{labels[0]} {what} [{a.min():.6g}, {a.max():.6g}] and {labels[1]} {what} [{b.min():.6g}, "
            f"{b.max():.6g}] do not overlap: no Bjøntegaard delta can be computed"
        )
    return float(low), float(high)


def bd_rate(anchor: CurveLike, test: CurveLike, quality: str = "jf") -> float:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` at equal quality, in percent.

    Args:
        anchor: Reference curve (:class:`RDCurve` or ``(bpp, quality)`` pairs).
        test: Compared curve.
        quality: ``jf`` (default), ``j``, ``f`` or ``psnr`` (only for :class:`RDCurve` inputs).

    Returns:
        ``(10^mean(log10 R_test − log10 R_anchor) − 1) · 100`` over the common quality interval.

    Raises:
        NoOverlapError: The quality ranges do not overlap.
        InsufficientPointsError: A curve has fewer than two usable points.
    """
    a_rate, a_q, a_label = _curve(anchor, quality, "anchor")
    b_rate, b_q, b_label = _curve(test, quality, "test")
    low, high = _overlap(a_q, b_q, f"{QUALITY_KEYS[quality]} range [BD-rate]", (a_label, b_label))
    a_int = PchipInterpolator(a_q, a_rate).integrate(low, high)
    b_int = PchipInterpolator(b_q, b_rate).integrate(low, high)
    return float((10.0 ** ((b_int - a_int) / (high - low)) - 1.0) * 100.0)


def bd_quality(anchor: CurveLike, test: CurveLike, quality: str = "jf") -> float:
    """Bjøntegaard delta quality of ``test`` against ``anchor`` at equal rate.

    Returns:
        Mean of ``Q_test − Q_anchor`` over the common log-rate interval, in the quality's unit.

    Raises:
        NoOverlapError: The rate ranges do not overlap.
        InsufficientPointsError: A curve has fewer than two usable points.
    """
    a_rate, a_q, a_label = _curve(anchor, quality, "anchor")
    b_rate, b_q, b_label = _curve(test, quality, "test")
    low, high = _overlap(a_rate, b_rate, f"log10 bpp range [BD-{QUALITY_KEYS[quality]}]", (a_label, b_label))
    a_int = PchipInterpolator(a_rate, a_q).integrate(low, high)
    b_int = PchipInterpolator(b_rate, b_q).integrate(low, high)
    return float((b_int - a_int) / (high - low))


def bd_jf(anchor: CurveLike, test: CurveLike) -> float:
    """BD-J&F: :func:`bd_quality` on J&F (fraction; multiply by 100 for points)."""
    return bd_quality(anchor, test, "jf")
