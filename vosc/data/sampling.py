"""Clip sampling from annotated videos, as the reference training recipe does (DESIGN §4).

A clip is ``T`` annotated frames (default 5): the first is the reference frame, the others follow it
with random gaps ``U{1..max_gap}`` (counted in annotated frames: U{1..3} for YouTube-VOS, whose
annotations are every 5th frame, U{1..12} for DAVIS). With probability ``reverse_prob`` the video is
read backwards. A draw is rejected and re-drawn when the reference frame has ≤ ``min_ref_pixels``
foreground pixels or when a later frame holds an object absent from the reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vosc.data.errors import SamplingError
from vosc.data.sources.base import VideoRecord, VideoSource

log = logging.getLogger(__name__)


def draw_gaps(rng: np.random.Generator, num_frames: int, max_gap: int, available: int) -> np.ndarray:
    """Gaps between consecutive clip frames.

    Args:
        rng: Random generator.
        num_frames: Clip length ``T``.
        max_gap: Largest gap (gaps are drawn from ``U{1..max_gap}``).
        available: Number of annotated frames ``N`` of the video.

    Returns:
        ``(T - 1,)`` int gaps whose sum is ≤ ``N - 1``: large draws are shortened (largest first) to
        fit; videos shorter than ``T`` repeat their last frame (gap 0).
    """
    if num_frames <= 1:
        return np.zeros(0, dtype=np.int64)
    gaps = rng.integers(1, max(1, max_gap) + 1, size=num_frames - 1)
    budget = available - 1
    if budget < num_frames - 1:
        return np.array([1] * budget + [0] * (num_frames - 1 - budget), dtype=np.int64)
    while gaps.sum() > budget:
        gaps[int(np.argmax(gaps))] -= 1
    return gaps.astype(np.int64)


@dataclass
class SampledClip:
    """Frame indices (into the video's frame list) and their masks ``(T, H, W)`` uint8."""

    indices: list[int]
    masks: np.ndarray


class ClipSampler:
    """Draw training clips from a video.

    Args:
        num_frames: Clip length ``T``.
        max_gap: Default largest gap between clip frames (per-dataset override in
            :meth:`sample`).
        min_ref_pixels: The reference frame needs more foreground pixels than this.
        reverse_prob: Probability of reading the video backwards.
        max_tries: Draws before falling back (see :meth:`sample`).
    """

    def __init__(self, num_frames: int = 5, max_gap: int = 12, min_ref_pixels: int = 200,
                 reverse_prob: float = 0.5, max_tries: int = 20) -> None:
        if num_frames < 1 or max_gap < 1 or max_tries < 1:
            raise ValueError("num_frames, max_gap and max_tries must be ≥ 1")
        self.num_frames = num_frames
        self.max_gap = max_gap
        self.min_ref_pixels = min_ref_pixels
        self.reverse_prob = reverse_prob
        self.max_tries = max_tries

    def draw_indices(
        self, rng: np.random.Generator, annotated: list[int], max_gap: int | None = None
    ) -> list[int]:
        """One draw of clip frame indices (reference first) from the annotated frame indices."""
        order = annotated[::-1] if rng.random() < self.reverse_prob else list(annotated)
        gaps = draw_gaps(rng, self.num_frames, max_gap or self.max_gap, len(order))
        start = int(rng.integers(0, len(order) - int(gaps.sum())))
        pos = start + np.concatenate([[0], np.cumsum(gaps)])
        return [order[int(p)] for p in pos]

    def sample(self, source: VideoSource, rec: VideoRecord, rng: np.random.Generator,
               max_gap: int | None = None) -> SampledClip:
        """Draw a valid clip.

        After ``max_tries`` rejected draws, the last draw whose reference has enough foreground is
        kept with the objects absent from its reference erased from the later frames (logged).

        Raises:
            SamplingError: No draw had a reference frame with enough foreground.
        """
        annotated = rec.annotated_indices
        fallback: SampledClip | None = None
        for _ in range(self.max_tries):
            idx = self.draw_indices(rng, annotated, max_gap)
            masks = source.load_masks(rec, idx)
            ref = masks[0]
            if int((ref > 0).sum()) <= self.min_ref_pixels:
                continue
            ref_ids = np.unique(ref)
            if np.isin(masks[1:], ref_ids).all():
                return SampledClip(idx, masks)
            fallback = SampledClip(idx, masks)
        if fallback is None:
            raise SamplingError(rec.frame_paths[0].parent, f"no reference frame with > {self.min_ref_pixels} "
                                f"foreground pixels found in {self.max_tries} draws for video {rec.name!r}")
        log.debug("video %s: kept a clip after erasing objects absent from its reference", rec.name)
        masks = fallback.masks.copy()
        masks[~np.isin(masks, np.unique(masks[0]))] = 0
        return SampledClip(fallback.indices, masks)


def relabel_objects(
    masks: np.ndarray, rng: np.random.Generator, max_objects: int = 10
) -> tuple[np.ndarray, int]:
    """Keep the objects of the reference frame (at most ``max_objects``, a random subset beyond that),
    erase the others in every frame and renumber the kept ones ``1..K`` (in increasing original id).

    Args:
        masks: ``(T, H, W)`` integer ids; frame 0 is the reference.
        rng: Random generator (used only when there are more than ``max_objects`` objects).
        max_objects: Largest ``K``.

    Returns:
        ``(T, H, W)`` uint8 ids ``0..K`` and ``K``.
    """
    ids = [int(v) for v in np.unique(masks[0]) if v != 0]
    if len(ids) > max_objects:
        ids = sorted(int(v) for v in rng.choice(ids, size=max_objects, replace=False))
    lut = np.zeros(256, dtype=np.uint8)
    for k, oid in enumerate(ids, start=1):
        lut[oid] = k
    return lut[masks.astype(np.uint8)], len(ids)
