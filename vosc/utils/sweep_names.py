"""Readable names for the jobs of a Hydra multirun: the W&B run of each job is named after the overrides it
sweeps (``alpha=2,num_layers=3``) and grouped by sweep (``<task_name>-<run_name>`` for a sweep folder
``outputs/<task_name>/multiruns/<run_name>``, else the sweep folder's name).

The swept keys are those given with sweep syntax on the command line (``lit.alpha=1,2,4``, ``range(...)``;
read from the sweep's ``multirun.yaml``) and the sweeper's own search space (``hydra.sweeper.params``,
e.g. Optuna). Outside a multirun nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

__all__ = ["job_name", "sweep_job_names", "swept_keys", "with_sweep_names"]


def _parse(overrides: Sequence[str]) -> list[object]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return list(OverridesParser.create().parse_overrides(list(overrides)))


def swept_keys(command_line: Sequence[str], sweeper_params: Iterable[str] = ()) -> list[str]:
    """Keys swept by a multirun: sweep-syntax overrides of ``command_line`` plus ``sweeper_params``."""
    keys = [o.get_key_element() for o in _parse(command_line) if o.is_sweep_override()]  # type: ignore[attr-defined]
    return list(dict.fromkeys([*keys, *sweeper_params]))


def job_name(job_overrides: Sequence[str], swept: Sequence[str]) -> str:
    """``key=value,...`` of the swept keys in one job's overrides, keys shortened to their last component
    unless two swept keys share it (``lit.alpha=2`` → ``alpha=2``)."""
    values = {o.get_key_element(): o.get_value_element_as_str() for o in _parse(job_overrides)}  # type: ignore[attr-defined]
    shorts = [k.split(".")[-1] for k in swept]
    parts = [f"{s if shorts.count(s) == 1 else k}={values[k]}" for k, s in zip(swept, shorts, strict=True)
             if k in values]
    return ",".join(parts)


def sweep_job_names() -> tuple[str, str] | None:
    """``(name, group)`` of this Hydra multirun job; ``None`` outside a multirun or without swept keys."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(hc.runtime.output_dir).parent
    command_line: list[str] = []
    if (sweep_dir / "multirun.yaml").is_file():
        command_line = list(OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task)
    params = hc.sweeper.get("params") or {}
    name = job_name(list(hc.overrides.task), swept_keys(command_line, list(params)))
    if not name:
        return None
    standard = sweep_dir.parent.name == "multiruns"  # outputs/<task_name>/multiruns/<run_name>
    return name, f"{sweep_dir.parent.parent.name}-{sweep_dir.name}" if standard else sweep_dir.name


def with_sweep_names(logger: DictConfig | None) -> DictConfig | None:
    """A copy of the ``logger`` group node whose W&B logger is named after this multirun job's swept overrides
    and grouped by sweep (an explicit ``logger_group`` / ``logger.wandb.group`` is kept)."""
    names = sweep_job_names() if logger is not None else None
    if logger is None or names is None:
        return logger
    out = logger.copy()
    for conf in out.values():
        if isinstance(conf, DictConfig) and str(conf.get("_target_", "")).endswith("WandbLogger"):
            with open_dict(conf):
                conf.name = names[0]
                if conf.get("group") is None:
                    conf.group = names[1]
            log.info("W&B run of this multirun job: name %r, group %r", conf.name, conf.group)
    return out
