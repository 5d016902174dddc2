"""Common structure of every data source: a list of videos (or static images) with annotated frames.

A source is a plain object (Hydra instantiates it from ``conf/data/*.yaml``) that lists
:class:`VideoRecord` s and loads frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8 for
chosen frame indices. Layout problems raise the exceptions of :mod:`vosc.data.errors`; with
``on_error="skip"`` a broken video is dropped and logged with its reason (never silently).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from vosc.data.errors import (
    CorruptImageError,
    DataError,
    EmptyReferenceMaskError,
    InconsistentFrameSizeError,
    MaskSizeError,
    MissingFrameError,
    MissingMaskError,
    NoAnnotatedFrameError,
    NotPaletteMaskError,
    OddFrameSizeError,
)
from vosc.data.frame_order import numeric_order
from vosc.data.palette import read_frame, read_mask

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
OnError = Literal["raise", "skip"]


@dataclass
class VideoRecord:
    """One video (or one static image, ``T = 1``).

    Attributes:
        name: Sequence name (unique within the source).
        frame_ids: Frame names in temporal order (file stems, e.g. ``"00005"``).
        frame_paths: Image file of each frame, same order.
        mask_paths: Annotated frames: frame id → mask file.
        binary_masks: ``True`` for 0/255 masks (one object), ``None`` for auto-detection.
        first_appearance: Object id → frame id of its first annotation (YouTube-VOS ``valid``), else empty.
    """

    name: str
    frame_ids: list[str]
    frame_paths: list[Path]
    mask_paths: dict[str, Path]
    binary_masks: bool | None = None
    first_appearance: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def annotated_indices(self) -> list[int]:
        """Indices (into :attr:`frame_ids`) of the frames that have a mask."""
        return [i for i, f in enumerate(self.frame_ids) if f in self.mask_paths]

    def has_mask(self, index: int) -> bool:
        """Whether frame ``index`` is annotated."""
        return self.frame_ids[index] in self.mask_paths


def list_images(folder: Path, ordered: bool = True) -> list[Path]:
    """Image files of a folder (hidden files ignored).

    Args:
        folder: The folder.
        ordered: The files are frames of one video: sort them by the numbers in their names
            (:func:`vosc.data.frame_order.numeric_order`: ``2.jpg`` before ``10.jpg``). ``False``: an
            unordered collection (static images), sorted by name.

    Raises:
        FrameOrderError: ``ordered`` and the names cannot be put in temporal order (e.g. ``cover.jpg``
            among ``0.jpg …``).
    """
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    return numeric_order(files, folder) if ordered else files


def scan_video(img_root: Path, ann_root: Path, name: str, binary_masks: bool | None = False,
               kind: str = "video") -> VideoRecord:
    """The record of video ``name``: frames ``img_root/name/*`` and masks ``ann_root/name/*.png`` (if any).

    Raises:
        MissingFrameError: the frame folder is missing or holds no image (``kind`` names the video in the
            message).
    """
    fdir = img_root / name
    if not fdir.is_dir():
        raise MissingFrameError(fdir, f"{kind} {name!r} is listed but has no frame folder")
    frames = list_images(fdir)
    if not frames:
        raise MissingFrameError(fdir, f"{kind} {name!r} has no frames")
    mdir = ann_root / name
    masks = {p.stem: p for p in sorted(mdir.glob("*.png"))} if mdir.is_dir() else {}
    return VideoRecord(name, [p.stem for p in frames], frames, masks, binary_masks=binary_masks)


class VideoSource:
    """Base class of the sources.

    Args:
        name: Source name used in logs and batches (e.g. ``"davis"``).
        validate: Check every video when the source is built (frame/mask pairing, mask headers: mode and
            size, non-empty first mask). Header checks do not decode pixels.
        on_error: ``"raise"`` (default) or ``"skip"`` a video that fails validation (logged as a warning).
        require_even: Raise :class:`OddFrameSizeError` for odd frame sizes (codecs pad odd sizes, so
            this is off by default).
    """

    is_static: bool = False

    def __init__(self, name: str, validate: bool = True, on_error: OnError = "raise",
                 require_even: bool = False) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.name = name
        self.validate = validate
        self.on_error = on_error
        self.require_even = require_even
        self.videos: list[VideoRecord] = []
        self.skipped: dict[str, str] = {}

    # ------------------------------------------------------------------ building
    def _add_videos(self, records: Sequence[VideoRecord]) -> None:
        """Validate and register records, honouring :attr:`on_error`."""
        for rec in records:
            try:
                if not rec.mask_paths:
                    raise NoAnnotatedFrameError(
                        rec.frame_paths[0].parent if rec.frame_paths else Path(rec.name),
                        f"video {rec.name!r} has no annotated frame",
                    )
                if self.validate:
                    self.check_video(rec)
            except DataError as exc:
                if self.on_error == "raise":
                    raise
                self.skipped[rec.name] = str(exc)
                log.warning("source %s: skipping video %r: %s", self.name, rec.name, exc)
                continue
            self.videos.append(rec)
        if not self.videos:
            log.warning("source %s has no usable video", self.name)

    def check_video(self, rec: VideoRecord) -> None:
        """Check one video without decoding frames: masks pair with frames, have the frame size, are
        single-channel, and the first annotated mask has foreground.

        Raises:
            MissingFrameError, MaskSizeError, NotPaletteMaskError, CorruptImageError, OddFrameSizeError,
            EmptyReferenceMaskError.
        """
        ids = set(rec.frame_ids)
        for fid, mpath in rec.mask_paths.items():
            if fid not in ids:
                raise MissingFrameError(mpath, f"mask has no frame {fid!r} in video {rec.name!r}")
        size = _header(rec.frame_paths[0])[0]
        if self.require_even and (size[0] % 2 or size[1] % 2):
            raise OddFrameSizeError(rec.frame_paths[0], f"frame size {size[0]}x{size[1]} (WxH) is odd")
        for mpath in rec.mask_paths.values():
            msize, mode = _header(mpath)
            if mode in ("RGB", "RGBA", "LA", "CMYK"):
                raise NotPaletteMaskError(
                    mpath, f"mask is {mode}; expected an indexed (palette) or single-channel PNG"
                )
            if msize != size:
                raise MaskSizeError(mpath, f"mask size {msize[0]}x{msize[1]} (WxH) differs from frame size "
                                           f"{size[0]}x{size[1]} of {rec.frame_paths[0].name}")
        first = rec.annotated_indices[0]
        mask = read_mask(rec.mask_paths[rec.frame_ids[first]], binary=rec.binary_masks)
        if not mask.any():
            raise EmptyReferenceMaskError(rec.mask_paths[rec.frame_ids[first]],
                                          f"first annotated mask of video {rec.name!r} has no object")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.videos)

    def video(self, name: str) -> VideoRecord:
        """The record named ``name``."""
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(f"source {self.name}: no video {name!r}")

    def load_frames(self, rec: VideoRecord, indices: Sequence[int]) -> np.ndarray:
        """Load frames.

        Returns:
            ``(T, H, W, 3)`` uint8 with ``T = len(indices)``.

        Raises:
            MissingFrameError, CorruptImageError, InconsistentFrameSizeError, OddFrameSizeError.
        """
        frames = [read_frame(rec.frame_paths[i]) for i in indices]
        shape = frames[0].shape
        for i, f in zip(indices, frames, strict=False):
            if f.shape != shape:
                raise InconsistentFrameSizeError(
                    rec.frame_paths[i],
                    f"frame size {f.shape[1]}x{f.shape[0]} differs "
                    f"from {shape[1]}x{shape[0]} of {rec.frame_paths[indices[0]].name}",
                )
        if self.require_even and (shape[0] % 2 or shape[1] % 2):
            raise OddFrameSizeError(
                rec.frame_paths[indices[0]], f"frame size {shape[1]}x{shape[0]} (WxH) is odd"
            )
        return np.stack(frames)

    def load_masks(
        self, rec: VideoRecord, indices: Sequence[int], size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Load masks of annotated frames.

        Args:
            rec: The video.
            indices: Frame indices; each must be annotated.
            size: Expected ``(H, W)`` (the frames' size), checked when given.

        Returns:
            ``(T, H, W)`` uint8 object ids.

        Raises:
            MissingMaskError: A frame is not annotated (names the expected mask file).
        """
        out = []
        for i in indices:
            fid = rec.frame_ids[i]
            if fid not in rec.mask_paths:
                folder = next(iter(rec.mask_paths.values())).parent
                raise MissingMaskError(
                    folder / f"{fid}.png", f"frame {fid!r} of video {rec.name!r} has no mask"
                )
            out.append(read_mask(rec.mask_paths[fid], expected_size=size, binary=rec.binary_masks))
        return np.stack(out)

    def load_masks_or_empty(
        self, rec: VideoRecord, indices: Sequence[int], size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks where annotated, zeros elsewhere.

        Returns:
            ``(T, H, W)`` uint8 ids and ``(T,)`` bool "has mask".
        """
        has = np.array([rec.has_mask(i) for i in indices], dtype=bool)
        masks = np.zeros((len(indices), *size), dtype=np.uint8)
        for k, i in enumerate(indices):
            if has[k]:
                masks[k] = read_mask(
                    rec.mask_paths[rec.frame_ids[i]], expected_size=size, binary=rec.binary_masks
                )
        return masks, has

    def content_key(self, rec: VideoRecord) -> str:
        """A key that changes when any frame file of the video changes (names, sizes, mtimes).

        Used by the sequence-mode bitstream cache; cheap (no pixel reads).
        """
        h = hashlib.sha256(f"{self.name}/{rec.name}".encode())
        for p in rec.frame_paths:
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return h.hexdigest()[:32]


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """``((W, H), mode)`` of an image from its header."""
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except FileNotFoundError as exc:
        raise MissingFrameError(path, "file is missing") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot read image header ({exc})") from exc
