"""Run options of ``train.py`` that are not a module's constructor arguments: what ``debug=<option>`` sets
(logged, and fp32 on the CPU) and the config groups ``train.py --help`` lists."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vosc.models.variants import conf_dir as _conf_dir

log = logging.getLogger("vosc.train")

__all__ = ["EVAL_ONLY_GROUPS", "apply_debug", "training_groups"]

#: Config groups of ``evaluate.py`` only; ``train.py --help`` leaves them out.
EVAL_ONLY_GROUPS = ("dataset", "ladder")


def training_groups(conf_dir: Path | None = None) -> str:
    """``group: option, ...`` lines of every config group that training uses (``train.py --help``)."""
    conf_dir = conf_dir or _conf_dir()
    lines = []
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        group = folder.relative_to(conf_dir).as_posix()
        if group.split("/")[0] in (*EVAL_ONLY_GROUPS, "hydra"):
            continue
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options:
            lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


def _debug_keys(option: str, conf_dir: Path | None = None) -> list[str]:
    """Dotted keys that ``conf/debug/<option>.yaml`` sets, its own defaults (e.g. ``default``) included."""
    conf_dir = conf_dir or _conf_dir()
    node: Any = OmegaConf.load(conf_dir / "debug" / f"{option}.yaml")
    keys: list[str] = []
    for parent in node.get("defaults") or []:
        if isinstance(parent, str) and parent != "_self_":
            keys += _debug_keys(parent, conf_dir)

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, DictConfig) and len(value) > 0:
            for k, v in value.items_ex(resolve=False):
                walk(v, f"{prefix}.{k!s}" if prefix else str(k))
        else:
            keys.append(prefix)

    walk(OmegaConf.masked_copy(node, [str(k) for k in node if k not in ("defaults", "hydra")]), "")
    return list(dict.fromkeys(keys))


def apply_debug(cfg: DictConfig, option: str | None) -> list[str]:
    """Log what the ``debug=<option>`` config sets, and train in fp32 on the CPU (``debug_cpu_fp32``).

    Returns:
        The ``key=value`` settings that were logged (debug settings, then any precision change).
    """
    import torch

    changes = []
    if option:
        changes = [f"{k}={OmegaConf.select(cfg, k)}" for k in _debug_keys(option)]
        log.info("debug=%s sets: %s", option, ", ".join(changes))
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    precision = str(cfg.trainer.get("precision", "32-true"))
    if on_cpu and precision not in ("32", "32-true"):
        if cfg.get("debug_cpu_fp32"):
            cfg.trainer.precision = "32-true"
            changes.append("trainer.precision=32-true")
            log.warning("debug run on the CPU: trainer.precision %s -> 32-true (mixed precision is bf16 on "
                        "the CPU, much slower there); debug_cpu_fp32=false keeps %s", precision, precision)
        else:
            log.warning("trainer.precision=%s on the CPU runs in bf16, much slower than 32-true there",
                        precision)
    return changes
