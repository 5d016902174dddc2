"""More objects than identities: groups of ``max_obj`` objects and soft logit aggregation.

A model has ``max_obj`` identities (10). A video with ``K > max_obj`` objects is split into
``G = ceil(K / max_obj)`` groups; group ``g`` tracks the objects ``g * max_obj + 1 .. (g + 1) * max_obj``
as its local ids ``1 .. max_obj`` with its own memory (one :class:`Propagator` per group). The groups'
predictions are merged as the official multi-engine does:

* per group ``g``: ``p_g = softmax(logits_g)`` over its ``1 + max_obj`` channels;
* background: ``p_bg = prod_g p_g[0]`` (a pixel is background only if every group says so);
* merged probabilities ``q = [p_bg, p_0[1:], p_1[1:], ...]`` clamped to ``[eps, 1 - eps]``;
* merged logits ``log(q / (1 - q))`` (the inverse sigmoid), which the caller upsamples and feeds to a
  softmax over all ``1 + G * max_obj`` channels.

With a single group the logits pass through unchanged. A family without an object limit
(``max_objects is None``, e.g. STCN) always uses one group.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch

from vosc.inference.propagator import Propagator

log = logging.getLogger(__name__)

__all__ = ["GroupedPropagator", "group_counts", "num_groups", "soft_aggregate", "split_ids"]


def num_groups(num_objects: int, group_size: int | None) -> int:
    """Number of groups for ``num_objects`` objects (at least one; one when ``group_size`` is ``None``,
    a family without an object limit)."""
    if group_size is None:
        return 1
    return max(math.ceil(num_objects / group_size), 1)


def group_counts(num_objects: int, group_size: int | None) -> list[int]:
    """Objects per group, e.g. ``group_counts(12, 10) == [10, 2]``, ``group_counts(12, None) == [12]``."""
    if group_size is None:
        return [num_objects]
    n = num_groups(num_objects, group_size)
    return [min(group_size, max(num_objects - g * group_size, 0)) for g in range(n)]


def split_ids(mask: torch.Tensor, group: int, group_size: int | None) -> torch.Tensor:
    """Local id map of one group: ids ``g*S+1 .. (g+1)*S`` become ``1 .. S``, every other pixel 0.

    Args:
        mask: Integer ids of any shape, e.g. ``(B, 1, H, W)``.
        group: Group index ``g``.
        group_size: ``S`` (the model's ``max_objects``; ``None``: one group, ids unchanged).

    Returns:
        Tensor of the same shape and dtype with local ids.
    """
    if group_size is None:
        return mask
    start = group * group_size
    inside = (mask > start) & (mask <= start + group_size)
    return torch.where(inside, mask - start, torch.zeros_like(mask))


def soft_aggregate(logits: Sequence[torch.Tensor], group_size: int | None, eps: float = 1e-5) -> torch.Tensor:
    """Merge per-group logits into logits over all objects (see the module docstring).

    Args:
        logits: One ``(B, 1 + S, H, W)`` tensor per group (unused identities may be ``-inf``).
        group_size: ``S``.
        eps: Probability clamp before the inverse sigmoid.

    Returns:
        ``(B, 1 + G * S, H, W)`` merged logits (the input itself when ``G == 1``).
    """
    if len(logits) == 1 or group_size is None:
        return logits[0]
    probs = [torch.softmax(lg.float(), dim=1) for lg in logits]
    bg = torch.stack([p[:, 0] for p in probs], dim=1).prod(dim=1, keepdim=True)
    merged = torch.cat([bg] + [p[:, 1: 1 + group_size] for p in probs], dim=1).clamp(eps, 1 - eps)
    return torch.logit(merged)


class GroupedPropagator:
    """Per-group propagators of one video (and one test-time augmentation) behind a single interface.

    Args:
        factory: Builds a fresh propagator (``Propagator(model, long_term_gap, max_long_term, ...)``).
        group_size: Identities per group (the model's ``max_objects``; ``None``: one group for all objects).
        mask_unused: Mask each group's identities above its object count before merging.
    """

    def __init__(
        self, factory: Callable[[], Propagator], group_size: int | None, mask_unused: bool = True
    ) -> None:
        self.factory = factory
        self.group_size = group_size
        self.mask_unused = mask_unused
        self.groups: list[Propagator] = []
        self.num_objects = 0
        self.last_logits: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget every group (new video)."""
        self.groups = []
        self.num_objects = 0
        self.last_logits = None

    def add_reference(self, frame: torch.Tensor, mask: torch.Tensor, num_objects: int) -> None:
        """Make ``frame`` a reference frame for every group, creating groups for new objects.

        Args:
            frame: ``(1, 3, h, w)`` normalised frame at network size.
            mask: ``(1, 1, h, w)`` int64 global ids ``0 .. num_objects``.
            num_objects: Objects known so far (``K``).
        """
        counts = group_counts(num_objects, self.group_size)
        while len(self.groups) < len(counts):
            self.groups.append(self.factory())
        for g, (prop, count) in enumerate(zip(self.groups, counts, strict=True)):
            prop.add_reference(frame, split_ids(mask, g, self.group_size), count)
        self.num_objects = num_objects

    def step(self, frame: torch.Tensor, depth: int) -> torch.Tensor:
        """Propagate every group to ``frame`` at ``depth`` and merge.

        Args:
            frame: ``(1, 3, h, w)`` normalised frame at network size.
            depth: Depth ``n'``.

        Returns:
            ``(1, 1 + G * S, h / 4, w / 4)`` merged logits at the decoder's 1/4 resolution (as the official
            evaluator, which aggregates before upsampling straight to the original size); also kept in
            :attr:`last_logits`.
        """
        if not self.groups:
            raise RuntimeError("GroupedPropagator.step called before any reference frame was added")
        logits = []
        for prop in self.groups:
            prop.step(frame, depths=[depth])
            raw = prop.last_logits_4x[depth]
            logits.append(prop.mask_logits(raw) if self.mask_unused else raw)
        self.last_logits = soft_aggregate(logits, self.group_size)
        return self.last_logits

    def update_memory(self, mask: torch.Tensor) -> None:
        """Feed the prediction of the frame just stepped into every group's memory.

        Args:
            mask: ``(1, 1, h, w)`` int64 global ids, or (one group only, e.g. a family without identity
                slots) ``(1, 1 + K, h, w)`` probabilities, as the family's ``memory_mask`` gives them.

        Raises:
            ValueError: Probabilities for more than one group.
        """
        if mask.is_floating_point() and len(self.groups) > 1:
            raise ValueError(f"GroupedPropagator: probability masks {tuple(mask.shape)} cannot be split over "
                             f"{len(self.groups)} groups of {self.group_size} objects; write ids")
        for g, prop in enumerate(self.groups):
            prop.update_memory(mask if mask.is_floating_point() else split_ids(mask, g, self.group_size))
