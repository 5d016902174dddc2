"""Clip sampling rules and frame-consistent augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosc.data.errors import SamplingError
from vosc.data.palette import write_frame, write_mask
from vosc.data.sampling import ClipSampler, draw_gaps, relabel_objects
from vosc.data.sources.davis import DavisSource
from vosc.data.transforms import ClipAugment, StaticClipSynthesizer


def test_draw_gaps_ranges_and_short_videos() -> None:
    rng = np.random.default_rng(0)
    gaps = np.stack([draw_gaps(rng, 5, 3, 1000) for _ in range(500)])
    assert gaps.min() == 1 and gaps.max() == 3 and set(np.unique(gaps)) == {1, 2, 3}
    gaps12 = np.stack([draw_gaps(rng, 5, 12, 1000) for _ in range(500)])
    assert gaps12.max() == 12 and gaps12.min() == 1
    assert all(draw_gaps(rng, 5, 12, 20).sum() <= 19 for _ in range(100))
    np.testing.assert_array_equal(draw_gaps(rng, 5, 3, 3), [1, 1, 0, 0])


def test_reversal_and_reference_first(synthetic_davis: Path) -> None:
    src = DavisSource(synthetic_davis, split="train")
    sampler = ClipSampler(num_frames=3, max_gap=2, min_ref_pixels=10, reverse_prob=0.5)
    rng = np.random.default_rng(1)
    directions = set()
    for _ in range(40):
        clip = sampler.sample(src, src.videos[0], rng)
        d = np.diff(clip.indices)
        assert (np.abs(d) >= 1).all() and (np.abs(d) <= 2).all()
        assert (d > 0).all() or (d < 0).all()
        directions.add(bool(d[0] > 0))
        assert clip.masks.shape == (3, 96, 160)
    assert directions == {True, False}
    never = ClipSampler(num_frames=3, reverse_prob=0.0)
    assert all(np.diff(never.sample(src, src.videos[0], rng).indices).min() > 0 for _ in range(10))


def _video_with_entering_object(root: Path) -> DavisSource:
    """Frames 0-4: object 1 only; frames 5-9: objects 1 and 2 (object 2 enters late)."""
    for t in range(10):
        mask = np.zeros((40, 60), np.uint8)
        mask[5:25, 5:25] = 1
        if t >= 5:
            mask[20:35, 40:55] = 2
        write_frame(root / "JPEGImages" / "480p" / "v" / f"{t:05d}.jpg", np.full((40, 60, 3), 100, np.uint8))
        write_mask(root / "Annotations" / "480p" / "v" / f"{t:05d}.png", mask)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("v\n")
    return DavisSource(root, split="train")


def test_redraw_when_later_frame_has_new_object(tmp_path: Path) -> None:
    src = _video_with_entering_object(tmp_path)
    sampler = ClipSampler(num_frames=3, max_gap=3, min_ref_pixels=200, reverse_prob=0.5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        clip = sampler.sample(src, src.videos[0], rng)
        ref_ids = set(np.unique(clip.masks[0]))
        assert set(np.unique(clip.masks)) <= ref_ids
    # no frame has more than 700 foreground pixels (400 + 225 at most)
    with pytest.raises(SamplingError, match="no reference frame"):
        ClipSampler(num_frames=3, min_ref_pixels=700, max_tries=5).sample(src, src.videos[0], rng)


def test_relabel_keeps_reference_objects_at_most_k() -> None:
    masks = np.zeros((2, 4, 20), np.uint8)
    masks[0, 0, :15] = np.arange(3, 18)  # 15 objects with ids 3..17
    masks[1, 1, 0] = 200  # absent from the reference
    masks[1, 2, :5] = np.arange(3, 8)
    out, k = relabel_objects(masks, np.random.default_rng(0), max_objects=10)
    assert k == 10 and set(np.unique(out)) == set(range(11))
    assert out[1, 1, 0] == 0
    out2, k2 = relabel_objects(masks[:, :, :5], np.random.default_rng(0), max_objects=10)
    assert k2 == 5 and out2[0, 0, :5].tolist() == [1, 2, 3, 4, 5]


def test_augmentation_moves_a_marker_identically_across_frames() -> None:
    """A marker painted at the same place in every frame ends up at the same place in every output."""
    rng = np.random.default_rng(0)
    t, h, w = 4, 120, 200
    frames = rng.integers(0, 255, size=(t, h, w, 3), dtype=np.uint8)  # different noise in every frame
    frames[..., 0] //= 2  # no noise pixel looks like the red marker
    masks = np.zeros((t, h, w), np.uint8)
    masks[:, 40:80, 60:120] = 1
    masks[:, 50:60, 70:90] = 7
    frames[:, 45:55, 100:110] = (255, 0, 0)
    aug = ClipAugment(crop_size=(64, 64), short_edge=96, scale_range=(0.7, 1.3), flip_prob=0.5,
                      min_object_pixels=20)
    flips, seen = set(), 0
    for _ in range(20):
        params = aug.sample_params(rng, (h, w), masks[0])
        out, out_m = aug.apply(params, frames, masks)
        assert out.shape == (t, 64, 64, 3) and out_m is not None and out_m.shape == (t, 64, 64)
        assert out_m.dtype == np.uint8 and set(np.unique(out_m)) <= {0, 1, 7}  # ids, no interpolation
        red0 = np.argwhere((out[0, ..., 0] > 200) & (out[0, ..., 1] < 60))
        for k in range(1, t):
            np.testing.assert_array_equal(out_m[k], out_m[0])
            red = np.argwhere((out[k, ..., 0] > 200) & (out[k, ..., 1] < 60))
            assert abs(len(red) - len(red0)) <= max(3, 0.2 * len(red0))
            if len(red0):
                seen += 1
                np.testing.assert_allclose(red.mean(0), red0.mean(0), atol=0.75)  # same place, < 1 px
        assert np.bincount(out_m[0].ravel())[1:].max() > 20  # balanced crop keeps an object
        flips.add(params.flip)
    assert flips == {True, False} and seen > 10
    scales = {aug.sample_params(rng, (h, w), masks[0]).resized[0] for _ in range(30)}
    assert (min(scales) < 96 < max(scales) and min(scales) >= round(96 * 0.7)
            and max(scales) <= round(96 * 1.3))


def test_small_frames_are_padded_to_crop() -> None:
    aug = ClipAugment(crop_size=(465, 465), short_edge=None, scale_range=(1.0, 1.0))
    frames = np.full((2, 50, 80, 3), 128, np.uint8)
    masks = np.ones((2, 50, 80), np.uint8)
    params = aug.sample_params(np.random.default_rng(0), (50, 80), masks[0])
    out, out_m = aug.apply(params, frames, masks)
    assert out.shape == (2, 465, 465, 3) and out_m is not None and out_m.sum() == 2 * 50 * 80


def test_static_synthesis_varies_per_frame_and_keeps_ids() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 10:40], mask[40:60, 35:60] = 2, 5
    syn = StaticClipSynthesizer(num_frames=5)
    frames, masks = syn(np.random.default_rng(0), image, mask)
    again, _ = syn(np.random.default_rng(0), image, mask)
    assert frames.shape == (5, 64, 64, 3) and masks.shape == (5, 64, 64)
    np.testing.assert_array_equal(frames, again)
    assert set(np.unique(masks)) <= {0, 2, 5}
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(frames[1], frames[2])
