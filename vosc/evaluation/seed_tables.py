"""The seeds' Tables 1–3 (DESIGN §9) and the decoder/encoder RD comparison (``bench/seed_tables.py``).

For every model the tool runs three evaluations (:func:`evaluate.evaluate`, composed from
``conf/evaluate.yaml``) into one output folder, ``<out>/<model>/``, so that one report holds every curve:

1. ``analysis=decoder``: raw frames (``original``), the x265 ladder and VVenC at the seed's setting;
2. ``analysis=encoder``: the x265 ladder with the masks as side information (``x265+enc``);
3. ``analysis=encoder side_info.object_aware=roi``: the same with object-aware x265 (``x265+enc+roi``);

each with and without the enhancer when an enhancer checkpoint is given. It then reads the RD JSON files
and writes ``table1/2/3.{csv,md}`` (one row per method and model, at the seed's operating point: x265 CRF
42, VVenC QP 38 — the points of DESIGN §5 that match the paper's 0.0209 / 0.0179 bpp), ``side_info.{csv,md}``
(video and mask bpp, PSNR-Y inside/outside the objects), ``rd_compare.{csv,md}`` and
``rd_compare_<model>_d<depth>.png`` (J&F against total bpp of both modes, with BD-rate and the equal-J&F
rate of encoder against decoder mode). The paper's published rows are printed beside the measured ones,
marked as such (DAVIS-2017, RTX 3080 Ti): only the orderings compare, not the absolute values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vosc.evaluation.report import save_figure, write_table
from vosc.metrics.rd import RDCurve, RDPoint, bd_rate
from vosc.utils.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["PAPER", "ModelSpec", "SeedSettings", "build_tables", "parse_model", "run_seed_tables"]

SOURCE = "paper"
PAPER_NOTE = "DAVIS-2017 val, one RTX 3080 Ti, R50-AOT-L / official STCN; not comparable in absolute terms"
#: The supplement's Tables 1–3 (DESIGN §9), by (method, model).
PAPER: dict[tuple[str, str], dict[str, float]] = {
    ("original", "AOT"): {"J-Recall": 0.9129, "J-Decay": 0.0428, "F-Recall": 0.9430, "F-Decay": 0.0617},
    ("original", "STCN"): {"J-Recall": 0.9142, "J-Decay": 0.0603, "F-Recall": 0.9458, "F-Decay": 0.0861},
    ("x265", "STCN"): {"t_c": 499.5, "t_v": 74.5, "t_s": 574.0, "bpp": 0.0209, "J&F": 0.6947, "t_e": 489.7,
                       "t_d": 84.3, "t": 574.0, "J-Recall": 0.7923, "J-Decay": 0.1470, "F-Recall": 0.8204,
                       "F-Decay": 0.2123},
    ("x265", "AOT"): {"t_c": 499.5, "t_v": 116.0, "t_s": 615.5, "bpp": 0.0209, "J&F": 0.7386, "t_e": 489.7,
                      "t_d": 125.8, "t": 615.5, "J-Recall": 0.7987, "J-Decay": 0.0926, "F-Recall": 0.8168,
                      "F-Decay": 0.1483},
    ("Ours", "STCN"): {"t_c": 535.2, "t_v": 74.4, "t_s": 609.6, "bpp": 0.0158, "J&F": 0.8265, "t_e": 575.9,
                       "t_d": 33.7, "t": 609.6, "J-Recall": 0.8820, "J-Decay": 0.0427, "F-Recall": 0.9201,
                       "F-Decay": 0.0727},
    ("Ours", "AOT"): {"t_c": 531.7, "t_v": 116.0, "t_s": 647.7, "bpp": 0.0178, "J&F": 0.8354, "t_e": 614.2,
                      "t_d": 33.5, "t": 647.7, "J-Recall": 0.9051, "J-Decay": 0.0398, "F-Recall": 0.9420,
                      "F-Decay": 0.0566},
    ("vvenc", "STCN"): {"t_c": 2475.9, "t_v": 74.2, "t_s": 2550.1, "bpp": 0.0179, "J&F": 0.7440},
}
COLUMNS = {
    "table1": ["method", "model", "source", "t_c", "t_v", "t_s", "bpp", "J&F"],
    "table2": ["method", "model", "source", "t_e", "t_d", "t"],
    "table3": ["method", "model", "source", "J-Recall", "J-Decay", "F-Recall", "F-Decay"],
    "side_info": ["method", "model", "q", "bpp", "video_bpp", "mask_bpp", "mask coder", "PSNR-Y",
                  "PSNR-Y inside", "PSNR-Y outside", "J&F"],
}


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model NAME=CKPT[@VARIANT]`` (``ckpt=None``: random ``aost_small``, smoke runs only)."""

    name: str
    ckpt: str | None = None
    variant: str | None = None


def parse_model(text: str) -> ModelSpec:
    """``NAME=CKPT`` or ``NAME=CKPT@VARIANT`` (``VARIANT``: a ``conf/model`` file, for official checkpoints).

    Raises:
        ValueError: No ``=``, an empty name, or a checkpoint file that does not exist (naming it).
    """
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ValueError(f"--model {text!r}: expected NAME=CHECKPOINT[@MODEL_VARIANT]")
    ckpt, _, variant = rest.partition("@")
    if not Path(ckpt).expanduser().is_file():
        raise ValueError(f"--model {text!r}: checkpoint {ckpt} does not exist")
    return ModelSpec(name.strip(), str(Path(ckpt).expanduser()), variant or None)


@dataclass
class SeedSettings:
    """What the tables are computed on.

    Attributes:
        root: DAVIS-layout folder; ``split``: its image set.
        out: Output folder (``<out>/<model>/...``, tables in ``<out>``).
        x265: CRF of the seed's x265 row; ``vvenc``: QP of the VVenC row (``None``: no VVenC row).
        rd_crfs: The x265 ladder of the RD comparison (must contain ``x265``).
        lossy_mask_factors: One more encoder-side run per factor with the lossy subsampled mask coder
            (``x265+enc+m<factor>``: its own rate–J&F curve).
        depth: Inference depth (``None``: the model's full depth).
        max_frames, resize_long_edge: As ``evaluate.py`` (smoke runs / CPU budgets).
        enhancer_ckpt: Enhancer checkpoint (rows ``+enh``), with ``enhancer_net`` (``conf/model/enhancer``).
        overrides: Further ``evaluate.py`` overrides for every run.
    """

    root: str
    out: str
    split: str = "val"
    x265: int = 42
    vvenc: int | None = 38
    rd_crfs: Sequence[int] = (37, 42, 47)
    lossy_mask_factors: Sequence[int] = ()
    depth: int | None = None
    max_frames: int | None = None
    resize_long_edge: int | None = None
    enhancer_ckpt: str | None = None
    enhancer_net: str = "cae_tiny"
    overrides: Sequence[str] = field(default_factory=tuple)


def _runs(settings: SeedSettings) -> list[tuple[str, list[str]]]:
    """The four evaluations of one model, as ``(label, overrides)``: decoder mode, encoder mode, encoder mode
    with object-aware x265 (ROI offsets), encoder mode with the background blur (x265 and VVenC)."""
    crfs = sorted(set(settings.rd_crfs) | {settings.x265})
    x265 = ",".join(f"x265:{q}" for q in crfs)
    vvenc = f",vvenc:{settings.vvenc}" if settings.vvenc is not None else ""
    return [("decoder", ["analysis=decoder", f"ladder.points=[none,{x265}{vvenc}]"]),
            ("encoder", ["analysis=encoder", f"ladder.points=[none,{x265}{vvenc}]"]),
            ("encoder+roi", ["analysis=encoder", "side_info.object_aware=roi",
                             f"ladder.points=[none,{x265}]"]),
            ("encoder+blur", ["analysis=encoder", "side_info.object_aware=blur",
                              f"ladder.points=[none,{x265}{vvenc}]"])] + [
            (f"encoder lossy masks /{f}", ["analysis=encoder", f"ladder.points=[none,{x265}]", *_lossy(f)])
            for f in settings.lossy_mask_factors]


def _lossy(factor: int) -> list[str]:
    """Overrides that turn ``side_info.mask_codec`` into the subsampled lossy coder over HEVC lossless."""
    node = "side_info.mask_codec"
    return [f"{node}._target_=vosc.codecs.mask_codec.DownsampledMaskCodec", f"+{node}.factor={factor}",
            f"~{node}.preset", f"+{node}.inner._target_=vosc.codecs.mask_codec.X265LosslessMaskCodec"]


def _overrides(model: ModelSpec, settings: SeedSettings) -> list[str]:
    def opt(key: str, value: Any) -> str:
        return f"{key}={'null' if value is None else value}"

    out = [f"data_root={Path(settings.root).resolve()}", f"split={settings.split}",
           f"out_dir={Path(settings.out).resolve() / model.name}",
           f"cache_dir={Path(settings.out).resolve() / 'bitstreams'}", opt("ckpt", model.ckpt),
           f"model_name={model.name}", "baselines=null", opt("max_frames", settings.max_frames),
           opt("resize_long_edge", settings.resize_long_edge)]
    if settings.depth is not None:
        out.append(f"depths=[{settings.depth}]")
    if model.variant:
        out.append(f"model={model.variant}")
    if settings.enhancer_ckpt:
        out += ["enhancer=both", f"enhancer_ckpt={settings.enhancer_ckpt}",
                f"model/enhancer@enhancer_net={settings.enhancer_net}"]
    return out + list(settings.overrides)


def run_seed_tables(models: Sequence[ModelSpec], settings: SeedSettings) -> dict[str, Path]:
    """Evaluate every model in both modes and write the tables and plots (module docstring).

    Returns:
        Written files by name (``table1``, ..., ``<model>_rd_compare_<model>_d<depth>``).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import evaluate as entry

    if not models:
        log.warning("!" * 100)
        log.warning("NO --model: a RANDOMLY INITIALISED aost_small; the tables are meaningless (smoke runs)")
        log.warning("!" * 100)
        models = [ModelSpec("aost_small-random")]
    conf = Path(entry.__file__).resolve().parent / "conf"
    for model in models:
        for label, extra in _runs(settings):
            log.info("seed tables: %s, %s", model.name, label)
            with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
                cfg = compose("evaluate", overrides=[*_overrides(model, settings), *extra],
                              return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)  # the group choices name the model and the enhancer
            with open_dict(cfg):
                del cfg["hydra"]
            try:
                entry.evaluate(cfg)
            finally:
                HydraConfig.instance().cfg = None  # no Hydra state left behind for the caller
    return build_tables([m.name for m in models], settings)


# ---------------------------------------------------------------------------------------------- reading
def _curves(folder: Path) -> list[RDCurve]:
    return [RDCurve.load(p) for p in sorted(folder.glob("*/*/rd_d*.json"))]


def _at(curve: RDCurve, q: int | None) -> RDPoint | None:
    return next((p for p in curve.points if p.q == q), None)


def _method(curve: RDCurve) -> str:
    p = curve.provenance
    return p.codec + (f" +{p.enhancer}" if p.enhancer else "")


def _row(method: str, model: str, point: RDPoint) -> dict[str, Any]:
    """Every column of the three tables for one measured point."""
    rt, extra = point.runtimes, point.extra
    t_e, t_d = float(extra.get("t_e", rt.encode)), float(extra.get("t_d", rt.decode + rt.vos))
    codec_s = t_e + t_d - rt.vos
    row = {"method": method, "model": model, "source": "measured", "q": point.q, "t_c": codec_s,
           "t_v": rt.vos, "t_s": codec_s + rt.vos, "bpp": point.bpp, "J&F": point.jf, "t_e": t_e, "t_d": t_d,
           "t": t_e + t_d,
           "video_bpp": extra.get("video_bpp"), "mask_bpp": extra.get("mask_bpp"), "PSNR-Y": point.psnr,
           "PSNR-Y inside": extra.get("psnr_inside"), "PSNR-Y outside": extra.get("psnr_outside")}
    row.update({k: extra.get("global", {}).get(k) for k in ("J-Recall", "J-Decay", "F-Recall", "F-Decay")})
    return row


def _paper_rows() -> list[dict[str, Any]]:
    return [{"method": method, "model": model, "source": SOURCE, **values}
            for (method, model), values in PAPER.items()]


def _seed_q(curve: RDCurve, settings: SeedSettings) -> int | None:
    codec = curve.provenance.codec
    if codec == "none":
        return None
    return settings.vvenc if codec.startswith("vvenc") else settings.x265


def measured_rows(models: Sequence[str], settings: SeedSettings) -> list[dict[str, Any]]:
    """One row per (method, model) at the seed's operating point and one depth (``settings.depth``, else the
    deepest evaluated), from ``<out>/<model>/*/*/rd_d*.json``."""
    rows = []
    for model in models:
        curves = _curves(Path(settings.out) / model)
        depths = {c.provenance.depth for c in curves if c.provenance.depth is not None}
        depth = settings.depth if settings.depth is not None else max(depths, default=None)
        for curve in curves:
            if curve.provenance.depth != depth:
                continue
            point = _at(curve, _seed_q(curve, settings))
            if point is None:
                continue
            method = "original" if curve.provenance.codec == "none" else _method(curve)
            row = _row(method, model, point)
            row["depth"], row["mask coder"] = curve.provenance.depth, curve.provenance.extra.get("mask_coder")
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- comparison
def equal_jf_rate(anchor: RDCurve, jf: float) -> float | None:
    """bpp at which ``anchor`` reaches J&F ``jf`` (log-linear between two of its points; ``None`` when no two
    neighbouring points bracket it)."""
    pts = sorted((p.bpp, p.jf) for p in anchor.points if p.jf is not None and p.bpp > 0)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:], strict=False):
        if min(q0, q1) <= jf <= max(q0, q1) and q1 != q0:
            w = (jf - q0) / (q1 - q0)
            return float(10 ** (math.log10(r0) + w * (math.log10(r1) - math.log10(r0))))
    return None


def jf_at_rate(anchor: RDCurve, bpp: float) -> float | None:
    """J&F of ``anchor`` at ``bpp`` (linear in log bpp between its points; ``None`` outside its range)."""
    pts = sorted((p.bpp, p.jf) for p in anchor.points if p.jf is not None and p.bpp > 0)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:], strict=False):
        if r0 <= bpp <= r1 and r1 > r0:
            w = (math.log10(bpp) - math.log10(r0)) / (math.log10(r1) - math.log10(r0))
            return float(q0 + (q1 - q0) * w)
    return None


def compare_rows(curves: Sequence[RDCurve]) -> list[dict[str, Any]]:
    """Encoder-mode curves against the decoder-mode curve of the same codec and depth (and enhancer)."""
    by_key = {(c.provenance.codec, c.provenance.depth, c.provenance.enhancer): c for c in curves}
    rows = []
    for c in curves:
        p = c.provenance
        if "+enc" not in p.codec:
            continue
        anchor = by_key.get((p.codec.split("+")[0], p.depth, p.enhancer))
        if anchor is None:
            continue
        row: dict[str, Any] = {"depth": p.depth, "encoder mode": c.label, "decoder mode": anchor.label,
                               "BD-rate % (J&F)": None, "note": ""}
        try:
            row["BD-rate % (J&F)"] = bd_rate(anchor, c, "jf")
        except ValueError as exc:
            row["note"] = f"BD-rate: {exc}"
        for point in c.points:
            if point.jf is None:
                continue
            need = equal_jf_rate(anchor, point.jf)
            rows.append({**row, "q": point.q, "J&F (enc)": point.jf, "bpp (enc, total)": point.bpp,
                         "mask_bpp": point.extra.get("mask_bpp"),
                         "J&F (dec, same bpp)": jf_at_rate(anchor, point.bpp),
                         "bpp dec needs for J&F (enc)": need,
                         "rate saving %": None if need is None else 100 * (1 - point.bpp / need)})
    return rows


def _log_interp(curve: RDCurve, bpp: float, key: str) -> float | None:
    """``extra[key]`` of ``curve`` at ``bpp``, linear in log bpp between two points (``None`` outside)."""
    pts = sorted((p.bpp, p.extra[key]) for p in curve.points if p.extra.get(key) is not None and p.bpp > 0)
    for (r0, v0), (r1, v1) in zip(pts, pts[1:], strict=False):
        if r0 <= bpp <= r1 and r1 > r0:
            return float(v0 + (v1 - v0) * math.log(bpp / r0) / math.log(r1 / r0))
    return None


def object_aware_rows(curves: Sequence[RDCurve]) -> list[dict[str, Any]]:
    """PSNR-Y inside / outside the objects of object-aware curves against plain encoder-side coding of the
    same codec at equal total bpp (the plain curve interpolated in log bpp; empty where out of its range)."""
    plain = {(c.provenance.codec, c.provenance.depth, c.provenance.enhancer): c for c in curves}
    rows = []
    for c in curves:
        p = c.provenance
        if not p.codec.endswith(("+roi", "+blur")):
            continue
        base = plain.get((p.codec.split("+")[0] + "+enc", p.depth, p.enhancer))
        for point in sorted(c.points, key=lambda x: x.bpp):
            row: dict[str, Any] = {"depth": p.depth, "method": c.label, "q": point.q, "bpp": point.bpp,
                                   "PSNR-Y inside": point.extra.get("psnr_inside"),
                                   "PSNR-Y outside": point.extra.get("psnr_outside")}
            for key, name in (("psnr_inside", "inside"), ("psnr_outside", "outside")):
                ref = None if base is None else _log_interp(base, point.bpp, key)
                row[f"plain {name} (same bpp)"] = ref
                own = point.extra.get(key)
                row[f"Δ {name} dB"] = None if ref is None or own is None else own - ref
            rows.append(row)
    return rows


def _style(codec: str) -> str:
    """Line style by mode: decoder solid, encoder dashed, object-aware dotted / dash-dot."""
    if "+roi" in codec or "+blur" in codec:
        return ":" if "+roi" in codec else "-."
    return "--" if "+enc" in codec else "-"


def plot_compare(curves: Sequence[RDCurve], path: Path, title: str) -> Path:
    """J&F (%) against total bpp (log), one colour per curve; decoder mode solid, encoder mode dashed, the raw
    frames as a horizontal line. Written atomically.

    Raises:
        ValueError: No curve has a compressed point with J&F.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    colours = plt.get_cmap("tab10")
    drawn = 0
    for i, c in enumerate(curves):
        pts = sorted((p.bpp, 100 * p.jf) for p in c.points if p.jf is not None)
        if c.provenance.codec == "none" and pts:
            axis.axhline(pts[0][1], color="black", lw=1, label=f"{c.label} (raw frames, 0 bpp)")
            continue
        pts = [p for p in pts if p[0] > 0]
        if pts:
            xs, ys = zip(*pts, strict=True)
            axis.plot(xs, ys, _style(c.provenance.codec), marker="o", ms=4, color=colours(i % 10),
                      label=c.label)
            drawn += 1
    if not drawn:
        plt.close(figure)
        raise ValueError("no compressed point with J&F to plot")
    axis.set_xscale("log")
    axis.set_xlabel("total bits per pixel (video + mask side information)")
    axis.set_ylabel("J&F (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)


def _plots(curves: Sequence[RDCurve], out: Path, title: str) -> dict[str, Path]:
    files = {}
    for depth in sorted({c.provenance.depth for c in curves}, key=lambda d: -1 if d is None else d):
        chosen = [c for c in curves if c.provenance.depth == depth]
        path = out / f"rd_compare_{title}_d{depth}.png"
        try:
            files[path.stem] = plot_compare(chosen, path, f"{title}, d{depth}: decoder vs encoder mode")
        except ValueError as exc:
            log.warning("%s not drawn: %s", path, exc)
    return files


def build_tables(models: Sequence[str], settings: SeedSettings) -> dict[str, Path]:
    """Write every table and the comparison plots from the RD JSON files already in ``settings.out``."""
    out = Path(settings.out)
    rows = measured_rows(models, settings)
    if not rows:
        raise FileNotFoundError(f"{out}: no RD JSON point of models {list(models)} at the seed's operating "
                                f"point (depth {settings.depth or 'deepest'}); run the evaluations first")
    files: dict[str, Path] = {}
    for name in ("table1", "table2", "table3"):
        cols = COLUMNS[name]
        keep = [r for r in rows + _paper_rows() if any(r.get(c) is not None for c in cols[3:])]
        _write(out, name, [{c: r.get(c) for c in cols} for r in keep])
        files[name] = out / f"{name}.md"
    side = [{c: r.get(c) for c in COLUMNS["side_info"]} for r in rows if r["q"] is not None]
    _write(out, "side_info", side)
    files["side_info"] = out / "side_info.md"
    compare: list[dict[str, Any]] = []
    aware: list[dict[str, Any]] = []
    for model in models:
        curves = _curves(out / model)
        compare += [{"model": model, **r} for r in compare_rows(curves)]
        files.update({f"{model}_{k}": v for k, v in _plots(curves, out, model).items()})
        aware += [{"model": model, **r} for r in object_aware_rows(curves)]
    for name, table in (("rd_compare", compare), ("object_aware", aware)):
        if table:
            _write(out, name, table)
            files[name] = out / f"{name}.md"
    return files


def _fmt(key: str, value: Any) -> str:
    """Markdown cell: J&F in percent points, bpp with 4 decimals (5 for mask/video parts), seconds, dB."""
    if value is None:
        return ""
    if not isinstance(value, float):
        return str(value)
    if key in ("J&F", "J&F (enc)", "J&F (dec, same bpp)"):
        return f"{100 * value:.1f}"
    if "bpp" in key:
        return f"{value:.5f}" if key in ("video_bpp", "mask_bpp") else f"{value:.4f}"
    if "Recall" in key or "Decay" in key:
        return f"{value:.3f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3g}"


def _write(out: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """``<out>/<name>.csv`` (raw numbers) and ``.md`` (formatted); the Markdown marks the paper's rows."""
    write_table(rows, None, out / f"{name}.csv")
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = [_fmt(c, r.get(c)) for c in cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    note = ""
    if any(r.get("source", "measured") != "measured" for r in rows):
        note = f"\n`paper` rows: the seed's published numbers ({PAPER_NOTE}), beside the measured ones.\n"
    atomic_write_text(out / f"{name}.md", f"# {name}\n\n" + "\n".join(lines) + "\n" + note)
