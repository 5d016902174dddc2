"""RGB <-> YUV 4:2:0 conversion, padding, packing."""

from __future__ import annotations

import numpy as np
import pytest
from codec_helpers import make_clip, psnr

from vosc.codecs.yuv import (
    crop,
    i420_to_planes,
    pack_planes,
    pad_to_even,
    planes_to_i420,
    rgb_to_yuv420,
    unpack_planes,
    yuv420_to_rgb,
)
from vosc.metrics.rate import psnr_y_frames


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_round_trip_is_close(bit_depth: int) -> None:
    clip = make_clip(3, 32, 48)
    y, u, v = rgb_to_yuv420(clip, bit_depth=bit_depth)
    assert y.shape == (3, 32, 48) and u.shape == v.shape == (3, 16, 24)
    assert y.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    back = yuv420_to_rgb(y, u, v, bit_depth=bit_depth)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert psnr(clip, back) > 33.0  # chroma subsampling is the only real loss
    # luma alone survives almost exactly
    assert psnr_y_frames(clip, back).min() > 40.0


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_flat_colours_round_trip_within_one(bit_depth: int) -> None:
    colours = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 90], [10, 240, 120]], np.uint8)
    clip = np.broadcast_to(colours[:, None, None, :], (4, 4, 6, 3)).copy()
    back = yuv420_to_rgb(*rgb_to_yuv420(clip, bit_depth), bit_depth=bit_depth)
    assert np.abs(back.astype(int) - clip.astype(int)).max() <= 1


def test_limited_range_levels() -> None:
    black = np.zeros((1, 2, 2, 3), np.uint8)
    white = np.full((1, 2, 2, 3), 255, np.uint8)
    assert rgb_to_yuv420(black)[0].max() == 16 and rgb_to_yuv420(white)[0].min() == 235
    assert rgb_to_yuv420(black, 10)[0].max() == 64 and rgb_to_yuv420(white, 10)[0].min() == 940
    assert rgb_to_yuv420(white)[1].max() == 128  # neutral chroma


def test_pad_and_crop() -> None:
    clip = make_clip(2, 5, 7)
    padded = pad_to_even(clip)
    assert padded.shape == (2, 6, 8, 3)
    assert np.array_equal(padded[:, 5], padded[:, 4]) and np.array_equal(padded[:, :, 7], padded[:, :, 6])
    assert np.array_equal(crop(padded, 5, 7), clip)
    even = make_clip(1, 4, 4)
    assert pad_to_even(even) is even
    with pytest.raises(ValueError, match="cannot crop"):
        crop(clip, 6, 7)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_pack_unpack(bit_depth: int) -> None:
    planes = rgb_to_yuv420(make_clip(3, 8, 12), bit_depth)
    raw = pack_planes(*planes)
    assert len(raw) == 3 * (8 * 12 * 3 // 2) * (1 if bit_depth == 8 else 2)
    for a, b in zip(planes, unpack_planes(raw, 3, 8, 12, bit_depth), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="expected 2 frames"):
        unpack_planes(raw, 2, 8, 12, bit_depth)


def test_i420_layout_round_trip() -> None:
    y, u, v = rgb_to_yuv420(make_clip(2, 8, 12))
    arr = planes_to_i420(y, u, v, 1)
    assert arr.shape == (12, 12)
    y1, u1, v1 = i420_to_planes(arr, 8, 12)
    assert np.array_equal(y1[0], y[1]) and np.array_equal(u1[0], u[1]) and np.array_equal(v1[0], v[1])


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="even sizes"):
        rgb_to_yuv420(make_clip(1, 5, 4))
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_yuv420(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="bit_depth"):
        rgb_to_yuv420(make_clip(1, 4, 4), bit_depth=12)
