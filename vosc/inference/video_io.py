"""Reading a user's video (a file through PyAV, or a folder of frames) and writing overlay videos.

Frames are read one at a time (:func:`iter_frames` is a generator): a long video is never decoded into
memory as a whole. :class:`OverlayWriter` blends id masks onto frames (DAVIS palette colours) and encodes
them to an H.264 (``libx264``; MPEG-4 Part 2 where PyAV lacks it) mp4 through PyAV, atomically.
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
           "iter_frames", "probe_video"]

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
        width: Frame width in pixels.
        height: Frame height in pixels.
    """

    path: Path
    num_frames: int | None
    fps: float | None
    width: int
    height: int


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
            return VideoInfo(path, frames, fps, int(ctx.width), int(ctx.height))
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
                arr = frame.to_ndarray(format="rgb24")
                if arr.shape[:2] != (info.height, info.width):
                    raise VideoReadError(path, f"frame {count} has size {arr.shape[1]}x{arr.shape[0]}, the "
                                               f"stream {info.width}x{info.height}")
                yield arr
                count += 1
    except av.FFmpegError as exc:
        raise VideoReadError(path, f"decoding failed after {count} frames ({exc})") from exc
    if count == 0:
        raise VideoReadError(path, "video has no decodable frame")


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
        fps: Frame rate.
        width: Frame width (odd sizes are padded by one pixel: H.264 needs even sides).
        height: Frame height.
        alpha: Opacity of the object colours.
        crf: H.264 constant rate factor (quality of the overlay, not of the segmentation).
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, alpha: float = 0.5,
                 crf: int = 20) -> None:
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
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._closed = False
        self.frames = 0

    def write(self, frame: np.ndarray, mask: np.ndarray) -> None:
        """Blend ``(H, W)`` ids over an ``(H, W, 3)`` uint8 frame and encode it."""
        self.write_rgb(blend_overlay(frame, mask, self.alpha))

    def write_rgb(self, img: np.ndarray) -> None:
        """Encode an ``(H, W, 3)`` uint8 RGB frame as it is."""
        h, w = self.size
        if img.shape != (h, w, 3) or img.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {self.frames} is {img.shape} {img.dtype}, expected "
                             f"({h}, {w}, 3) uint8")
        if h % 2 or w % 2:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
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
