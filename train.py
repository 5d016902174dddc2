"""Train a VOS model (AOT / AOST) on compressed video with Lightning + Hydra.

Examples::

    python train.py                                    # small AOST, synthetic data, x265, CPU, W&B offline
    python train.py model=r50_aost codec=x265 codec.q=37 lit.alpha=2
    python train.py -m lit.alpha=1,2,4 model.num_layers=1,2,3 debug=fdr
    python train.py -m hparams_search=alpha_depth
    python train.py experiment=main_x265 trainer=ddp trainer.devices=4 trainer.num_nodes=2
    python train.py -m hydra/launcher=slurm experiment=main_x265 trainer=ddp   # SLURM via submitit

Enhancer (DESIGN §8; ``enhancer`` = a ``model/enhancer`` option placed at the top-level key ``enhancer``)::

    python train.py experiment=enhancer_s1_x265                                   # stage 1: pixel loss
    python train.py experiment=enhancer_s2_x265 vos_ckpt=VOS.ckpt enhancer_ckpt=S1.ckpt   # + task loss, frozen VOS
    python train.py experiment=enhancer_s3_x265 vos_ckpt=VOS.ckpt enhancer_ckpt=S2.ckpt   # joint fine-tuning
    python train.py experiment=baseline_ft_x265 vos_ckpt=VOS.ckpt                 # same steps, no enhancer
    python train.py experiment=enhancer_s1_x265 model/enhancer@enhancer=cae_tiny

``vos_ckpt`` (a vosc Lightning checkpoint: its EMA weights and stored network config; or an official
AOT/AOST checkpoint into ``model``) initialises the VOS network (frozen in stage 2). ``enhancer_ckpt``
(an ``EnhancerModule`` or stage-3 checkpoint) initialises the enhancer.

The configuration is checked before anything is built (unknown backbone, depth > layers, alpha <= 0,
QP out of range, missing data root): errors list the valid choices.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger("vosc.train")

# `inf` in YAML/overrides is parsed by OmegaConf as a float; also accept the string forms.
_INF_STRINGS = {"inf", "+inf", "infinity", ".inf"}


class ConfigError(ValueError):
    """An invalid training configuration (raised before any data, model or trainer is built)."""


def _alpha(value: Any) -> float:
    if isinstance(value, str) and value.strip().lower() in _INF_STRINGS:
        return math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"lit.alpha={value!r} is not a number; use a value > 0 or inf") from None


def _check_model(cfg: DictConfig) -> None:
    from vosc.models.encoder.timm_backbone import ENCODER_DIMS

    model = cfg.model
    for key in ("encoder", "key_encoder"):  # AOT/AOST encoder; STCN key encoder
        enc = model.get(key)
        if enc is not None and enc not in ENCODER_DIMS:
            raise ConfigError(f"model.{key}={enc!r} is not a known backbone; valid choices: {sorted(ENCODER_DIMS)}")
    layers = int(model.get("num_layers", 1))
    if layers < 1:
        raise ConfigError(f"model.num_layers={layers} must be >= 1")
    for key in ("depths", "val_depths"):
        depths = cfg.lit.get(key)
        if depths is None:
            continue
        bad = [int(d) for d in depths if not 1 <= int(d) <= layers]
        if bad:
            raise ConfigError(
                f"lit.{key}={list(depths)}: depth(s) {bad} exceed model.num_layers={layers}; "
                f"valid choices: {list(range(1, layers + 1))}"
            )


def _check_codec(cfg: DictConfig) -> None:
    from vosc.codecs import CODECS
    from vosc.types import OperatingPoint

    codec = cfg.get("codec")
    if codec is None:
        return
    name = codec.get("codec", "none")
    if name not in CODECS:
        raise ConfigError(f"codec.codec={name!r} is unknown; valid choices: {sorted(CODECS)}")
    lo, hi = CODECS[name].q_range
    values = OperatingPoint.parse_q(OmegaConf.to_container(codec, resolve=True).get("q"))
    if codec.get("eval_q") is not None:
        values.append(int(codec.eval_q))
    bad = [q for q in values if not lo <= q <= hi]
    if name != "none" and bad:
        raise ConfigError(f"codec.q={bad} out of range for {name}: valid range [{lo}, {hi}]")


def _roots(node: Any, where: str) -> list[tuple[str, str, str]]:
    """``(config key, _target_, root)`` of every source node under ``node``."""
    found: list[tuple[str, str, str]] = []
    if isinstance(node, DictConfig):
        if "root" in node and "_target_" in node:
            found.append((f"{where}.root", str(node._target_), str(node.root)))
        for key in node:
            found += _roots(node[key], f"{where}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            found += _roots(item, f"{where}.{i}")
    return found


def _check_data(cfg: DictConfig) -> None:
    for key, target, root in _roots(cfg.data, "data"):
        if "synthetic" in target.lower():
            continue  # generated on first use
        if not Path(root).exists():
            raise ConfigError(
                f"{key}={root} does not exist ({target.rsplit('.', 1)[-1]}); point paths.davis_root / "
                "paths.ytvos_root / paths.static_root (env DAVIS_ROOT / YTVOS_ROOT / STATIC_ROOT) or paths.data_dir "
                "at the dataset, or use data=synthetic (generated on first use)"
            )


def is_enhancer_stage(cfg: DictConfig) -> bool:
    """Whether ``lit`` is the enhancer's stage-1/2 module (else: VOS training, optionally joint with an enhancer)."""
    return str(cfg.lit.get("_target_", "")).rsplit(".", 1)[-1] == "EnhancerModule"


def _check_enhancer(cfg: DictConfig) -> None:
    for key in ("vos_ckpt", "enhancer_ckpt"):
        path = cfg.get(key)
        if path is not None and not Path(str(path)).expanduser().is_file():
            raise ConfigError(f"{key}={path} does not exist (a checkpoint file is expected)")
    if cfg.get("enhancer_ckpt") is not None and cfg.get("enhancer") is None:
        raise ConfigError("enhancer_ckpt is set but no enhancer is configured; add model/enhancer@enhancer=cae_tiny")
    if not is_enhancer_stage(cfg):
        return
    if cfg.get("enhancer") is None:
        raise ConfigError("lit=EnhancerModule needs an enhancer: add `model/enhancer@enhancer=<option>`; valid "
                          f"choices: {sorted(p.stem for p in (Path(__file__).parent / 'conf/model/enhancer').glob('*.yaml'))}")
    if not cfg.data.get("keep_raw", False):
        raise ConfigError("lit=EnhancerModule trains against the uncompressed frames: set data.keep_raw=true")


def validate_config(cfg: DictConfig) -> None:
    """Check the composed configuration before training.

    Raises:
        ConfigError: Unknown backbone, depth > layers, alpha <= 0, QP out of range, missing data root,
            missing checkpoint, enhancer stage without an enhancer or without raw frames.
    """
    alpha = _alpha(cfg.lit.get("alpha", 2.0))
    if not alpha > 0:
        raise ConfigError(f"lit.alpha={alpha} must be > 0 (or inf for deepest-only supervision)")
    _check_model(cfg)
    _check_codec(cfg)
    _check_data(cfg)
    _check_enhancer(cfg)


def _instantiate_list(node: DictConfig | None, what: str) -> list[Any]:
    out: list[Any] = []
    if not node:
        return out
    for conf in node.values():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("instantiating %s <%s>", what, conf._target_)
            out.append(hydra.utils.instantiate(conf, _convert_="all"))
    return out


def _log_config(loggers: list[Any], cfg: DictConfig) -> None:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)  # type: ignore[union-attr]
    for lg in loggers:
        lg.log_hyperparams(resolved)  # type: ignore[arg-type]


def _finish_wandb() -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish()


def load_vos(cfg: DictConfig, node: DictConfig) -> tuple[Any, dict[str, Any]]:
    """The VOS network of ``node`` initialised from ``cfg.vos_ckpt`` (random initialisation without it).

    A vosc Lightning checkpoint gives its EMA weights and its stored network config (``node`` is then
    ignored); an official AOT/AOST checkpoint is loaded strictly into ``node``
    (:func:`vosc.checkpoints.loading.load_vos_model`).

    Returns:
        The network and its plain-dict config (stored as ``model_config`` in the new checkpoints).
    """
    from vosc.checkpoints.loading import load_vos_model

    ckpt = cfg.get("vos_ckpt")
    if ckpt is None:
        log.warning("vos_ckpt is not set: the VOS network is randomly initialised")
    config = OmegaConf.to_container(node, resolve=True)
    loaded = load_vos_model(None if ckpt is None else str(ckpt), config, seed=int(cfg.seed))  # type: ignore[arg-type]
    if ckpt is not None:
        log.info("VOS network initialised from %s (%s checkpoint)", ckpt, loaded.kind)
    return loaded.model, loaded.model_config


def build_enhancer(cfg: DictConfig) -> Any:
    """The enhancer of ``cfg.enhancer`` (``None`` when absent) with ``cfg.enhancer_ckpt`` weights (stage 1/2)."""
    node = cfg.get("enhancer")
    if node is None:
        return None
    enhancer = hydra.utils.instantiate(node, _convert_="all")
    ckpt = cfg.get("enhancer_ckpt")
    if ckpt is not None and is_enhancer_stage(cfg):  # VOSModule loads (and records) it itself
        from vosc.lit.enhancer_module import load_enhancer_weights

        load_enhancer_weights(enhancer, str(ckpt))
        log.info("enhancer initialised from %s", ckpt)
    return enhancer


def build_module(cfg: DictConfig) -> Any:
    """``EnhancerModule`` (stage 1/2, frozen VOS for stage 2) or ``VOSModule`` (with an optional enhancer)."""
    enhancer = build_enhancer(cfg)
    kwargs: dict[str, Any] = {}
    if is_enhancer_stage(cfg):
        kwargs["enhancer"] = enhancer
        if cfg.lit.get("vos_model") is not None:  # stage 2: the frozen VOS network
            kwargs["vos_model"], _ = load_vos(cfg, cfg.lit.vos_model)
        module = hydra.utils.instantiate(cfg.lit, _convert_="all", **kwargs)
    else:
        if cfg.get("vos_ckpt") is not None:
            model, model_config = load_vos(cfg, cfg.model)
        else:
            model = hydra.utils.instantiate(cfg.model, _convert_="all")
            model_config = OmegaConf.to_container(cfg.model, resolve=True)
        kwargs = {"model": model, "alpha": _alpha(cfg.lit.get("alpha", 2.0))}
        if enhancer is not None:
            kwargs |= {"enhancer": enhancer, "enhancer_ckpt": cfg.get("enhancer_ckpt")}
        module = hydra.utils.instantiate(cfg.lit, _convert_="all", **kwargs)
        # stored (not instantiated) so that VOSModule.load_from_checkpoint(path) can rebuild the network
        module.hparams["model_config"] = model_config
    if enhancer is not None:
        module.hparams["enhancer_config"] = OmegaConf.to_container(cfg.enhancer, resolve=True)
    return module


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """Instantiate datamodule, module and trainer from a validated configuration (no training)."""
    from vosc.lit.callbacks import AtomicCheckpointIO

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = build_module(cfg)
    callbacks = _instantiate_list(cfg.get("callbacks"), "callback")
    loggers = _instantiate_list(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], _convert_="all"
    )
    return datamodule, module, trainer


def run(cfg: DictConfig) -> float | None:
    """Validate, build, fit (and resume from ``cfg.ckpt_path``); return ``cfg.optimized_metric``."""
    import lightning as L
    import torch

    validate_config(cfg)
    threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True)
    datamodule, module, trainer = build(cfg)
    try:
        _log_config(trainer.loggers, cfg)
        if cfg.get("train", True):
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        elif cfg.get("validate", True):
            trainer.validate(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        ckpt = getattr(trainer.checkpoint_callback, "last_model_path", None) or None
        log.info("final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
        if ckpt:
            log.info("checkpoint: %s", ckpt)
        name = cfg.get("optimized_metric")
        return metrics.get(name) if name else None
    finally:
        _finish_wandb()
        torch.set_num_threads(threads)  # in-process callers (tests, sweeps) get their setting back


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point (see the module docstring)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    return run(cfg)


if __name__ == "__main__":
    main()
