"""The run's checkpoints: Lightning's ``ModelCheckpoint`` for the best ones, and one writer of ``last.ckpt``.

Lightning's ``ModelCheckpoint(save_last=True)`` saves under ``last-v1.ckpt`` when it finds a ``last.ckpt`` it
did not write (e.g. one written by :class:`~vosc.lit.preemption.PreemptionCheckpoint` or by the run being
resumed), and ``last.ckpt`` then stays behind. :class:`RunCheckpoint` owns ``last.ckpt`` instead: it always
writes ``<dirpath>/last.ckpt`` in place (atomically, through the trainer's checkpoint I/O), after every
validation and at the end of training when ``save_last`` is set, and whenever the pre-emption callback asks
(:meth:`RunCheckpoint.write_last`). Whenever a ``last.ckpt`` was written, the end of training leaves it at the
final step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ["RunCheckpoint"]


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) that is the one writer of ``last.ckpt`` (no ``last-vN.ckpt``).

    Raises:
        ValueError: ``save_last="link"`` (``last.ckpt`` is a full checkpoint here, so that it always holds the
            newest state).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.save_last == "link":
            raise ValueError("RunCheckpoint: save_last='link' is not supported; last.ckpt is always a full "
                             "checkpoint of the newest state (save_last: true or false)")
        self._last_step: int | None = None  # the global step last.ckpt holds, if written by this process

    def last_path(self, trainer: L.Trainer) -> Path:
        """``<dirpath>/last.ckpt`` (``dirpath`` resolved by Lightning when not configured)."""
        dirpath = self.dirpath if self.dirpath else Path(trainer.default_root_dir) / "checkpoints"
        return Path(dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def write_last(self, trainer: L.Trainer) -> Path:
        """Write ``last.ckpt`` now, in place (every rank calls this; rank 0 writes)."""
        path = self.last_path(trainer)
        self.last_model_path = str(path)  # before saving: it is part of the saved callback state
        trainer.save_checkpoint(str(path), self.save_weights_only)
        self._last_step = trainer.global_step
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)
        return path

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        """Lightning's hook for ``save_last``: ``last.ckpt`` in place, once per step."""
        if self.save_last and self._last_step != trainer.global_step:
            self.write_last(trainer)

    def _fitting(self, trainer: L.Trainer) -> bool:
        fast_dev_run = getattr(trainer, "fast_dev_run", False)
        return not (fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Best checkpoints as Lightning does; then ``last.ckpt`` whether or not the score improved."""
        super().on_validation_end(trainer, pl_module)
        if self._fitting(trainer):
            self._save_last_checkpoint(trainer, {})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Leave ``last.ckpt`` at the final step (with ``save_last``, or when one was written in this run or
        resumed from)."""
        path = self.last_path(trainer)
        resumed = trainer.ckpt_path is not None and Path(trainer.ckpt_path).resolve() == path.resolve()
        wanted = bool(self.save_last) or self._last_step is not None or resumed
        if wanted and self._last_step != trainer.global_step and not getattr(trainer, "fast_dev_run", False):
            self.write_last(trainer)
            log.info("%s written at the final step %d", path, trainer.global_step)
