"""Lightning callbacks and plugins of vosc training: EMA weights, throughput, mask images, atomic I/O.

* :class:`EMA` keeps an exponential moving average of the weights with the reference's warm-up
  (``decay_t = min(decay, (1 + t) / (10 + t))``, ``decay = 1 - 1 / (total_steps * ema_ratio)`` unless
  given). Validation runs on the averaged weights; checkpoints store them in ``state_dict`` and the raw
  weights in ``current_model_state`` (Lightning's ``WeightAveraging`` layout).
* :class:`ThroughputMonitor` logs ``train/clips_per_s``, ``train/steps_per_s`` and ``train/elapsed_min`` (wall
  minutes since this process started fitting, validation included: J&F against training minutes).
* :class:`MaskImageLogger` logs, for the first validation clip, the raw and decoded frames with the
  ground-truth and predicted masks at each depth (W&B or TensorBoard).
* :class:`AtomicCheckpointIO` writes checkpoints to a temporary file, fsyncs and renames.
* :class:`GapCurriculum` raises the largest gap between clip frames at fractions of the run (STCN's
  skip schedule), switching at epoch boundaries.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks.weight_averaging import WeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from vosc.checkpoints.integrity import HASH_KEY, content_hash, verify_content_hash
from vosc.types import IMAGENET_MEAN, IMAGENET_STD
from vosc.utils.io import atomic_path

log = logging.getLogger(__name__)


class EMA(WeightAveraging):
    """Exponential moving average of all parameters and buffers, updated after every optimiser step.

    Args:
        decay: Fixed decay; ``None`` derives it from the run length as ``1 - 1 / (max_steps * ema_ratio)``
            (0.9999 for the reference's 100k steps and ratio 0.1).
        ema_ratio: Ratio used when ``decay`` is ``None``.
        warmup: Apply the reference's warm-up ``min(decay, (1 + t) / (10 + t))``.
        update_every_n_steps: Update period in optimiser steps.
    """

    def __init__(
        self,
        decay: float | None = None,
        ema_ratio: float = 0.1,
        warmup: bool = True,
        update_every_n_steps: int = 1,
    ) -> None:
        if decay is not None and not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.ema_ratio = ema_ratio
        self.warmup = warmup
        self.update_every_n_steps = update_every_n_steps
        self._decay_value = 0.999 if decay is None else decay
        super().__init__(use_buffers=True, avg_fn=self._avg)

    def _avg(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = self._decay_value
        if self.warmup:
            n = float(num_averaged)
            d = min(d, (1.0 + n) / (10.0 + n))
        return averaged + (current - averaged) * (1.0 - d)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fix the decay from the run length, then create the averaged copy (fit only)."""
        if self.decay is None:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 1000
            self._decay_value = max(0.0, 1.0 - 1.0 / max(total * self.ema_ratio, 1.0))
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Keep the raw weights in the module (checkpoints already hold the averaged ones in ``state_dict``).

        Lightning's default copies the average into the module here; a ``last.ckpt`` written afterwards
        would then resume from averaged weights instead of the raw ones, breaking exact resumption.
        """

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Update after every ``update_every_n_steps``-th optimiser step."""
        return step_idx is not None and step_idx % self.update_every_n_steps == 0


class ThroughputMonitor(Callback):
    """Logs training throughput: ``train/clips_per_s`` (all ranks), ``train/steps_per_s`` and
    ``train/elapsed_min`` (wall minutes since this process started fitting, validation included).

    Args:
        log_every_n_steps: Logging period; the rate is averaged over the period.
    """

    def __init__(self, log_every_n_steps: int = 10) -> None:
        self.log_every_n_steps = log_every_n_steps
        self._t0: float | None = None
        self._clips = 0
        self._steps = 0
        self._fit_start: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the wall clock of ``train/elapsed_min``."""
        self._fit_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Start the clock at the first batch of a period."""
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Accumulate and log once per period."""
        self._clips += int(batch.frames.shape[0]) * trainer.world_size
        self._steps += 1
        if self._steps >= self.log_every_n_steps and self._t0 is not None:
            dt = max(time.perf_counter() - self._t0, 1e-9)
            now = time.perf_counter()
            elapsed = (now - self._fit_start) / 60.0 if self._fit_start is not None else 0.0
            pl_module.log_dict(
                {"train/clips_per_s": self._clips / dt, "train/steps_per_s": self._steps / dt,
                 "train/elapsed_min": elapsed},
                on_step=True,
                on_epoch=False,
                rank_zero_only=True,
            )
            self._t0, self._clips, self._steps = None, 0, 0


def _denormalise(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` normalised float -> ``(T, H, W, 3)`` uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (frames.float().cpu() * std + mean).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def _palette_array() -> np.ndarray:
    from vosc.data.palette import davis_palette

    return np.asarray(davis_palette(), dtype=np.uint8).reshape(256, 3)


def overlay(frames: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend palette-coloured masks over frames.

    Args:
        frames: ``(T, H, W, 3)`` uint8.
        masks: ``(T, H, W)`` integer ids.
        alpha: Opacity of object colours (background stays the frame).

    Returns:
        ``(T, H, W, 3)`` uint8.
    """
    colours = _palette_array()[np.clip(masks, 0, 255)]
    fg = (masks > 0)[..., None]
    blend = (frames * (1 - alpha) + colours * alpha).round().astype(np.uint8)
    return np.where(fg, blend, frames)


def mask_panel(sample: dict[str, Any]) -> np.ndarray:
    """Render one validation clip as rows: raw, decoded, GT overlay, prediction overlay per depth.

    Args:
        sample: ``frames`` (T,3,H,W) normalised, ``masks`` (T,1,H,W), ``preds`` {depth: (T,H,W)},
            optional ``raw_frames`` (T,3,H,W) in [0,1].

    Returns:
        ``(rows*H, T*W, 3)`` uint8 image.
    """
    frames = _denormalise(sample["frames"])
    rows = []
    if sample.get("raw_frames") is not None:
        raw = (sample["raw_frames"].float().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round()
        rows.append(raw.astype(np.uint8))
    rows.append(frames)
    rows.append(overlay(frames, sample["masks"][:, 0].cpu().numpy()))
    for d in sorted(sample["preds"]):
        rows.append(overlay(frames, sample["preds"][d].cpu().numpy()))
    return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)


class MaskImageLogger(Callback):
    """Logs :func:`mask_panel` of the first validation clip after each validation epoch.

    The module exposes the clip as ``pl_module.vis_sample`` (see ``VOSModule``). Rows: raw frames (when
    kept), decoded frames, ground truth, then the prediction at each depth.
    """

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Render and send the panel to W&B / TensorBoard loggers (others are skipped)."""
        sample = getattr(pl_module, "vis_sample", None)
        if sample is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        panel = mask_panel(sample)
        caption = (
            "rows: "
            + ("raw, " if sample.get("raw_frames") is not None else "")
            + "decoded, GT, "
            + ", ".join(f"depth {d}" for d in sorted(sample["preds"]))
        )
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image("val/masks", [panel], step=trainer.global_step, caption=[caption])
            elif isinstance(lg, TensorBoardLogger):
                lg.experiment.add_image("val/masks", panel, trainer.global_step, dataformats="HWC")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the target folder, fsync, then ``os.replace``; every checkpoint
    records a content hash of its weights, verified when Lightning loads it
    (:mod:`vosc.checkpoints.integrity`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (a reader sees the old or the new file, never a
        part)."""
        checkpoint[HASH_KEY] = content_hash(checkpoint)
        with atomic_path(path, fsync=True) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        """Load (Lightning's reader, same arguments) and verify the content hash.

        Raises:
            CheckpointError: The weights do not match the recorded hash.
        """
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        verify_content_hash(checkpoint, path)
        return checkpoint


class GapCurriculum(Callback):
    """Largest gap between training clip frames by training progress (the official STCN skip schedule).

    At the start of training the fractions of the run's total steps (the module's ``total_steps``: the
    schedules' length, ``lit.total_steps`` or ``max_steps``) become epochs
    (``round(total_epochs * fraction)``, ``total_epochs = ceil(total_steps / batches per epoch)``, as the
    official code) and are handed to the
    training set (:meth:`CompressedClipDataset.set_gap_schedule`); a resumed or stopped run keeps them.

    Args:
        gaps: Largest gap from each fraction on (YouTube-VOS entries divide it by their ``gap_divisor``).
        fractions: Ascending shares of the run, the first normally 0.
    """

    def __init__(self, gaps: list[int], fractions: list[float]) -> None:
        if len(gaps) != len(fractions) or not gaps:
            raise ValueError(f"GapCurriculum: {len(gaps)} gaps for {len(fractions)} fractions")
        if any(b < a for a, b in itertools.pairwise(fractions)) or not 0 <= fractions[0] <= 1:
            raise ValueError(f"GapCurriculum: fractions {fractions} must ascend within [0, 1]")
        self.gaps, self.fractions = [int(g) for g in gaps], [float(f) for f in fractions]
        self.epochs: list[int] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute the switch epochs and set them on the training set."""
        dataset = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        if dataset is None or not hasattr(dataset, "set_gap_schedule"):
            raise TypeError("GapCurriculum needs a VOSDataModule whose train_set has set_gap_schedule()")
        per_epoch = trainer.num_training_batches
        total = int(getattr(pl_module, "total_steps", trainer.max_steps))
        if not isinstance(per_epoch, int) or per_epoch < 1 or total < 1:
            raise ValueError(f"GapCurriculum needs the run's total steps ({total}) and a finite epoch length "
                             f"({per_epoch} batches)")
        total_epochs = -(-total // per_epoch)
        self.epochs = [round(total_epochs * f) for f in self.fractions]
        dataset.set_gap_schedule(self.epochs, self.gaps)
        log.info(
            "gap curriculum: largest gaps %s from epochs %s (of %d)", self.gaps, self.epochs, total_epochs
        )
