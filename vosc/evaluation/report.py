"""Reports over RD curves: summary tables (Markdown + CSV), BD tables, enhancer on/off deltas, J&F–bpp
plots (matplotlib, Agg) and optional W&B logging.

Typical use by ``evaluate.py``::

    curves = load_curves(sorted(Path("outputs/eval").rglob("rd.json")))
    write_table(summary_rows(curves), out / "summary.md", out / "summary.csv")
    plot_rd(curves, out / "rd_jf.png")
    write_table(bd_rows(curves[1:], anchor=curves[0]), out / "bd.md", out / "bd.csv")
    write_table(enhancer_rows(base, enhanced, uncompressed_jf=0.82), out / "enhancer.md",
                out / "enhancer.csv")
    log_to_wandb(run, curves, images={"rd/jf": out / "rd_jf.png"})

All files are written atomically. Quality values are kept as fractions in the rows; tables print J&F,
J and F in percent points (×100), as papers do.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vosc.evaluation.phantoms import format_phantom_ids
from vosc.metrics.rd import (
    QUALITY_KEYS,
    RDCurve,
    RDPoint,
    bd_quality,
    bd_rate,
)
from vosc.utils.io import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

Row = dict[str, Any]
_PERCENT_COLUMNS = {"J&F", "J", "F", "ΔJ&F", "BD-J&F"}

__all__ = [
    "bd_rows",
    "enhancer_rows",
    "load_curves",
    "log_to_wandb",
    "plot_rd",
    "rd_figure",
    "rows_to_csv",
    "rows_to_markdown",
    "summary_rows",
    "write_table",
]


def load_curves(paths: Iterable[str | Path]) -> list[RDCurve]:
    """Load RD JSON files (validated; see :meth:`RDCurve.load`)."""
    return [RDCurve.load(p) for p in paths]


def _point_row(curve: RDCurve, point: RDPoint) -> Row:
    p, rt = curve.provenance, point.runtimes
    return {
        "curve": curve.label,
        "codec": p.codec,
        "q": point.q,
        "depth": p.depth,
        "model": p.model,
        "enhancer": p.enhancer or "",
        "dataset": p.dataset,
        "bpp": point.bpp,
        "mask_bpp": point.extra.get("mask_bpp"),
        "J&F": point.jf,
        "J": point.j,
        "F": point.f,
        "PSNR": point.psnr,
        "jf_seqs": point.extra.get("jf_sequences", point.num_sequences if point.jf is not None else 0),
        "bpp_seqs": point.extra.get("bpp_sequences", point.num_sequences),
        "encode_s": rt.encode,
        "decode_s": rt.decode,
        "vos_s": rt.vos,
        "total_s": rt.total,
        "t_e_s": point.extra.get("t_e"),
        "t_d_s": point.extra.get("t_d"),
        "analysis": point.extra.get("analysis"),
        "fps": rt.fps,
        "vos_fps": rt.vos_fps,
        "phantom_ids": format_phantom_ids(point.extra.get("phantom_ids") or {}),
    }


def summary_rows(curves: Sequence[RDCurve]) -> list[Row]:
    """One row per operating point, curves in the given order and points by increasing bpp."""
    return [_point_row(c, pt) for c in curves for pt in sorted(c.points, key=lambda x: x.bpp)]


def bd_rows(curves: Sequence[RDCurve], anchor: RDCurve, quality: str = "jf") -> list[Row]:
    """BD-rate (%) and BD-quality of every curve against ``anchor``.

    Curves that cannot be compared (no overlap, too few points, ``codec: none`` with bpp 0) get empty
    values and the reason in
    ``note`` instead of failing the whole report; the reason is also logged.

    Args:
        curves: Curves to compare (the anchor itself may be included; it gets 0 / 0).
        anchor: Reference curve.
        quality: ``jf`` (BD-J&F, reported ×100 in tables), ``j``, ``f`` or ``psnr``.
    """
    key = "BD-J&F" if quality == "jf" else f"BD-{QUALITY_KEYS[quality]}"
    rows = []
    for curve in curves:
        row: Row = {"curve": curve.label, "anchor": anchor.label, "BD-rate %": None, key: None, "note": ""}
        try:
            row["BD-rate %"] = bd_rate(anchor, curve, quality)
            row[key] = bd_quality(anchor, curve, quality)
        except ValueError as error:  # NoOverlapError, InsufficientPointsError, non-positive rates
            row["note"] = str(error)
            log.warning("BD-rate / %s (%s) of %s vs %s skipped: %s", key, QUALITY_KEYS[quality], curve.label,
                        anchor.label, error)
        rows.append(row)
    return rows


def enhancer_rows(base: RDCurve, enhanced: RDCurve, uncompressed_jf: float | None = None) -> list[Row]:
    """Enhancer on/off deltas at matching operating points (same ``q``).

    Args:
        base: Curve without enhancer.
        enhanced: Same codec/model with the enhancer.
        uncompressed_jf: J&F on raw frames (fraction); enables ``gap recovered`` =
            ``(J&F_enh − J&F_base) / (J&F_raw − J&F_base)``.

    Returns:
        Rows with ``q``, ``bpp``, ``ΔPSNR`` (dB), ``ΔJ&F`` (fraction) and ``gap recovered`` (fraction).

    Raises:
        ValueError: The curves share no ``q``.
    """
    enhanced_by_q = {p.q: p for p in enhanced.points}
    rows = []
    for point in sorted(base.points, key=lambda x: x.bpp):
        other = enhanced_by_q.get(point.q)
        if other is None:
            continue
        d_psnr = None if point.psnr is None or other.psnr is None else other.psnr - point.psnr
        d_jf = None if point.jf is None or other.jf is None else other.jf - point.jf
        gap = None
        if d_jf is not None and point.jf is not None and uncompressed_jf is not None \
                and uncompressed_jf - point.jf > 1e-12:
            gap = d_jf / (uncompressed_jf - point.jf)
        rows.append(
            {
                "codec": base.provenance.codec,
                "q": point.q,
                "bpp": point.bpp,
                "PSNR": point.psnr,
                "ΔPSNR": d_psnr,
                "J&F": point.jf,
                "ΔJ&F": d_jf,
                "gap recovered": gap,
            }
        )
    if not rows:
        raise ValueError(f"curves {base.label!r} and {enhanced.label!r} share no operating point (q)")
    return rows


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if key in _PERCENT_COLUMNS:
            return f"{100.0 * value:.2f}"
        if key in ("bpp", "mask_bpp"):
            return f"{value:.4f}"
        if key == "gap recovered":
            return f"{100.0 * value:.1f}%"
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.4g}"
    return str(value)


def rows_to_markdown(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table (J&F, J, F and their deltas in percent points; bpp with 4 decimals).

    Raises:
        ValueError: ``rows`` is empty and no ``columns`` are given.
    """
    columns = list(columns or (rows[0].keys() if rows else []))
    if not columns:
        raise ValueError("cannot build a table from no rows and no columns")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(c, r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def rows_to_csv(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """CSV text with full-precision raw values (fractions, not percent)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def write_table(rows: Sequence[Row], markdown_path: str | Path | None, csv_path: str | Path | None) -> None:
    """Write ``rows`` as Markdown and/or CSV, atomically."""
    if markdown_path is not None:
        atomic_write_bytes(markdown_path, rows_to_markdown(rows).encode())
    if csv_path is not None:
        atomic_write_bytes(csv_path, rows_to_csv(rows).encode())


#: Smallest y-axis span of a plot (J&F, J, F in percent points; PSNR in dB): differences below the noise of a
#: few sequences are not magnified into steep curves.
MIN_Y_SPAN = {"jf": 10.0, "j": 10.0, "f": 10.0, "psnr": 2.0}
_LINESTYLES = ["-", "--", ":", "-."]


def _spread(point: RDPoint, quality: str, scale: float) -> float | None:
    """Standard error of the mean of ``quality`` over the point's sequences (``None`` below two sequences)."""
    key = QUALITY_KEYS[quality]
    per_sequence = point.extra.get("per_sequence") or {}
    values = [float(v[key]) for v in per_sequence.values() if isinstance(v, dict) and v.get(key) is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return scale * (var / len(values)) ** 0.5


def _draw_curves(
    axis: Any, curves: Sequence[RDCurve], quality: str, scale: float, log_x: bool
) -> list[float]:
    """Draw each curve on ``axis``: colour per depth, line style per codec, triangles with the enhancer,
    every point labelled with its ``q``, error bars (± 1 s.e.m. over sequences) where there are several.

    Returns:
        Every y value drawn, error bars included (empty: nothing drawn).
    """
    if quality == "psnr":
        curves = _one_per_depth(curves)
    codecs = list(dict.fromkeys(c.provenance.codec for c in curves if c.provenance.codec != "none"))
    depths = sorted({c.provenance.depth for c in curves}, key=lambda d: -1 if d is None else d)
    colours = {d: plt.get_cmap("tab10")(i % 10) for i, d in enumerate(depths)}
    styles: dict[str, Any] = {c: _LINESTYLES[i % len(_LINESTYLES)] for i, c in enumerate(codecs)}
    styles["none"] = (0, (6, 2, 1, 2))  # uncompressed reference lines
    ys: list[float] = []
    for curve in curves:
        prov = curve.provenance
        style = {"color": colours[prov.depth], "linestyle": styles[prov.codec]}
        points = sorted((p for p in curve.points if getattr(p, quality) is not None), key=lambda p: p.bpp)
        if points and all(p.bpp <= 0 for p in points):
            level = getattr(points[0], quality) * scale
            axis.axhline(level, label=curve.label, linewidth=1, alpha=0.7, **style)
            ys.append(level)
            continue
        points = [p for p in points if p.bpp > 0 or not log_x]
        if not points:
            continue
        x = [p.bpp for p in points]
        y = [getattr(p, quality) * scale for p in points]
        err = [_spread(p, quality, scale) for p in points]
        has_err = any(e is not None for e in err)
        axis.errorbar(x, y, yerr=[e or 0.0 for e in err] if has_err else None, capsize=2, elinewidth=0.8,
                      marker="^" if prov.enhancer else "o", markersize=4, label=curve.label, **style)
        for p, xi, yi in zip(points, x, y, strict=True):
            axis.annotate(f"q{p.q}", (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6,
                          color=style["color"])
        ys += [yi + s * (e or 0.0) for yi, e in zip(y, err, strict=True) for s in (-1, 1)]
    return ys


def _one_per_depth(curves: Sequence[RDCurve]) -> list[RDCurve]:
    """PSNR does not depend on the VOS depth (same bitstreams): one curve per codec and enhancer, the
    points of every depth merged by ``q``, labelled without depth."""
    groups: dict[tuple[str, str | None], RDCurve] = {}
    for curve in curves:
        prov = curve.provenance
        key = (prov.codec, prov.enhancer)
        if key not in groups:
            label = prov.codec + (f" +{prov.enhancer}" if prov.enhancer else "")
            groups[key] = RDCurve(replace(prov, depth=None), [], name=label)
        have = {p.q for p in groups[key].points}
        groups[key].points += [p for p in curve.points if p.q not in have]
    return list(groups.values())


def _y_limits(ys: Sequence[float], quality: str) -> tuple[float, float]:
    """Data range widened to :data:`MIN_Y_SPAN` around its centre (J&F kept in 0–100), plus a 5 % margin."""
    low, high = min(ys), max(ys)
    span = MIN_Y_SPAN[quality]
    if high - low < span:
        middle = (low + high) / 2
        low, high = middle - span / 2, middle + span / 2
        if quality != "psnr":
            shift = max(0.0, -low) - max(0.0, high - 100.0)
            low, high = low + shift, high + shift
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def rd_figure(
    curves: Sequence[RDCurve], quality: str = "jf", log_x: bool = True, title: str | None = None
) -> Any:
    """The matplotlib figure of :func:`plot_rd` (the caller closes it).

    Raises:
        ValueError: No curve has a point with this quality.
    """
    scale = 1.0 if quality == "psnr" else 100.0
    figure, axis = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ys = _draw_curves(axis, curves, quality, scale, log_x)
    if not ys:
        plt.close(figure)
        raise ValueError(f"no curve has points with {QUALITY_KEYS[quality]}; nothing to plot")
    if log_x:
        axis.set_xscale("log")
    axis.set_ylim(*_y_limits(ys, quality))
    axis.set_xlabel("bits per pixel (points labelled with the codec's q)")
    unit = " (dB)" if quality == "psnr" else " (%)"
    axis.set_ylabel(f"{QUALITY_KEYS[quality]}{unit}, ± 1 s.e.m. over sequences")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


def plot_rd(
    curves: Sequence[RDCurve],
    path: str | Path,
    quality: str = "jf",
    log_x: bool = True,
    title: str | None = None,
) -> Path:
    """Plot quality vs bpp, one line per curve (see :func:`_draw_curves` for the styles).

    Points without the quality (no ground truth) are left out; ``codec: none`` points (bpp 0 on a log
    axis) are drawn as horizontal reference lines. The y axis spans at least :data:`MIN_Y_SPAN`.

    Args:
        curves: Curves to draw.
        path: PNG path (written atomically).
        quality: ``jf``, ``j``, ``f`` or ``psnr``.
        log_x: Logarithmic bpp axis.
        title: Figure title.

    Returns:
        ``path``.

    Raises:
        ValueError: No curve has a point with this quality.
    """
    return save_figure(rd_figure(curves, quality, log_x, title), path)


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write a Matplotlib ``figure`` to ``path`` as PNG (atomically) and close it; returns ``path``."""
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)
    return path


def log_to_wandb(
    run: Any,
    curves: Sequence[RDCurve],
    images: Mapping[str, str | Path] | None = None,
    tables: Mapping[str, Sequence[Row]] | None = None,
) -> None:
    """Log the summary table, extra tables and plot images to a W&B run.

    Args:
        run: A ``wandb`` run (``wandb.init(...)``); nothing is logged when ``None``.
        curves: Curves for the ``rd/summary`` table.
        images: ``key → PNG path`` (e.g. ``{"rd/jf": "rd_jf.png"}``).
        tables: Extra ``key → rows`` (e.g. ``{"rd/bd": bd_rows(...)}``).
    """
    if run is None:
        return
    import wandb

    payload: dict[str, Any] = {}
    for key, rows in {"rd/summary": summary_rows(curves), **(tables or {})}.items():
        if rows:
            columns = [str(c) for c in rows[0]]
            table_data = [[r.get(c) for c in columns] for r in rows]
            payload[key] = wandb.Table(columns=list[str | int](columns), data=table_data)
    for key, image in (images or {}).items():
        payload[key] = wandb.Image(str(image))
    run.log(payload)
