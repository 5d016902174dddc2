"""Indexed PNG I/O: the fast decoder equals Pillow for every row filter, errors name the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.data.errors import CorruptImageError, NotPaletteMaskError
from vosc.data.palette import _decode_png_fast, davis_palette, read_mask, write_mask


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_with_filters(mask: np.ndarray, filters: list[int]) -> bytes:
    """A palette PNG whose row ``y`` uses filter ``filters[y]`` (0 None, 1 Sub, 2 Up, 4 Paeth)."""
    h, w = mask.shape
    img = mask.astype(np.int64)
    rows = []
    for y in range(h):
        prev = img[y - 1] if y else np.zeros(w, dtype=np.int64)
        left = np.concatenate([[0], img[y, :-1]])
        if filters[y] == 0:
            line = img[y]
        elif filters[y] == 1:
            line = img[y] - left
        elif filters[y] == 2:
            line = img[y] - prev
        else:  # Paeth
            upleft = np.concatenate([[0], prev[:-1]])
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            line = img[y] - pred
        rows.append(bytes([filters[y]]) + (line % 256).astype(np.uint8).tobytes())
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", bytes(davis_palette()))
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("filters", ["none", "sub", "up", "mixed", "paeth"])
def test_fast_decoder_equals_pillow(tmp_path: Path, filters: str) -> None:
    rng = np.random.default_rng(3)
    mask = rng.integers(0, 5, (23, 31)).astype(np.uint8)
    mask[5:15, 3:20] = 7
    types = {
        "none": [0] * 23,
        "sub": [1] * 23,
        "up": [2] * 23,
        "mixed": [(y * 7) % 3 for y in range(23)],
        "paeth": [4] * 23,
    }[filters]
    path = tmp_path / "m.png"
    path.write_bytes(_png_with_filters(mask, types))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), mask)  # the crafted file is valid
    np.testing.assert_array_equal(read_mask(path), mask)
    fast = _decode_png_fast(path.read_bytes())
    assert (fast is None) == (filters == "paeth")  # Paeth goes through Pillow


def test_write_read_round_trip_uses_davis_palette(tmp_path: Path) -> None:
    mask = np.zeros((6, 9), dtype=np.uint8)
    mask[1:4, 2:6] = 2
    path = write_mask(tmp_path / "a" / "m.png", mask)
    np.testing.assert_array_equal(read_mask(path), mask)
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[3:9] == [128, 0, 0, 0, 128, 0]
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        write_mask(tmp_path / "bad.png", np.full((2, 2), 300))


def test_bad_masks_raise_naming_the_file(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    with pytest.raises(NotPaletteMaskError, match=r"rgb\.png"):
        read_mask(rgb)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(CorruptImageError, match=r"broken\.png"):
        read_mask(broken)
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "missing.png")


@pytest.mark.parametrize("filters", ["none", "paeth"])  # fast path and Pillow path
def test_one_reader_raw_for_metrics_void_and_binary_for_data(tmp_path: Path, filters: str) -> None:
    """The metrics read raw indices (255 kept, as the official toolkit); data loading maps 255 (void) to
    background and reads a 0/255 single-channel mask as object 1. Both readings agree on both decoders."""
    ids = np.zeros((23, 31), dtype=np.uint8)
    ids[2:6, 2:9], ids[10:12, :] = 3, 255
    palette = tmp_path / "p.png"
    palette.write_bytes(_png_with_filters(ids, [0 if filters == "none" else 4] * 23))
    np.testing.assert_array_equal(read_mask(palette, raw=True), ids)
    np.testing.assert_array_equal(read_mask(palette), np.where(ids == 255, 0, ids))
    binary = tmp_path / "b.png"
    Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8), mode="L").save(binary)
    assert set(np.unique(read_mask(binary))) == {0, 1}
    assert set(np.unique(read_mask(binary, raw=True))) == {0, 255}
    with pytest.raises(Exception, match=r"p\.png.*differs from frame size"):
        read_mask(palette, expected_size=(24, 31))
