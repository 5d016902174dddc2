"""Training progress and log hygiene.

* :class:`StepProgressBar`: Lightning's Rich progress bar, with a training description that makes sense for
  step-bounded runs. Lightning prints ``Epoch e/{max_epochs - 1}``, i.e. ``Epoch 6/-2`` with the
  ``max_epochs=-1`` of step-bounded training; this bar prints ``Epoch 6 · step 1200/5000`` (``Epoch e/E`` only
  when ``max_epochs`` is a real bound), and updates the step after every batch (Lightning sets the description
  once per epoch, so the step stayed at its value of the epoch start). When stdout is not a terminal (a log
  file, ``nohup``, SLURM) the bar turns itself off: :class:`ProgressLog` writes the progress there instead.
* :class:`ProgressLog`: when stdout is not a terminal, one INFO line every ``every_n_steps`` steps or every
  ``every_s`` seconds, whichever comes first (and after the first step): step / max steps, epoch, loss,
  steps/s, elapsed, ETA and the last validation J&F per depth.
* :func:`quiet_lightning_adverts`: drops Lightning's two "💡 Tip: ... litlogger / litmodels" adverts, at the
  logger that emits them (``lightning.pytorch.utilities.rank_zero``) and by their exact text, so that no other
  message is filtered; and the one known deprecation warning Lightning 2.6 raises on every fit with torch
  2.14 (``isinstance(treespec, LeafSpec)`` in ``lightning.pytorch.utilities._pytree``), by message and module.
* :func:`single_lightning_handlers`: Lightning attaches its own ``StreamHandler`` to ``lightning.pytorch`` and
  ``lightning.fabric`` when it is imported before logging is configured (Hydra configures it later), so every
  Lightning INFO line was printed twice (``INFO: ...`` and Hydra's line). Once the root logger has handlers,
  this removes Lightning's own and lets the records propagate: each line once, also in the run's log file.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar

from vosc.utils.progress import format_duration, stdout_is_terminal

__all__ = ["ProgressLog", "StepProgressBar", "format_duration", "quiet_lightning_adverts",
           "single_lightning_handlers", "stdout_is_terminal"]

log = logging.getLogger("vosc.progress")

_ADVERTS = ("💡 Tip: For seamless cloud logging", "💡 Tip: For seamless cloud uploads")


class StepProgressBar(RichProgressBar):
    """Rich progress bar with sane epoch/step counts (see the module docstring); arguments as Lightning's.

    Off when stdout is not a terminal (``terminal_only``; :class:`ProgressLog` logs the progress there).
    """

    def __init__(self, *args: Any, terminal_only: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.terminal_only = terminal_only
        if terminal_only and not stdout_is_terminal():
            self.disable()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Lightning's update, plus the step in the description (Lightning sets it once per epoch)."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.is_enabled and self.progress is not None and self.train_progress_bar_id is not None:
            text = self._get_train_description(trainer.current_epoch)
            if self.theme.description:
                text = f"[{self.theme.description}]{text}"
            self.progress.update(self.train_progress_bar_id, description=text)

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        text = f"Epoch {current_epoch}"
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            text += f"/{trainer.max_epochs - 1}"
        if trainer.max_steps is not None and trainer.max_steps > 0:
            text += f" · step {trainer.global_step}/{trainer.max_steps}"
        if len(self.validation_description) > len(text):
            text = f"{text:{len(self.validation_description)}}"
        return text


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERTS)


def quiet_lightning_adverts() -> None:
    """Install the advert filter on Lightning's rank-zero logger (idempotent)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in logger.filters):
        logger.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning,
                            module=r"lightning\.pytorch\.utilities\._pytree")


def single_lightning_handlers() -> None:
    """Remove Lightning's own console handlers once the root logger has handlers (module docstring)."""
    if not logging.getLogger().hasHandlers():
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


_JF_DEPTH = re.compile(r"^val/J&F_d(\d+)$")


class ProgressLog(Callback):
    """Training progress as log lines, for runs whose stdout is a file (module docstring).

    Args:
        every_n_steps: A line at least every this many optimiser steps.
        every_s: A line at least every this many seconds (checked after each step).
        enabled: ``None``: only when stdout is not a terminal (a Rich bar shows the progress there);
            ``True``/``False``: always / never.
    """

    def __init__(self, every_n_steps: int = 100, every_s: float = 30.0, enabled: bool | None = None) -> None:
        if every_n_steps < 1 or every_s <= 0:
            raise ValueError(f"every_n_steps >= 1 and every_s > 0 expected, got {every_n_steps}, {every_s}")
        self.every_n_steps = every_n_steps
        self.every_s = every_s
        self.enabled = enabled
        self._start: float | None = None
        self._start_step = 0
        self._last_time = 0.0
        self._last_step = -1

    @property
    def active(self) -> bool:
        """Whether lines are written in this process."""
        return (not stdout_is_terminal()) if self.enabled is None else bool(self.enabled)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clocks (a resumed run counts its rate from the resumed step)."""
        self._start = self._last_time = time.perf_counter()
        self._start_step = self._last_step = int(trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """A line after the first step, then every ``every_n_steps`` steps or ``every_s`` seconds."""
        if not self.active or not trainer.is_global_zero or self._start is None:
            return
        step, now = int(trainer.global_step), time.perf_counter()
        first = self._last_step == self._start_step
        if step == self._last_step or not (first or step - self._last_step >= self.every_n_steps
                                           or now - self._last_time >= self.every_s):
            return
        log.info("%s", self.line(trainer, step, now, _loss(outputs, trainer)))
        self._last_step, self._last_time = step, now

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One line with the validation's J&F per depth (not for the sanity check)."""
        if self.active and trainer.is_global_zero and not trainer.sanity_checking:
            jf, dpsnr = _last_jf(trainer.callback_metrics), trainer.callback_metrics.get("val/dpsnr")
            if not jf and dpsnr is not None:
                log.info("validation at step %d: ΔPSNR %+.3f dB", trainer.global_step, float(dpsnr))
            else:
                log.info("validation at step %d: J&F %s", trainer.global_step, jf or "-")

    def line(self, trainer: L.Trainer, step: int, now: float, loss: float | None) -> str:
        """The progress line at ``step`` (wall clock ``now``, ``time.perf_counter``)."""
        assert self._start is not None
        elapsed = now - self._start
        done = step - self._start_step
        rate = done / elapsed if elapsed > 0 else 0.0
        max_steps = int(trainer.max_steps) if (trainer.max_steps or 0) > 0 else None
        eta = (max_steps - step) / rate if max_steps is not None and rate > 0 else math.inf
        left = _time_left(trainer)  # trainer.max_time
        if left is not None:
            eta = min(eta, max(left, 0.0))
        parts = [f"step {step}/{max_steps}" if max_steps else f"step {step}",
                 f"epoch {trainer.current_epoch}",
                 f"loss {loss:.4f}" if loss is not None else "loss ?", f"{rate:.2f} steps/s",
                 f"elapsed {format_duration(elapsed)}", f"ETA {format_duration(eta)}"]
        jf = _last_jf(trainer.callback_metrics)
        dpsnr = trainer.callback_metrics.get("val/dpsnr")  # the enhancer's stages 1/2
        if not jf and dpsnr is not None:
            parts.append(f"val ΔPSNR {float(dpsnr):+.3f} dB")
        else:
            parts.append(f"val J&F {jf}" if jf else "val J&F -")
        return " · ".join(parts)


def _loss(outputs: Any, trainer: L.Trainer) -> float | None:
    """The step's loss: the training step's output, else the last logged ``train/loss``."""
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None:
        value = trainer.callback_metrics.get("train/loss")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _time_left(trainer: L.Trainer) -> float | None:
    """Seconds left of ``trainer.max_time``, if the run has one."""
    from lightning.pytorch.callbacks import Timer

    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(cb, Timer):
            left = cb.time_remaining()
            return None if left is None else float(left)
    return None


def _last_jf(metrics: dict[str, Any]) -> str:
    """``d1 0.412 d2 0.398`` from the last validation's ``val/J&F_d<depth>`` (fractions), else ``""``."""
    found = sorted((int(m.group(1)), float(v)) for k, v in metrics.items() if (m := _JF_DEPTH.match(k)))
    return " ".join(f"d{d} {v:.3f}" for d, v in found)
