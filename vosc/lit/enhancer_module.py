"""Lightning module of enhancer training, stages 1 and 2 (DESIGN §8).

* Stage 1 (``vos_model=None``, ``feature_weight=0``): Charbonnier (or MSE, ``pixel_loss="mse"``) loss
  between the enhanced decoded frames and the raw frames, in ``[0, 1]`` RGB.
* Stage 2 (``vos_model`` given): ``pixel + task_weight * VOS loss + feature_weight * feature matching``.
  The VOS model is frozen (``requires_grad_(False)``, always in eval mode, not in the optimiser); its
  segmentation loss (teacher-forced through :class:`vosc.inference.propagator.Propagator`) and its
  encoder's features of the raw frames back-propagate into the enhancer only.
* Stage 3 (joint fine-tuning) lives in the VOS module: it calls
  ``enhancer.enhance(batch.frames, batch.codec, batch.q, batch.frame_qps, batch.frame_types)`` (see
  :func:`vosc.models.enhancer.base.enhance_batch`) and can load stage-1/2 weights with
  :func:`load_enhancer_weights`.

Batches are :class:`vosc.types.VOSBatch` with ``raw_frames`` set. Logged: ``{split}/loss``,
``{split}/pixel``, ``{split}/task``, ``{split}/feature``, ``{split}/psnr_in`` (decoded vs raw),
``{split}/psnr_out`` (enhanced vs raw), ``{split}/dpsnr`` and ``{split}/dpsnr/<codec>_q<q>`` per
operating point (validation: averaged over the epoch).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from vosc.losses.enhancement import FeatureMatchingLoss, TaskLoss, VOSTaskLoss, pixel_loss
from vosc.models.enhancer.base import Enhancer, imagenet_denormalize, imagenet_normalize
from vosc.types import VOSBatch
from vosc.utils.io import atomic_path

log = logging.getLogger(__name__)


def clip_psnr(pred01: Tensor, target01: Tensor) -> Tensor:
    """PSNR in dB of each clip, over all its frames, after clamping to ``[0, 1]``.

    Args:
        pred01: ``(B, T, 3, H, W)`` in ``[0, 1]`` scale.
        target01: Same shape.

    Returns:
        ``(B,)`` PSNR (capped at 100 dB for identical clips).
    """
    mse = ((pred01.clamp(0, 1) - target01.clamp(0, 1)) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse.clamp(min=1e-10))


def operating_point_tags(batch: VOSBatch) -> list[str]:
    """``<codec>_q<q>`` (or ``none``) of each clip of the batch."""
    qs = batch.q.tolist()
    return [c if (c == "none" or int(q) < 0) else f"{c}_q{int(q)}"
            for c, q in zip(batch.codec, qs, strict=True)]


def load_enhancer_weights(enhancer: Enhancer, checkpoint: str | Path) -> Enhancer:
    """Load the ``enhancer.*`` weights of an :class:`EnhancerModule` checkpoint into ``enhancer`` (strict).

    Raises:
        FileNotFoundError: the checkpoint is missing.
        KeyError: it holds no ``enhancer.*`` weights (the message names the file).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"enhancer checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    sub = {k[len("enhancer."):]: v for k, v in state.items() if k.startswith("enhancer.")}
    if not sub:
        raise KeyError(
            f"{path}: no 'enhancer.*' weights (keys start with {sorted({k.split('.')[0] for k in state})})"
        )
    enhancer.load_state_dict(sub, strict=True)
    return enhancer


def save_enhancer_weights(enhancer: Enhancer, path: str | Path) -> Path:
    """Atomically save ``{'state_dict': {'enhancer.<name>': tensor}}``.

    The file is loadable by :func:`load_enhancer_weights`.
    """
    path = Path(path)
    state = {f"enhancer.{k}": v.detach().cpu() for k, v in enhancer.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state}, tmp)
    return path


class EnhancerModule(L.LightningModule):
    """Stage-1/2 training of an enhancer.

    Args:
        enhancer: The enhancer to train (e.g. ``CompressionAwareEnhancer``).
        vos_model: Optional VOS model for the stage-2 task loss (frozen here).
        task_weight: λ of the VOS task loss (DESIGN §8: 0.1); ignored without ``vos_model``.
        feature_weight: Weight of the feature-matching loss (0 disables it).
        feature_encoder: Encoder for feature matching; default ``vos_model.encoder``.
        charbonnier_eps: Charbonnier ε.
        pixel_loss: ``"charbonnier"`` (DESIGN §8) or ``"mse"`` (optimises PSNR directly; see
            :func:`vosc.losses.enhancement.pixel_loss`).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        total_steps: Cosine decay to ``min_lr_ratio * lr`` over this many steps (``None``: constant).
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        long_term_gap: Long-term memory gap of the task loss.
        vos_scale: The task loss shows the VOS model the enhanced frames resized by this factor, as
            ``evaluate.py segmenter.scales=[vos_scale]`` does with frames enhanced at their decoded size
            (:class:`~vosc.losses.enhancement.VOSTaskLoss`); the pixel and feature losses stay at that size.
    """

    hparams: Any  # Lightning's AttributeDict of the constructor arguments (read as attributes)

    def __init__(self, enhancer: Enhancer, vos_model: nn.Module | None = None, task_weight: float = 0.1,
                 feature_weight: float = 0.0, feature_encoder: nn.Module | None = None,
                 charbonnier_eps: float = 1e-3, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_steps: int = 20, total_steps: int | None = None, min_lr_ratio: float = 0.05,
                 long_term_gap: int = 2, pixel_loss: str = "charbonnier", vos_scale: float = 1.0) -> None:
        super().__init__()
        if pixel_loss not in ("charbonnier", "mse"):
            raise ValueError(f"EnhancerModule: pixel_loss must be 'charbonnier' or 'mse', got {pixel_loss!r}")
        self.save_hyperparameters(ignore=["enhancer", "vos_model", "feature_encoder"])
        self.enhancer = enhancer
        self.vos_model = vos_model
        if vos_model is not None:
            vos_model.requires_grad_(False)
            vos_model.eval()
        self.task_loss = (
            TaskLoss(VOSTaskLoss(vos_model, long_term_gap, vos_scale), task_weight)
            if vos_model is not None else None
        )
        if feature_weight > 0 and feature_encoder is None:
            feature_encoder = getattr(vos_model, "encoder", None)
            if feature_encoder is None:
                raise ValueError(
                    "EnhancerModule: feature_weight > 0 needs feature_encoder or a vos_model with .encoder"
                )
        self.feature_loss = (FeatureMatchingLoss(feature_encoder)
                             if feature_weight > 0 and feature_encoder is not None else None)
        if self.feature_loss is not None:
            self.feature_loss.encoder.eval()
        self._val_dpsnr: dict[str, list[float]] = defaultdict(list)

    def train(self, mode: bool = True) -> EnhancerModule:
        """Switch the enhancer's mode; the frozen VOS model and feature encoder stay in eval mode."""
        super().train(mode)
        for frozen in (self.vos_model, None if self.feature_loss is None else self.feature_loss.encoder):
            if frozen is not None:
                frozen.eval()
        return self

    def enhance(self, frames_norm: Tensor, codec: Any, q: Tensor | None = None,
                frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """``enhancer.enhance``: ImageNet-normalised ``(B, T, 3, H, W)`` in and out."""
        return self.enhancer.enhance(frames_norm, codec, q, frame_qps, frame_types)

    def _losses(self, batch: VOSBatch) -> tuple[dict[str, Tensor], Tensor]:
        if batch.raw_frames is None:
            raise ValueError(f"EnhancerModule: batch of {batch.sequences} has no raw_frames; the enhancer "
                             "needs the uncompressed frames (enable raw frames in the datamodule)")
        if batch.raw_frames.shape != batch.frames.shape:
            raise ValueError(f"EnhancerModule: raw_frames {tuple(batch.raw_frames.shape)} != frames "
                             f"{tuple(batch.frames.shape)} for {batch.sequences}")
        enh_norm = self.enhance(batch.frames, batch.codec, batch.q, batch.frame_qps, batch.frame_types)
        enh01 = imagenet_denormalize(enh_norm)
        losses = {
            "pixel": pixel_loss(
                enh01, batch.raw_frames, self.hparams.pixel_loss, self.hparams.charbonnier_eps
            )
        }
        if self.task_loss is not None:
            losses["task"] = self.task_loss(enh_norm, batch.masks, batch.num_objects)
        if self.feature_loss is not None:
            losses["feature"] = self.hparams.feature_weight * self.feature_loss(
                enh_norm, imagenet_normalize(batch.raw_frames))
        losses["loss"] = sum(losses.values())  # type: ignore[assignment]
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"EnhancerModule: non-finite loss {losses} at step {self.global_step} "
                                     f"for {batch.sequences}")
        return losses, enh01

    def _psnr(self, batch: VOSBatch, enh01: Tensor) -> tuple[Tensor, Tensor]:
        raw = batch.raw_frames
        assert raw is not None
        with torch.no_grad():
            return clip_psnr(imagenet_denormalize(batch.frames), raw), clip_psnr(enh01.detach(), raw)

    def training_step(self, batch: VOSBatch, batch_idx: int) -> Tensor:
        """One optimisation step; returns the total loss."""
        losses, enh01 = self._losses(batch)
        p_in, p_out = self._psnr(batch, enh01)
        b = batch.batch_size
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=b, prog_bar=False)
        self.log_dict({"train/psnr_in": p_in.mean(), "train/psnr_out": p_out.mean(),
                       "train/dpsnr": (p_out - p_in).mean()}, batch_size=b, prog_bar=True)
        for tag in sorted(set(operating_point_tags(batch))):
            sel = torch.tensor([t == tag for t in operating_point_tags(batch)], device=p_in.device)
            self.log(f"train/dpsnr/{tag}", (p_out - p_in)[sel].mean(), batch_size=int(sel.sum()))
        return losses["loss"]

    def validation_step(self, batch: VOSBatch, batch_idx: int) -> None:
        """Losses and PSNR in/out; ΔPSNR collected per operating point for the epoch end."""
        losses, enh01 = self._losses(batch)
        p_in, p_out = self._psnr(batch, enh01)
        b = batch.batch_size
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=b)
        self.log_dict({"val/psnr_in": p_in.mean(), "val/psnr_out": p_out.mean(),
                       "val/dpsnr": (p_out - p_in).mean()}, batch_size=b, prog_bar=True)
        for tag, d in zip(operating_point_tags(batch), (p_out - p_in).tolist(), strict=False):
            self._val_dpsnr[tag].append(d)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/dpsnr/<codec>_q<q>`` (mean over the epoch's clips) and reset."""
        for tag, values in sorted(self._val_dpsnr.items()):
            self.log(f"val/dpsnr/{tag}", sum(values) / len(values), sync_dist=True)
        self._val_dpsnr.clear()

    def configure_optimizers(self) -> Any:
        """AdamW over the enhancer's parameters only, linear warm-up then optional cosine decay."""
        params = [p for p in self.enhancer.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"EnhancerModule: {type(self.enhancer).__name__} has no trainable parameters")
        hp = self.hparams
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)

        def factor(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            if not hp.total_steps:
                return 1.0
            prog = min(1.0, (step - hp.warmup_steps) / max(1, hp.total_steps - hp.warmup_steps))
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
