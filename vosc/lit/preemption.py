"""Pre-emption safety of training: ``last.ckpt`` every few minutes / steps and on a signal, exact RNG resume.

:class:`PreemptionCheckpoint` (``conf/callbacks/preemption.yaml``) writes ``<checkpoints>/last.ckpt`` (the
folder of the run's ``ModelCheckpoint``, so ``ckpt_path=last`` finds it):

* every ``every_n_train_steps`` optimiser steps and/or every ``every_minutes`` of wall time, independently
  of validation;
* on SIGTERM, SIGUSR1 or SIGINT (Ctrl-C): the signal only sets a flag; at the end of the running batch the
  checkpoint is written; before the next batch (or validation) the process exits with status
  ``128 + signal`` (a second Ctrl-C aborts at once). Under SLURM (``SLURM_JOB_ID`` set) with
  ``requeue=true``, SIGUSR1 (``sbatch --signal=USR1@120``) also requeues the job with
  ``scontrol requeue``; the requeued job resumes with ``ckpt_path=last``.

It also stores the global RNG states (``random``, NumPy, torch CPU and CUDA) in every checkpoint and
restores them just before the first batch after a resume, so that dropout, drop-path and identity
shuffling continue exactly (the data side is :class:`vosc.data.datamodule.ResumableDataLoader`).

It derives from Lightning's ``Checkpoint`` so that it runs after the EMA update of a step (Lightning
orders checkpoint callbacks last). Under DDP the save decision is reduced over ranks.

``last.ckpt`` has one writer: with a :class:`~vosc.lit.checkpointing.RunCheckpoint` in the run (the default
``conf/callbacks/model_checkpoint.yaml``) this callback asks it to write the file; without one it writes
the file itself, and leaves it at the final step at the end of training. A plain Lightning
``ModelCheckpoint(save_last=...)`` beside it is refused: it would save the newer state as ``last-v1.ckpt``
and leave ``last.ckpt`` behind.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from vosc.lit.checkpointing import RunCheckpoint

log = logging.getLogger(__name__)

__all__ = ["PreemptionCheckpoint", "TrainingInterrupted"]

SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class TrainingInterrupted(SystemExit):  # noqa: N818 - it is an exit, like SystemExit
    """Raised after ``last.ckpt`` was written because of a signal; exit status ``128 + signum``."""

    def __init__(self, signum: int, path: Path, step: int) -> None:
        self.signum, self.path, self.step = signum, path, step
        super().__init__(128 + signum)


def _rng_state() -> dict[str, Any]:
    """Global RNG states as tensors, ints and lists (loadable with ``torch.load(weights_only=True)``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": [version, list(internal), gauss],
                             "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                                       int(pos), int(has_gauss), float(cached)],
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class PreemptionCheckpoint(Checkpoint):
    """Step/time-based and signal-triggered ``last.ckpt``, plus the RNG state for exact resumption.

    Args:
        every_n_train_steps: Write ``last.ckpt`` every this many optimiser steps (``None``: off).
        every_minutes: Write ``last.ckpt`` when this much wall time passed since the last write
            (``None``: off).
        signals: Signal names that save and stop (default: SIGTERM, SIGUSR1, SIGINT; empty: none).
        requeue: On SIGUSR1 inside a SLURM job, requeue it (``scontrol requeue $SLURM_JOB_ID``).
        filename: Checkpoint file name in the ``ModelCheckpoint`` folder.
    """

    def __init__(self, every_n_train_steps: int | None = None, every_minutes: float | None = 10.0,
                 signals: list[str] | tuple[str, ...] = SIGNALS, requeue: bool = True,
                 filename: str = "last.ckpt") -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or null, got {every_n_train_steps}")
        if every_minutes is not None and every_minutes <= 0:
            raise ValueError(f"every_minutes must be > 0 or null, got {every_minutes}")
        unknown = [s for s in signals if not hasattr(signal, s)]
        if unknown:
            raise ValueError(f"unknown signal name(s) {unknown}; e.g. {list(SIGNALS)}")
        self.every_n_train_steps, self.every_minutes = every_n_train_steps, every_minutes
        self.signals, self.requeue, self.filename = list(signals), requeue, filename
        self.received: int | None = None
        self._last_save = time.monotonic()
        self._previous: dict[int, Any] = {}
        self._pending_rng: dict[str, Any] | None = None
        self._stop: TrainingInterrupted | None = None
        self._active = False
        self._written_step: int | None = None

    # ------------------------------------------------------------------ signals
    def _handler(self, signum: int, frame: Any) -> None:
        if not self._active:  # left installed by Lightning's teardown after an exception: act as before
            previous = self._previous.get(signum, signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
                return
            if previous == signal.SIG_IGN:
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.received is not None and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.received = signum
        log.warning("received %s: writing %s at the end of this batch, then exiting (Ctrl-C again aborts)",
                    signal.Signals(signum).name, self.filename)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Install the signal handlers (fit only; main thread only)."""
        self.received, self._stop = None, None
        self._last_save = time.monotonic()
        self._check_single_writer(trainer)
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        self._active = True
        for name in self.signals:
            signum = int(getattr(signal, name))
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take the signals back from Lightning, which registers its own SIGTERM handler after ``setup``
        (composed with ours). Its handler makes the loop raise ``SIGTERMException`` (a ``SystemExit`` with
        status 0) at the end of the running batch, before this callback could exit with ``128 + signal``
        (a SIGTERM during a batch ended the run with status 0)."""
        if not self._active or threading.current_thread() is not threading.main_thread():
            return
        for name in self.signals:
            signal.signal(int(getattr(signal, name)), self._handler)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Restore the previous signal handlers."""
        self._active = False
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        """Stand back: a signal now gets the handler it had before the run."""
        self._active = False

    # ------------------------------------------------------------------ saving
    def path(self, trainer: L.Trainer) -> Path:
        """``last.ckpt`` in the folder of the run's ``ModelCheckpoint`` (else ``<root>/checkpoints``)."""
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath:
                return Path(cb.dirpath) / self.filename
        return Path(trainer.default_root_dir) / "checkpoints" / self.filename

    def _owner(self, trainer: L.Trainer) -> RunCheckpoint | None:
        """The run's writer of ``last.ckpt`` when this callback's file is that ``last.ckpt``."""
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, RunCheckpoint) and cb.last_path(trainer) == self.path(trainer):
                return cb
        return None

    def _check_single_writer(self, trainer: L.Trainer) -> None:
        """Refuse a plain Lightning ``ModelCheckpoint(save_last=...)`` beside this callback's last.ckpt."""
        for cb in trainer.checkpoint_callbacks:
            if type(cb) is ModelCheckpoint and cb.save_last and self.filename == "last.ckpt":
                raise ValueError(
                    f"PreemptionCheckpoint and ModelCheckpoint(save_last={cb.save_last!r}) would both write "
                    f"last.ckpt (Lightning then saves the newer state as last-v1.ckpt and last.ckpt stays "
                    f"behind); use vosc.lit.checkpointing.RunCheckpoint instead of ModelCheckpoint")

    def _write(self, trainer: L.Trainer) -> Path:
        owner = self._owner(trainer)
        if owner is not None:
            return owner.write_last(trainer)
        path = self.path(trainer)
        trainer.save_checkpoint(str(path))
        self._written_step = trainer.global_step
        return path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Without a :class:`RunCheckpoint`: leave the file written in this run at the final step."""
        if self._written_step is not None and self._written_step != trainer.global_step \
                and self._owner(trainer) is None:
            self._write(trainer)

    def _due(self, trainer: L.Trainer) -> bool:
        step = trainer.global_step
        due = self.received is not None
        due |= bool(self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0)
        due |= bool(self.every_minutes and time.monotonic() - self._last_save >= 60.0 * self.every_minutes)
        return bool(trainer.strategy.reduce_boolean_decision(due, all=False))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Write ``last.ckpt`` when due; after a signal, stop before the next batch or validation."""
        if not self._due(trainer):
            return
        path = self._write(trainer)
        self._last_save = time.monotonic()
        log.info("%s written at step %d", path, trainer.global_step)
        if trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            signum = self.received if self.received is not None else int(signal.SIGTERM)
            if signum == getattr(signal, "SIGUSR1", None) and self.requeue and os.environ.get("SLURM_JOB_ID"):
                self._requeue(trainer)
            self._stop = TrainingInterrupted(signum, path, trainer.global_step)

    def _stop_now(self, trainer: L.Trainer) -> None:
        """Raise the pending :class:`TrainingInterrupted` (this step's metrics are logged by now)."""
        stop, self._stop = self._stop, None
        if stop is None:
            return
        for logger in trainer.loggers:
            logger.save()
        log.warning("stopped by %s at step %d; resume with ckpt_path=last (or ckpt_path=%s)",
                    signal.Signals(stop.signum).name, stop.step, stop.path)
        raise stop

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Stop after a signal; else restore the stored RNG states once, before the first resumed step."""
        self._stop_now(trainer)
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop after a signal instead of validating."""
        self._stop_now(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop after a signal at the end of an epoch (before Lightning's own SIGTERM exit, status 0)."""
        self._stop_now(trainer)

    @staticmethod
    def _requeue(trainer: L.Trainer) -> None:
        if trainer.global_rank != 0:
            return
        job = os.environ["SLURM_ARRAY_JOB_ID"] + "_" + os.environ["SLURM_ARRAY_TASK_ID"] \
            if os.environ.get("SLURM_ARRAY_JOB_ID") else os.environ["SLURM_JOB_ID"]
        try:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("scontrol requeue %s failed: %s (requeue by hand; last.ckpt is written)", job, exc)
            return
        if done.returncode != 0:
            log.error("scontrol requeue %s failed (%d): %s", job, done.returncode, done.stderr.strip())
        else:
            log.info("SLURM job %s requeued", job)

    # ------------------------------------------------------------------ RNG state
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Store the global RNG states of this moment."""
        checkpoint["vosc_rng_state"] = _rng_state()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Keep the stored RNG states until the first batch of the resumed run."""
        self._pending_rng = checkpoint.get("vosc_rng_state")

    @property
    def state_key(self) -> str:
        """One instance per run: a fixed key."""
        return "PreemptionCheckpoint"
