"""Per-video memory state machine of AOT/AOST: batched, differentiable, any depth per call.

Usage (training and inference alike)::

    prop = Propagator(model, long_term_gap=5)
    prop.add_reference(frame0, mask0, num_objects)          # reference → long- and short-term memory
    for t in 1..T-1:
        logits = prop.step(frame_t, depths=[1, 2, 3])      # {depth: (B, 11, H, W)}
        prop.update_memory(mask_t)                          # GT or detached prediction of frame t

Memory of layer ``i``: long-term = identity-fused keys/values of the reference frame(s) and every frame
whose distance to the last long-term frame is ``>= long_term_gap`` (newest first, reference last, as the
reference implementation orders them); short-term = the last updated frame. Memory is kept for layers
``< memory_depth`` (default: all); a step at a shallower depth completes the missing layers lazily when
its frame enters the memory, so every depth sees the memory a full-depth pass would have produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vosc.models.propagation.memory import LayerMemory
from vosc.models.vos_model import VOSModel


class Propagator:
    """Memory state of one batch of videos.

    Args:
        model: The network.
        long_term_gap: ``δ``: a frame joins the long-term memory when ``t - t_last_long >= δ``.
        max_long_term: Optional cap on the number of long-term frames; the oldest non-reference frames
            are dropped first (references are always kept).
        memory_depth: Layers to keep memory for (default ``model.num_layers``); steps deeper than it are
            refused.
        mask_unused: Set logits of identities ``> num_objects`` to ``-1e4`` in :meth:`step`.
    """

    def __init__(self, model: VOSModel, long_term_gap: int = 5, max_long_term: int | None = None,
                 memory_depth: int | None = None, mask_unused: bool = True) -> None:
        if long_term_gap < 1:
            raise ValueError(f"long_term_gap must be >= 1, got {long_term_gap}")
        if max_long_term is not None and max_long_term < 1:
            raise ValueError(f"max_long_term must be >= 1 or None, got {max_long_term}")
        self.model = model
        self.long_term_gap = long_term_gap
        self.max_long_term = max_long_term
        self.memory_depth = model.num_layers if memory_depth is None else memory_depth
        if not 1 <= self.memory_depth <= model.num_layers:
            raise ValueError(f"memory_depth {self.memory_depth} outside 1..{model.num_layers}")
        self.mask_unused = mask_unused
        self.last_logits_4x: dict[int, Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything (new video)."""
        self.frame_step = -1
        self.last_long_step = 0
        self.num_objects: Tensor | None = None
        # per long-term frame: (is_reference, [(k, v) per layer])
        self._long: list[tuple[bool, list[tuple[Tensor, Tensor]]]] = []
        self._long_cat: list[tuple[Tensor, Tensor]] | None = None
        self._short: list[tuple[Tensor, Tensor]] | None = None
        self._cur: dict | None = None
        self.last_logits_4x = {}

    # ----------------------------------------------------------------------------- memory
    def _memories(self) -> list[LayerMemory]:
        if self._short is None:
            raise RuntimeError("Propagator has no memory: call add_reference() first")
        if self._long_cat is None:
            self._long_cat = []
            for i in range(self.memory_depth):
                ks = [kv[i][0] for _, kv in self._long]
                vs = [kv[i][1] for _, kv in self._long]
                self._long_cat.append((torch.cat(ks, 1), torch.cat(vs, 1)) if len(ks) > 1 else (ks[0], vs[0]))
        return [LayerMemory(lk, lv, sk, sv) for (lk, lv), (sk, sv) in zip(self._long_cat, self._short)]

    def _push_long(self, kv: list[tuple[Tensor, Tensor]], is_reference: bool) -> None:
        self._long.insert(0, (is_reference, kv))
        if self.max_long_term is not None:
            while len(self._long) > self.max_long_term:
                drop = [j for j, (ref, _) in enumerate(self._long) if not ref]
                if not drop:
                    break
                self._long.pop(drop[-1])
        self._long_cat = None

    def _set_objects(self, num_objects: Tensor | int, batch: int, device: torch.device) -> None:
        n = torch.as_tensor(num_objects, device=device).long().reshape(-1)
        if n.numel() == 1:
            n = n.expand(batch)
        if n.numel() != batch:
            raise ValueError(f"num_objects has {n.numel()} entries for a batch of {batch}")
        if int(n.max()) > self.model.max_obj:
            raise ValueError(f"num_objects {int(n.max())} exceeds the model's max_obj {self.model.max_obj}")
        self.num_objects = n if self.num_objects is None else torch.maximum(self.num_objects, n)

    def add_reference(self, frames: Tensor, masks: Tensor, num_objects: Tensor | int,
                      depths: int | Sequence[int] | None = None) -> dict[int, Tensor] | None:
        """Add a reference frame (the first, or an extra one for objects that appear later).

        Args:
            frames: ``(B, 3, H, W)`` normalised, at network resolution.
            masks: ``(B, 1, H, W)`` int64 ids or ``(B, max_obj+1, H, W)`` probabilities.
            num_objects: Objects per video (``(B,)`` or int).
            depths: Optionally decode the reference frame itself at these depths (the auxiliary
                reference-frame loss of training).

        Returns:
            ``{depth: logits (B, max_obj+1, H, W)}`` (unmasked) when ``depths`` is given, else ``None``.
        """
        model = self.model
        feats = model.encode(frames)
        x, size_2d = model.tokens(feats)
        self._set_objects(num_objects, frames.shape[0], frames.device)
        id_emb = model.id_embedding(masks)
        outs, kvs = model.propagate(x, size_2d, 0, self.memory_depth, id_emb=id_emb)
        fused = [model.fuse(i, kv, id_emb) for i, kv in enumerate(kvs)]
        self.frame_step += 1
        self._push_long(fused, is_reference=True)
        self.last_long_step = self.frame_step
        self._short = fused
        self._cur = None
        if depths is None:
            return None
        out = {}
        for d in self._depth_list(depths):
            out[d] = model.upsample(model.decode(feats, outs, d), (frames.shape[-2], frames.shape[-1]))
        return out

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
            ``{depth: logits (B, max_obj+1, H, W)}`` upsampled to the input size; the raw 1/4-resolution
            logits are kept in ``last_logits_4x``.
        """
        model = self.model
        depths = self._depth_list(depths)
        memories = self._memories()
        feats = model.encode(frames)
        x, size_2d = model.tokens(feats)
        outs, kvs = model.propagate(x, size_2d, 0, depths[-1], memories=memories)
        self.frame_step += 1
        self._cur = {"outs": outs, "kvs": kvs, "size_2d": size_2d}
        mask = self.mask_unused if mask_unused is None else mask_unused
        results, raw = {}, {}
        for d in depths:
            logits = model.decode(feats, outs, d)
            raw[d] = logits
            if mask:
                logits = self.mask_logits(logits)
            results[d] = model.upsample(logits, (frames.shape[-2], frames.shape[-1]))
        self.last_logits_4x = raw
        return results

    def mask_logits(self, logits: Tensor) -> Tensor:
        """Set identities ``> num_objects`` of ``(B, K, h, w)`` logits to ``-1e4`` (out of place)."""
        if self.num_objects is None:
            return logits
        ids = torch.arange(logits.shape[1], device=logits.device).view(1, -1, 1, 1)
        unused = ids > self.num_objects.view(-1, 1, 1, 1)
        return logits.masked_fill(unused, -1e4)

    def update_memory(self, masks: Tensor, force: bool = False) -> None:
        """Put the frame just stepped into the memory.

        Args:
            masks: ``(B, 1, H, W)`` ids or ``(B, max_obj+1, H, W)`` probabilities of that frame (GT while
                training, a detached prediction otherwise).
            force: Add it to the long-term memory regardless of the gap.
        """
        if self._cur is None:
            raise RuntimeError("update_memory() needs a preceding step()")
        model = self.model
        outs, kvs, size_2d = self._cur["outs"], self._cur["kvs"], self._cur["size_2d"]
        if len(kvs) < self.memory_depth:  # complete the layers the step did not need
            _, more = model.propagate(outs[-1], size_2d, len(kvs), self.memory_depth, memories=self._memories())
            kvs = list(kvs) + more
        id_emb = model.id_embedding(masks)
        fused = [model.fuse(i, kv, id_emb) for i, kv in enumerate(kvs[: self.memory_depth])]
        self._short = fused
        if force or self.frame_step - self.last_long_step >= self.long_term_gap:
            self._push_long(fused, is_reference=False)
            self.last_long_step = self.frame_step
        self._cur = None

    @property
    def long_term_frames(self) -> int:
        """Number of frames in the long-term memory."""
        return len(self._long)
