"""Dataclasses that cross stage boundaries.

Conventions (shared by the whole package):

* Frames on the numpy side are ``uint8`` RGB arrays of shape ``(T, H, W, 3)``.
* Masks on the numpy side are integer object-id maps of shape ``(T, H, W)`` (0 = background,
  1..K = objects; no 255 after loading: void is mapped to background by the sources).
* Frames on the torch side are ``float32`` tensors ``(B, T, 3, H, W)`` normalised with ImageNet
  mean/std; masks are ``int64`` tensors ``(B, T, 1, H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

CompressionMode = Literal["clip", "sequence"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class OperatingPoint:
    """One point of a rate ladder.

    Attributes:
        codec: Codec name: ``"none"``, ``"x265"`` or ``"vvenc"``.
        q: Quality parameter (x265 CRF or QP, VVenC QP); ``None`` for ``"none"``.
    """

    codec: str
    q: int | None = None

    @staticmethod
    def parse_q(q: Any) -> list[int]:
        """Every spelling of quality parameters, for training and ladders alike.

        ``None``/``""``/``"null"`` → ``[]``; ``37`` or ``"37"`` → ``[37]``; ``"30-40"`` → ``30..40``;
        ``{"low": 30, "high": 40}`` → ``30..40``; a list → each item parsed, concatenated.

        Raises:
            ValueError: An unparseable spelling, or an empty range (``"47-27"``), naming it.
        """
        if q is None or (isinstance(q, str) and q.strip() in ("", "null")):
            return []
        if isinstance(q, bool):
            raise ValueError(f"cannot parse q={q!r}; use an integer, 'lo-hi', a list or {{low, high}}")
        if isinstance(q, (int, float, np.integer)):
            return [int(q)]
        try:
            if isinstance(q, str):
                lo_text, sep, hi_text = q.strip().partition("-")
                lo, hi = int(lo_text), int(hi_text if sep else lo_text)
            elif hasattr(q, "keys"):
                lo, hi = int(q["low"]), int(q["high"])
            else:
                return [v for item in q for v in OperatingPoint.parse_q(item)]
        except (TypeError, ValueError, KeyError):
            msg = f"cannot parse q={q!r}; use an integer, 'lo-hi', a list or {{low, high}}"
            raise ValueError(msg) from None
        if lo > hi:
            raise ValueError(f"q={q!r} is an empty range ({lo} > {hi}); write '{hi}-{lo}'")
        return list(range(lo, hi + 1))

    @staticmethod
    def split(entry: Any) -> tuple[str, Any]:
        """``(codec, q spelling)`` of a ladder entry: ``"x265:42"``, ``"none"``,
        ``{"codec": "x265", "q": 42}`` or ``["x265", 42]``.

        Raises:
            ValueError: Any other shape.
        """
        if isinstance(entry, str):
            name, _, q_text = entry.partition(":")
            return name.strip(), q_text or None
        if hasattr(entry, "keys"):
            return str(entry.get("codec")).strip(), entry.get("q")
        if isinstance(entry, (list, tuple)) or (hasattr(entry, "__len__") and hasattr(entry, "__getitem__")):
            if len(entry) == 2:
                return str(entry[0]).strip(), entry[1]
        raise ValueError(f"cannot parse {entry!r}; use 'codec:q', 'none' or {{codec, q}}")

    @property
    def tag(self) -> str:
        """Short, filesystem-safe name, e.g. ``x265_q37`` or ``none``."""
        return self.codec if self.q is None else f"{self.codec}_q{self.q}"


@dataclass
class EncodedClip:
    """The result of compressing and decoding a clip.

    Attributes:
        frames: Decoded frames ``(T, H, W, 3)`` uint8, same shape and order as the input.
        bits: Exact size of the bitstream in bits (``8 * len(bitstream)``); 0 for ``none``.
        codec: Codec name.
        q: Quality parameter used.
        encode_seconds: CPU/wall seconds spent encoding (0 on a cache hit).
        decode_seconds: Seconds spent decoding.
        frame_qps: Per-frame QP reported by the encoder/decoder when known, else ``None``.
        frame_types: Per-frame picture type (``"I"``, ``"P"``, ``"B"``) when known, else ``None``.
        bitstream: The Annex-B bitstream, when kept.
        cache_hit: Whether the bitstream came from the on-disk cache.
    """

    frames: np.ndarray
    bits: int
    codec: str
    q: int | None
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    frame_qps: list[float] | None = None
    frame_types: list[str] | None = None
    bitstream: bytes | None = None
    cache_hit: bool = False

    @property
    def num_pixels(self) -> int:
        """``T * H * W`` of the decoded clip."""
        t, h, w = self.frames.shape[:3]
        return int(t * h * w)

    @property
    def bpp(self) -> float:
        """Bits per pixel, ``bits / (T * H * W)``."""
        return self.bits / max(self.num_pixels, 1)


@dataclass
class Clip:
    """A sampled clip before tensor conversion.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB (decoded when a codec was applied).
        masks: ``(T, H, W)`` uint8/int64 object ids.
        sequence: Source sequence name.
        frame_ids: Frame names (e.g. ``"00012"``), length ``T``.
        num_objects: Number of objects ``K`` (ids are ``1..K`` after relabelling).
        raw_frames: Uncompressed frames ``(T, H, W, 3)`` when kept (enhancer targets), else ``None``.
        codec: Codec name applied.
        q: Quality parameter applied.
        bits: Bits attributed to the clip (clip mode: the clip's bitstream; sequence mode: the
            clip's frames' share of the sequence bitstream).
        frame_qps: Per-frame QPs when known.
        frame_types: Per-frame picture types when known.
    """

    frames: np.ndarray
    masks: np.ndarray
    sequence: str
    frame_ids: list[str]
    num_objects: int
    raw_frames: np.ndarray | None = None
    codec: str = "none"
    q: int | None = None
    bits: int = 0
    frame_qps: list[float] | None = None
    frame_types: list[str] | None = None


@dataclass
class VOSBatch:
    """A collated training/validation batch.

    Attributes:
        frames: ``(B, T, 3, H, W)`` float32, ImageNet-normalised (decoded frames).
        masks: ``(B, T, 1, H, W)`` int64 object ids.
        num_objects: ``(B,)`` int64 objects per clip.
        codec: Codec name per clip, length ``B``.
        q: ``(B,)`` int64 quality parameter per clip (-1 for ``none``).
        bits: ``(B,)`` int64 bits per clip.
        sequences: Sequence name per clip, length ``B``.
        raw_frames: ``(B, T, 3, H, W)`` float32 uncompressed frames in ``[0, 1]`` when kept.
        frame_qps: ``(B, T)`` float32 per-frame QP (nominal when the codec reports none).
        frame_types: ``(B, T)`` int64 (0 = I, 1 = P, 2 = B, -1 = unknown).
    """

    frames: torch.Tensor
    masks: torch.Tensor
    num_objects: torch.Tensor
    codec: list[str]
    q: torch.Tensor
    bits: torch.Tensor
    sequences: list[str]
    raw_frames: torch.Tensor | None = None
    frame_qps: torch.Tensor | None = None
    frame_types: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.frames.shape[0])

    @property
    def num_frames(self) -> int:
        """``T``."""
        return int(self.frames.shape[1])

    def to(self, device: torch.device | str) -> VOSBatch:
        """Move every tensor to ``device`` (Lightning calls this through ``transfer_batch_to_device``)."""

        def mv(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device, non_blocking=True)

        def req(x: torch.Tensor) -> torch.Tensor:
            return x.to(device, non_blocking=True)

        return replace(
            self,
            frames=req(self.frames),
            masks=req(self.masks),
            num_objects=req(self.num_objects),
            q=req(self.q),
            bits=req(self.bits),
            raw_frames=mv(self.raw_frames),
            frame_qps=mv(self.frame_qps),
            frame_types=mv(self.frame_types),
            extras={k: v.to(device) for k, v in self.extras.items()},
        )

    @property
    def bpp(self) -> torch.Tensor:
        """``(B,)`` bits per pixel of each clip.

        Uses ``extras["coded_pixels"]`` (the pixels the bits were spent on: the native-resolution
        frames in ``sequence`` mode) when present, else ``T * H * W`` of the batch's frames.
        """
        coded = self.extras.get("coded_pixels")
        if coded is not None:
            return self.bits.float() / coded.float().clamp_min(1)
        _, t, _, h, w = self.frames.shape
        return self.bits.float() / float(t * h * w)
