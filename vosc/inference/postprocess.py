"""Input resizing and output restoration for per-video inference.

The network sees frames whose sides are ``16k + 1`` (``align_corners=True``, the convolutional
models) or ``16k`` (``align_corners=False``, Swin), with the long edge capped (1040 by default) and an
optional test-time scale. Frames are resized with bicubic interpolation on float values (no clipping),
masks with nearest-neighbour sampling; logits are brought back to the original size with bilinear
interpolation (same ``align_corners`` as the network) before the softmax.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vosc.types import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

__all__ = [
    "network_size",
    "prepare_frame",
    "resize_mask",
    "restore_logits",
    "to_numpy_frame",
    "to_numpy_mask",
]


def _snap(side: float, stride: int, align_corners: bool) -> int:
    """Round a side length to the nearest ``stride * k + 1`` (or ``stride * k``), half to even."""
    side_i = int(side)
    if align_corners:
        if (side_i - 1) % stride != 0:
            side_i = int(np.around((side_i - 1) / stride) * stride + 1)
    elif side_i % stride != 0:
        side_i = int(np.around(side_i / stride) * stride)
    return max(side_i, stride + 1 if align_corners else stride)


def network_size(
    height: int,
    width: int,
    max_long_edge: int | None = 1040,
    max_short_edge: int | None = None,
    scale: float = 1.0,
    stride: int = 16,
    align_corners: bool = True,
) -> tuple[int, int]:
    """Size ``(h, w)`` at which the network sees a ``height x width`` frame.

    The short edge is capped first, then the long edge, then the test-time ``scale`` is applied
    (truncating to integers), and finally each side is rounded to the nearest ``stride * k + 1``
    (``align_corners=True``) or ``stride * k`` (``align_corners=False``).

    Args:
        height: Original frame height.
        width: Original frame width.
        max_long_edge: Cap on the long edge before scaling; ``None`` for no cap.
        max_short_edge: Cap on the short edge before scaling; ``None`` for no cap.
        scale: Test-time scale factor.
        stride: Output stride of the encoder (16).
        align_corners: Whether the network uses ``align_corners=True`` (sides ``16k + 1``).

    Returns:
        ``(h, w)`` network input size.

    Raises:
        ValueError: Non-positive sizes or scale.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if scale <= 0:
        raise ValueError(f"test-time scale must be positive, got {scale}")
    h, w = float(height), float(width)
    if max_short_edge is not None and min(h, w) > max_short_edge:
        sc = float(max_short_edge) / min(h, w)
        h, w = h * sc, w * sc
    if max_long_edge is not None and max(h, w) > max_long_edge:
        sc = float(max_long_edge) / max(h, w)
        h, w = h * sc, w * sc
    h, w = int(h * scale), int(w * scale)
    return _snap(h, stride, align_corners), _snap(w, stride, align_corners)


def to_numpy_frame(frame: np.ndarray | torch.Tensor, index: int) -> np.ndarray:
    """Validate a frame and return it as a numpy ``(H, W, 3)`` array.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB array or tensor.
        index: Frame index, used in error messages.

    Returns:
        ``(H, W, 3)`` uint8 array.

    Raises:
        ValueError: Wrong shape or dtype.
    """
    arr = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"frame {index}: expected an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected dtype uint8, got {arr.dtype}")
    return arr


def to_numpy_mask(mask: np.ndarray | torch.Tensor, index: int, size: tuple[int, int]) -> np.ndarray:
    """Validate a first-appearance mask and return it as an int64 ``(H, W)`` array.

    Args:
        mask: ``(H, W)`` (or ``(1, H, W)``) integer object-id map.
        index: Frame index, used in error messages.
        size: Expected ``(H, W)`` (the frame's size).

    Returns:
        ``(H, W)`` int64 array.

    Raises:
        ValueError: Wrong shape, non-integer dtype, negative ids or ids above 255.
    """
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != tuple(size):
        raise ValueError(
            f"mask of frame {index}: shape {arr.shape} does not match the frame size {tuple(size)}"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"mask of frame {index}: expected integer object ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(
            f"mask of frame {index}: object ids must lie in 0..255, got {arr.min()}..{arr.max()}"
        )
    return arr


def prepare_frame(
    frame: np.ndarray,
    size: tuple[int, int],
    flip: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Resize (bicubic on float values), normalise and optionally flip a frame.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        size: Network size ``(h, w)``.
        flip: Mirror horizontally (after resizing).
        device: Target device.

    Returns:
        ``(1, 3, h, w)`` float32, ImageNet-normalised.
    """
    img = frame.astype(np.float32)
    h, w = size
    if img.shape[:2] != (h, w):
        img = np.asarray(cv2.resize(img, dsize=(w, h), interpolation=cv2.INTER_CUBIC), dtype=np.float32)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    img = (img / 255.0 - mean) / std
    out = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0).to(device)
    return out.flip(-1) if flip else out


def resize_mask(
    mask: torch.Tensor,
    size: tuple[int, int],
    flip: bool = False,
) -> torch.Tensor:
    """Nearest-neighbour resize of an id map to the network size (as the reference, ``mode="nearest"``).

    Args:
        mask: ``(H, W)`` or ``(1, 1, H, W)`` integer ids.
        size: Network size ``(h, w)``.
        flip: Mirror horizontally (after resizing).

    Returns:
        ``(1, 1, h, w)`` int64 ids.
    """
    m = mask.reshape(1, 1, *mask.shape[-2:]).float()
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="nearest")
    m = m.long()
    return m.flip(-1) if flip else m


def restore_logits(
    logits: torch.Tensor,
    size: tuple[int, int],
    flip: bool = False,
    align_corners: bool = True,
) -> torch.Tensor:
    """Undo the flip of a test-time augmentation and resize logits to the original frame size.

    Args:
        logits: ``(1, C, h, w)`` logits at network (or 1/4) resolution.
        size: Original ``(H, W)``.
        flip: Whether the logits come from a horizontally flipped input.
        align_corners: ``align_corners`` of the bilinear interpolation (as the network).

    Returns:
        ``(1, C, H, W)`` logits.
    """
    if flip:
        logits = logits.flip(-1)
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)
    return logits
