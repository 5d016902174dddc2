"""Builders of a training run (what ``train.py`` composes): cross-group checks, the Lightning module, the
trainer, and the fit itself. Every function takes the config groups it needs as explicit arguments.

Each constructor checks its own arguments (``VOSModule``: alpha and depths; ``CompressionSpec``: codec and
q; the encoder: its name); the checks here span groups (dataset roots, checkpoints, enhancer stages) and run
before anything is built. Errors are :class:`vosc.config.ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

from vosc.config import ConfigError, instantiate, parse_alpha

log = logging.getLogger(__name__)

__all__ = ["build_module", "build_trainer", "check_checkpoints", "check_data_roots", "check_enhancer_stage",
           "fit", "format_metrics", "instantiate", "is_enhancer_stage", "load_vos"]

ENHANCER_OPTIONS = Path(__file__).resolve().parents[2] / "conf" / "model" / "enhancer"


def _roots(node: Any, where: str) -> list[tuple[str, str, str]]:
    """``(config key, _target_, root)`` of every source node under ``node``."""
    found: list[tuple[str, str, str]] = []
    if isinstance(node, DictConfig):
        if "_target_" in node:
            found += [(f"{where}.{k}", str(node._target_), str(node[k])) for k in ("root", "davis_root")
                      if k in node]
        for key in node:
            found += _roots(node[key], f"{where}.{key!s}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            found += _roots(item, f"{where}.{i}")
    return found


def check_data_roots(data: DictConfig) -> None:
    """Every dataset root under the ``data`` group exists (synthetic sets and the folder of
    :class:`~vosc.data.sources.composites.DavisCompositeSource` are generated on first use; the DAVIS root
    the composites are cut from must exist)."""
    for key, target, root in _roots(data, "data"):
        generated = target.endswith("DavisCompositeSource") and key.endswith(".root")
        if "synthetic" in target.lower() or generated:
            continue
        if not Path(root).exists():
            raise ConfigError(
                f"{key}={root} does not exist ({target.rsplit('.', 1)[-1]}); point paths.davis_root / "
                "paths.ytvos_root / paths.static_root (env DAVIS_ROOT / YTVOS_ROOT / STATIC_ROOT) or "
                "paths.data_dir at the dataset, or use data=synthetic (generated on first use)"
            )


def is_enhancer_stage(lit: DictConfig) -> bool:
    """Whether ``lit`` is the enhancer's stage-1/2 module (else: VOS training, optionally joint)."""
    return str(lit.get("_target_", "")).rsplit(".", 1)[-1] == "EnhancerModule"


def check_checkpoints(vos_ckpt: str | None, enhancer_ckpt: str | None, has_enhancer: bool) -> None:
    """The initial checkpoints exist, and an enhancer checkpoint has an enhancer to go into."""
    for key, path in (("vos_ckpt", vos_ckpt), ("enhancer_ckpt", enhancer_ckpt)):
        if path is not None and not Path(str(path)).expanduser().is_file():
            raise ConfigError(f"{key}={path} does not exist (a checkpoint file is expected)")
    if enhancer_ckpt is not None and not has_enhancer:
        raise ConfigError("enhancer_ckpt is set but no enhancer is configured; add "
                          "model/enhancer@enhancer=cae_tiny")


def check_enhancer_stage(has_enhancer: bool, keep_raw: bool) -> None:
    """An enhancer stage (lit=EnhancerModule) has an enhancer and the raw frames to train against."""
    if not has_enhancer:
        options = sorted(p.stem for p in ENHANCER_OPTIONS.glob("*.yaml"))
        raise ConfigError(f"lit=EnhancerModule needs an enhancer: add `model/enhancer@enhancer=<option>`; "
                          f"valid choices: {options}")
    if not keep_raw:
        raise ConfigError("lit=EnhancerModule trains against the uncompressed frames: set data.keep_raw=true")


def load_vos(node: DictConfig, vos_ckpt: str | None, seed: int) -> tuple[Any, dict[str, Any]]:
    """The VOS network of ``node`` initialised from ``vos_ckpt`` (random initialisation without it).

    A vosc Lightning checkpoint gives its EMA weights and its stored network config (``node`` is then
    ignored); an official AOT/AOST checkpoint is loaded strictly into ``node``
    (:func:`vosc.checkpoints.loading.load_vos_model`).

    Returns:
        The network and its plain-dict config (stored as ``model_config`` in the new checkpoints).
    """
    from vosc.checkpoints.loading import load_vos_model

    if vos_ckpt is None:
        log.warning("vos_ckpt is not set: the VOS network is randomly initialised")
    config = OmegaConf.to_container(node, resolve=True)
    loaded = load_vos_model(None if vos_ckpt is None else str(vos_ckpt), config, seed=seed)  # type: ignore[arg-type]
    if vos_ckpt is not None:
        log.info("VOS network initialised from %s (%s checkpoint)", vos_ckpt, loaded.kind)
    return loaded.model, loaded.model_config


def _enhancer(node: DictConfig | None, ckpt: str | None, load: bool) -> Any:
    if node is None:
        return None
    enhancer = instantiate(node)
    if ckpt is not None and load:  # VOSModule loads (and records) it itself
        from vosc.lit.enhancer_module import load_enhancer_weights

        load_enhancer_weights(enhancer, str(ckpt))
        log.info("enhancer initialised from %s", ckpt)
    return enhancer


def build_module(lit: DictConfig, model: DictConfig, enhancer: DictConfig | None, vos_ckpt: str | None,
                 enhancer_ckpt: str | None, seed: int) -> Any:
    """``EnhancerModule`` (stage 1/2, frozen VOS for stage 2) or ``VOSModule`` (with an optional enhancer).

    Args:
        lit: The ``lit`` group (``_target_`` = the module class).
        model: The ``model`` group (the VOS network).
        enhancer: The ``enhancer`` node or ``None``.
        vos_ckpt: Initial VOS weights (see :func:`load_vos`).
        enhancer_ckpt: Initial enhancer weights.
        seed: Seed of a random initialisation.
    """
    stage = is_enhancer_stage(lit)
    net = _enhancer(enhancer, enhancer_ckpt, load=stage)
    kwargs: dict[str, Any] = {}
    if stage:
        kwargs["enhancer"] = net
        if lit.get("vos_model") is not None:  # stage 2: the frozen VOS network
            kwargs["vos_model"], _ = load_vos(lit.vos_model, vos_ckpt, seed)
        module = instantiate(lit, **kwargs)
    else:
        if vos_ckpt is not None:
            network, model_config = load_vos(model, vos_ckpt, seed)
        else:
            network = instantiate(model)
            model_config = cast(dict[str, Any], OmegaConf.to_container(model, resolve=True))
        kwargs = {"model": network, "alpha": parse_alpha(lit.get("alpha", 2.0))}
        if net is not None:
            kwargs |= {"enhancer": net, "enhancer_ckpt": enhancer_ckpt}
        module = instantiate(lit, **kwargs)
        # stored (not instantiated) so that VOSModule.load_from_checkpoint(path) can rebuild the network
        module.hparams["model_config"] = model_config
    if net is not None:
        module.hparams["enhancer_config"] = OmegaConf.to_container(enhancer, resolve=True)
    return module


def _instantiate_list(node: DictConfig | None, what: str) -> list[Any]:
    out: list[Any] = []
    for conf in (node or {}).values():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("instantiating %s <%s>", what, conf._target_)
            out.append(instantiate(conf))
    return out


def build_trainer(trainer: DictConfig, callbacks: DictConfig | None, logger: DictConfig | None) -> Any:
    """The Lightning trainer with its callbacks, loggers and atomic checkpoint writes."""
    from vosc.lit.callbacks import AtomicCheckpointIO
    from vosc.lit.progress import quiet_lightning_adverts, single_lightning_handlers
    from vosc.utils.sweep_names import with_sweep_names

    quiet_lightning_adverts()
    single_lightning_handlers()
    loggers = _instantiate_list(with_sweep_names(logger), "logger")  # multirun: W&B name/group from the sweep
    return instantiate(trainer, callbacks=_instantiate_list(callbacks, "callback"), logger=loggers or False,
                       plugins=[AtomicCheckpointIO()])


def _finish_wandb() -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish()


def format_metrics(metrics: Mapping[str, float]) -> str:
    """``{name: value}`` for the log, sorted by name: learning rates (``lr-...``, ``.../lr``) and other values
    below 1e-3 in scientific notation (``7.833e-05``, not ``0.0001``), the rest with 4 decimals."""
    def one(name: str, value: float) -> str:
        is_lr = name.startswith("lr") or name.endswith("/lr")
        return f"{value:.3e}" if is_lr or (value != 0 and abs(value) < 1e-3) else f"{value:.4f}"

    return "{" + ", ".join(f"'{k}': {one(k, v)}" for k, v in sorted(metrics.items())) + "}"


def fit(trainer: Any, module: Any, datamodule: Any, hyperparameters: Mapping[str, Any], ckpt_path: str | None,
        train: bool = True, validate: bool = True, metric: str | None = None) -> float | None:
    """Log ``hyperparameters``, fit (or only validate), log the final metrics; return ``metric``'s value.

    W&B is finished afterwards whatever happens (multirun jobs each get their own run).
    """
    try:
        for lg in trainer.loggers:
            lg.log_hyperparams(dict(hyperparameters))
        if train:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        elif validate:
            trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        ckpt = getattr(trainer.checkpoint_callback, "last_model_path", None) or None
        if getattr(trainer, "is_global_zero", True):  # DDP: the metrics are the ranks' synchronised ones
            log.info("final metrics: %s", format_metrics(metrics))
            if ckpt:
                log.info("checkpoint: %s", ckpt)
        return metrics.get(metric) if metric else None
    finally:
        _finish_wandb()
