"""The one image I/O module of vosc: frames and object-id masks in the formats of DAVIS / YouTube-VOS.

* Frames: JPEG (or PNG) RGB images, read as ``(H, W, 3)`` uint8.
* Masks: indexed (palette, mode ``P``) PNGs whose indices are object ids; single-channel (``L``) PNGs are
  accepted as id maps too. Data loading (:func:`read_mask`) maps index 255 (void) to background and reads
  binary 0/255 masks (DAVIS-2016) as object 1; the metrics read the raw indices (``raw=True``), as the
  official DAVIS toolkit does.
* A user's *input* masks (first-appearance masks given to ``vosc-segment``) are read by
  :func:`read_input_mask`, which never drops or invents an object without a word: a palette mask with id 255
  is an error (255 is void in DAVIS / YouTube-VOS, and :func:`read_mask` would drop it), a 0/255 grey mask is
  object 1 (logged), and an antialiased or soft grey mask (many grey levels with 255) is thresholded at 128
  to object 1 with a warning (a soft mask without 255 is refused).
* Written masks use the standard DAVIS / PASCAL-VOC palette, so they look like the official annotations;
  every write is atomic.

8-bit palette/grey PNGs with None/Sub/Up row filters (what PIL, OpenCV and the DAVIS tools write) are
decoded by a small fast path (ISA-L inflate when ``isal`` is installed); everything else, and every error
case, goes through Pillow. Both give the same indices.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vosc.data.errors import (
    CorruptImageError,
    InputMaskError,
    MaskSizeError,
    MissingFrameError,
    MissingMaskError,
    NotPaletteMaskError,
)
from vosc.utils.io import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

_inflater: Any
try:  # ISA-L inflate is ~5x faster than zlib; optional
    from isal import isal_zlib as _isal_zlib

    _inflater = _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _inflater = zlib

__all__ = [
    "davis_palette",
    "encode_palette_png",
    "image_size",
    "read_frame",
    "read_input_mask",
    "read_mask",
    "write_frame",
    "write_mask",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NOT_IDS = ("RGB", "RGBA", "LA", "CMYK", "YCbCr")


@lru_cache(maxsize=1)
def davis_palette() -> tuple[int, ...]:
    """The 256-entry DAVIS / YouTube-VOS / PASCAL-VOC palette as a flat ``(768,)`` tuple of RGB bytes.

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


def read_frame(path: str | Path) -> np.ndarray:
    """Read an RGB frame.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        MissingFrameError: The file does not exist.
        CorruptImageError: The file cannot be fully decoded (e.g. a truncated JPEG).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFrameError(path, "frame file is missing")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode image ({exc})") from exc
    return arr


def _decode_png_fast(data: bytes) -> tuple[np.ndarray, str] | None:
    """Decode an 8-bit, non-interlaced palette/grey PNG whose rows use only the None/Sub/Up filters.

    Returns ``(ids (H, W) uint8, "P" | "L")``, or ``None`` for anything else (the caller falls back to
    Pillow), including malformed data.
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
    mode = "P" if colour == 3 else "L"
    if not filters.any():
        return out, mode
    if np.any(filters > 2):  # Average / Paeth (or invalid): Pillow
        return None
    sub = np.flatnonzero(filters == 1)
    if sub.size:
        out[sub] = np.cumsum(out[sub], axis=1, dtype=np.uint8)  # Recon = Filt + left (mod 256)
    for row in np.flatnonzero(filters == 2):
        if row:
            out[row] += out[row - 1]  # Recon = Filt + above (mod 256), rows in order
    return out, mode



def _decode_ids(path: Path) -> tuple[np.ndarray, str]:
    """``(ids (H, W), mode)`` of a mask file: the fast path, else Pillow (every error names the file)."""
    if not path.is_file():
        raise MissingMaskError(path, "mask file is missing")
    fast = _decode_png_fast(path.read_bytes())
    if fast is not None:
        return fast
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in _NOT_IDS:
                raise NotPaletteMaskError(
                    path, f"mask is {mode}; expected an indexed (palette) or single-channel id PNG")
            arr = np.asarray(im)
    except NotPaletteMaskError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode mask ({exc})") from exc
    if arr.ndim != 2:
        raise NotPaletteMaskError(path, f"mask has shape {arr.shape}; expected (H, W)")
    if arr.dtype == bool:
        return arr.astype(np.uint8), mode
    if arr.max(initial=0) > 255:
        raise NotPaletteMaskError(path, f"mask ids exceed 255 (max {int(arr.max())})")
    return arr.astype(np.uint8), mode


def read_mask(path: str | Path, expected_size: tuple[int, int] | None = None, binary: bool | None = None,
              raw: bool = False) -> np.ndarray:
    """Read an object-id mask.

    Args:
        path: PNG file (mode ``P``, ``L``, ``1`` or ``I``).
        expected_size: ``(H, W)`` the mask must have (its frame's size), or ``None``.
        binary: ``True``: any non-zero pixel is object 1 (DAVIS-2016 0/255 masks). ``None``: a
            single-channel mask whose only values are ``{0, 255}`` is read as binary, ``255`` elsewhere
            is void (background). ``False``: ids are taken as they are (255 → background).
        raw: Return the palette indices unchanged (255 kept; ``binary`` ignored): the metrics' reading,
            identical to the official DAVIS toolkit's.

    Returns:
        ``(H, W)`` uint8 object ids.

    Raises:
        MissingMaskError: The file does not exist (also a ``FileNotFoundError``).
        CorruptImageError, NotPaletteMaskError, MaskSizeError: Named after what is wrong with the file.
    """
    path = Path(path)
    arr, mode = _decode_ids(path)
    _check_size(path, arr, expected_size)
    if raw:
        return arr
    if binary is None:
        binary = mode != "P" and bool(np.isin(arr, (0, 255)).all()) and bool((arr == 255).any())
    if binary:
        return (arr > 0).astype(np.uint8)
    out = arr.copy()
    out[out == 255] = 0
    return out


#: A single-channel input mask with more distinct values than this is soft / antialiased, not object ids.
SOFT_MASK_VALUES = 16
#: The threshold of an antialiased 0/255 input mask: values >= it are object 1.
SOFT_MASK_THRESHOLD = 128


def read_input_mask(path: str | Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a user's first-appearance mask, refusing or announcing every value it would change.

    * Palette (``P``) masks: indices are object ids; index 255 is refused (it is void in DAVIS /
      YouTube-VOS, and :func:`read_mask` would silently drop the object).
    * Single-channel masks whose values are ``{0, 255}``: object 1 (the DAVIS-2016 convention; logged).
    * Single-channel masks with more than :data:`SOFT_MASK_VALUES` distinct values: soft or antialiased.
      With 255 (a 0/255 mask with smoothed edges) values ``>= SOFT_MASK_THRESHOLD`` become object 1, with a
      warning naming the file; without 255 the mask is refused.
    * Other single-channel masks: ids as they are; 255 among them is refused as for palette masks.

    Args:
        path: PNG file.
        expected_size: ``(H, W)`` the mask must have, or ``None``.

    Returns:
        ``(H, W)`` uint8 object ids.

    Raises:
        InputMaskError: Id 255 among object ids, or a soft mask without 255 (the message says how to fix it).
        MissingMaskError, CorruptImageError, NotPaletteMaskError, MaskSizeError: As :func:`read_mask`.
    """
    path = Path(path)
    arr, mode = _decode_ids(path)
    _check_size(path, arr, expected_size)
    values = np.unique(arr)
    has_void = bool(values[-1] == 255)
    if mode != "P" and values.size > SOFT_MASK_VALUES:
        if not has_void:
            raise InputMaskError(path, f"a grey mask with {values.size} distinct values looks soft or "
                                       "antialiased, not object ids; threshold it to 0/255 (one object) or "
                                       "save an indexed (palette) PNG whose values are object ids")
        log.warning("%s: a grey mask with %d distinct values (antialiased or soft 0/255): thresholded at %d "
                    "to object 1; save an indexed (palette) PNG of object ids to avoid this", path,
                    values.size, SOFT_MASK_THRESHOLD)
        return (arr >= SOFT_MASK_THRESHOLD).astype(np.uint8)
    if mode != "P" and has_void and values.size <= 2:
        log.info("%s: a 0/255 mask, read as object 1", path)
        return (arr > 0).astype(np.uint8)
    if has_void:
        raise InputMaskError(path, f"object id 255 ({int((arr == 255).sum())} pixels) is void in DAVIS / "
                                   "YouTube-VOS masks and would be dropped; renumber that object "
                                   "(ids 1..254)")
    return arr


def _check_size(path: Path, arr: np.ndarray, expected_size: tuple[int, int] | None) -> None:
    if expected_size is not None and tuple(arr.shape) != tuple(expected_size):
        raise MaskSizeError(path, f"mask size {arr.shape[1]}x{arr.shape[0]} (WxH) differs from frame size "
                                  f"{expected_size[1]}x{expected_size[0]}")


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
    """Atomically write ``mask`` (``(H, W)`` ids in ``[0, 255]``) as a DAVIS-palette PNG at ``path``."""
    return atomic_write_bytes(path, encode_palette_png(mask))


def write_frame(path: str | Path, frame: np.ndarray, quality: int = 95) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB frame as JPEG (or PNG by suffix), atomically."""
    path = Path(path)
    img = Image.fromarray(np.asarray(frame, dtype=np.uint8), mode="RGB")
    fmt, kwargs = ("JPEG", {"quality": quality}) if path.suffix.lower() in (".jpg", ".jpeg") else ("PNG", {})
    with atomic_path(path, suffix=path.suffix) as tmp:
        img.save(tmp, format=fmt, **kwargs)
