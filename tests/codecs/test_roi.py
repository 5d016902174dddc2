"""Object-aware coding of :mod:`vosc.codecs.roi` on a real DAVIS crop: x265 region-of-interest offsets move
bits and quality from the background to the object; the background blur; the region boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosc.codecs.roi import BackgroundBlur, Box, RoiX265Codec, object_boxes, region_psnr
from vosc.codecs.x265 import X265Codec


@pytest.fixture(scope="module")
def swan(davis_mini: Path) -> tuple[np.ndarray, np.ndarray]:
    """blackswan frames 0-3 at half size: ``(4, 240, 427, 3)`` frames, ``(4, 240, 427)`` maps (swan ~10 %)."""
    import cv2

    from vosc.data.sources.davis import DavisSource

    src = DavisSource(davis_mini, split="val")
    rec = next(r for r in src.videos if r.name == "blackswan")
    frames = src.load_frames(rec, [0, 1, 2, 3])
    masks, _ = src.load_masks_or_empty(rec, [0, 1, 2, 3], frames.shape[1:3])
    frames = np.stack([cv2.resize(f, (427, 240), interpolation=cv2.INTER_AREA) for f in frames])
    masks = np.stack([cv2.resize(m, (427, 240), interpolation=cv2.INTER_NEAREST) for m in masks])
    assert 0.05 < (masks > 0).mean() < 0.3  # the object and the background both matter
    return frames, masks


def _bits(codec: X265Codec, frames: np.ndarray, masks: np.ndarray, q: int) -> int:
    if isinstance(codec, RoiX265Codec):
        return 8 * len(codec.encode_with_masks(frames, q, masks).bitstream)
    return 8 * len(codec.encode(frames, q))


@pytest.mark.codec
def test_roi_moves_bits_from_background_to_object(swan: tuple[np.ndarray, np.ndarray]) -> None:
    """At the same CRF: with the background flattened (grey) the stream codes the object alone, and the ROI
    stream is larger than plain; with the object flattened it codes the background alone, and the ROI stream
    is smaller. PSNR-Y inside goes up and outside goes down on the real clip."""
    frames, masks = swan
    plain, roi = X265Codec(), RoiX265Codec(object_qoffset=-0.2, background_qoffset=0.2, margin=0, block=16)
    inside = masks[..., None] > 0
    only_object = np.where(inside, frames, 128).astype(np.uint8)
    only_background = np.where(inside, 128, frames).astype(np.uint8)
    assert _bits(roi, only_object, masks, 37) > 1.2 * _bits(plain, only_object, masks, 37)
    assert _bits(roi, only_background, masks, 37) < 0.8 * _bits(plain, only_background, masks, 37)
    t, h, w = masks.shape
    dec_plain = plain.decode(plain.encode(frames, 37), t, h, w)
    stream = roi.encode_with_masks(frames, 37, masks)
    assert stream.bitstream == roi.encode_with_masks(frames, 37, masks).bitstream  # deterministic
    dec_roi = plain.decode(stream.bitstream, t, h, w)  # a standard HEVC stream: the plain decoder reads it
    (in_p, out_p), (in_r, out_r) = region_psnr(frames, dec_plain, masks), region_psnr(frames, dec_roi, masks)
    assert in_r > in_p + 1.0 and out_r < out_p - 0.3
    assert stream.frame_qps is not None and len(stream.frame_qps) == t


@pytest.mark.codec
def test_block_map_regions_and_background_blur(swan: tuple[np.ndarray, np.ndarray]) -> None:
    frames, masks = swan
    blur = BackgroundBlur(sigma=3.0, dilate=4, feather=0)
    out = blur(frames, masks)
    assert np.array_equal(out[masks > 0], frames[masks > 0])  # objects untouched
    far = masks == 0
    assert np.abs(out[far].astype(int) - frames[far]).mean() > 1.0
    plain = X265Codec()
    assert len(plain.encode(out, 37)) < 0.9 * len(plain.encode(frames, 37))
    roi = RoiX265Codec(block=32, margin=4)
    regions = roi.regions(masks[0])
    assert regions[-1] == Box(0, 0, 427, 240, 0.2) and len(regions) > 3
    covered = np.zeros(masks.shape[1:], bool)
    for b in regions[:-1]:
        covered[b.y : b.y + b.h, b.x : b.x + b.w] = True
    assert covered[masks[0] > 0].all() and covered.mean() < 0.9
    assert _bits(roi, frames, masks, 42) != _bits(plain, frames, masks, 42)


def test_object_boxes_and_region_psnr() -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[5:10, 8:20] = 1
    mask[30:38, 50:60] = 2
    assert object_boxes(mask, -0.3, margin=2) == [Box(6, 3, 16, 9, -0.3), Box(48, 28, 12, 12, -0.3)]
    assert object_boxes(np.zeros((8, 8), np.uint8), -0.3) == []
    cells = object_boxes(mask, -0.3, margin=0, block=16)
    assert Box(0, 0, 32, 16, -0.3) in cells and all(b.x % 16 == 0 and b.y % 16 == 0 for b in cells)
    ref = np.zeros((1, 40, 60, 3), np.uint8)
    dist = ref.copy()
    dist[0, 0, 0] = 100  # one background pixel differs
    inside, outside = region_psnr(ref, dist, mask[None])
    assert inside == 100.0 and outside is not None and outside < 60
    with pytest.raises(ValueError, match="masks .* do not match frames"):
        BackgroundBlur()(ref, mask[None, :20])
