"""What an evaluation run writes after the sweep: RD JSON per curve, summary / BD / enhancer tables, plots,
the W&B run, submissions and the ``evaluation.json`` index."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vosc.config import ConfigError

log = logging.getLogger("vosc.evaluate")

__all__ = ["enhancer_tables", "pick_anchor", "write_reports"]


def pick_anchor(anchor: Any, curves: list[Any]) -> Any:
    """The BD anchor: a label of ``curves``, an RD JSON path, or (``None``) the first compressed curve."""
    from vosc.metrics.rd import RDCurve

    compressed = [c for c in curves if c.provenance.codec != "none" and not c.provenance.enhancer]
    if anchor is None:
        return compressed[0] if compressed else None
    for c in curves:
        if c.label == str(anchor):
            return c
    path = Path(str(anchor)).expanduser()
    if path.is_file():
        return RDCurve.load(path)
    raise ConfigError(
        f"anchor={anchor!r} is neither a curve of this run ({[c.label for c in curves]}) nor an RD JSON file"
    )


def enhancer_tables(curves: dict[tuple[str, int, bool], Any]) -> tuple[list[dict], list[dict]]:
    """Per-point deltas (ΔPSNR, ΔJ&F, gap recovered, ms/frame) and per-pair BD-rates of enhancer on vs off."""
    from vosc.evaluation.report import enhancer_rows
    from vosc.metrics.rd import bd_quality, bd_rate

    points, pairs = [], []
    for (codec, depth, enhanced), enh in curves.items():
        base = curves.get((codec, depth, False))
        if not enhanced or base is None:
            continue
        raw = curves.get(("none", depth, False))
        raw_jf = raw.points[0].jf if raw is not None and raw.points else None
        cost = {p.q: p.extra.get("enhance_ms_per_frame") for p in enh.points}
        for row in enhancer_rows(base, enh, uncompressed_jf=raw_jf):
            points.append({"depth": depth, **row, "enhancer ms/frame": cost.get(row["q"])})
        pair: dict[str, Any] = {"codec": codec, "depth": depth, "enhancer": enh.provenance.enhancer,
                                "BD-rate % (J&F)": None, "BD-J&F": None, "BD-rate % (PSNR)": None,
                                "BD-PSNR": None, "note": ""}
        for quality, key in (("jf", "J&F"), ("psnr", "PSNR")):
            try:
                pair[f"BD-rate % ({key})"] = bd_rate(base, enh, quality)
                pair[f"BD-{key}"] = bd_quality(base, enh, quality)
            except ValueError as exc:  # NoOverlapError, InsufficientPointsError (e.g. non-monotonic J&F)
                pair["note"] += f"{key}: {exc}. "
                log.warning("enhancer BD (%s) of %s d%d not computed: %s", key, codec, depth, exc)
        pairs.append(pair)
    return points, pairs


def write_reports(sweep: Any, ds: DictConfig, out_dir: str | Path, anchor: Any, wandb: Mapping[str, Any],
                  run_config: Mapping[str, Any], wall_s: float) -> dict[str, Any]:
    """RD JSON per curve, summary/BD/enhancer tables, plots, W&B, submissions; returns the index.

    Args:
        sweep: The finished :class:`~vosc.evaluation.sweep.Sweep`.
        ds: The dataset node (``name``, ``submission``, ``source``).
        out_dir: Output root (``<out_dir>/<dataset>/...``).
        anchor: BD anchor (see :func:`pick_anchor`).
        wandb: ``{enabled, project, mode, name}``.
        run_config: The run's configuration, stored with the W&B run.
        wall_s: Wall seconds of the run so far.
    """
    from vosc.evaluation.report import bd_rows, plot_rd, summary_rows, write_table

    out = Path(str(out_dir)) / sweep.dataset
    curves = sweep.curves()
    index: dict[str, Any] = {"dataset": sweep.dataset, "curves": {}, "tables": {}, "plots": {}, "bd": {},
                             "computed": sweep.computed, "resumed": sweep.resumed, "wall_s": wall_s}
    for (codec, depth, enhanced), curve in curves.items():
        index["curves"][curve.label] = str(curve.save(sweep.curve_path(codec, depth, enhanced)))
    ordered = list(curves.values())
    index["gt_skipped"] = {k: v for c in ordered for p in c.points
                           for k, v in p.extra.get("gt_skipped", {}).items()}
    if index["gt_skipped"]:
        log.warning("J&F leaves out %d sequence(s) (missing_gt=skip): %s", len(index["gt_skipped"]),
                    sorted(index["gt_skipped"]))
    tables = {"summary": summary_rows(ordered)}
    by_bpp = [p for c in ordered for p in sorted(c.points, key=lambda x: x.bpp)]  # the order of summary_rows
    for row, point in zip(tables["summary"], by_bpp, strict=True):
        row["enhance_s"] = point.extra.get("enhance_s")
    anchor = pick_anchor(anchor, ordered)
    compressed = [c for c in ordered if c.provenance.codec != "none"]
    if anchor is not None and compressed:
        tables["bd_jf"] = bd_rows(compressed, anchor, "jf")
        tables["bd_psnr"] = bd_rows(compressed, anchor, "psnr")
        index["bd"]["anchor"] = anchor.label
    enh_points, enh_pairs = enhancer_tables(curves)
    if enh_pairs:
        tables["enhancer"], tables["enhancer_bd"] = enh_points, enh_pairs
    for name, rows in tables.items():
        if rows:
            write_table(rows, out / f"{name}.md", out / f"{name}.csv")
            index["tables"][name] = str(out / f"{name}.md")
    index["bd"].update({k: v for k, v in tables.items() if k.startswith(("bd_", "enhancer_bd"))})
    for quality in ("jf", "psnr"):
        try:
            index["plots"][quality] = str(
                plot_rd(
                    ordered, out / f"rd_{quality}.png", quality, title=f"{sweep.dataset}: {sweep.model_name}"
                )
            )
        except ValueError as exc:
            log.warning("plot %s not drawn: %s", quality, exc)
    if wandb.get("enabled"):
        _log_wandb(wandb, run_config, out, ordered, index, tables)
    index["submissions"] = _submissions(sweep, ds)
    _atomic_json(out / "evaluation.json", index)
    return index


def _log_wandb(settings: Mapping[str, Any], run_config: Mapping[str, Any], out: Path, curves: list[Any],
               index: dict[str, Any], tables: dict[str, list]) -> None:
    import wandb

    from vosc.evaluation.report import log_to_wandb

    run = wandb.init(
        project=str(settings["project"]),
        mode=str(settings["mode"]),
        name=settings.get("name"),
        dir=str(out),
        job_type="eval",
        config=dict(run_config),
    )  # type: ignore[arg-type]
    try:
        images = {f"rd/{q}": p for q, p in index["plots"].items()}
        log_to_wandb(
            run, curves, images=images, tables={f"rd/{k}": v for k, v in tables.items() if k != "summary"}
        )
        index["wandb_dir"] = str(run.dir)
    finally:
        run.finish()


def _submissions(sweep: Any, ds: DictConfig) -> dict[str, str]:
    """YouTube-VOS zips / DAVIS folders for every variant (needs whole sequences)."""
    from vosc.evaluation.submission import write_davis_submission, write_youtube_vos_submission

    kind = ds.get("submission")
    if kind is None:
        return {}
    if sweep.max_frames is not None or sweep.resize_long_edge is not None:
        log.warning("submissions not written: max_frames=%s / resize_long_edge=%s change the videos",
            sweep.max_frames, sweep.resize_long_edge)
        return {}
    out = {}
    root = Path(str(ds.source.root))
    for variant in sweep.variants:
        folder = sweep.folder(variant)
        if kind == "youtube_vos":
            summary = write_youtube_vos_submission(
                folder / "pred", root / str(ds.source.split), folder / "submission.zip"
            )
        elif kind == "davis":
            summary = write_davis_submission(folder / "pred", root, folder / "submission",
                subset=str(ds.source.split), zip_path=folder / "submission.zip", overwrite=True)
        else:
            raise ConfigError(f"dataset.submission={kind!r}: use youtube_vos, davis or null")
        out[str(folder)] = str(summary.path)
    return out


def _atomic_json(path: Path, obj: Any) -> None:
    from vosc.utils.io import atomic_write_json

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    atomic_write_json(path, clean(obj), fsync=True, indent=1, default=str)


