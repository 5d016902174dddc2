"""Per-video memory loop of STCN (the official ``InferenceCore`` protocol, streaming).

Usage::

    frames, pad = pad_to_multiple(frames, 16)                 # zeros, centred
    prop = STCNPropagator(model, mem_every=5, include_last=False, top_k=20)
    prob0 = prop.add_objects(frame0, masks0)                  # (1, 1+K, H, W) aggregated probabilities
    for t in 1..T-1:
        out = prop.step(frame_t)                               # logits (1, 1+K, H, W), probabilities, ...
        if new objects appear in t: prop.add_objects(frame_t, new_masks, out["prob"])
        else: prop.update_memory(is_last=t == T-1)

Memory: the reference frame, then every frame whose distance to the last memory frame is
``>= mem_every`` (with a reference at frame 0 this is the official ``t % mem_every == 0``), never the
last frame; with ``include_last`` every other frame is a temporary memory that the next addition
replaces. Keys are shared by all objects; values are per object. Objects that appear in frame ``t``
(YouTube-VOS) are pasted over the prediction of ``t`` (the official YouTube-VOS protocol: the other
objects' probabilities are zeroed under the new masks and everything is soft-aggregated again), and
frame ``t`` becomes a memory frame of every object; a new object's memory starts there, so objects are
read out in groups by the frame they appeared in. There is no limit on the number of objects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vosc.models.stcn.network import STCN, KeyFeatures


def pad_to_multiple(x: Tensor, multiple: int = 16) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Zero-pad the last two dims to multiples of ``multiple``, centred (extra pixel at the bottom/right).

    Returns:
        ``(padded, (left, right, top, bottom))``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.pad(x, pad), pad


def unpad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Remove a :func:`pad_to_multiple` padding from the last two dims."""
    left, right, top, bottom = pad
    return x[..., top: x.shape[-2] - bottom, left: x.shape[-1] - right]


class STCNPropagator:
    """Memory state of one video (batch 1) for an :class:`~vosc.models.stcn.STCN`.

    Args:
        model: The network (eval mode).
        mem_every: Memory gap in frames.
        include_last: Keep the last non-memory frame as a temporary memory.
        top_k: Memory elements per query (default: the model's).
    """

    def __init__(self, model: STCN, mem_every: int = 5, include_last: bool = False,
                 top_k: int | None | str = "default") -> None:
        if mem_every < 1:
            raise ValueError(f"mem_every must be >= 1, got {mem_every}")
        self.model = model
        self.mem_every = mem_every
        self.include_last = include_last
        self.top_k = top_k
        self.reset()

    def reset(self) -> None:
        """Forget everything (new video)."""
        self.frame_step = -1
        self.last_mem_step = 0
        self.num_objects = 0
        self._keys: list[Tensor] = []              # per memory frame (1, CK, hw)
        self._values: list[Tensor] = []            # per memory frame (1, K_then, CV, hw)
        self._temp: tuple[Tensor, Tensor] | None = None
        self._group_start: list[tuple[int, int]] = []  # (first object, first memory frame) per group
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}
        self._cur: dict | None = None

    @property
    def memory_frames(self) -> int:
        """Permanent memory frames."""
        return len(self._keys)

    @property
    def memory_keys(self) -> list[Tensor]:
        """Keys ``(1, CK, h·w)`` of the permanent memory frames, in adding order."""
        return list(self._keys)

    # ------------------------------------------------------------------------------ memory
    def _add(self, key: Tensor, value: Tensor, temp: bool) -> None:
        self._cache.clear()
        if temp:
            self._temp = (key.flatten(2), value.flatten(3))
            return
        self._temp = None
        self._keys.append(key.flatten(2))
        self._values.append(value.flatten(3))

    def _group_memory(self, g: int) -> tuple[Tensor, Tensor]:
        if g not in self._cache:
            first_obj, first_mem = self._group_start[g]
            last_obj = self._group_start[g + 1][0] if g + 1 < len(self._group_start) else self.num_objects
            keys = self._keys[first_mem:]
            values = [v[:, first_obj:last_obj] for v in self._values[first_mem:]]
            if self._temp is not None:
                keys = keys + [self._temp[0]]
                values = values + [self._temp[1][:, first_obj:last_obj]]
            self._cache[g] = (torch.cat(keys, 2), torch.cat(values, 3))
        return self._cache[g]

    # ------------------------------------------------------------------------------ protocol
    def add_objects(self, frame: Tensor, masks: Tensor, prob: Tensor | None = None) -> Tensor:
        """Add objects from their masks in ``frame`` (the first frame, or one where objects appear).

        Args:
            frame: ``(1, 3, H, W)`` normalised, padded frame.
            masks: ``(1, K_new, H, W)`` masks (one-hot or soft) of the new objects, ids continuing the known ones.
            prob: ``(1, 1+K_old, H, W)`` aggregated probabilities of this frame from :meth:`step` when
                objects are already tracked (the frame must be the one just stepped).

        Returns:
            ``(1, 1+K, H, W)`` aggregated probabilities of the frame (its prediction).
        """
        if self.num_objects and prob is None:
            raise ValueError("add_objects() on a video with objects needs the frame's step() probabilities")
        if self.num_objects:
            if self._cur is None:
                raise RuntimeError("add_objects() with known objects must follow the step() of that frame")
            old = prob[:, 1:].masked_fill((masks.sum(1, keepdim=True) > 0.5), 0.0)
            feats = self._cur["feats"]
        else:
            old = masks.new_zeros(masks.shape[0], 0, *masks.shape[-2:])
            feats = self.model.encode_key(frame)
            self.frame_step += 1
        obj_prob = torch.cat([old, masks.to(old.dtype)], dim=1)
        agg = torch.softmax(STCN.aggregate(obj_prob), dim=1)
        self._group_start.append((self.num_objects, len(self._keys)))
        self.num_objects = agg.shape[1] - 1
        value = self.model.encode_value(frame, feats.f16, agg[:, 1:])
        self._add(feats.k16, value, temp=False)
        self.last_mem_step = self.frame_step
        self._cur = None
        return agg

    def step(self, frame: Tensor, indices: list[Tensor] | None = None) -> dict[str, Tensor]:
        """Segment the next frame.

        Args:
            frame: ``(1, 3, H, W)`` normalised, padded.
            indices: Optional forced top-k selection per group, ``(1, k, h·w)`` each (parity checks).

        Returns:
            ``{"logits": (1, 1+K, H, W) aggregated logits, "prob": their softmax, "object_logits":
            (1, K, H, W), "object_logits_4x": (1, K, H/4, W/4), "key": (1, CK, h, w)}``.
        """
        if not self._keys:
            raise RuntimeError("STCNPropagator has no memory: call add_objects() first")
        model = self.model
        feats = model.encode_key(frame)
        obj, obj4 = [], []
        for g in range(len(self._group_start)):
            mk, mv = self._group_memory(g)
            forced = None if indices is None else indices[g]
            readout = model.read_memory(mk, mv, feats.k16, self.top_k, forced)
            lg, lg4 = model.decode(readout, feats)
            obj.append(lg)
            obj4.append(lg4)
        obj_logits, obj_logits_4x = torch.cat(obj, 1), torch.cat(obj4, 1)
        logits = STCN.aggregate(torch.sigmoid(obj_logits))
        prob = torch.softmax(logits, dim=1)
        self.frame_step += 1
        self._cur = {"feats": feats, "frame": frame, "prob": prob}
        return {"logits": logits, "prob": prob, "object_logits": obj_logits, "object_logits_4x": obj_logits_4x,
                "key": feats.k16}

    def update_memory(self, prob: Tensor | None = None, is_last: bool = False, force: bool = False) -> bool:
        """Memorise the frame just stepped if the schedule says so.

        Args:
            prob: ``(1, 1+K, H, W)`` probabilities to encode (default: the step's prediction).
            is_last: The video's last frame (never memorised, as the official loop).
            force: Add it as a permanent memory frame regardless of the gap.

        Returns:
            Whether the frame was added (permanently or as the temporary memory).
        """
        if self._cur is None:
            raise RuntimeError("update_memory() needs a preceding step()")
        cur, self._cur = self._cur, None
        if is_last and not force:
            return False
        is_mem = force or self.frame_step - self.last_mem_step >= self.mem_every
        if not (is_mem or self.include_last):
            return False
        p = cur["prob"] if prob is None else prob
        feats: KeyFeatures = cur["feats"]
        self._add(feats.k16, self.model.encode_value(cur["frame"], feats.f16, p[:, 1:]), temp=not is_mem)
        if is_mem:
            self.last_mem_step = self.frame_step
        return True
