"""Losses of the compression-aware enhancer (DESIGN §8).

* :func:`charbonnier` / :class:`CharbonnierLoss`: robust pixel loss to the raw frames (stage 1).
* :class:`FeatureMatchingLoss`: distance between a frozen encoder's features of the enhanced frames
  and of the raw frames (stage 2).
* :class:`TaskLoss`: a weighted wrapper around any callable returning a scalar loss from the enhanced,
  ImageNet-normalised clip (stage 2, e.g. :class:`VOSTaskLoss`).
* :class:`VOSTaskLoss`: segmentation loss of a (frozen) VOS model run with the
  :class:`vosc.inference.propagator.Propagator` over the enhanced clip, memory from ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean Charbonnier distance ``sqrt((pred - target)^2 + eps^2)``.

    Args:
        pred: Any shape, e.g. ``(B, T, 3, H, W)`` enhanced frames in ``[0, 1]``.
        target: Same shape as ``pred`` (raw frames).
        eps: Smoothing constant (≈ L1 for errors ``>> eps``).

    Returns:
        Scalar loss.

    Raises:
        ValueError: the shapes differ.
    """
    if pred.shape != target.shape:
        raise ValueError(f"charbonnier: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def pixel_loss(pred: Tensor, target: Tensor, kind: str = "charbonnier", eps: float = 1e-3) -> Tensor:
    """Scalar pixel loss between ``pred`` and ``target`` (same shape, e.g. ``(B, T, 3, H, W)``).

    ``"charbonnier"`` (robust L1, the stage-1 default of DESIGN §8) or ``"mse"`` (what PSNR measures; in
    short CPU fits it gains PSNR about twice as fast as Charbonnier).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "charbonnier":
        return charbonnier(pred, target, eps)
    raise ValueError(f"pixel_loss: unknown kind {kind!r}; use 'charbonnier' or 'mse'")


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier`.

    Args:
        eps: Smoothing constant.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred``, ``target`` of equal shape → scalar."""
        return charbonnier(pred, target, self.eps)


def _as_list(features: Any) -> list[Tensor]:
    if isinstance(features, Tensor):
        return [features]
    if isinstance(features, dict):
        return [v for v in features.values() if isinstance(v, Tensor)]
    if isinstance(features, (list, tuple)):
        return [f for f in features if isinstance(f, Tensor)]
    raise TypeError(f"FeatureMatchingLoss: encoder returned {type(features).__name__}, expected tensor(s)")


class FeatureMatchingLoss(nn.Module):
    """Relative L1 between frozen-encoder features of enhanced and raw frames.

    Per level ``l``: ``mean|f_l(enh) - f_l(raw)| / (mean|f_l(raw)| + 1e-6)``; levels are averaged with
    ``weights``. The raw features are computed without gradients; gradients flow to the enhanced frames
    only (the encoder is frozen: ``requires_grad_(False)`` and kept in eval mode by the owner).

    Args:
        encoder: Module mapping ImageNet-normalised ``(N, 3, H, W)`` to a tensor, a list/tuple of
            tensors or a dict of tensors (e.g. a timm ``features_only`` model or ``VOSModel.encoder``).
        weights: Per-level weights (default: equal).
        freeze: Set ``requires_grad_(False)`` on the encoder.
    """

    def __init__(
        self, encoder: nn.Module, weights: Sequence[float] | None = None, freeze: bool = True
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.weights = None if weights is None else [float(w) for w in weights]
        if freeze:
            encoder.requires_grad_(False)

    def forward(self, enhanced_norm: Tensor, raw_norm: Tensor) -> Tensor:
        """Feature distance.

        Args:
            enhanced_norm: ``(B, T, 3, H, W)`` or ``(N, 3, H, W)`` ImageNet-normalised enhanced frames.
            raw_norm: Same shape, ImageNet-normalised raw frames.

        Returns:
            Scalar loss.
        """
        if enhanced_norm.shape != raw_norm.shape:
            raise ValueError(
                f"FeatureMatchingLoss: shapes {tuple(enhanced_norm.shape)} != {tuple(raw_norm.shape)}"
            )
        enh = enhanced_norm.flatten(0, -4)
        with torch.no_grad():
            ref = _as_list(self.encoder(raw_norm.flatten(0, -4)))
        out = _as_list(self.encoder(enh))
        if len(out) != len(ref) or (self.weights is not None and len(self.weights) != len(out)):
            raise ValueError(f"FeatureMatchingLoss: {len(out)} feature levels, weights {self.weights}")
        weights = self.weights or [1.0] * len(out)
        total = enh.new_zeros(())
        for w, fo, fr in zip(weights, out, ref, strict=False):
            total = total + w * (fo - fr).abs().mean() / (fr.abs().mean() + 1e-6)
        return total / sum(weights)


class TaskLoss(nn.Module):
    """``weight * fn(enhanced_norm, *args, **kwargs)`` for any task callable.

    Args:
        fn: Callable taking the enhanced ImageNet-normalised clip ``(B, T, 3, H, W)`` (plus whatever
            the caller passes) and returning a scalar loss. If it is an ``nn.Module`` it is registered.
        weight: The task weight λ (DESIGN §8: ≈ 0.1).
    """

    def __init__(self, fn: Callable[..., Tensor], weight: float = 0.1) -> None:
        super().__init__()
        self.fn = fn
        self.weight = float(weight)

    def forward(self, enhanced_norm: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Weighted task loss (scalar)."""
        loss = self.fn(enhanced_norm, *args, **kwargs)
        if loss.dim() != 0:
            raise ValueError(f"TaskLoss: task callable returned shape {tuple(loss.shape)}, expected a scalar")
        return self.weight * loss


class VOSTaskLoss(nn.Module):
    """Cross-entropy of a VOS model over a clip, memory from ground truth (teacher forcing).

    Runs :func:`vosc.inference.propagator.run_clip` with teacher forcing at full depth and averages the
    cross-entropy of frames ``1..T-1`` against their ground truth. Gradients flow to the frames
    (the enhancer); the VOS model's parameters are expected to be frozen by the caller.

    Args:
        vos_model: A :class:`vosc.models.vos_model.VOSModel`.
        long_term_gap: Long-term memory gap δ (2 in training, as the reference).
        scale: The VOS model sees the enhanced frames resized by this factor (bilinear; masks nearest), as
            ``evaluate.py segmenter.scales=[scale]`` shows it frames enhanced at their decoded size: sides
            :func:`vosc.inference.postprocess.network_size` gives (``16k + 1`` for AOT/AOST).
            ``1``: as they are.
    """

    def __init__(self, vos_model: nn.Module, long_term_gap: int = 2, scale: float = 1.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"VOSTaskLoss: scale must be positive, got {scale}")
        self.vos_model = vos_model
        self.long_term_gap = int(long_term_gap)
        self.scale = float(scale)

    def rescale(self, frames_norm: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, 3, H, W)`` frames and ``(B, T, 1, H, W)`` ids at the size the VOS model sees them
        (``(B, T, 3, H', W')``, ``(B, T, 1, H', W')``; unchanged when ``scale`` is 1)."""
        if self.scale == 1.0:
            return frames_norm, masks
        from vosc.inference.postprocess import network_size

        b, t, _, h, w = frames_norm.shape
        size = network_size(h, w, max_long_edge=None, scale=self.scale,
                            stride=int(getattr(self.vos_model, "stride", 16)),
                            align_corners=bool(getattr(self.vos_model, "align_corners", True)))
        frames = F.interpolate(frames_norm.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
        ids = F.interpolate(masks.flatten(0, 1).float(), size=size, mode="nearest").to(masks.dtype)
        return frames.view(b, t, 3, *size), ids.view(b, t, 1, *size)

    def forward(self, frames_norm: Tensor, masks: Tensor, num_objects: Tensor) -> Tensor:
        """Mean cross-entropy over frames ``1..T-1``.

        Args:
            frames_norm: ``(B, T, 3, H, W)`` ImageNet-normalised (enhanced) frames, ``T >= 2``.
            masks: ``(B, T, 1, H, W)`` int64 object ids.
            num_objects: ``(B,)`` int64 objects per clip.

        Returns:
            Scalar loss.
        """
        from vosc.inference.propagator import Propagator, run_clip  # the model stack is optional for stage 1
        from vosc.models.base import VOSNetwork

        b, t = frames_norm.shape[:2]
        if t < 2 or masks.shape[:2] != (b, t):
            raise ValueError(f"VOSTaskLoss: need T >= 2 frames and masks (B, T, 1, H, W); got frames "
                             f"{tuple(frames_norm.shape)}, masks {tuple(masks.shape)}")
        frames_norm, masks = self.rescale(frames_norm, masks)
        prop = Propagator(cast(VOSNetwork, self.vos_model), long_term_gap=self.long_term_gap)
        clip = run_clip(prop, frames_norm, masks[:, 0], num_objects, teacher=masks)
        losses = [F.cross_entropy(out[max(out)], masks[:, i, 0].long())
                  for i, out in enumerate(clip.frames, start=1)]
        return torch.stack(losses).mean()
