"""The compressed-clip dataset with the real x265 encoder in both modes, and the ``none`` codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosc.codecs import X265Codec
from vosc.data.compressed_dataset import (
    CompressedClipDataset,
    CompressionSpec,
    EvalSequenceDataset,
    TrainEntry,
)
from vosc.data.palette import write_frame, write_mask
from vosc.data.sampling import ClipSampler
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.static_images import StaticImageSource
from vosc.data.transforms import ClipAugment


def _dataset(root: Path, spec: CompressionSpec, keep_raw: bool = True) -> CompressedClipDataset:
    src = DavisSource(root, split="train")
    return CompressedClipDataset([TrainEntry(src, repeat=2, max_gap=3)],
                                 ClipSampler(num_frames=3, min_ref_pixels=50),
                                 ClipAugment(crop_size=(48, 64), short_edge=96), spec, seed=3,
                                 keep_raw=keep_raw)


def test_compression_spec_q_forms() -> None:
    rng = np.random.default_rng(0)
    assert CompressionSpec("x265", q=37).sample_q(rng) == 37
    assert {CompressionSpec("x265", q=[32, 42]).sample_q(rng) for _ in range(30)} == {32, 42}
    drawn = {CompressionSpec("x265", q="30-33").sample_q(rng) for _ in range(60)}
    assert drawn == {30, 31, 32, 33}
    assert CompressionSpec("x265", q={"low": 30, "high": 40}).eval_q == 35
    assert CompressionSpec("none").sample_q(rng) is None
    with pytest.raises(ValueError, match="needs a quality"):
        CompressionSpec("x265")
    with pytest.raises(ValueError, match="mode"):
        CompressionSpec("none", mode="frames")  # type: ignore[arg-type]


def test_none_codec_clip_is_raw_and_deterministic(synthetic_davis: Path) -> None:
    ds = _dataset(synthetic_davis, CompressionSpec("none"))
    assert len(ds) == 6
    a, b = ds[4], ds[4]
    assert a.frames.shape == (3, 48, 64, 3) and a.masks.shape == (3, 48, 64) and a.bits == 0 and a.q is None
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.frames, a.raw_frames)
    assert a.num_objects == int(a.masks.max()) >= 1
    other_epoch = ds[4 + len(ds)]  # same item, next epoch: another draw
    assert not np.array_equal(other_epoch.frames, a.frames) or other_epoch.frame_ids != a.frame_ids


@pytest.mark.codec
def test_clip_mode_x265(synthetic_davis: Path) -> None:
    ds = _dataset(synthetic_davis, CompressionSpec("x265", q=[30, 45]))
    clips = [ds[i] for i in range(4)]
    for c in clips:
        assert (c.frames.shape == (3, 48, 64, 3) and c.frames.dtype == np.uint8 and c.bits > 0
                and c.q in (30, 45))
        assert c.frame_types is not None and c.frame_types[0] == "I"
        assert c.raw_frames is not None and 0 < np.abs(c.frames.astype(int) - c.raw_frames).mean() < 40
    again = ds[2]
    assert again.bits == clips[2].bits and np.array_equal(again.frames, clips[2].frames)


@pytest.mark.codec
def test_sequence_mode_x265_and_warm_cache(synthetic_davis: Path, tmp_path: Path) -> None:
    spec = CompressionSpec("x265", q=37, mode="sequence", cache_dir=tmp_path / "cache")
    ds = _dataset(synthetic_davis, spec)
    cold = ds[1]
    assert cold.frames.shape == (3, 48, 64, 3) and cold.bits > 0 and cold.q == 37
    assert spec.cache.decodes == 1
    # a fresh process-like spec (empty LRU) whose encoder must not run: the disk cache serves the clip
    warm_spec = CompressionSpec("x265", q=37, mode="sequence", cache_dir=tmp_path / "cache")
    codec = X265Codec()

    def no_encode(frames: np.ndarray, q: int) -> bytes:
        raise AssertionError("encoder called on a warm cache")

    codec.encode = no_encode  # type: ignore[method-assign]
    warm_spec._codec = codec
    warm = _dataset(synthetic_davis, warm_spec)[1]
    np.testing.assert_array_equal(warm.frames, cold.frames)
    assert warm.bits == cold.bits and warm.frame_ids == cold.frame_ids
    # the clip drawn depends on (seed, epoch, index), not on the compression mode
    clip_mode = _dataset(synthetic_davis, CompressionSpec("x265", q=37))[1]
    assert clip_mode.frame_ids == cold.frame_ids


@pytest.mark.codec
def test_eval_sequences_and_static_source(synthetic_davis: Path, tmp_path: Path) -> None:
    val = DavisSource(synthetic_davis, split="val")
    ev = EvalSequenceDataset(val,
                             CompressionSpec("x265", q=[32, 42], mode="sequence", cache_dir=tmp_path / "c"),
                             short_edge=48, max_frames=None, keep_raw=True)
    item = ev[0]
    assert item.frames.shape == (8, 48, 80, 3) and item.masks.shape == (8, 48, 80) and item.q == 42
    assert item.has_mask is not None and item.has_mask.all() and item.num_objects == 2 and item.bits > 0
    src = DavisSource(synthetic_davis, split="train")
    for k, rec in enumerate(src.videos[:2]):
        write_frame(tmp_path / "s" / "images" / f"{k}.jpg", src.load_frames(rec, [0])[0])
        write_mask(tmp_path / "s" / "masks" / f"{k}.png", src.load_masks(rec, [0])[0])
    static = StaticImageSource(tmp_path / "s")
    ds = CompressedClipDataset([TrainEntry(static)], ClipSampler(num_frames=3),
                               ClipAugment((48, 48), short_edge=64),
                               CompressionSpec("x265", q=40, mode="sequence"), seed=0)
    clip = ds[0]
    assert clip.frames.shape == (3, 48, 48, 3) and clip.bits > 0 and clip.num_objects >= 1


def test_mixture_repeat_factors_and_ytvos_clips(synthetic_davis: Path, synthetic_ytvos: Path) -> None:
    from vosc.data.sources.youtube_vos import YouTubeVOSSource

    davis = DavisSource(synthetic_davis, split="train")
    ytvos = YouTubeVOSSource(synthetic_ytvos, split="train")
    ds = CompressedClipDataset([TrainEntry(ytvos, repeat=1, max_gap=3),
                                TrainEntry(davis, repeat=5, max_gap=12)],
                               ClipSampler(num_frames=5, min_ref_pixels=50),
                               ClipAugment((48, 48), short_edge=64), CompressionSpec("none"), seed=0)
    assert len(ds) == 3 + 5 * 3
    sources = [ds.entries[e].source.name for e, _ in ds.items]
    assert sources.count("davis") == 15 and sources.count("ytvos") == 3
    clip = ds[0]  # a YouTube-VOS clip: 5 annotated frames, ids from "00000", "00005", ...
    assert clip.frames.shape == (5, 48, 48, 3) and all(int(f) % 5 == 0 for f in clip.frame_ids)
    steps = np.abs(np.diff([int(f) // 5 for f in clip.frame_ids]))
    assert steps.max() <= 3


def test_davis_mini_clip_at_reference_size(davis_mini: Path) -> None:
    src = DavisSource(davis_mini, split="val")
    ds = CompressedClipDataset([TrainEntry(src, repeat=1, max_gap=12)], ClipSampler(), ClipAugment(),
                               CompressionSpec("none"), seed=0)
    for i in range(2):
        clip = ds[i]
        assert clip.frames.shape == (5, 465, 465, 3) and clip.masks.shape == (5, 465, 465)
        assert clip.num_objects == 1 and int((clip.masks[0] == 1).sum()) > 100
        ids = [int(f) for f in clip.frame_ids]
        assert 1 <= np.abs(np.diff(ids)).min() and np.abs(np.diff(ids)).max() <= 12


@pytest.mark.codec
def test_odd_crop_sizes_are_coded_and_bits_per_pixel(synthetic_davis: Path, tmp_path: Path) -> None:
    src = DavisSource(synthetic_davis, split="train")
    for mode in ("clip", "sequence"):
        spec = CompressionSpec("x265", q=35, mode=mode, cache_dir=tmp_path / "c")
        ds = CompressedClipDataset([TrainEntry(src)], ClipSampler(num_frames=3, min_ref_pixels=50),
                                   ClipAugment((33, 45), short_edge=96), spec, seed=1)
        clip = ds[0]
        assert clip.frames.shape == (3, 33, 45, 3) and clip.bits > 0
        assert clip.coded_pixels == (3 * 33 * 45 if mode == "clip" else 3 * 96 * 160)


def test_decode_policy_reaches_sequence_cache(tmp_path) -> None:
    from vosc.data.compressed_dataset import CompressionSpec

    spec = CompressionSpec(codec="x265", q=42, mode="sequence", cache_dir=tmp_path, decode_policy="partial")
    assert spec.cache.decode_policy == "partial"
    with pytest.raises(ValueError, match="decode_policy"):
        CompressionSpec(codec="x265", q=42, mode="sequence", cache_dir=tmp_path, decode_policy="sometimes")
