"""Evaluate a VOS model on (compressed) video: J&F, bpp, PSNR, runtimes, rate–accuracy curves, BD-rates.

Examples::

    python evaluate.py                                         # random-init small AOST, synthetic set (smoke)
    python evaluate.py ckpt=outputs/quickstart/runs/<time>/checkpoints/last.ckpt dataset=davis2017 ladder=x265
    python evaluate.py ckpt=save_step_100000.pth model=aotl dataset=davis2016 ladder=paper depths=[3]
    python evaluate.py ckpt=... dataset=folder data_root=/data/DAVIS ladder.points=[none,x265:32,x265:42]
    python evaluate.py ckpt=... enhancer=both enhancer_ckpt=enh.ckpt model/enhancer@enhancer_net=cae_base
    python evaluate.py ckpt=... dataset=ytvos depths=[1,2,3]   # writes the submission zip per variant
    python evaluate.py ckpt=... dataset=davis_mini analysis=encoder   # VOS at the encoder, masks as side info
    python evaluate.py ckpt=... analysis=encoder side_info.object_aware=roi   # + object-aware x265 (see
                                                                    # docs/encoder_side.md)

Outputs (``out_dir`` = ``outputs/eval``)::

    <out_dir>/<dataset>/<codec>/q<q>/d<depth>/{pred/<seq>/<frame>.png, sequences/<seq>.json}   (none: raw/)
    <out_dir>/<dataset>/<codec>/q<q>/d<depth>/enh/...          enhanced frames (enhancer=on|both)
    <out_dir>/<dataset>/<codec>+enc[+roi][+blur]/q<q>/d<depth>/  analysis=encoder (curves "x265+enc d3")
    <out_dir>/<dataset>/<codec>/rd_d<depth>[_enh].json         one RD curve (vosc.rd/1 schema)
    <out_dir>/<dataset>/{summary,bd_jf,bd_psnr,enhancer,enhancer_bd}.{md,csv}, rd_jf.png, rd_psnr.png
    <out_dir>/<dataset>/evaluation.json                        index of the above + run counters

Interrupted runs resume: finished sequences (``sequences/<seq>.json`` with the same fingerprint) are
skipped. Every input is checked before any work starts (missing checkpoint, unknown codec, q out of
range, missing dataset root, a depth the model cannot decode at), with an error naming the file or key
(:class:`vosc.config.ConfigError`). The builders live in :mod:`vosc.evaluation.builders`, the reports in
:mod:`vosc.evaluation.outputs`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads sleep, not spin

import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, cast  # noqa: E402

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from vosc.checkpoints.loading import weights_fingerprint  # noqa: E402
from vosc.config import ConfigError, exit_on_config_error  # noqa: E402
from vosc.evaluation import builders  # noqa: E402
from vosc.evaluation.outputs import write_reports  # noqa: E402
from vosc.models.base import VOSNetwork  # noqa: E402

log = logging.getLogger("vosc.evaluate")

__all__ = ["ConfigError", "build_sweep", "evaluate", "main"]


def _choice(group: str) -> str | None:
    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def build_sweep(cfg: DictConfig) -> tuple[Any, DictConfig]:
    """Check every input and build the :class:`~vosc.evaluation.sweep.Sweep` (no work done yet)."""
    from vosc.evaluation.ladder import parse_ladder

    codecs = {str(k): instantiate(v) for k, v in cfg.codecs.items()}
    ladder = parse_ladder(OmegaConf.to_container(cfg.ladder.points, resolve=True), codecs)  # type: ignore[arg-type]
    sweep_cls, side = builders.build_analysis(str(cfg.get("analysis", "decoder")), cfg.get("side_info"))
    device = builders.resolve_device(str(cfg.device))
    if cfg.torch_threads is not None:
        torch.set_num_threads(int(cfg.torch_threads))
    model, prov = builders.load_vos_model(cfg.ckpt, cfg.model, int(cfg.seed), cfg.model_name,
                                          _choice("model"))
    wanted = None if cfg.depths is None else list(cfg.depths)
    depths = builders.resolve_depths(wanted, cast(VOSNetwork, model))
    source, ds = builders.build_source(cfg.dataset, cfg.data_root, str(cfg.split))
    model = model.to(device)
    enhancer, mode = builders.build_enhancer(cfg.enhancer, cfg.enhancer_net, cfg.enhancer_ckpt, int(cfg.enhancer_chunk),
                                             device, _choice("model/enhancer@enhancer_net"))
    seg_cfg = OmegaConf.to_container(cfg.segmenter, resolve=True)
    factory = instantiate(cfg.segmenter)
    sweep = sweep_cls(source=source, dataset=str(ds.name), model=model,
        make_segmenter=lambda m, d: factory(model=m, depth=d), codecs=codecs, ladder=ladder,
        depths=depths, out_root=Path(str(cfg.out_dir)), cache_root=Path(str(cfg.cache_dir)),
        model_name=prov["name"], model_fingerprint=weights_fingerprint(model),
        checkpoint=prov["checkpoint"], checkpoint_hash=prov["checkpoint_hash"], enhancer=enhancer,
        enhancer_mode=mode, max_frames=cfg.max_frames, resize_long_edge=cfg.resize_long_edge,
        references=str(ds.references), overwrite=bool(cfg.overwrite), device=device,
        missing_gt=str(cfg.get("missing_gt", "error")),
        segmenter_config=seg_cfg, **side)
    return sweep, ds


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole evaluation described by ``cfg`` (see the module docstring); returns the index."""
    t0 = time.perf_counter()
    sweep, ds = build_sweep(cfg)
    log.info("evaluating %s on %s (%d sequences): analysis %s, ladder %s, depths %s, enhancer %s -> %s",
        sweep.model_name, sweep.dataset, len(sweep.source), cfg.get("analysis", "decoder"),
        [p.tag for p in sweep.ladder], sweep.depths, sweep.enhancer_mode,
        Path(str(cfg.out_dir)) / sweep.dataset)
    sweep.run()
    baselines = builders.run_baselines(cfg.get("baselines"), sweep)
    run_config: Any = OmegaConf.to_container(cfg, resolve=False)
    wandb: Any = OmegaConf.to_container(cfg.wandb, resolve=True)
    index = write_reports(sweep, ds, str(cfg.out_dir), cfg.anchor, wandb, run_config, time.perf_counter() - t0,
                          baselines)
    log.info("done in %.1fs: %d sequence results computed, %d resumed; summary %s", index["wall_s"],
        sweep.computed, sweep.resumed, index["tables"].get("summary"))
    return index


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    exit_on_config_error(lambda: evaluate(cfg))  # a ConfigError: one line, no traceback


if __name__ == "__main__":
    import sys
    from pathlib import Path as _Path

    from vosc.config import run_cli

    # configuration errors (unknown key or option, bad value): one line with the fix, no traceback
    run_cli(main, _Path(__file__).resolve().parent / "conf", "evaluate", sys.argv[1:])
