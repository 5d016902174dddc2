"""Frame-level helpers of an evaluation sweep: chunked enhancement, the smoke-test downscale, PSNR-Y per frame
(used by :mod:`vosc.evaluation.sweep` and :mod:`vosc.evaluation.side_info`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vosc.metrics.rate import psnr_y_frames
from vosc.models.enhancer.base import FRAME_TYPES, Enhancer
from vosc.types import OperatingPoint

__all__ = ["EnhancerSpec", "downscaled_size", "enhance_frames", "frame_psnr"]


@dataclass
class EnhancerSpec:
    """An enhancer and how to identify it.

    Attributes:
        module: The enhancer (eval mode).
        name: Display name (curve label suffix), e.g. ``cae_tiny``.
        fingerprint: Hash of its weights/config (resume check and provenance).
        chunk: Frames enhanced per forward pass (each chunk also sees the two frames before it).
    """

    module: Enhancer
    name: str
    fingerprint: str
    chunk: int = 8


def enhance_frames(
    spec: EnhancerSpec,
    frames: np.ndarray,
    op: OperatingPoint,
    frame_qps: Sequence[float] | None,
    frame_types: Sequence[str] | None,
    device: torch.device,
) -> np.ndarray:
    """Enhance a decoded sequence chunk by chunk (each chunk sees its two previous frames).

    Args:
        spec: The enhancer.
        frames: ``(T, H, W, 3)`` uint8 decoded RGB.
        op: Operating point (conditioning: codec and nominal ``q``).
        frame_qps: Per-frame QPs (the encoder's, else the decoder's) (length ``T``) or ``None``.
        frame_types: Per-frame picture types (``"I"``, ``"P"``, ``"B"``) or ``None``.
        device: Where the enhancer runs.

    Returns:
        ``(T, H, W, 3)`` uint8 enhanced frames (clamped and rounded).
    """
    t_total = frames.shape[0]
    qps = (
        torch.tensor([-1.0 if v is None else float(v) for v in frame_qps], dtype=torch.float32)
        if frame_qps is not None
        else None
    )
    types = (
        torch.tensor([FRAME_TYPES.index(v) if v in FRAME_TYPES else -1 for v in frame_types])
        if frame_types is not None
        else None
    )
    q = torch.tensor([-1 if op.q is None else op.q])
    out = np.empty_like(frames)
    with torch.no_grad():
        for start in range(0, t_total, spec.chunk):
            end = min(start + spec.chunk, t_total)
            lo = max(0, start - 2)
            clip = torch.from_numpy(frames[lo:end]).to(device).permute(0, 3, 1, 2).float().div(255.0)[None]
            cond_q = None if qps is None else qps[lo:end][None].to(device)
            cond_t = None if types is None else types[lo:end][None].to(device)
            enhanced = spec.module(clip, [op.codec], q.to(device), cond_q, cond_t)[0, start - lo :]
            out[start:end] = (enhanced.clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return out


def _downscale(frames: np.ndarray, masks: np.ndarray, long_edge: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``(T, H, W, 3)`` frames (area) and ``(T, H, W)`` masks (nearest) to a long edge
    <= ``long_edge``."""
    import cv2

    size = downscaled_size(frames.shape[1:3], long_edge)
    if size is None:
        return frames, masks
    small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    small_masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in masks])
    return small, small_masks


def downscaled_size(hw: tuple[int, int], long_edge: int) -> tuple[int, int] | None:
    """cv2 ``(W, H)`` of a frame of ``hw`` at a long edge of ``long_edge`` (``None``: no change)."""
    h, w = hw
    scale = long_edge / max(h, w)
    if scale >= 1.0:
        return None
    return max(2, round(w * scale)), max(2, round(h * scale))


def frame_psnr(reference: np.ndarray, distorted: np.ndarray) -> list[float]:
    """Per-frame PSNR-Y (dB) of ``(T, H, W, 3)`` uint8 clips."""
    return psnr_y_frames(reference, distorted).tolist()
