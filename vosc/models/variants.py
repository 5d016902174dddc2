"""Named model variants: one YAML file per variant in ``conf/model/`` (the only definition of a variant).

``build_model("aost")`` composes ``conf/model/aost.yaml`` exactly as Hydra does for ``model=aost`` (its
``defaults`` list of ``<variant>@_here_`` entries first, then the file's own keys), applies keyword
overrides and instantiates the ``_target_``. The configuration folder is the repository's ``conf/``; set
``VOSC_CONF`` to use another one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from vosc.config import ConfigError
from vosc.models.base import VOSNetwork

__all__ = ["build_model", "conf_dir", "model_config", "model_names"]


def conf_dir() -> Path:
    """The Hydra configuration folder (``$VOSC_CONF`` or the repository's ``conf/``)."""
    env = os.environ.get("VOSC_CONF")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "conf"


def model_names() -> list[str]:
    """Names of the model variants (``conf/model/*.yaml``), sorted."""
    return sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))


def _compose(name: str, seen: tuple[str, ...]) -> DictConfig:
    path = conf_dir() / "model" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"model={name!r} is unknown: no {path}; valid choices: {model_names()}")
    if name in seen:
        raise ConfigError(f"{path}: defaults cycle {' -> '.join((*seen, name))}")
    raw = OmegaConf.load(path)
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: a model config must be a mapping")
    own = OmegaConf.masked_copy(raw, [str(k) for k in raw if k != "defaults"])
    defaults = list(raw.get("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")  # Hydra >= 1.1: the file's own keys override its defaults
    merged: Any = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, own)
        elif isinstance(entry, str) and entry.endswith("@_here_"):
            merged = OmegaConf.merge(merged, _compose(entry[: -len("@_here_")], (*seen, name)))
        else:
            raise ConfigError(f"{path}: unsupported defaults entry {entry!r} (use '<variant>@_here_')")
    return cast(DictConfig, merged)


def model_config(name: str, **overrides: Any) -> DictConfig:
    """The composed configuration of variant ``name`` (``_target_`` + constructor arguments).

    Raises:
        ConfigError: Unknown variant (the message lists the valid ones) or an override that is not a
            constructor argument of the variant.
    """
    cfg = _compose(name, ())
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        valid = sorted(str(k) for k in cfg if k != "_target_")
        raise ConfigError(f"model={name}: unknown argument(s) {unknown}; valid: {valid}")
    return cast(DictConfig, OmegaConf.merge(cfg, overrides))


def build_model(name: str, **overrides: Any) -> VOSNetwork:
    """Build variant ``name`` (``conf/model/<name>.yaml``) with constructor ``overrides``.

    Example: ``build_model("aost", num_layers=2)`` is the network of ``train.py model=aost
    model.num_layers=2``.
    """
    from hydra.utils import instantiate

    model = instantiate(model_config(name, **overrides))
    if not isinstance(model, VOSNetwork):
        raise ConfigError(f"model={name}: {type(model).__name__} is not a vosc.models.base.VOSNetwork")
    return model
