"""Input sizing, frame/mask preparation and logit restoration of per-video inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vosc.inference.postprocess import (
    network_size,
    prepare_frame,
    resize_mask,
    restore_logits,
    to_numpy_frame,
    to_numpy_mask,
)
from vosc.types import IMAGENET_MEAN, IMAGENET_STD


@pytest.mark.parametrize(
    ("hw", "kwargs", "expected"),
    [
        ((480, 854), {}, (481, 849)),  # DAVIS 480p: 16k+1 sides
        ((480, 854), {"align_corners": False}, (480, 848)),  # Swin: 16k sides
        ((1080, 1920), {}, (577, 1041)),  # long edge capped at 1040: 585 -> 36.5 rounds half to even
        ((480, 854), {"scale": 1.3}, (625, 1105)),  # scale applied after the cap, truncated, then snapped
        ((720, 1280), {"max_long_edge": None}, (721, 1281)),
        ((720, 1280), {"max_short_edge": 480}, (481, 849)),
        ((67, 95), {}, (65, 97)),
    ],
)
def test_network_size_follows_reference_rounding(hw, kwargs, expected):
    assert network_size(*hw, **kwargs) == expected


def test_network_size_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        network_size(0, 10)
    with pytest.raises(ValueError, match="scale"):
        network_size(10, 10, scale=0.0)


def test_prepare_frame_normalises_resizes_and_flips():
    frame = np.full((67, 95, 3), 200, dtype=np.uint8)
    frame[:, :10] = 0
    x = prepare_frame(frame, (65, 97))
    assert x.shape == (1, 3, 65, 97) and x.dtype == torch.float32
    expected = (200 / 255 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 30, -1].numpy(), expected, rtol=1e-5)  # far from the edge: constant
    assert x[0, 0, 30, 0] < x[0, 0, 30, -1]
    xf = prepare_frame(frame, (65, 97), flip=True)
    assert torch.equal(xf, x.flip(-1))


def test_resize_mask_is_nearest_and_keeps_ids():
    mask = torch.arange(16).view(4, 4)
    small = resize_mask(mask, (2, 2))
    assert small.shape == (1, 1, 2, 2) and small.dtype == torch.int64
    assert small.flatten().tolist() == [0, 2, 8, 10]  # torch "nearest": floor(dst * scale)
    assert torch.equal(resize_mask(mask, (4, 4), flip=True)[0, 0], mask.flip(-1))


def test_restore_logits_unflips_then_resizes():
    logits = torch.zeros(1, 2, 5, 9)
    logits[0, 1, :, 0] = 10.0  # left column in the flipped frame = right column in the original
    out = restore_logits(logits, (9, 17), flip=True)
    assert out.shape == (1, 2, 9, 17)
    assert out[0, 1, :, -1].min() == 10.0 and out[0, 1, :, 0].max() == 0.0


def test_frame_and_mask_validation_name_the_frame():
    with pytest.raises(ValueError, match="frame 3: expected an \\(H, W, 3\\)"):
        to_numpy_frame(np.zeros((4, 5), np.uint8), 3)
    with pytest.raises(ValueError, match="frame 2: expected dtype uint8"):
        to_numpy_frame(np.zeros((4, 5, 3), np.float32), 2)
    with pytest.raises(ValueError, match="mask of frame 7: shape"):
        to_numpy_mask(np.zeros((4, 6), np.uint8), 7, (4, 5))
    with pytest.raises(ValueError, match="mask of frame 1: expected integer"):
        to_numpy_mask(np.zeros((4, 5), np.float32), 1, (4, 5))
    assert to_numpy_mask(torch.ones(1, 4, 5, dtype=torch.uint8), 0, (4, 5)).dtype == np.int64
