"""The model-family interface: what a memory-based VOS network offers the per-video loop.

A family (AOT/AOST in :mod:`vosc.models.vos_model`, STCN in :mod:`vosc.models.stcn`) is an ``nn.Module``
implementing :class:`VOSNetwork`. The loop that drives it over a clip (teacher-forced or autoregressive)
lives in :mod:`vosc.inference` and knows nothing else about the family::

    memory = Memory(depth=net.num_depths, max_long_term=None)
    feats = net.encode(frame0)                                  # (B, 3, H, W) -> family features
    memory.num_objects = k0                                     # (B,) objects per video
    net.write(memory, feats, mask0, reference=True, long_term=True)
    for t in 1..T-1:
        feats = net.encode(frame_t)
        raw = net.read(memory, feats, depths=[d])               # {d: (B, 1 + K, h_o, w_o) logits}
        logits = net.upsample(raw[d], (H, W))                   # (B, 1 + K, H, W); softmax = probabilities
        net.write(memory, feats, mask_t, reference=False, long_term=t % gap == 0)

Conventions every family follows:

* Frames are ImageNet-normalised ``(B, 3, H, W)`` float tensors at network size; any ``H, W`` is
  accepted (a family that needs padded inputs, e.g. STCN's zero-padding to multiples of ``stride``, pads
  in :meth:`VOSNetwork.encode` and crops in :meth:`VOSNetwork.read`), and logits always cover the unpadded
  frame.
* Masks are either int64 ids ``(B, 1, H, W)`` (0 = background, ``1..K``) or probabilities
  ``(B, 1 + K, H, W)`` (background first, summing to 1 over channel 1).
* Logits are ``(B, 1 + C, h_o, w_o)`` with channel 0 the background: ``softmax(dim=1)`` of them are the
  probabilities. ``C`` is ``max_objects`` for families with a fixed identity capacity (AOT: 10, channels
  of objects a video does not have are left to the loop to mask) and ``K = max(memory.num_objects)``
  for unbounded families (STCN, whose per-object sigmoid probabilities are soft-aggregated with the
  background and returned as ``log(p / (1 - p))``).
* ``(h_o, w_o)`` is the family's decoder resolution (AOT: ``H/4``); :meth:`VOSNetwork.upsample` brings
  logits to any size with the family's ``align_corners``.
* Depth ``d`` selects how much of the network is used (AOT/AOST: the first ``d`` of ``n_l`` (S-)LSTT
  layers); families without depths have ``num_depths == 1``. :attr:`VOSNetwork.decode_depths` lists the
  depths logits can be decoded at (AOT: only ``n_l``; AOST: ``1..n_l``).
* What is remembered of a frame (an *entry*) is the family's business; which frames enter the long-term
  memory, the optional cap on it and when memory is reset are the loop's (:class:`Memory` holds both).

Nothing in ``vosc.models`` imports ``vosc.inference``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Memory", "VOSNetwork"]


class Memory:
    """Per-video memory of one batch of videos: long-term entries plus one short-term entry.

    The entries are opaque family objects (AOT: per-layer identity-fused keys/values; STCN: a key and
    per-object values). The loop decides which frames are written to the long-term memory; the family
    decides what an entry is and whether it keeps a short-term entry.

    Args:
        depth: Depths that keep memory (``1..depth``); reads deeper than it are refused.
        max_long_term: Optional cap on the number of long-term entries; the oldest non-reference entries
            are dropped first (FIFO; reference entries are always kept). With a cap, memory stays flat
            however long the video.
        offload: Keep the long-term entries in CPU RAM (pinned when they came from CUDA); families read
            them through :meth:`long_entries`, which moves them back, and keep one working copy (the
            concatenation in :attr:`cache`) on the device. Saves device memory (about half for AOT/AOST)
            at the cost of a host-to-device copy whenever the long-term memory changes.

    Attributes:
        long: Long-term entries, newest first, as ``(is_reference, entry)`` (on the CPU with ``offload``:
            read them with :meth:`long_entries`).
        short: The short-term entry (the last written frame) or ``None``.
        num_objects: ``(B,)`` int64 objects per video (set by the loop before a reference is written).
        cache: Tensors a family derives from the entries (e.g. concatenated keys); cleared whenever the
            long-term memory changes.
    """

    def __init__(self, depth: int, max_long_term: int | None = None, offload: bool = False) -> None:
        if depth < 1:
            raise ValueError(f"memory depth must be >= 1, got {depth}")
        if max_long_term is not None and max_long_term < 1:
            raise ValueError(f"max_long_term must be >= 1 or None, got {max_long_term}")
        self.depth = depth
        self.max_long_term = max_long_term
        self.offload = offload
        self.device: torch.device | None = None  # where the entries are used (set by the first push)
        self.long: list[tuple[bool, Any]] = []
        self.short: Any | None = None
        self.num_objects: Tensor | None = None
        self.cache: dict[str, Any] = {}

    @property
    def empty(self) -> bool:
        """``True`` before the first write."""
        return not self.long and self.short is None

    def push_long(self, entry: Any, is_reference: bool) -> None:
        """Prepend ``entry`` to the long-term memory, enforcing ``max_long_term`` (and offloading it)."""
        if self.device is None:
            self.device = _first_device(entry)
        if self.offload:
            pin = self.device is not None and self.device.type == "cuda"
            entry = _move(entry, torch.device("cpu"), pin)
        self.long.insert(0, (is_reference, entry))
        if self.max_long_term is not None:
            while len(self.long) > self.max_long_term:
                drop = [j for j, (ref, _) in enumerate(self.long) if not ref]
                if not drop:
                    break
                self.long.pop(drop[-1])
        self.cache.clear()

    def long_entries(self) -> list[tuple[bool, Any]]:
        """The long-term entries (newest first) on the device they are used on (moved back from the CPU
        with ``offload``; the list itself otherwise)."""
        if not self.offload or self.device is None or self.device.type == "cpu":
            return self.long
        return [(ref, _move(entry, self.device, False)) for ref, entry in self.long]


def _first_device(entry: Any) -> torch.device | None:
    """Device of the first tensor inside a (nested list/tuple/dict) entry."""
    if isinstance(entry, Tensor):
        return entry.device
    items = entry.values() if isinstance(entry, dict) else entry if isinstance(entry, (list, tuple)) else ()
    for item in items:
        dev = _first_device(item)
        if dev is not None:
            return dev
    return None


def _move(entry: Any, device: torch.device, pin: bool) -> Any:
    """Copy every tensor of a nested list/tuple/dict entry to ``device`` (pinned host memory if ``pin``)."""
    if isinstance(entry, Tensor):
        out = entry.to(device, non_blocking=device.type == "cuda")
        return out.pin_memory() if pin else out
    if isinstance(entry, dict):
        return {k: _move(v, device, pin) for k, v in entry.items()}
    if isinstance(entry, (list, tuple)):
        moved = [_move(v, device, pin) for v in entry]
        return type(entry)(moved) if not hasattr(entry, "_fields") else type(entry)(*moved)
    return entry


class VOSNetwork(nn.Module, ABC):
    """A memory-based semi-supervised VOS network (one model family), as the per-video loop uses it.

    Class or instance attributes every family sets:

    Attributes:
        stride: Output stride of the encoder features (16 for AOT/AOST and STCN).
        max_objects: Objects one memory can hold (AOT/AOST: 10 identities; more objects need groups, see
            :mod:`vosc.inference.objects`), ``None`` when unbounded (STCN: values per object).
        num_depths: Number of depths (AOT/AOST: ``n_l``; STCN: 1).
        align_corners: ``align_corners`` of the family's bilinear resizing; network sizes are
            ``stride * k + 1`` when ``True`` (AOT/AOST except Swin), ``stride * k`` otherwise.
        encoder_prefixes: Parameter-name prefixes of the pretrained backbones, which train at
            ``encoder_lr_ratio`` (:func:`vosc.utils.optim.param_groups`): AOT/AOST ``encoder.``; STCN its key
            encoder and its value encoder's backbone (not the fusion block after it).

    What callers (``VideoSegmenter``, ``evaluate.py``, ``VOSModule``) need beyond these comes from
    :attr:`decode_depths`, :attr:`input_multiple` and :meth:`memory_mask`; no caller reads a family's own
    attribute names.
    """

    stride: int = 16
    max_objects: int | None = None
    num_depths: int = 1
    align_corners: bool = False
    encoder_prefixes: tuple[str, ...] = ("encoder.",)
    #: Identity embeddings enter the memory detached (no gradient to the identity encoder): set by the
    #: training step while the memory comes from predictions (the official ``freeze_id``); families
    #: without identity embeddings ignore it.
    detach_ids: bool = False

    @property
    def input_multiple(self) -> int:
        """Network input sides are rounded to multiples of this (plus 1 with ``align_corners``): the
        stride by default; 1 for a family that pads its inputs itself in :meth:`encode` (STCN)."""
        return self.stride

    def memory_mask(self, logits: Tensor, ids: Tensor) -> Tensor:
        """What the inference loop writes into the memory for a frame it predicted (the family decides).

        Args:
            logits: ``(B, 1 + C, h_o, w_o)`` the frame's logits from :meth:`read` through the loop's
                masking of absent objects, at the decoder's resolution.
            ids: ``(B, 1, H, W)`` int64 the loop's final prediction at network size (argmax at the frame's
                original size, brought back to the network size).

        Returns:
            ``ids`` by default (hard masks: AOT/AOST, as the official AOT evaluator), or ``(B, 1 + K, H, W)``
            probabilities (STCN, whose official inference encodes its soft aggregated prediction).
        """
        return ids

    @property
    def decode_depths(self) -> tuple[int, ...]:
        """Depths at which :meth:`read` can decode logits (default: every depth ``1..num_depths``)."""
        return tuple(range(1, self.num_depths + 1))

    def check_depth(self, depth: int) -> int:
        """Return ``depth`` if logits can be decoded there, else raise ``ValueError`` naming the choices."""
        if depth not in self.decode_depths:
            raise ValueError(f"depth {depth} is not decodable by {type(self).__name__}; valid: "
                             f"{list(self.decode_depths)}")
        return depth

    @abstractmethod
    def encode(self, frames: Tensor) -> Any:
        """Encode frames.

        Args:
            frames: ``(B, 3, H, W)`` ImageNet-normalised frames at network size.

        Returns:
            The family's per-frame features (opaque to the loop); :meth:`read` may store intermediate
            results in them that a later :meth:`write` of the same frame reuses.
        """

    @abstractmethod
    def write(self, memory: Memory, feats: Any, masks: Tensor, *, reference: bool, long_term: bool) -> None:
        """Write a frame and its mask into ``memory``.

        Args:
            memory: The video's memory (``memory.num_objects`` is set).
            feats: The frame's features from :meth:`encode` (after :meth:`read` unless ``reference``).
            masks: ``(B, 1, H, W)`` int64 ids or ``(B, 1 + K, H, W)`` probabilities of the frame, at the
                size of the encoded frame.
            reference: The frame is a reference frame (its mask is given, it was not read from memory).
            long_term: Also add the frame to the long-term memory (the loop's gap policy decides).
        """

    @abstractmethod
    def read(self, memory: Memory, feats: Any, depths: Sequence[int]) -> dict[int, Tensor]:
        """Read ``memory`` for a frame and decode logits at each depth.

        Args:
            memory: The video's memory (at least one reference written).
            feats: The frame's features from :meth:`encode`.
            depths: Depths to decode (each in :attr:`decode_depths` and ``<= memory.depth``), ascending.

        Returns:
            ``{depth: (B, 1 + C, h_o, w_o) logits}`` at the decoder's resolution (see the module docstring),
            no masking of objects a video does not have.
        """

    def upsample(self, logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinear resize of ``(B, C, h, w)`` logits to ``size`` with the family's ``align_corners``."""
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Not a one-call network: drive it with :mod:`vosc.inference` (``Propagator``, ``run_clip``)."""
        raise TypeError(f"{type(self).__name__} is driven by the per-video loop (vosc.inference.run_clip / "
                        "Propagator): call encode/write/read, not the module")

