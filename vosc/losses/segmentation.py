"""Segmentation losses of AOT/AOST training and the depth weighting of scalable supervision.

Per frame the loss is ``0.5 * bootstrapped CE + 0.5 * soft Jaccard`` (DESIGN §4). The bootstrapped
cross-entropy keeps the ``k`` hardest pixels of each sample, with ``k`` going linearly from 100% of the
pixels to ``top_k_percent`` (15%) over the first ``hard_mining_ratio`` (0.5) of the training steps. The
soft Jaccard loss is computed per sample over the classes present in its ground truth.

Scalable supervision combines per-depth losses as ``sum_d alpha^d L_d / sum_d alpha^d``; ``alpha = inf``
keeps only the deepest depth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def top_k_ratio(step: int, total_steps: int, top_k_percent: float = 0.15, hard_mining_ratio: float = 0.5,
                hard_mining_start: float = 0.0) -> float:
    """Share of pixels kept by the bootstrapped cross-entropy at ``step``.

    Args:
        step: Current optimisation step (0-based).
        total_steps: Total number of training steps of the run.
        top_k_percent: Final share of kept pixels, in ``(0, 1]``.
        hard_mining_ratio: Fraction of ``total_steps`` over which the share goes from 1 to
            ``top_k_percent``; ``0`` uses ``top_k_percent`` from ``hard_mining_start`` on.
        hard_mining_start: Fraction of ``total_steps`` before which every pixel is kept (STCN: 20k of
            150k steps, then 50k steps of decay).

    Returns:
        The share in ``[top_k_percent, 1]``.
    """
    if not 0.0 < top_k_percent <= 1.0:
        raise ValueError(f"top_k_percent must be in (0, 1], got {top_k_percent}")
    if not 0.0 <= hard_mining_start <= 1.0:
        raise ValueError(f"hard_mining_start must be in [0, 1], got {hard_mining_start}")
    start = hard_mining_start * total_steps
    if step < start:
        return 1.0
    mining_steps = hard_mining_ratio * total_steps
    if mining_steps <= 0:
        return top_k_percent
    # + 1e-5 as the official AOT trainer (a step at exactly the end of the decay is 1e-10 short of it)
    r = min(1.0, max(step - start, 0) / (mining_steps + 1e-5))
    return r * top_k_percent + (1.0 - r)


def top_k_count(ratio: float, num_pixels: int) -> int:
    """Pixels the bootstrapped cross-entropy averages: ``int(ratio * num_pixels)`` (truncated, as the official
    code), at least 1."""
    return max(1, int(ratio * num_pixels))


def bootstrapped_cross_entropy(logits: Tensor, target: Tensor, ratio: float = 1.0) -> Tensor:
    """Cross-entropy over the hardest ``ratio`` share of the pixels of each sample.

    Args:
        logits: ``(B, C, H, W)`` class logits.
        target: ``(B, 1, H, W)`` or ``(B, H, W)`` int64 class ids in ``[0, C)``.
        ratio: Share of pixels kept per sample, in ``(0, 1]``.

    Returns:
        ``(B,)`` loss per sample (float32).
    """
    b, c, h, w = logits.shape
    target = target.reshape(b, h * w).long()
    pixel = F.cross_entropy(logits.float().reshape(b, c, h * w), target, reduction="none")  # (B, HW)
    k = top_k_count(ratio, h * w)  # ratio * (h*w): ``ratio * h * w`` can round to the other side of an int
    if k >= h * w:
        return pixel.mean(dim=1)
    return torch.topk(pixel, k=k, dim=1).values.mean(dim=1)


def soft_jaccard_loss(logits: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft Jaccard (Tversky with alpha = beta = 1) loss over the classes present in each sample.

    Args:
        logits: ``(B, C, H, W)`` class logits.
        target: ``(B, 1, H, W)`` or ``(B, H, W)`` int64 class ids in ``[0, C)``.
        eps: Denominator stabiliser.

    Returns:
        ``(B,)`` loss per sample: mean over present classes of ``1 - |P∩G| / |P∪G|`` (float32).
    """
    b, c, h, w = logits.shape
    prob = logits.float().softmax(dim=1).reshape(b, c, h * w)
    onehot = F.one_hot(target.reshape(b, h * w).long(), c).permute(0, 2, 1).float()  # (B, C, HW)
    inter = (prob * onehot).sum(dim=2)
    union = prob.sum(dim=2) + onehot.sum(dim=2) - inter
    present = onehot.sum(dim=2) > 0  # (B, C)
    per_class = 1.0 - inter / (union + eps)
    return (per_class * present).sum(dim=1) / present.sum(dim=1).clamp(min=1)


def depth_weights(depths: Sequence[int], alpha: float) -> dict[int, float]:
    """Normalised weights ``alpha^d / sum_d' alpha^d'`` of scalable supervision.

    Args:
        depths: Supervised depths (1-based, distinct).
        alpha: Base, ``> 0``; ``math.inf`` keeps only the deepest depth.

    Returns:
        ``{depth: weight}`` summing to 1.

    Raises:
        ValueError: ``alpha <= 0`` or no depths.
    """
    if not depths:
        raise ValueError("depth_weights: no depths given")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (or inf for deepest-only), got {alpha}")
    deepest = max(depths)
    if math.isinf(alpha):
        return {d: (1.0 if d == deepest else 0.0) for d in depths}
    raw = {d: alpha ** (d - deepest) for d in depths}  # scaled by alpha^-deepest for stability
    total = sum(raw.values())
    return {d: v / total for d, v in raw.items()}


class SegmentationLoss(nn.Module):
    """``ce_weight * bootstrapped CE + jaccard_weight * soft Jaccard`` with the top-k schedule.

    Args:
        ce_weight: Weight of the bootstrapped cross-entropy.
        jaccard_weight: Weight of the soft Jaccard loss.
        top_k_percent: Final share of pixels kept by the cross-entropy.
        hard_mining_ratio: Fraction of the total steps over which the share decays from 100%.
        hard_mining_start: Fraction of the total steps before the decay starts.
    """

    def __init__(
        self,
        ce_weight: float = 0.5,
        jaccard_weight: float = 0.5,
        top_k_percent: float = 0.15,
        hard_mining_ratio: float = 0.5,
        hard_mining_start: float = 0.0,
    ) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.jaccard_weight = jaccard_weight
        self.top_k_percent = top_k_percent
        self.hard_mining_ratio = hard_mining_ratio
        self.hard_mining_start = hard_mining_start
        top_k_ratio(
            0, 1, top_k_percent, hard_mining_ratio, hard_mining_start
        )  # validates the arguments early

    def forward(self, logits: Tensor, target: Tensor, step: int, total_steps: int) -> Tensor:
        """Loss per sample.

        Args:
            logits: ``(B, C, H, W)`` logits (unused identities already masked).
            target: ``(B, 1, H, W)`` int64 ids.
            step: Current optimisation step.
            total_steps: Total optimisation steps of the run.

        Returns:
            ``(B,)`` float32 loss per sample.
        """
        terms = self.terms(logits, target, step, total_steps)
        if not self.jaccard_weight:  # CE only (STCN)
            return self.ce_weight * terms["ce"]
        return self.ce_weight * terms["ce"] + self.jaccard_weight * terms["jaccard"]

    def ratio(self, step: int, total_steps: int) -> float:
        """Share of pixels the cross-entropy keeps at ``step`` (:func:`top_k_ratio`, this loss's schedule)."""
        return top_k_ratio(step, total_steps, self.top_k_percent, self.hard_mining_ratio,
                           self.hard_mining_start)

    def terms(self, logits: Tensor, target: Tensor, step: int, total_steps: int) -> dict[str, Tensor]:
        """The unweighted terms per sample: ``{"ce": (B,), "jaccard": (B,)}`` (no ``jaccard`` when its weight
        is 0); arguments as :meth:`forward`."""
        out = {"ce": bootstrapped_cross_entropy(logits, target, self.ratio(step, total_steps))}
        if self.jaccard_weight:
            out["jaccard"] = soft_jaccard_loss(logits, target)
        return out


def combine_depths(losses: Mapping[int, Tensor], alpha: float) -> Tensor:
    """Scalable-supervision combination ``sum_d alpha^d L_d / sum_d alpha^d``.

    Args:
        losses: ``{depth: loss}`` with tensors of equal shape (e.g. scalars or ``(B,)``).
        alpha: Base of the weighting, ``> 0`` or ``inf``.

    Returns:
        The weighted loss, same shape as the inputs.
    """
    weights = depth_weights(sorted(losses), alpha)
    return sum(weights[d] * losses[d] for d in sorted(losses) if weights[d] > 0)  # type: ignore[return-value]
