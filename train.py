"""Train a VOS model (AOT / AOST) on compressed video with Lightning + Hydra.

Examples::

    python train.py                                    # small AOST, synthetic data, x265, CPU, W&B offline
    python train.py model=r50_aost codec=x265 codec.q=37 lit.alpha=2
    python train.py -m lit.alpha=1,2,4 model.num_layers=1,2,3 debug=fdr
    python train.py -m hparams_search=alpha_depth
    python train.py experiment=main_x265 trainer=ddp trainer.devices=4 trainer.num_nodes=2
    python train.py -m hydra/launcher=slurm experiment=main_x265 trainer=ddp   # SLURM via submitit

Enhancer stages: ``experiment=enhancer_s1_x265`` (pixel loss), ``enhancer_s2_x265`` / ``enhancer_s3_x265``
with ``vos_ckpt=`` and ``enhancer_ckpt=``, ``baseline_ft_x265`` (docs/enhancer.md).

``vos_ckpt`` (a vosc Lightning checkpoint: its EMA weights and stored network config; or an official
AOT/AOST checkpoint into ``model``) initialises the VOS network (frozen in stage 2). ``enhancer_ckpt``
(an ``EnhancerModule`` or stage-3 checkpoint) initialises the enhancer.

Settings that span groups (dataset roots, checkpoints, enhancer stage) are checked before anything is
built; each constructor checks its own arguments (backbone, depths, alpha, q). Errors are
:class:`vosc.config.ConfigError` and list the valid choices. The builders live in :mod:`vosc.lit.builders`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads sleep, not spin

import logging  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from vosc.config import ConfigError, exit_on_config_error  # noqa: E402
from vosc.lit import builders  # noqa: E402
from vosc.lit.run_options import apply_debug, training_groups  # noqa: E402
from vosc.utils.threads import resolve_threads  # noqa: E402

log = logging.getLogger("vosc.train")

OmegaConf.register_new_resolver("vosc_training_groups", training_groups, replace=True)

__all__ = ["ConfigError", "apply_debug", "build", "main", "run", "training_groups", "validate_config"]


def _choice(group: str) -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def validate_config(cfg: DictConfig) -> None:
    """Check the settings that span config groups, before anything is built.

    Raises:
        ConfigError: Missing dataset root, unknown codec or q out of range, missing checkpoint, enhancer
            checkpoint without an enhancer, enhancer stage without an enhancer or without raw frames.
    """
    builders.check_data_roots(cfg.data)
    if cfg.get("codec") is not None:
        builders.instantiate(cfg.codec)  # the compression stage checks its codec and q (nothing encoded)
    builders.check_checkpoints(cfg.get("vos_ckpt"), cfg.get("enhancer_ckpt"), cfg.get("enhancer") is not None)
    if builders.is_enhancer_stage(cfg.lit):
        builders.check_enhancer_stage(cfg.get("enhancer") is not None, bool(cfg.data.get("keep_raw", False)))


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """Instantiate datamodule, module and trainer from a validated configuration (no training)."""
    # the module first: its constructors check alpha, depths and the backbone before the (slower) data
    module = builders.build_module(cfg.lit, cfg.model, cfg.get("enhancer"), cfg.get("vos_ckpt"),
                                   cfg.get("enhancer_ckpt"), int(cfg.seed))
    datamodule = builders.instantiate(cfg.data)
    trainer = builders.build_trainer(cfg.trainer, cfg.get("callbacks"), cfg.get("logger"))
    return datamodule, module, trainer


def run(cfg: DictConfig) -> float | None:
    """Validate, build, fit (and resume from ``cfg.ckpt_path``); return ``cfg.optimized_metric``."""
    import lightning as L
    import torch

    from vosc.lit.progress import quiet_lightning_adverts, single_lightning_handlers

    single_lightning_handlers()  # Lightning's INFO lines once (Hydra has configured logging by now)
    quiet_lightning_adverts()
    validate_config(cfg)
    apply_debug(cfg, _choice("debug"))
    threads = torch.get_num_threads()
    wanted = resolve_threads(cfg.get("threads"), int(cfg.data.get("num_workers") or 0))
    if wanted is not None:
        torch.set_num_threads(wanted)
        log.info("torch intra-op threads: %d (threads=%s; OMP_WAIT_POLICY=%s)", wanted, cfg.get("threads"),
                 os.environ.get("OMP_WAIT_POLICY"))
    try:
        L.seed_everything(int(cfg.seed), workers=True)
        datamodule, module, trainer = build(cfg)
        resolved: Any = OmegaConf.to_container(cfg, resolve=True)
        resolved.pop("hydra", None)
        return builders.fit(trainer, module, datamodule, resolved, cfg.get("ckpt_path"),
                            train=bool(cfg.get("train", True)), validate=bool(cfg.get("validate", True)),
                            metric=cfg.get("optimized_metric"))
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests, sweeps) get their setting back


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point (see the module docstring)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    return exit_on_config_error(lambda: run(cfg))  # a ConfigError: one line, no traceback


if __name__ == "__main__":
    import sys
    from pathlib import Path as _Path

    from vosc.config import run_cli

    # configuration errors (unknown key or option, bad value): one line with the fix, no traceback
    run_cli(main, _Path(__file__).resolve().parent / "conf", "train", sys.argv[1:])
