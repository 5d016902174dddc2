"""The mask side-information coders of :mod:`vosc.codecs.mask_codec`: bit-exact round trips on the real DAVIS
masks, bits = 8 x bytes, the lossy mode, and clear errors on bad streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosc.codecs.mask_codec import (
    DeflateMaskCodec,
    DownsampledMaskCodec,
    FFV1MaskCodec,
    MaskCodec,
    MaskCodecError,
    X265LosslessMaskCodec,
)

LOSSLESS = [DeflateMaskCodec("zlib"), DeflateMaskCodec("lzma"), DeflateMaskCodec("lzma", difference=False),
            FFV1MaskCodec(), X265LosslessMaskCodec()]


def _davis_masks(root: Path, frames: int = 10) -> dict[str, np.ndarray]:
    from vosc.data.sources.davis import DavisSource

    out = {}
    for split in ("val", "train"):
        src = DavisSource(root, split=split)
        for rec in src.videos:
            idx = list(range(min(frames, len(rec))))
            h, w = src.load_frames(rec, idx[:1]).shape[1:3]
            masks, has = src.load_masks_or_empty(rec, idx, (h, w))
            assert all(has), rec.name
            out[rec.name] = masks
    return out


@pytest.mark.codec
def test_lossless_round_trip_on_davis_masks(davis_mini: Path) -> None:
    """Every lossless coder gives back the exact maps of the four DAVIS mini sequences; the entropy coders
    beat raw storage by far, and x265 lossless beats zlib over differenced maps (measured ~3x)."""
    masks = _davis_masks(davis_mini)
    assert len(masks) == 4
    sizes: dict[str, int] = {}
    for name, maps in masks.items():
        for codec in LOSSLESS:
            data = codec.encode(maps)
            assert np.array_equal(codec.decode(data), maps), (name, codec.label)
            assert len(data) < maps.size / 20, (name, codec.label, len(data))
            sizes[codec.label] = sizes.get(codec.label, 0) + len(data)
    assert sizes["x265-lossless"] < sizes["zlib-diff"]


@pytest.mark.codec
@pytest.mark.parametrize("codec", LOSSLESS, ids=lambda c: c.label)
@pytest.mark.parametrize("shape", [(4, 37, 53), (3, 64, 30), (1, 9, 200)])
def test_lossless_round_trip_many_ids_odd_sizes(codec: MaskCodec, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    t, h, w = shape
    maps = np.zeros(shape, np.uint8)
    for obj in range(1, 8):  # moving rectangles with ids 1..7, plus some isolated noise pixels
        y, x = rng.integers(0, h), rng.integers(0, w)
        for i in range(t):
            maps[i, max(0, y - 5 + i) : y + 6 + i, max(0, x - 7) : x + 8] = obj
    maps[rng.random(shape) < 0.01] = 9
    data = codec.encode(maps)
    decoded = codec.decode(data)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, maps)


@pytest.mark.codec
def test_downsampled_mode_is_lossy_smaller_and_close(davis_mini: Path) -> None:
    maps = _davis_masks(davis_mini, frames=6)["blackswan"]
    inner = X265LosslessMaskCodec()
    lossy = DownsampledMaskCodec(inner, factor=4)
    data = lossy.encode(maps)
    decoded = lossy.decode(data)
    assert decoded.shape == maps.shape and not np.array_equal(decoded, maps)
    assert len(data) < 0.6 * len(inner.encode(maps))
    inter, union = ((decoded > 0) & (maps > 0)).sum(), ((decoded > 0) | (maps > 0)).sum()
    assert inter / union > 0.9
    assert lossy.label == "x265-lossless/4" and not lossy.lossless


def test_bad_streams_name_the_problem() -> None:
    maps = np.zeros((2, 16, 16), np.uint8)
    maps[:, 4:9, 3:7] = 1
    data = DeflateMaskCodec("zlib").encode(maps)
    with pytest.raises(MaskCodecError, match="written by coder 'deflate', decoded as 'ffv1'"):
        FFV1MaskCodec().decode(data)
    with pytest.raises(MaskCodecError, match="not a vosc mask stream"):
        DeflateMaskCodec("zlib").decode(b"XXXX" + data[4:])
    with pytest.raises(MaskCodecError, match="shorter than its 13-byte header"):
        DeflateMaskCodec("zlib").decode(data[:5])
    with pytest.raises(MaskCodecError, match="is not lzma"):
        DeflateMaskCodec("lzma").decode(data)
    with pytest.raises(MaskCodecError, match="corrupt"):
        DeflateMaskCodec("zlib").decode(data[:-4])
    with pytest.raises(ValueError, match=r"expected uint8 id maps, got int64"):
        DeflateMaskCodec().encode(maps.astype(np.int64))
    with pytest.raises(ValueError, match=r"expected \(T, H, W\) id maps"):
        DeflateMaskCodec().encode(maps[0])
