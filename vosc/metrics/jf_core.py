"""Per-frame DAVIS measures, numerically identical to the official davis2017-evaluation toolkit:
region similarity J (IoU), boundary F (``seg2bmap`` boundaries matched within a disk tolerance), and the
per-object Mean / Recall / Decay statistics. Sequence-level evaluation lives in :mod:`vosc.metrics.jf`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

#: Boundary tolerance as a fraction of the image diagonal (values >= 1 are pixels), as officially.
BOUND_TH: float = 0.008


# ----------------------------------------------------------------------------------------------------
# Per-frame measures
# ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """Disk structuring element ``x² + y² <= r²``, ``(2r+1, 2r+1)`` uint8 (as ``skimage.morphology.disk``)."""
    grid = np.arange(-radius, radius + 1)
    return (grid[None, :] ** 2 + grid[:, None] ** 2 <= radius**2).astype(np.uint8)


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: ``bound_th`` if >= 1, else ``ceil(bound_th * ||(H, W)||)``."""
    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of binary masks (Martin et al.'s ``seg2bmap``), batched.

    A pixel is on the boundary where it differs from its east, south or south-east neighbour; the last
    row compares only east, the last column only south, and the bottom-right pixel is never boundary.

    Args:
        seg: ``(..., H, W)`` masks (non-zero = foreground).

    Returns:
        ``(..., H, W)`` bool boundary maps.
    """
    seg = np.asarray(seg).astype(bool, copy=False)
    out = np.zeros(seg.shape, dtype=bool)
    core = seg[..., :-1, :-1]
    out[..., :-1, :-1] = (core ^ seg[..., :-1, 1:]) | (core ^ seg[..., 1:, :-1]) | (core ^ seg[..., 1:, 1:])
    out[..., :-1, -1] = seg[..., :-1, -1] ^ seg[..., 1:, -1]
    out[..., -1, :-1] = seg[..., -1, :-1] ^ seg[..., -1, 1:]
    return out


def jaccard(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of a batch of binary masks.

    Args:
        gt: ``(B, H, W)`` bool ground-truth masks (frames of one object, or objects of one frame).
        pred: ``(B, H, W)`` bool predicted masks.

    Returns:
        ``(B,)`` float64 IoU, 1 where both masks are empty.
    """
    inter = np.count_nonzero(gt & pred, axis=(-2, -1)).astype(np.float64)
    union = np.count_nonzero(gt | pred, axis=(-2, -1)).astype(np.float64)
    empty = union == 0
    return np.where(empty, 1.0, inter / np.where(empty, 1.0, union))


def _matched(src: np.ndarray, other: np.ndarray, kernel: np.ndarray) -> tuple[int, int]:
    """Counts of ``src`` pixels near ``other`` and ``other`` pixels near ``src`` on their joint bbox."""
    union = src | other
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = np.ascontiguousarray(src[window]).view(np.uint8)
    b = np.ascontiguousarray(other[window]).view(np.uint8)
    # Dilation is local and every set pixel lies in the window, so cropping is exact.
    a_near_b = int(np.count_nonzero(a & np.asarray(cv2.dilate(b, kernel), dtype=np.uint8)))
    b_near_a = int(np.count_nonzero(b & np.asarray(cv2.dilate(a, kernel), dtype=np.uint8)))
    return a_near_b, b_near_a


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH, kernel: np.ndarray | None = None
) -> np.ndarray:
    """Boundary F-measure of a batch of binary masks, as the official ``f_measure``.

    Args:
        gt: ``(B, H, W)`` bool ground-truth masks (``B`` frames of one object, or objects of one frame).
        pred: ``(B, H, W)`` bool predicted masks.
        bound_th: Tolerance (fraction of the diagonal if < 1, else pixels); ignored if ``kernel`` is given.
        kernel: Dilation disk; pass it when ``gt``/``pred`` are crops so that the tolerance still follows
            the full frame's diagonal.

    Returns:
        ``(B,)`` float64 F; 1 when both boundaries are empty, 0 when exactly one is.
    """
    if kernel is None:
        kernel = disk(boundary_tolerance(gt.shape[-2], gt.shape[-1], bound_th))
    gt_b, fg_b = seg2bmap(gt), seg2bmap(pred)
    n_gt = np.count_nonzero(gt_b, axis=(-2, -1))
    n_fg = np.count_nonzero(fg_b, axis=(-2, -1))
    out = np.empty(gt.shape[0], dtype=np.float64)
    for t in range(gt.shape[0]):
        if n_gt[t] == 0 or n_fg[t] == 0:
            out[t] = 1.0 if n_gt[t] == n_fg[t] else 0.0
            continue
        fg_match, gt_match = _matched(fg_b[t], gt_b[t], kernel)
        precision = fg_match / float(n_fg[t])
        recall = gt_match / float(n_gt[t])
        out[t] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return out


def frame_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, Recall (share > 0.5) and Decay (first minus last of 4 overlapping bins) of per-frame values.

    Args:
        values: ``(T,)`` per-frame J or F.

    Returns:
        ``(mean, recall, decay)`` as floats (NaN-aware like the official tool).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > 0.5))
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
    first = values[ids[0] : ids[1] + 1]
    last = values[ids[3] : ids[4] + 1]
    decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay
