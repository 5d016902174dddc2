"""Per-video memory state machine over any :class:`~vosc.models.base.VOSNetwork`: batched, differentiable,
any depth per call.

Usage (training and inference alike)::

    prop = Propagator(model, long_term_gap=5)
    prop.add_reference(frame0, mask0, num_objects)          # reference → long- and short-term memory
    for t in 1..T-1:
        logits = prop.step(frame_t, depths=[1, 2, 3])      # {depth: (B, 1 + C, H, W)}
        prop.update_memory(mask_t)                          # GT or detached prediction of frame t

:func:`vosc.inference.clip.run_clip` is this loop over a whole clip (teacher-forced or autoregressive).

Long-term memory policy (family-neutral): the reference frame(s) and every frame whose distance to the
last long-term frame is ``>= long_term_gap`` (newest first, reference last, as the reference
implementation orders them), optionally capped at ``max_long_term`` frames. What a frame's memory entry
is, and whether the last frame is kept as short-term memory, is the family's business. Memory is kept for
depths ``<= memory_depth`` (default: all); for AOT/AOST a step at a shallower depth completes the missing
layers lazily when its frame enters the memory, so every depth sees the memory a full-depth pass would
have produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vosc.models.base import Memory, VOSNetwork


class Propagator:
    """Memory state of one batch of videos.

    Args:
        model: The network (a :class:`~vosc.models.base.VOSNetwork`).
        long_term_gap: ``δ``: a frame joins the long-term memory when ``t - t_last_long >= δ``.
        max_long_term: Optional cap on the number of long-term frames; the oldest non-reference frames
            are dropped first (references are always kept).
        memory_depth: Depths to keep memory for (default ``model.num_depths``); steps deeper than it are
            refused.
        mask_unused: Set logits of objects ``> num_objects`` to ``-1e4`` in :meth:`step`.
        offload: Keep long-term memory entries in CPU RAM (:class:`~vosc.models.base.Memory`).
    """

    def __init__(self, model: VOSNetwork, long_term_gap: int = 5, max_long_term: int | None = None,
                 memory_depth: int | None = None, mask_unused: bool = True, offload: bool = False) -> None:
        if long_term_gap < 1:
            raise ValueError(f"long_term_gap must be >= 1, got {long_term_gap}")
        self.model = model
        self.long_term_gap = long_term_gap
        self.max_long_term = max_long_term
        self.memory_depth = model.num_depths if memory_depth is None else memory_depth
        if not 1 <= self.memory_depth <= model.num_depths:
            raise ValueError(f"memory_depth {self.memory_depth} outside 1..{model.num_depths}")
        self.mask_unused = mask_unused
        self.offload = offload
        self.last_logits_4x: dict[int, Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything (new video)."""
        self.frame_step = -1
        self.last_long_step = 0
        self.num_objects: Tensor | None = None
        self.memory = Memory(self.memory_depth, self.max_long_term, offload=self.offload)
        self._cur: Any | None = None
        self.last_logits_4x = {}

    def _set_objects(self, num_objects: Tensor | int, batch: int, device: torch.device) -> None:
        n = torch.as_tensor(num_objects, device=device).long().reshape(-1)
        if n.numel() == 1:
            n = n.expand(batch)
        if n.numel() != batch:
            raise ValueError(f"num_objects has {n.numel()} entries for a batch of {batch}")
        cap = self.model.max_objects
        if cap is not None and int(n.max()) > cap:
            raise ValueError(f"num_objects {int(n.max())} exceeds the model's max_obj {cap}")
        self.num_objects = n if self.num_objects is None else torch.maximum(self.num_objects, n)
        self.memory.num_objects = self.num_objects

    def add_reference(self, frames: Tensor, masks: Tensor, num_objects: Tensor | int,
                      depths: int | Sequence[int] | None = None) -> dict[int, Tensor] | None:
        """Add a reference frame (the first, or an extra one for objects that appear later).

        Args:
            frames: ``(B, 3, H, W)`` normalised, at network resolution.
            masks: ``(B, 1, H, W)`` int64 ids or ``(B, 1 + K, H, W)`` probabilities.
            num_objects: Objects per video (``(B,)`` or int).
            depths: Optionally also decode the reference frame itself from the memory it now belongs to
                (upsampled to the input size, masked as :meth:`step` masks; the raw logits are kept in
                ``last_logits_4x``). This is not a step: the frame counter (long-term gap) is unchanged, as
                in the official training engine, which decodes the reference's own LSTT output.

        Returns:
            ``{depth: logits (B, 1 + C, H, W)}`` when ``depths`` is given, else ``None``.
        """
        model = self.model
        feats = model.encode(frames)
        self._set_objects(num_objects, frames.shape[0], frames.device)
        model.write(self.memory, feats, masks, reference=True, long_term=True)
        self.frame_step += 1
        self.last_long_step = self.frame_step
        self._cur = None
        if depths is None:
            return None
        raw = model.read(self.memory, feats, self._depth_list(depths))
        self.last_logits_4x = raw
        size = (frames.shape[-2], frames.shape[-1])
        return {d: model.upsample(self.mask_logits(lg) if self.mask_unused else lg, size)
                for d, lg in raw.items()}

    def _depth_list(self, depths: int | Sequence[int] | None) -> list[int]:
        if depths is None:
            depths = [self.memory_depth]
        elif isinstance(depths, int):
            depths = [depths]
        out = sorted({self.model.check_depth(int(d)) for d in depths})
        if out[-1] > self.memory_depth:
            raise ValueError(f"depth {out[-1]} exceeds memory_depth {self.memory_depth}")
        return out

    def step(self, frames: Tensor, depths: int | Sequence[int] | None = None,
             mask_unused: bool | None = None) -> dict[int, Tensor]:
        """Segment the next frame with one pass to the deepest requested depth.

        Args:
            frames: ``(B, 3, H, W)`` normalised.
            depths: Depth(s) to decode (default: ``memory_depth``).
            mask_unused: Override the constructor's ``mask_unused``.

        Returns:
            ``{depth: logits (B, 1 + C, H, W)}`` upsampled to the input size; the raw logits at the decoder's
            resolution (AOT: 1/4) are kept in ``last_logits_4x``.
        """
        model = self.model
        depths = self._depth_list(depths)
        if self.memory.empty:
            raise RuntimeError("Propagator has no memory: call add_reference() first")
        feats = model.encode(frames)
        raw = model.read(self.memory, feats, depths)
        self.frame_step += 1
        self._cur = feats
        mask = self.mask_unused if mask_unused is None else mask_unused
        results = {}
        for d in depths:
            logits = self.mask_logits(raw[d]) if mask else raw[d]
            results[d] = model.upsample(logits, (frames.shape[-2], frames.shape[-1]))
        self.last_logits_4x = raw
        return results

    def mask_logits(self, logits: Tensor) -> Tensor:
        """Set objects ``> num_objects`` of ``(B, C, h, w)`` logits to ``-1e4`` (out of place)."""
        if self.num_objects is None:
            return logits
        ids = torch.arange(logits.shape[1], device=logits.device).view(1, -1, 1, 1)
        unused = ids > self.num_objects.view(-1, 1, 1, 1)
        return logits.masked_fill(unused, -1e4)

    def update_memory(self, masks: Tensor, force: bool = False) -> None:
        """Put the frame just stepped into the memory.

        Args:
            masks: ``(B, 1, H, W)`` ids or ``(B, 1 + K, H, W)`` probabilities of that frame (GT while
                training, a detached prediction otherwise).
            force: Add it to the long-term memory regardless of the gap.
        """
        if self._cur is None:
            raise RuntimeError("update_memory() needs a preceding step()")
        long_term = force or self.frame_step - self.last_long_step >= self.long_term_gap
        self.model.write(self.memory, self._cur, masks, reference=False, long_term=long_term)
        if long_term:
            self.last_long_step = self.frame_step
        self._cur = None

    @property
    def long_term_frames(self) -> int:
        """Number of frames in the long-term memory."""
        return len(self.memory.long)


Feedback = Callable[[int, dict[int, Tensor]], Tensor]


@dataclass
class ClipOutput:
    """What :func:`run_clip` returns.

    Attributes:
        reference: ``{depth: (B, 1 + C, H, W)}`` logits of frame 0 decoded from its own memory (only with
            ``decode_reference``), else ``None``.
        frames: One ``{depth: (B, 1 + C, H, W)}`` dict per propagated frame ``1..T-1``.
        raw_reference: ``reference`` before upsampling and masking (``prop.last_logits_4x`` of frame 0:
            ``(B, 1 + C, h_o, w_o)``, AOT: 1/4 resolution).
        raw_frames: ``frames`` before upsampling and masking, one dict per propagated frame.
    """

    reference: dict[int, Tensor] | None
    frames: list[dict[int, Tensor]]
    raw_reference: dict[int, Tensor] | None = None
    raw_frames: list[dict[int, Tensor]] = field(default_factory=list)


def run_clip(prop: Propagator, frames: Tensor, first_mask: Tensor, num_objects: Tensor | int,
             depths: int | Sequence[int] | None = None, *, teacher: Tensor | None = None,
             feedback: Feedback | None = None, decode_reference: bool = False,
             write_last: bool = False) -> ClipOutput:
    """The clip loop: frame 0 is the reference, frames ``1..T-1`` are propagated one by one.

    Teacher forcing (``teacher``): the given mask of frame ``t`` enters the memory after its step.
    Autoregressive (``feedback``): ``feedback(t, logits)`` is called after every step (``logits`` as
    :meth:`Propagator.step` returns them; ``prop.last_logits_4x`` holds the raw ones) and its result (ids
    ``(B, 1, H, W)`` or probabilities ``(B, 1 + K, H, W)``, e.g. the detached argmax) enters the memory. With
    both, ``feedback`` decides. The last frame's mask is written only with ``write_last``.

    Args:
        prop: A fresh (or reset) propagator; its gap, depth and masking settings apply.
        frames: ``(B, T, 3, H, W)`` normalised frames at network size, ``T >= 1``.
        first_mask: ``(B, 1, H, W)`` int64 ids (or ``(B, 1 + K, H, W)`` probabilities) of frame 0.
        num_objects: ``(B,)`` or int.
        depths: Depth(s) decoded at every step (default: the propagator's memory depth).
        teacher: ``(B, T, 1, H, W)`` masks for teacher forcing.
        feedback: Callable giving the mask written after frame ``t``.
        decode_reference: Also decode frame 0 from its own memory (the auxiliary reference-frame loss of
            training); not a step: the long-term gap counts from frame 0 either way, as in the official
            training engine.
        write_last: Write the last frame's mask too (leaves the memory ready for more frames).

    Returns:
        :class:`ClipOutput`.
    """
    if teacher is None and feedback is None:
        raise ValueError("run_clip needs teacher masks (teacher forcing) or a feedback callable "
                         "(autoregressive)")
    t_total = frames.shape[1]
    if teacher is not None and teacher.shape[:2] != frames.shape[:2]:
        raise ValueError(f"run_clip: teacher masks {tuple(teacher.shape)} do not match frames "
                         f"{tuple(frames.shape)}")
    ref_depths = prop._depth_list(depths) if decode_reference else None
    reference = prop.add_reference(frames[:, 0], first_mask, num_objects, ref_depths)
    raw_reference = prop.last_logits_4x if decode_reference else None
    outputs, raw = [], []
    for t in range(1, t_total):
        logits = prop.step(frames[:, t], depths)
        outputs.append(logits)
        raw.append(prop.last_logits_4x)
        mask = feedback(t, logits) if feedback is not None else teacher[:, t]  # type: ignore[index]
        if t < t_total - 1 or write_last:
            prop.update_memory(mask)
    return ClipOutput(reference, outputs, raw_reference, raw)
