"""Optimiser parameter groups and the warm-up + poly learning-rate schedule of AOT/AOST training.

Parameter groups follow the reference: no weight decay on 1-D parameters (biases, norm affine
parameters) and on parameters whose name contains one of ``no_decay_keys`` (position tables, the output
convolution); the encoder's learning rate is scaled by ``encoder_lr_ratio``; parameters whose name
contains one of ``freeze_after_switch_keys`` (the ID bank) stop training once the memory switches to
predicted masks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

log = logging.getLogger(__name__)

DEFAULT_NO_DECAY_KEYS: tuple[str, ...] = (
    "absolute_pos_embed",
    "relative_position_bias_table",
    "relative_emb_v",
    "conv_out",
    "pos_emb",
)


def param_groups(
    model: nn.Module,
    weight_decay: float,
    encoder_lr_ratio: float = 0.1,
    encoder_prefix: str | Sequence[str] = "encoder.",
    no_decay_keys: Sequence[str] = DEFAULT_NO_DECAY_KEYS,
    freeze_after_switch_keys: Sequence[str] = ("id_bank",),
) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into AdamW groups.

    Args:
        model: The network (names are matched on ``model.named_parameters()``).
        weight_decay: Weight decay of decayed parameters.
        encoder_lr_ratio: Learning-rate factor of parameters whose name starts with ``encoder_prefix``.
        encoder_prefix: Name prefix (or prefixes) of the pretrained encoders' parameters, also matched after a
            ``.``: the model family's ``VOSNetwork.encoder_prefixes`` (AOT/AOST ``encoder.``).
        no_decay_keys: Name substrings exempt from weight decay.
        freeze_after_switch_keys: Name substrings of parameters frozen after the memory switch.

    Returns:
        Groups with keys ``params``, ``weight_decay``, ``lr_ratio``, ``freeze_after_switch``, ``name``
        (empty groups are dropped). Frozen parameters (``requires_grad=False``) are left out.
    """
    prefixes = (encoder_prefix,) if isinstance(encoder_prefix, str) else tuple(encoder_prefix)
    buckets: dict[tuple[bool, bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_enc = any(name.startswith(pre) or f".{pre}" in name for pre in prefixes)
        no_wd = p.ndim <= 1 or any(k in name for k in no_decay_keys)
        frz = any(k in name for k in freeze_after_switch_keys)
        buckets.setdefault((is_enc, no_wd, frz), []).append(p)
    groups = []
    for (is_enc, no_wd, frz), params in sorted(buckets.items()):
        groups.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_wd else weight_decay,
                "lr_ratio": encoder_lr_ratio if is_enc else 1.0,
                "freeze_after_switch": frz,
                "name": (f"{'encoder' if is_enc else 'other'}{'_no_wd' if no_wd else ''}"
                         f"{'_frz' if frz else ''}"),
            }
        )
    return groups


def warmup_poly_lr(
    step: int,
    total_steps: int,
    base_lr: float,
    min_lr: float,
    warmup_ratio: float = 0.05,
    power: float = 0.9,
    milestones: Sequence[float] | None = None,
    gamma: float = 0.1,
) -> float:
    """Learning rate at ``step``: linear warm-up from ``min_lr`` then poly decay to ``min_lr``, or (with
    ``milestones``) step decay: ``base_lr * gamma^n`` after ``n`` milestones (the official STCN schedule).

    Args:
        step: Optimisation step (0-based).
        total_steps: Total steps of the run.
        base_lr: Peak learning rate.
        min_lr: Floor learning rate.
        warmup_ratio: Share of ``total_steps`` used for warm-up.
        power: Poly exponent.
        milestones: Shares of ``total_steps`` at which the rate is multiplied by ``gamma`` (replaces the
            poly decay; ``min_lr`` is then only the warm-up start).
        gamma: Step-decay factor.

    Returns:
        The learning rate.
    """
    warm = warmup_ratio * total_steps
    if step < warm:
        return min_lr + (base_lr - min_lr) * step / warm
    if milestones:
        return base_lr * gamma ** sum(step >= m * total_steps for m in milestones)
    itr, max_itr = step - warm, total_steps - warm
    return min_lr + (base_lr - min_lr) * max(0.0, 1.0 - itr / (max_itr + 1)) ** power


class WarmupPolyLR(LRScheduler):
    """Per-step warm-up + poly schedule honouring each group's ``lr_ratio`` and the ID-bank freeze.

    A group's rate is ``min_lr + (lr(step) - min_lr) * lr_ratio``; groups with
    ``freeze_after_switch`` get rate 0 from ``switch_step`` on.

    Args:
        optimizer: Optimiser whose groups come from :func:`param_groups`.
        total_steps: Total optimisation steps.
        base_lr: Peak learning rate.
        min_lr: Floor learning rate.
        warmup_ratio: Share of steps used for warm-up.
        power: Poly exponent.
        switch_step: Step from which ``freeze_after_switch`` groups are frozen (``None``: never).
        milestones: Step decay instead of poly (see :func:`warmup_poly_lr`).
        gamma: Step-decay factor.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        base_lr: float,
        min_lr: float,
        warmup_ratio: float = 0.05,
        power: float = 0.9,
        switch_step: int | None = None,
        milestones: Sequence[float] | None = None,
        gamma: float = 0.1,
    ) -> None:
        self.total_steps = total_steps
        self.milestones = list(milestones) if milestones else None
        self.gamma = gamma
        self.peak_lr = base_lr
        self.min_lr = min_lr
        self.warmup_ratio = warmup_ratio
        self.power = power
        self.switch_step = switch_step
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Rates of all groups at ``self.last_epoch`` (the step counter)."""
        step = self.last_epoch
        now = warmup_poly_lr(step, self.total_steps, self.peak_lr, self.min_lr, self.warmup_ratio, self.power,
                             self.milestones, self.gamma)
        out = []
        for g in self.optimizer.param_groups:
            if g.get("freeze_after_switch") and self.switch_step is not None and step >= self.switch_step:
                out.append(0.0)
            else:
                out.append(self.min_lr + (now - self.min_lr) * float(g.get("lr_ratio", 1.0)))
        return out
