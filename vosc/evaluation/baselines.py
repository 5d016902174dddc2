"""Reference baselines that need no model: what a method must clearly beat to show that it tracks.

``copy_first_mask`` predicts the first annotated mask for every frame (a static object). Its J&F on a
set is the floor of the reference recipes' tests and is reported beside trained models.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vosc.data.palette import read_mask
from vosc.data.sources.base import VideoRecord, VideoSource
from vosc.metrics.jf import JFResult, aggregate, evaluate_sequence

__all__ = ["copy_first_mask", "copy_first_mask_jf"]


def copy_first_mask(gts: np.ndarray) -> np.ndarray:
    """The copy-first-mask prediction.

    Args:
        gts: ``(T, H, W)`` ground-truth ids.

    Returns:
        ``(T, H, W)``: ``gts[0]`` repeated.
    """
    return np.repeat(gts[:1], len(gts), axis=0)


def _ground_truth(video: VideoRecord, max_frames: int | None) -> np.ndarray:
    ids = video.frame_ids[:max_frames] if max_frames else video.frame_ids
    missing = [f for f in ids if f not in video.mask_paths]
    if missing:
        raise ValueError(
            f"{video.name}: frames {missing[:5]} have no ground-truth mask; J&F needs every frame"
        )
    return np.stack([read_mask(video.mask_paths[f]) for f in ids])


def copy_first_mask_jf(
    source: VideoSource | Iterable[VideoRecord], max_frames: int | None = None
) -> JFResult:
    """DAVIS J&F (first and last frame excluded, as always) of copy-first-mask over a source.

    Args:
        source: Fully annotated videos.
        max_frames: Use only the first ``max_frames`` frames of each video (``None``: all).

    Returns:
        The aggregated result (fractions).
    """
    videos = source.videos if isinstance(source, VideoSource) else list(source)
    seqs = []
    for v in videos:
        gts = _ground_truth(v, max_frames)
        seqs.append(
            evaluate_sequence(gts, copy_first_mask(gts), sequence=v.name, num_objects=int(gts[0].max()))
        )
    return aggregate(seqs)
