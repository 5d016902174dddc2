"""Enhancer interface, conditioning encoding and the ImageNet-normalisation helpers.

Every enhancer works on decoded clips of shape ``(B, T, 3, H, W)``:

* :meth:`Enhancer.forward` takes RGB frames in ``[0, 1]`` (i.e. *before* ImageNet normalisation) and
  returns enhanced frames in the same space (not clamped: clamp for display / PSNR).
* :meth:`Enhancer.enhance` takes ImageNet-normalised frames (what :class:`vosc.types.VOSBatch` and the
  VOS model use) and returns ImageNet-normalised enhanced frames. It adds the residual predicted in
  ``[0, 1]`` space divided by the ImageNet std, so an enhancer whose residual is exactly zero (the
  identity, or :class:`~vosc.models.enhancer.cae.CompressionAwareEnhancer` at initialisation) returns
  its input bit-for-bit in both spaces.

Conditioning arguments (shared by all enhancers):

* ``codec``: a sequence of codec names (``"none"``, ``"x265"``, ``"vvenc"``) of length ``B``, or an
  int64 tensor ``(B,)`` of indices into :data:`CODECS`.
* ``q``: ``(B,)`` nominal quality parameter (x265 CRF / QP, VVenC QP), ``-1`` when unknown or ``none``.
* ``frame_qps``: optional ``(B, T)`` float per-frame QP reported by the codec; entries ``< 0`` or NaN
  fall back to ``q``; when ``q`` is also ``< 0`` the QP is "unknown" (a learned embedding).
* ``frame_types``: optional ``(B, T)`` int64 picture types (0 = I, 1 = P, 2 = B, -1 = unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vosc.types import IMAGENET_MEAN, IMAGENET_STD, VOSBatch

#: Codec vocabulary of the codec embedding (index = position).
CODECS: tuple[str, ...] = ("none", "x265", "vvenc")
#: Picture types; ``-1`` (unknown) maps to index ``len(FRAME_TYPES)``.
FRAME_TYPES: tuple[str, ...] = ("I", "P", "B")
#: Upper end of the QP scale used to normalise QPs (HEVC/VVC: 0..51, VVC 10-bit: up to 63).
QP_MAX: float = 63.0

CodecArg = Sequence[str] | Tensor


def _stats(ref: Tensor) -> tuple[Tensor, Tensor]:
    shape = (1,) * (ref.dim() - 3) + (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=ref.dtype, device=ref.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=ref.dtype, device=ref.device).view(shape)
    return mean, std


def imagenet_normalize(frames01: Tensor) -> Tensor:
    """``[0, 1]`` RGB ``(..., 3, H, W)`` → ImageNet-normalised ``(..., 3, H, W)``."""
    mean, std = _stats(frames01)
    return (frames01 - mean) / std


def imagenet_denormalize(frames_norm: Tensor) -> Tensor:
    """ImageNet-normalised ``(..., 3, H, W)`` → ``[0, 1]`` RGB ``(..., 3, H, W)`` (not clamped)."""
    mean, std = _stats(frames_norm)
    return frames_norm * std + mean


def codec_indices(codec: CodecArg, batch: int, device: torch.device) -> Tensor:
    """Codec names or indices → int64 ``(B,)`` indices into :data:`CODECS`.

    Raises:
        ValueError: unknown codec name, out-of-range index, or length different from ``batch``.
    """
    if isinstance(codec, Tensor):
        idx = codec.to(device=device, dtype=torch.long).reshape(-1)
    else:
        names = [codec] if isinstance(codec, str) else list(codec)
        bad = [c for c in names if c not in CODECS]
        if bad:
            raise ValueError(f"enhancer: unknown codec name(s) {bad}; expected one of {CODECS}")
        idx = torch.tensor([CODECS.index(c) for c in names], dtype=torch.long, device=device)
    if idx.numel() != batch:
        raise ValueError(f"enhancer: got {idx.numel()} codec entries for a batch of {batch} clips")
    if bool(((idx < 0) | (idx >= len(CODECS))).any()):
        raise ValueError(f"enhancer: codec index out of range [0, {len(CODECS) - 1}]: {idx.tolist()}")
    return idx


def resolve_qps(q: Tensor | None, frame_qps: Tensor | None, batch: int, frames: int,
                device: torch.device) -> Tensor:
    """Per-frame QP ``(B, T)`` float: ``frame_qps`` where valid, else nominal ``q``, else ``-1`` (unknown).

    Raises:
        ValueError: ``q`` or ``frame_qps`` has the wrong shape.
    """
    out = torch.full((batch, frames), -1.0, device=device)
    if q is not None:
        qv = torch.as_tensor(q, device=device, dtype=torch.float32).reshape(-1)
        if qv.numel() == 1:
            qv = qv.expand(batch)
        if qv.numel() != batch:
            raise ValueError(f"enhancer: q has {qv.numel()} entries for a batch of {batch} clips")
        out = qv[:, None].expand(batch, frames).clone()
    if frame_qps is not None:
        fq = torch.as_tensor(frame_qps, device=device, dtype=torch.float32)
        if tuple(fq.shape) != (batch, frames):
            raise ValueError(f"enhancer: frame_qps shape {tuple(fq.shape)} != (B, T) = {(batch, frames)}")
        valid = torch.isfinite(fq) & (fq >= 0)
        out = torch.where(valid, fq, out)
    return torch.where(torch.isfinite(out) & (out >= 0), out, torch.full_like(out, -1.0))


def resolve_types(frame_types: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
    """Picture types ``(B, T)`` int64 → embedding indices (unknown / ``-1`` → ``len(FRAME_TYPES)``).

    Raises:
        ValueError: wrong shape or a type id outside ``-1..2``.
    """
    unknown = len(FRAME_TYPES)
    if frame_types is None:
        return torch.full((batch, frames), unknown, dtype=torch.long, device=device)
    ft = torch.as_tensor(frame_types, device=device).long()
    if tuple(ft.shape) != (batch, frames):
        raise ValueError(f"enhancer: frame_types shape {tuple(ft.shape)} != (B, T) = {(batch, frames)}")
    if bool(((ft < -1) | (ft >= unknown)).any()):
        raise ValueError(f"enhancer: frame type ids must be in -1..{unknown - 1}, got {ft.unique().tolist()}")
    return torch.where(ft < 0, torch.full_like(ft, unknown), ft)


class Enhancer(nn.Module):
    """Base class: subclasses implement :meth:`residual` (the correction in ``[0, 1]`` space)."""

    def residual(self, frames01: Tensor, codec: CodecArg, q: Tensor | None = None,
                 frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Correction to add to ``frames01``.

        Args:
            frames01: ``(B, T, 3, H, W)`` decoded RGB in ``[0, 1]``.
            codec, q, frame_qps, frame_types: Conditioning (see the module docstring).

        Returns:
            ``(B, T, 3, H, W)`` residual in ``[0, 1]`` units.
        """
        raise NotImplementedError

    @staticmethod
    def _check_clip(frames: Tensor) -> None:
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"enhancer: expected frames (B, T, 3, H, W), got {tuple(frames.shape)}")

    def forward(self, frames01: Tensor, codec: CodecArg, q: Tensor | None = None,
                frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Enhance a clip in ``[0, 1]`` space.

        Args:
            frames01: ``(B, T, 3, H, W)`` decoded RGB in ``[0, 1]``.
            codec, q, frame_qps, frame_types: Conditioning (see the module docstring).

        Returns:
            ``(B, T, 3, H, W)`` enhanced RGB (``[0, 1]`` scale, not clamped).
        """
        self._check_clip(frames01)
        return frames01 + self.residual(frames01, codec, q, frame_qps, frame_types)

    def enhance(self, frames_norm: Tensor, codec: CodecArg, q: Tensor | None = None,
                frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Enhance an ImageNet-normalised clip (the VOS model's input space).

        Args:
            frames_norm: ``(B, T, 3, H, W)`` ImageNet-normalised decoded frames.
            codec, q, frame_qps, frame_types: Conditioning (see the module docstring).

        Returns:
            ``(B, T, 3, H, W)`` ImageNet-normalised enhanced frames; equal to the input bit-for-bit
            when the residual is zero.
        """
        self._check_clip(frames_norm)
        delta = self.residual(imagenet_denormalize(frames_norm), codec, q, frame_qps, frame_types)
        _, std = _stats(frames_norm)
        return frames_norm + delta / std


class IdentityEnhancer(Enhancer):
    """The "enhancer off" baseline: returns its input unchanged (no parameters)."""

    def residual(self, frames01: Tensor, codec: CodecArg, q: Tensor | None = None,
                 frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Zero residual ``(B, T, 3, H, W)``."""
        self._check_clip(frames01)
        return torch.zeros_like(frames01)

    def forward(self, frames01: Tensor, codec: CodecArg, q: Tensor | None = None,
                frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Return ``frames01`` ``(B, T, 3, H, W)`` itself."""
        self._check_clip(frames01)
        return frames01

    def enhance(self, frames_norm: Tensor, codec: CodecArg, q: Tensor | None = None,
                frame_qps: Tensor | None = None, frame_types: Tensor | None = None) -> Tensor:
        """Return ``frames_norm`` ``(B, T, 3, H, W)`` itself."""
        self._check_clip(frames_norm)
        return frames_norm


def enhance_batch(enhancer: Enhancer, batch: VOSBatch) -> Tensor:
    """Enhanced ImageNet-normalised frames ``(B, T, 3, H, W)`` of a :class:`vosc.types.VOSBatch`.

    The call the VOS module makes before its propagator (stage 3, evaluation with the enhancer on):
    ``enhancer.enhance(batch.frames, batch.codec, batch.q, batch.frame_qps, batch.frame_types)``.
    """
    return enhancer.enhance(batch.frames, batch.codec, batch.q, batch.frame_qps, batch.frame_types)
