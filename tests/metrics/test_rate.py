"""Rate accounting and PSNR-Y."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vosc.metrics.rate import MAX_PSNR, RateAccumulator, bits_per_pixel, luma_bt601, psnr, psnr_y


def test_luma_range_and_known_psnr() -> None:
    white = np.full((1, 2, 2, 3), 255, dtype=np.uint8)
    black = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    assert luma_bt601(white)[0, 0, 0] == pytest.approx(235.0)
    assert luma_bt601(black)[0, 0, 0] == pytest.approx(16.0)
    ref = np.full((2, 4, 4), 100.0)
    assert psnr(ref, ref + 1.0)[0] == pytest.approx(10 * math.log10(255.0**2))
    assert psnr(ref, ref)[0] == MAX_PSNR


def test_psnr_y_is_frame_mean() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    dist = ref.copy()
    dist[1] = np.clip(ref[1].astype(int) + 5, 0, 255).astype(np.uint8)
    per_frame = psnr(luma_bt601(ref), luma_bt601(dist))
    assert per_frame[0] == MAX_PSNR and per_frame[1] < 50
    assert psnr_y(ref, dist) == pytest.approx(per_frame.mean())
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(ref, dist[:2])


def test_rate_accumulator_is_pixel_weighted() -> None:
    acc = RateAccumulator()
    acc.add("a", bits=1000, shape=(10, 10, 10))
    acc.add("b", bits=3000, shape=(10, 10, 30))
    assert acc.bpp == pytest.approx(4000 / 4000)
    assert acc.per_sequence["a"]["bpp"] == pytest.approx(1.0)
    assert acc.psnr_y is None
    with pytest.raises(ValueError, match="added twice"):
        acc.add("a", bits=1, shape=(1, 1, 1))
    with pytest.raises(ValueError, match="both reference and distorted"):
        acc.add("c", bits=1, shape=(1, 2, 2), reference=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        bits_per_pixel(10, 0)
