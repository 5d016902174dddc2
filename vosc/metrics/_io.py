"""Minimal indexed (palette) PNG reading and atomic writing for the metrics and submissions.

Masks are ``(H, W)`` uint8 object-id maps (0 = background). The palette is the standard
DAVIS / PASCAL-VOC colour map, so written files look like the official annotations.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vosc.data.errors import CorruptImageError, NotPaletteMaskError
from vosc.utils.io import atomic_write_bytes

try:  # ISA-L inflate is ~5x faster than zlib; optional
    from isal import isal_zlib as _inflater
except ImportError:  # pragma: no cover - depends on the environment
    _inflater = zlib

_INDEXED_MODES = ("P", "L")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@lru_cache(maxsize=1)
def davis_palette() -> tuple[int, ...]:
    """The 256-entry DAVIS / PASCAL-VOC palette as a flat ``(768,)`` tuple of RGB bytes.

    Entry ``i`` spreads the bits of ``i`` over the high bits of R, G and B (bit 0 → R, 1 → G,
    2 → B, then the next three bits one position lower, and so on).
    """
    flat: list[int] = []
    for index in range(256):
        rgb = [0, 0, 0]
        value = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        flat.extend(rgb)
    return tuple(flat)


def _decode_png_fast(data: bytes) -> np.ndarray | None:
    """Decode an 8-bit, non-interlaced palette/grey PNG whose rows use only the None/Sub/Up filters.

    Returns ``None`` for anything else (the caller falls back to Pillow), including malformed data.
    """
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in (0, 3) or interlace != 0 or width == 0 or height == 0:
        return None
    pos, idat = 8, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    try:
        raw = _inflater.decompress(b"".join(idat))
    except Exception:  # noqa: BLE001 - any inflate failure: let Pillow report it
        return None
    if len(raw) != height * (width + 1):
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width + 1)
    filters = rows[:, 0]
    out = np.ascontiguousarray(rows[:, 1:])
    if not filters.any():
        return out
    if np.any(filters > 2):  # Average / Paeth (or invalid): Pillow
        return None
    sub = np.flatnonzero(filters == 1)
    if sub.size:
        out[sub] = np.cumsum(out[sub], axis=1, dtype=np.uint8)  # Recon = Filt + left (mod 256)
    for row in np.flatnonzero(filters == 2):
        if row:
            out[row] += out[row - 1]  # Recon = Filt + above (mod 256), rows in order
    return out


def read_mask(path: str | Path) -> np.ndarray:
    """Read an indexed PNG as an object-id map.

    8-bit palette/grey PNGs with None/Sub/Up row filters (what PIL, OpenCV and the DAVIS tools write)
    are decoded by a small fast path (ISA-L inflate when ``isal`` is installed); everything else, and
    every error case, goes through Pillow. Both give the same indices.

    Args:
        path: A palette (``P``) or greyscale (``L``) PNG.

    Returns:
        ``(H, W)`` uint8 ids, the raw palette indices (255 is returned as is).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptImageError: The file cannot be decoded.
        NotPaletteMaskError: The image is RGB(A) or another non-indexed mode.
    """
    path = Path(path)
    fast = _decode_png_fast(path.read_bytes())
    if fast is not None:
        return fast
    try:
        with Image.open(path) as image:
            if image.mode not in _INDEXED_MODES:
                raise NotPaletteMaskError(path, f"mode {image.mode!r}; expected an indexed (P) or L mask")
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise CorruptImageError(path, f"cannot decode mask: {error}") from error


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only.

    Raises:
        CorruptImageError: The file cannot be identified as an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as error:
        raise CorruptImageError(path, f"cannot read image header: {error}") from error
    return int(height), int(width)


def encode_palette_png(mask: np.ndarray) -> bytes:
    """Encode an id map as a palette PNG with the DAVIS palette.

    Args:
        mask: ``(H, W)`` integer ids in ``[0, 255]``.

    Returns:
        The PNG file content.

    Raises:
        ValueError: ``mask`` is not 2-D or has ids outside ``[0, 255]``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > 255):
        raise ValueError(f"mask ids must lie in [0, 255], got [{mask.min()}, {mask.max()}]")
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(list(davis_palette()))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Atomically write ``mask`` (``(H, W)`` ids) as a DAVIS-palette PNG at ``path``."""
    return atomic_write_bytes(path, encode_palette_png(mask))
