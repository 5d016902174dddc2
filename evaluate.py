"""Evaluate a VOS model on (compressed) video: J&F, bpp, PSNR, runtimes, rate–accuracy curves, BD-rates.

Examples::

    python evaluate.py                                         # random-init small AOST, synthetic set (smoke)
    python evaluate.py ckpt=outputs/train/runs/<time>/checkpoints/last.ckpt dataset=davis2017 ladder=x265
    python evaluate.py ckpt=save_step_100000.pth model=aotl dataset=davis2016 ladder=paper depths=[3]
    python evaluate.py ckpt=... dataset=folder data_root=/data/DAVIS ladder.points=[none,x265:32,x265:42]
    python evaluate.py ckpt=... enhancer=both enhancer_ckpt=enh.ckpt model/enhancer@enhancer_net=cae_base
    python evaluate.py ckpt=... dataset=ytvos depths=[1,2,3]   # writes the submission zip per variant

Outputs (``out_dir`` = ``outputs/eval``)::

    <out_dir>/<dataset>/<codec>/q<q>/d<depth>/{pred/<seq>/<frame>.png, sequences/<seq>.json}   (none: raw/)
    <out_dir>/<dataset>/<codec>/q<q>/d<depth>/enh/...          enhanced frames (enhancer=on|both)
    <out_dir>/<dataset>/<codec>/rd_d<depth>[_enh].json         one RD curve (vosc.rd/1 schema)
    <out_dir>/<dataset>/{summary,bd_jf,bd_psnr,enhancer,enhancer_bd}.{md,csv}, rd_jf.png, rd_psnr.png
    <out_dir>/<dataset>/evaluation.json                        index of the above + run counters

Interrupted runs resume: finished sequences (``sequences/<seq>.json`` with the same fingerprint) are
skipped. Every input is checked before any work starts (missing checkpoint, unknown codec, q out of
range, missing dataset root, bad depth), with an error naming the file or key.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vosc.checkpoints.loading import CheckpointError, weights_fingerprint
from vosc.checkpoints.loading import load_vos_model as load_vos_model_from

log = logging.getLogger("vosc.evaluate")


class EvaluationConfigError(ValueError):
    """An invalid evaluation input (reported before any work starts)."""


# ----------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------
def load_vos_model(cfg: DictConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Build the VOS model: vosc Lightning checkpoint, official checkpoint, or random init (warning).

    Returns:
        The model (eval mode, CPU) and provenance ``{name, checkpoint, checkpoint_hash}``.
    """
    choice = HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None
    if cfg.ckpt is None:
        log.warning("!" * 100)
        log.warning(
            "NO CHECKPOINT (ckpt=null): the VOS model is RANDOMLY INITIALISED (seed %s). The numbers "
            "are meaningless; use this only for smoke tests.",
            cfg.seed,
        )
        log.warning("!" * 100)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    try:
        loaded = load_vos_model_from(cfg.ckpt, model_config, seed=int(cfg.seed))  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc} (ckpt=...)") from exc
    except CheckpointError as exc:
        raise EvaluationConfigError(str(exc)) from exc
    default_name = {"random": f"{choice or 'model'}-random", "official": str(choice or "model")}
    name = cfg.model_name or default_name.get(loaded.kind, f"vosc-{Path(str(cfg.ckpt)).stem}")
    if loaded.kind == "vosc":
        log.info("model=%s ignored: the network comes from the checkpoint's hyper-parameters", choice)
    return loaded.model, {"name": name, "checkpoint": loaded.checkpoint, "checkpoint_hash": loaded.checkpoint_hash}


def build_enhancer(cfg: DictConfig, device: torch.device) -> tuple[Any, str]:
    """``(EnhancerSpec or None, mode)`` for ``enhancer=off|on|both`` (the spec is ``None`` for ``off``)."""
    from vosc.evaluation.sweep import EnhancerSpec

    value = cfg.enhancer
    mode = {True: "on", False: "off", None: "off"}.get(
        value, str(value).lower()
    )  # YAML 1.1 reads on/off as bools
    if mode not in ("off", "on", "both"):
        raise EvaluationConfigError(f"enhancer={cfg.enhancer!r}: use off, on or both")
    if mode == "off":
        return None, mode
    net = instantiate(cfg.enhancer_net)
    choice = (
        HydraConfig.get().runtime.choices.get("model/enhancer@enhancer_net")
        if HydraConfig.initialized()
        else None
    )
    name = str(choice or type(net).__name__)
    if cfg.enhancer_ckpt is None:
        log.warning(
            "enhancer=%s without enhancer_ckpt: the %s enhancer keeps its initialisation "
            "(identity for cae: zero-initialised last layer)",
            mode,
            name,
        )
    else:
        from vosc.lit.enhancer_module import load_enhancer_weights

        path = Path(str(cfg.enhancer_ckpt)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"enhancer checkpoint not found: {path} (enhancer_ckpt=...)")
        load_enhancer_weights(net, path)
    net = net.to(device).eval()
    return EnhancerSpec(net, name, weights_fingerprint(net), int(cfg.enhancer_chunk)), mode


def build_source(cfg: DictConfig) -> tuple[Any, DictConfig]:
    """Instantiate the dataset source (``data_root`` with the default dataset = a DAVIS-layout folder)."""
    ds = cfg.dataset
    if cfg.data_root is not None and ds.source._target_.endswith("SyntheticSource"):
        ds = OmegaConf.create(
            {
                "name": None,
                "references": "first",
                "submission": None,
                "source": {
                    "_target_": "vosc.data.sources.davis.DavisSource",
                    "root": str(cfg.data_root),
                    "split": cfg.split,
                    "year": 2017,
                },
            }
        )
    root = ds.source.get("root")
    synthetic = ds.source._target_.endswith("SyntheticSource")
    if root is None:
        raise EvaluationConfigError("dataset root is not set (data_root=/path/to/DAVIS-layout folder)")
    if not synthetic and not Path(str(root)).is_dir():
        raise FileNotFoundError(
            f"dataset root not found: {root} (dataset={ds.name or 'folder'}; set data_root= "
            "or the DAVIS_ROOT / YTVOS_ROOT environment variables)"
        )
    source = instantiate(ds.source)
    if len(source) == 0:
        raise EvaluationConfigError(f"dataset {root}: no usable sequence (split={ds.source.get('split')})")
    name = ds.name or Path(str(root)).name
    return source, OmegaConf.merge(ds, {"name": name})


def resolve_depths(cfg: DictConfig, model: nn.Module) -> list[int]:
    """Depths to evaluate, validated against the model's layer count."""
    layers = int(model.num_layers)
    depths = [layers] if cfg.depths is None else [int(d) for d in cfg.depths]
    bad = [d for d in depths if not 1 <= d <= layers]
    if bad:
        raise EvaluationConfigError(f"depths={depths}: {bad} outside 1..{layers} (model.num_layers={layers})")
    if getattr(model, "block_type", "slstt") == "lstt" and depths != [layers]:
        log.warning(
            "AOT (LSTT) models are trained at full depth only; depths %s < %d are out of spec", depths, layers
        )
    return sorted(set(depths))


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationConfigError(f"device={name}: CUDA is not available on this machine")
    return device


def build_sweep(cfg: DictConfig) -> tuple[Any, DictConfig]:
    """Check every input and build the :class:`~vosc.evaluation.sweep.Sweep` (no work done yet)."""
    from vosc.evaluation.sweep import Sweep, parse_ladder

    codecs = {str(k): instantiate(v) for k, v in cfg.codecs.items()}
    ladder = parse_ladder(OmegaConf.to_container(cfg.ladder.points, resolve=True), codecs)  # type: ignore[arg-type]
    source, ds = build_source(cfg)
    device = resolve_device(str(cfg.device))
    if cfg.torch_threads is not None:
        torch.set_num_threads(int(cfg.torch_threads))
    model, prov = load_vos_model(cfg)
    model = model.to(device)
    depths = resolve_depths(cfg, model)
    enhancer, mode = build_enhancer(cfg, device)
    seg_cfg = OmegaConf.to_container(cfg.segmenter, resolve=True)
    factory = instantiate(cfg.segmenter)
    sweep = Sweep(source=source, dataset=str(ds.name), model=model,
        make_segmenter=lambda m, d: factory(model=m, depth=d), codecs=codecs, ladder=ladder,
        depths=depths, out_root=Path(str(cfg.out_dir)), cache_root=Path(str(cfg.cache_dir)),
        model_name=prov["name"], model_fingerprint=weights_fingerprint(model),
        checkpoint=prov["checkpoint"], checkpoint_hash=prov["checkpoint_hash"], enhancer=enhancer,
        enhancer_mode=mode, max_frames=cfg.max_frames, resize_long_edge=cfg.resize_long_edge,
        references=str(ds.references), overwrite=bool(cfg.overwrite), device=device,
        segmenter_config=seg_cfg)  # type: ignore[arg-type]
    return sweep, ds


# ----------------------------------------------------------------------------------------------------
# reports
# ----------------------------------------------------------------------------------------------------
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
    raise EvaluationConfigError(
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


def write_reports(cfg: DictConfig, sweep: Any, ds: DictConfig, wall_s: float) -> dict[str, Any]:
    """RD JSON per curve, summary/BD/enhancer tables, plots, W&B, submissions; returns the index."""
    from vosc.evaluation.report import bd_rows, plot_rd, summary_rows, write_table

    out = Path(str(cfg.out_dir)) / sweep.dataset
    curves = sweep.curves()
    index: dict[str, Any] = {"dataset": sweep.dataset, "curves": {}, "tables": {}, "plots": {}, "bd": {},
                             "computed": sweep.computed, "resumed": sweep.resumed, "wall_s": wall_s}
    for (codec, depth, enhanced), curve in curves.items():
        index["curves"][curve.label] = str(curve.save(sweep.curve_path(codec, depth, enhanced)))
    ordered = list(curves.values())
    tables = {"summary": summary_rows(ordered)}
    by_bpp = [p for c in ordered for p in sorted(c.points, key=lambda x: x.bpp)]  # the order of summary_rows
    for row, point in zip(tables["summary"], by_bpp, strict=True):
        row["enhance_s"] = point.extra.get("enhance_s")
    anchor = pick_anchor(cfg.anchor, ordered)
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
    _log_wandb(cfg, ordered, index, tables)
    index["submissions"] = _submissions(cfg, sweep, ds)
    _atomic_json(out / "evaluation.json", index)
    return index


def _log_wandb(cfg: DictConfig, curves: list[Any], index: dict[str, Any], tables: dict[str, list]) -> None:
    if not cfg.wandb.enabled:
        return
    import wandb

    from vosc.evaluation.report import log_to_wandb

    run = wandb.init(
        project=str(cfg.wandb.project),
        mode=str(cfg.wandb.mode),
        name=cfg.wandb.name,
        dir=str(Path(str(cfg.out_dir)) / index["dataset"]),
        job_type="eval",
        config=OmegaConf.to_container(cfg, resolve=False),
    )  # type: ignore[arg-type]
    try:
        images = {f"rd/{q}": p for q, p in index["plots"].items()}
        log_to_wandb(
            run, curves, images=images, tables={f"rd/{k}": v for k, v in tables.items() if k != "summary"}
        )
        index["wandb_dir"] = str(run.dir)
    finally:
        run.finish()


def _submissions(cfg: DictConfig, sweep: Any, ds: DictConfig) -> dict[str, str]:
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
            raise EvaluationConfigError(f"dataset.submission={kind!r}: use youtube_vos, davis or null")
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


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole evaluation described by ``cfg`` (see the module docstring); returns the index."""
    t0 = time.perf_counter()
    sweep, ds = build_sweep(cfg)
    log.info("evaluating %s on %s (%d sequences): ladder %s, depths %s, enhancer %s -> %s",
        sweep.model_name, sweep.dataset, len(sweep.source), [p.tag for p in sweep.ladder], sweep.depths,
        sweep.enhancer_mode, Path(str(cfg.out_dir)) / sweep.dataset)
    sweep.run()
    index = write_reports(cfg, sweep, ds, time.perf_counter() - t0)
    log.info("done in %.1fs: %d sequence results computed, %d resumed; summary %s", index["wall_s"],
        sweep.computed, sweep.resumed, index["tables"].get("summary"))
    return index


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
