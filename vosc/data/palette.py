"""Reading and writing frames and object-id masks in the formats of DAVIS / YouTube-VOS.

* Frames: JPEG (or PNG) RGB images, read as ``(H, W, 3)`` uint8.
* Masks: indexed (palette, mode ``P``) PNGs whose indices are object ids; single-channel (``L``)
  PNGs are accepted as id maps too, and binary 0/255 masks (DAVIS-2016) become object 1.
  Index 255 (void) is mapped to background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vosc.data.errors import (
    CorruptImageError,
    MaskSizeError,
    MissingFrameError,
    MissingMaskError,
    NotPaletteMaskError,
)
from vosc.utils.io import atomic_path


def davis_palette() -> list[int]:
    """The standard DAVIS / YouTube-VOS / PASCAL colour palette (256 RGB triplets, flattened)."""
    pal: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal.extend((r, g, b))
    return pal


_PALETTE = davis_palette()


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


def read_mask(
    path: str | Path,
    expected_size: tuple[int, int] | None = None,
    binary: bool | None = None,
) -> np.ndarray:
    """Read an object-id mask.

    Args:
        path: PNG file (mode ``P``, ``L``, ``1`` or ``I``).
        expected_size: ``(H, W)`` the mask must have (its frame's size), or ``None``.
        binary: ``True``: any non-zero pixel is object 1 (DAVIS-2016 0/255 masks). ``None``: a
            single-channel mask whose only values are ``{0, 255}`` is read as binary, ``255`` elsewhere
            is void (background). ``False``: ids are taken as they are (255 → background).

    Returns:
        ``(H, W)`` uint8 object ids.

    Raises:
        MissingMaskError, CorruptImageError, NotPaletteMaskError, MaskSizeError.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingMaskError(path, "mask file is missing")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                raise NotPaletteMaskError(
                    path, f"mask is {mode}; expected an indexed (palette) or single-channel id PNG"
                )
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, NotPaletteMaskError):
            raise
        raise CorruptImageError(path, f"cannot decode mask ({exc})") from exc
    if arr.ndim != 2:
        raise NotPaletteMaskError(path, f"mask has shape {arr.shape}; expected (H, W)")
    if expected_size is not None and tuple(arr.shape) != tuple(expected_size):
        raise MaskSizeError(path, f"mask size {arr.shape[1]}x{arr.shape[0]} (WxH) differs from frame size "
                                  f"{expected_size[1]}x{expected_size[0]}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.max(initial=0) > 255:
        raise NotPaletteMaskError(path, f"mask ids exceed 255 (max {int(arr.max())})")
    arr = arr.astype(np.uint8)
    if binary is None:
        binary = mode != "P" and bool(np.isin(arr, (0, 255)).all()) and bool((arr == 255).any())
    if binary:
        return (arr > 0).astype(np.uint8)
    out = arr.copy()
    out[out == 255] = 0
    return out


def _atomic_save(img: Image.Image, path: Path, fmt: str, **kwargs: int) -> None:
    with atomic_path(path, suffix=path.suffix) as tmp:
        img.save(tmp, format=fmt, **kwargs)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write ``(H, W)`` integer ids as a DAVIS-palette PNG (atomically)."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    _atomic_save(img, Path(path), "PNG")


def write_frame(path: str | Path, frame: np.ndarray, quality: int = 95) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB frame as JPEG (or PNG by suffix), atomically."""
    path = Path(path)
    img = Image.fromarray(np.asarray(frame, dtype=np.uint8), mode="RGB")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        _atomic_save(img, path, "JPEG", quality=quality)
    else:
        _atomic_save(img, path, "PNG")
