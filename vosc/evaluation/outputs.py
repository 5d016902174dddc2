"""What an evaluation run writes after the sweep: RD JSON per curve, summary / BD / enhancer tables, plots,
the W&B run, submissions and the ``evaluation.json`` index."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vosc.config import ConfigError

log = logging.getLogger("vosc.evaluate")

__all__ = ["bd_tables", "enhancer_tables", "merge_curves", "pick_anchor", "write_reports"]


#: Report order of codecs (others follow alphabetically): the first compressed one is the default BD anchor.
CODEC_ORDER = ("none", "x265", "vvenc")
#: Provenance keys that must agree for curves of one report (same model, data and inference settings).
_RUN_KEYS = ("model", "checkpoint_hash", "dataset")
_RUN_EXTRA = ("model_fingerprint", "segmenter", "max_frames", "resize_long_edge", "references")
#: ... and, in addition, for points of one curve (same encoder and enhancer).
_CURVE_KEYS = ("codec", "depth", "enhancer", "encoder_version")
_CURVE_EXTRA = ("codec_params", "enhancer_fingerprint")


def _same(a: Any, b: Any, keys: tuple[str, ...], extra: tuple[str, ...]) -> bool:
    """Whether two curves agree on the provenance ``keys`` and ``extra`` entries (compared as JSON)."""
    def plain(curve: Any) -> str:
        p = curve.provenance
        return json.dumps([[getattr(p, k) for k in keys], [p.extra.get(k) for k in extra]], default=str)

    return plain(a) == plain(b)


def _key(curve: Any) -> tuple[str, int, bool]:
    p = curve.provenance
    return p.codec, p.depth, bool(p.enhancer)


def merge_curves(folder: Path, curves: dict[tuple[str, int, bool], Any]) -> dict[tuple[str, int, bool], Any]:
    """This run's curves merged with every compatible result already in ``folder`` (``<out_dir>/<dataset>``).

    A partial re-run (fewer operating points or depths) into the same ``out_dir`` keeps what earlier runs
    computed: points of an earlier ``<codec>/rd_d<depth>[_enh].json`` whose ``q`` this run did not compute are
    kept in the curve, and curves this run did not touch are added, when they come from the same model,
    checkpoint, dataset and inference settings (and, for points of one curve, the same encoder and enhancer).
    Results computed with other inputs are left on disk, out of the report, with a warning naming the file.

    Args:
        folder: ``<out_dir>/<dataset>``.
        curves: This run's curves by ``(codec, depth, enhanced)``.

    Returns:
        All curves of the report by ``(codec, depth, enhanced)``, in :data:`CODEC_ORDER`, then depth and
        enhancer.
    """
    from vosc.metrics.rd import RDCurve, RDSchemaError

    merged = dict(curves)
    reference = next(iter(curves.values()), None)
    for path in sorted(folder.glob("*/rd_d*.json")):
        try:
            old = RDCurve.load(path)
        except (RDSchemaError, OSError) as exc:
            log.warning("earlier result %s not in the report: unreadable (%s)", path, exc)
            continue
        key = _key(old)
        if reference is None or not _same(old, reference, _RUN_KEYS, _RUN_EXTRA):
            log.warning("earlier result %s not in the report: computed with another model, checkpoint, "
                        "dataset or inference settings%s", path,
                        "; this run's curve replaces the file" if key in curves else "")
            continue
        new = merged.get(key)
        if new is None:
            merged[key] = old
            log.info("report includes the earlier curve %s (%s)", old.label, path)
        elif not _same(old, new, _CURVE_KEYS, _CURVE_EXTRA):
            log.warning("earlier points of %s in %s are replaced: other encoder or enhancer", new.label, path)
        else:
            have = {p.q for p in new.points}
            kept = [p for p in old.points if p.q not in have]
            if kept:
                new.points = sorted([*new.points, *kept], key=lambda p: -1 if p.q is None else p.q)
                log.info("%s: kept %d earlier point(s) q=%s from %s", new.label, len(kept),
                         [p.q for p in kept], path)
    order = {c: i for i, c in enumerate(CODEC_ORDER)}  # stable: the default BD anchor must not depend on
    return dict(sorted(merged.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0], kv[0][1],
                                                       kv[0][2])))  # which part of a ladder ran last


def pick_anchor(anchor: Any, curves: list[Any]) -> Any:
    """The BD anchors: ``{depth: curve}``.

    * ``None`` (default): per depth, the first compressed curve without enhancer at that depth, so that
      curves are compared at equal depth only (``x265 d3`` against ``vvenc d3``, never across depths);
    * a codec name (``vvenc``): that codec's curve without enhancer at every depth;
    * a curve label of this report (``"x265 d3"``) or an RD JSON file: that one curve, compared with the
      curves at its depth (every curve when the file has no depth).

    Raises:
        ConfigError: ``anchor`` is none of the above, naming the curves of the report.
    """
    from vosc.metrics.rd import RDCurve

    plain = [c for c in curves if c.provenance.codec != "none" and not c.provenance.enhancer]
    if anchor is None or str(anchor) in {c.provenance.codec for c in plain}:
        out: dict[Any, Any] = {}
        for c in plain:
            if anchor is None or c.provenance.codec == str(anchor):
                out.setdefault(c.provenance.depth, c)
        return out
    for c in curves:
        if c.label == str(anchor):
            return {c.provenance.depth: c}
    path = Path(str(anchor)).expanduser()
    if path.is_file():
        loaded = RDCurve.load(path)
        return {loaded.provenance.depth: loaded}
    raise ConfigError(
        f"anchor={anchor!r} is neither a codec ({sorted({c.provenance.codec for c in plain})}), a curve of "
        f"this report ({[c.label for c in curves]}) nor an RD JSON file"
    )


def bd_tables(curves: list[Any], anchors: Mapping[Any, Any]) -> dict[str, list[dict]]:
    """``bd_jf`` and ``bd_psnr`` rows: every compressed curve against the anchor of its depth (never itself).

    An anchor of depth ``None`` (an RD JSON file without depth) is compared with every curve.
    """
    from vosc.evaluation.report import bd_rows

    tables: dict[str, list[dict]] = {"bd_jf": [], "bd_psnr": []}
    for depth, anchor in anchors.items():
        tests = [c for c in curves if c.provenance.codec != "none" and c is not anchor
                 and (depth is None or c.provenance.depth == depth)]
        if tests:
            tables["bd_jf"] += bd_rows(tests, anchor, "jf")
            tables["bd_psnr"] += bd_rows(tests, anchor, "psnr")
    if anchors and not tables["bd_jf"]:
        log.info("no BD tables: no other compressed curve at the anchor's depth (%s); give "
                 "anchor=<RD JSON of another run> to compare against it",
                 ", ".join(a.label for a in anchors.values()))
    return tables


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
                  run_config: Mapping[str, Any], wall_s: float,
                  baselines: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """RD JSON per curve, summary/BD/enhancer tables, plots, W&B, submissions; returns the index.

    Args:
        sweep: The finished :class:`~vosc.evaluation.sweep.Sweep`.
        ds: The dataset node (``name``, ``submission``, ``source``).
        out_dir: Output root (``<out_dir>/<dataset>/...``).
        anchor: BD anchor (see :func:`pick_anchor`).
        wandb: ``{enabled, project, mode, name}``.
        run_config: The run's configuration, stored with the W&B run.
        wall_s: Wall seconds of the run so far.
        baselines: Rows of :func:`vosc.evaluation.baselines.baseline_rows` (``baselines.md``, and one row
            each at the end of ``summary.md``, codec ``none``, model ``no training``).
    """
    out = Path(str(out_dir)) / sweep.dataset
    curves = merge_curves(out, sweep.curves())
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
    tables = _summary_tables(sweep.dataset, ordered, baselines)
    index["baselines"] = {b["baseline"]: b["J&F"] for b in baselines}
    anchors = pick_anchor(anchor, ordered)
    tables.update(bd_tables(ordered, anchors))
    if tables["bd_jf"]:
        index["bd"]["anchor"] = {str(d): a.label for d, a in anchors.items()}
    enh_points, enh_pairs = enhancer_tables(curves)
    if enh_pairs:
        tables["enhancer"], tables["enhancer_bd"] = enh_points, enh_pairs
    index["tables"].update(_write_tables(tables, out))
    index["bd"].update({k: v for k, v in tables.items() if k.startswith(("bd_", "enhancer_bd"))})
    index["plots"].update(_plot_curves(ordered, out, f"{sweep.dataset}: {sweep.model_name}"))
    if wandb.get("enabled"):
        _log_wandb(wandb, run_config, out, ordered, index, tables)
    index["submissions"] = _submissions(sweep, ds)
    _atomic_json(out / "evaluation.json", index)
    return index


def _summary_tables(dataset: str, curves: list[Any],
                    baselines: Sequence[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """``summary`` (the curves' points with their ``enhance_s``, then one row per baseline) and
    ``baselines`` tables of :func:`write_reports`."""
    from vosc.evaluation.report import summary_rows

    tables = {"summary": summary_rows(curves)}
    by_bpp = [p for c in curves for p in sorted(c.points, key=lambda x: x.bpp)]  # the order of summary_rows
    for row, point in zip(tables["summary"], by_bpp, strict=True):
        row["enhance_s"] = point.extra.get("enhance_s")
    tables["summary"] += [{"curve": b["baseline"], "codec": "none", "model": "no training",
                           "dataset": dataset, "bpp": 0.0, "J&F": b["J&F"], "J": b["J"], "F": b["F"],
                           "total_s": b["seconds"]} for b in baselines]
    tables["baselines"] = [dict(b) for b in baselines]
    return tables


def _write_tables(tables: Mapping[str, list[dict]], out: Path) -> dict[str, str]:
    """Write each table with rows as ``<name>.md`` and ``.csv`` into ``out`` and remove an earlier run's
    files of a table without rows; returns ``{name: markdown path}`` of the written ones."""
    from vosc.evaluation.report import write_table

    written: dict[str, str] = {}
    for name, rows in tables.items():
        if rows:
            write_table(rows, out / f"{name}.md", out / f"{name}.csv")
            written[name] = str(out / f"{name}.md")
        else:  # an earlier run's table would no longer describe out_dir
            for stale in (out / f"{name}.md", out / f"{name}.csv"):
                if stale.exists():
                    stale.unlink()
                    log.info("removed %s: no rows for it in this report", stale)
    return written


def _plot_curves(curves: list[Any], out: Path, title: str) -> dict[str, str]:
    """RD plots ``rd_jf.png`` and ``rd_psnr.png`` in ``out`` (one not drawn is logged and left out);
    returns ``{quality: path}``."""
    from vosc.evaluation.report import plot_rd

    plots: dict[str, str] = {}
    for quality in ("jf", "psnr"):
        try:
            plots[quality] = str(plot_rd(curves, out / f"rd_{quality}.png", quality, title=title))
        except ValueError as exc:
            log.warning("plot %s not drawn: %s", quality, exc)
    return plots


def _log_wandb(settings: Mapping[str, Any], run_config: Mapping[str, Any], out: Path, curves: list[Any],
               index: dict[str, Any], tables: dict[str, list]) -> None:
    import wandb

    from vosc.evaluation.report import log_to_wandb

    run = wandb.init(
        project=str(settings["project"]),
        mode=str(settings["mode"]),  # type: ignore[arg-type]
        name=settings.get("name"),
        dir=str(out),
        job_type="eval",
        config=dict(run_config),
    )
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


