"""Reading a user's video (a file through PyAV, or a folder of frames) and writing overlay videos.

Frames are read one at a time (:func:`iter_frames` is a generator): a long video is never decoded into
memory as a whole. A display rotation (``display_rotation`` / the display matrix) is applied when frames are
read, as players do, so frames, sizes and masks are those of the displayed picture. :class:`OverlayWriter`
blends id masks onto frames (DAVIS palette colours) and encodes them to an H.264 (``libx264``; MPEG-4 Part 2
where PyAV lacks it) mp4 through PyAV, atomically, at the source's size (odd sizes in 4:4:4, H.264 4:2:0
needs even sides) and with the source's timestamps (:func:`frame_times`; variable frame rates stay).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from vosc.data.errors import FrameOrderError
from vosc.data.frame_order import numeric_order
from vosc.data.palette import davis_palette, read_frame

log = logging.getLogger(__name__)

__all__ = ["FRAME_SUFFIXES", "OverlayWriter", "VideoInfo", "VideoReadError", "blend_overlay", "folder_frames",
           "frame_times", "iter_frames", "probe_video"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_PALETTE = np.asarray(davis_palette(), dtype=np.uint8).reshape(-1, 3)


class VideoReadError(ValueError):
    """A video file or frame folder cannot be read; the message names the path and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class VideoInfo:
    """What is known of a video before decoding it.

    Attributes:
        path: The file or folder.
        num_frames: Frame count (container metadata for files, may be an estimate; exact for folders),
            ``None`` when unknown.
        fps: Frames per second (``None`` for folders).
        width: Frame width in pixels, as displayed (after :attr:`rotation`).
        height: Frame height in pixels, as displayed.
        rotation: Display rotation in degrees counter-clockwise (0, 90, 180 or 270) that :func:`iter_frames`
            applies; 0 for folders.
    """

    path: Path
    num_frames: int | None
    fps: float | None
    width: int
    height: int
    rotation: int = 0


def _rotation(frame: av.VideoFrame, path: Path) -> int:
    """The frame's display rotation, counter-clockwise degrees in ``{0, 90, 180, 270}``."""
    degrees = int(round(float(frame.rotation or 0))) % 360
    if degrees % 90:
        raise VideoReadError(path, f"display rotation {degrees} degrees is not a multiple of 90")
    return degrees


def _displayed(arr: np.ndarray, rotation: int) -> np.ndarray:
    """``(H, W, 3)`` frame as displayed: rotated ``rotation`` degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(arr, k=rotation // 90)) if rotation else arr


def folder_frames(path: Path) -> list[Path]:
    """The frame images of a folder in temporal order: by the numbers in their names (``2.jpg`` before
    ``10.jpg``, :func:`vosc.data.frame_order.numeric_order`); hidden files ignored.

    Raises:
        VideoReadError: The folder holds no frame image, or names that cannot be ordered (e.g. ``cover.jpg``
            among ``0.jpg …``, or ``1.jpg`` and ``01.jpg``).
    """
    files = [p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise VideoReadError(path, f"folder holds no frame images ({', '.join(FRAME_SUFFIXES)})")
    try:
        return numeric_order(files, path)
    except FrameOrderError as exc:
        raise VideoReadError(path, exc.problem) from exc


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, rate and size of a video file or frame folder (without decoding the whole video).

    Raises:
        VideoReadError: The path is missing, not a video, has no video stream, or an empty folder.
    """
    path = Path(path)
    if not path.exists():
        raise VideoReadError(path, "no such video file or frame folder")
    if path.is_dir():
        files = folder_frames(path)
        first = read_frame(files[0])
        return VideoInfo(path, len(files), None, int(first.shape[1]), int(first.shape[0]))
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "file has no video stream")
            stream = container.streams.video[0]
            frames = int(stream.frames) or None
            fps = float(stream.average_rate) if stream.average_rate else None
            if frames is None and stream.duration is not None and stream.time_base and fps:
                frames = round(float(stream.duration * stream.time_base) * fps)
            ctx = stream.codec_context
            width, height, rotation = int(ctx.width), int(ctx.height), 0
            for frame in container.decode(stream):  # the display matrix comes with the decoded frames
                rotation = _rotation(frame, path)
                break
            if rotation in (90, 270):
                width, height = height, width
            return VideoInfo(path, frames, fps, width, height, rotation)
    except av.FFmpegError as exc:
        raise VideoReadError(path, f"not a readable video ({exc})") from exc


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video file (mp4/mkv/webm/..., decoded by PyAV) or a folder of images, in order
    (a folder's files by the numbers in their names, :func:`folder_frames`).

    Streaming: one decoded frame is held at a time.

    Yields:
        ``(H, W, 3)`` uint8 RGB frames.

    Raises:
        VideoReadError: Unreadable file, no video stream, a decoding error, or no frame at all.
    """
    path = Path(path)
    info = probe_video(path)
    count = 0
    if path.is_dir():
        for f in folder_frames(path):
            yield read_frame(f)
            count += 1
        return
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            for frame in container.decode(stream):
                arr = _displayed(frame.to_ndarray(format="rgb24"), _rotation(frame, path))
                if arr.shape[:2] != (info.height, info.width):
                    raise VideoReadError(path, f"frame {count} has size {arr.shape[1]}x{arr.shape[0]}, the "
                                               f"stream {info.width}x{info.height}")
                yield arr
                count += 1
    except av.FFmpegError as exc:
        raise VideoReadError(path, f"decoding failed after {count} frames ({exc})") from exc
    if count == 0:
        raise VideoReadError(path, "video has no decodable frame")


def frame_times(path: str | Path) -> tuple[list[int], Fraction] | None:
    """Presentation timestamps of a video file's frames, read from its packets (nothing is decoded).

    Returns:
        ``(pts in presentation order, time base)``, or ``None`` for a frame folder or a stream without
        timestamps.

    Raises:
        VideoReadError: The file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts = sorted(int(p.pts) for p in container.demux(stream) if p.pts is not None and p.size)
            base = stream.time_base
    except (av.FFmpegError, IndexError) as exc:
        raise VideoReadError(path, f"cannot read frame timestamps ({exc})") from exc
    return (pts, Fraction(base)) if pts and base else None


def blend_overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend object colours (DAVIS palette) over a frame.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` uint8 ids (0 = background, left unchanged).
        alpha: Opacity of the object colours.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    colours = _PALETTE[mask].astype(np.float32)
    out = frame.astype(np.float32)
    fg = mask > 0
    out[fg] = (1.0 - alpha) * out[fg] + alpha * colours[fg]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class OverlayWriter:
    """Write frames with blended masks to an mp4 (atomically: a temp file renamed on :meth:`close`).

    Args:
        path: Output ``.mp4``.
        fps: Frame rate (the timestamps of frames written without ``pts``).
        width: Frame width (odd sizes are kept: H.264 4:4:4 then, as 4:2:0 needs even sides; the MPEG-4
            fallback pads by one pixel, with a warning).
        height: Frame height.
        alpha: Opacity of the object colours.
        crf: H.264 constant rate factor (quality of the overlay, not of the segmentation).
        time_base: Time base of the ``pts`` given to :meth:`write` (the source's, :func:`frame_times`).
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, alpha: float = 0.5,
                 crf: int = 20, time_base: Fraction | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}.mp4")
        self.alpha = alpha
        self.size = (height, width)
        self._container = av.open(str(self._tmp), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
        stream = self._container.add_stream(codec, rate=rate)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise TypeError(f"{self.path}: {codec} did not give a video stream")
        self._stream = stream
        odd = bool(width % 2 or height % 2)
        self._pad = odd and codec != "libx264"
        if self._pad:
            log.warning("%s: %s cannot keep the odd size %dx%d: padded by one pixel", self.path, codec, width,
                        height)
        self._stream.width, self._stream.height = (width + width % 2, height + height % 2) if self._pad \
            else (width, height)
        self._stream.pix_fmt = "yuv444p" if odd and not self._pad else "yuv420p"
        self.time_base = time_base
        if time_base is not None:
            self._stream.time_base = self._stream.codec_context.time_base = time_base
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._closed = False
        self.frames = 0

    def write(self, frame: np.ndarray, mask: np.ndarray, pts: int | None = None) -> None:
        """Blend ``(H, W)`` ids over an ``(H, W, 3)`` uint8 frame and encode it (at ``pts`` in
        :attr:`time_base`, when given)."""
        self.write_rgb(blend_overlay(frame, mask, self.alpha), pts)

    def write_rgb(self, img: np.ndarray, pts: int | None = None) -> None:
        """Encode an ``(H, W, 3)`` uint8 RGB frame as it is (at ``pts`` in :attr:`time_base`, when given)."""
        h, w = self.size
        if img.shape != (h, w, 3) or img.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {self.frames} is {img.shape} {img.dtype}, expected "
                             f"({h}, {w}, 3) uint8")
        if self._pad:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        if pts is not None and self.time_base is not None:
            frame.pts, frame.time_base = pts, self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Flush and close; rename into place when ``keep``, else delete the partial file."""
        if self._closed:
            return
        self._closed = True
        try:
            if keep:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
        if keep:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(keep=exc_type is None)
