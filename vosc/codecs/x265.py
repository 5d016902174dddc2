"""HEVC through libx265, in-process with PyAV (DESIGN §5).

Settings of the paper: ``preset=veryfast, tune=zerolatency, keyint=8``, rate control by CRF (default) or
fixed QP. ``pools=none:frame-threads=1`` keeps x265 on one core, ``info=0`` drops the encoder-info SEI
(repeated at every keyframe, +27% bits otherwise), ``log-level=error`` silences x265. Input is
converted to ``yuv420p`` by :mod:`vosc.codecs.yuv`; odd sizes are padded to even (tiny pictures to
``MIN_CODED_HEIGHT x MIN_CODED_WIDTH``, 64-row pictures to 66 rows: see the constants) by edge replication and
cropped back after decoding.
The stream is raw Annex-B (no container); decoding uses ``av.CodecContext('hevc')`` with parser and
decoder flushed.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vosc.codecs.base import Codec, CodecError, DecodedStream, EncodedStream, EncoderNotFoundError, Standard
from vosc.codecs.common import PYAV_HINT, import_av, pyav_decode
from vosc.codecs.yuv import planes_to_i420, rgb_to_yuv420
from vosc.config import ConfigError

RateControl = Literal["crf", "qp"]
#: ``(PyAV frame, frame index) -> PyAV frame`` applied to every picture before it is encoded.
FrameHook = Callable[[Any, int], Any]

#: Pictures at most one 64-px CTU wide are widened to this many columns (edge replication, cropped
#: after decoding): x265 4.2 reads uninitialised memory on such narrow pictures (the output depends on
#: heap contents, e.g. varies with ``MALLOC_PERTURB_``), which breaks determinism. Real inputs
#: (DAVIS 854x480, 465x465 crops) are wider and unaffected.
MIN_CODED_WIDTH = 72
#: Pictures exactly one CTU row high (64 rows) get two more rows (edge replication, cropped after decoding):
#: x265 4.2 reads uninitialised memory there too (64-row DAVIS crops: three bitstreams for one clip in one
#: process, another per ``MALLOC_PERTURB_``; 56, 66, 128 rows: one). Training crops of 64 rows broke the
#: exact resume of x265 runs.
SINGLE_CTU_ROW_CODED_HEIGHT = 66
#: libx265 refuses pictures lower than 16 rows; lower inputs are padded (edge replication) and cropped back.
MIN_CODED_HEIGHT = 16


def x265_params_string(rate_control: str, q: int, keyint: int, info: bool = False) -> str:
    """The ``x265-params`` option.

    E.g. ``crf=42:keyint=8:pools=none:frame-threads=1:info=0:log-level=error``.
    """
    return f"{rate_control}={q}:keyint={keyint}:pools=none:frame-threads=1:info={int(info)}:log-level=error"


class X265Codec(Codec):
    """libx265 at CRF or fixed QP.

    Args:
        rate_control: ``"crf"`` (the paper) or ``"qp"``.
        preset: x265 preset.
        tune: x265 tune.
        keyint: Maximum GOP length (an intra frame every ``keyint`` frames at most).
        encoder: FFmpeg encoder name inside PyAV (``"libx265"``); override only to test the error path.
    """

    name = "x265"
    q_range = (0, 51)
    standard: Standard = "hevc"

    def __init__(
        self,
        rate_control: RateControl = "crf",
        preset: str = "veryfast",
        tune: str = "zerolatency",
        keyint: int = 8,
        encoder: str = "libx265",
    ) -> None:
        if rate_control not in ("crf", "qp"):
            raise ConfigError(f"x265 rate_control must be 'crf' or 'qp', got {rate_control!r}")
        if keyint < 1:
            raise ConfigError(f"x265 keyint must be >= 1, got {keyint}")
        self.rate_control = rate_control
        self.preset = preset
        self.tune = tune
        self.keyint = int(keyint)
        self.encoder = encoder

    def params(self) -> dict[str, object]:
        """Everything that changes the bitstream (cache keys, provenance)."""
        return {
            "encoder": self.encoder,
            "rate_control": self.rate_control,
            "preset": self.preset,
            "tune": self.tune,
            "keyint": self.keyint,
            "pix_fmt": "yuv420p",
            "x265_params": x265_params_string(self.rate_control, 0, self.keyint).split(":", 1)[1],
            "yuv": "bt601-limited-numpy",
            "min_coded_size": (MIN_CODED_HEIGHT, MIN_CODED_WIDTH),
            "height_64_coded_as": SINGLE_CTU_ROW_CODED_HEIGHT,
        }

    @staticmethod
    def coded_size(height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of the coded pictures for an ``height x width`` input."""
        w, h = width + width % 2, max(height + height % 2, MIN_CODED_HEIGHT)
        return (SINGLE_CTU_ROW_CODED_HEIGHT if h == 64 else h), (w if w > 64 else MIN_CODED_WIDTH)

    def _context(self, width: int, height: int, q: int, info: bool = False, csv: str | None = None) -> Any:
        av = import_av()
        try:
            ctx = av.CodecContext.create(self.encoder, "w")
        except (av.error.FFmpegError, ValueError) as exc:  # UnknownCodecError subclasses ValueError
            raise EncoderNotFoundError(
                f"x265 encoder {self.encoder!r} is not available in this PyAV build; {PYAV_HINT}"
            ) from exc
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25, 1)
        ctx.thread_count = 1
        x265_params = x265_params_string(self.rate_control, q, self.keyint, info=info)
        if csv is not None:
            x265_params += f":csv={csv}:csv-log-level=1"
        ctx.options = {"preset": self.preset, "tune": self.tune, "x265-params": x265_params}
        return ctx

    def _encode(self, frames: np.ndarray, q: int) -> bytes:
        """Encode ``(T, H, W, 3)`` uint8 RGB frames to a raw HEVC Annex-B stream."""
        return self._run_encoder(frames, q, csv=None)

    def _encode_stream(self, frames: np.ndarray, q: int, prepare: FrameHook | None = None) -> EncodedStream:
        """Encode like :meth:`encode` and read each frame's average QP from x265's frame log.

        ``prepare(frame, i)`` (optional) may replace each ``yuv420p`` PyAV frame before it is encoded
        (e.g. attach region-of-interest side data, :mod:`vosc.codecs.roi`).

        x265 writes its per-frame log (``csv=<file>:csv-log-level=1``, column ``QP``: the frame's
        average QP after adaptive quantisation) to a temporary file while encoding; the log does not
        change the bitstream (tested).

        Returns:
            The bitstream and ``T`` QPs in display order.

        Raises:
            CodecError: The log is missing or does not have one row per frame.
        """
        with tempfile.TemporaryDirectory(prefix="vosc-x265-") as tmp:
            csv = os.path.join(tmp, "frames.csv")
            if ":" in csv:
                raise CodecError(f"x265 frame log path {csv!r} contains ':'; set TMPDIR to a path without it")
            stream = self._run_encoder(frames, q, csv=csv, prepare=prepare)
            qps = parse_x265_csv(Path(csv), len(frames))
        return EncodedStream(bitstream=stream, frame_qps=qps)

    def _run_encoder(
        self, frames: np.ndarray, q: int, csv: str | None, prepare: FrameHook | None = None
    ) -> bytes:
        av = import_av()
        ch, cw = self.coded_size(*frames.shape[1:3])
        t, h, w = frames.shape[:3]
        padded = np.pad(frames, [(0, 0), (0, ch - h), (0, cw - w), (0, 0)], mode="edge")
        y, u, v = rgb_to_yuv420(padded, bit_depth=8)
        ctx = self._context(cw, ch, q, csv=csv)
        chunks: list[bytes] = []
        try:
            for i in range(t):
                frame = av.VideoFrame.from_ndarray(planes_to_i420(y, u, v, i), format="yuv420p")
                frame.pts = i
                if prepare is not None:
                    frame = prepare(frame, i)
                chunks.extend(bytes(p) for p in ctx.encode(frame))
            chunks.extend(bytes(p) for p in ctx.encode(None))
        except av.error.FFmpegError as exc:
            raise CodecError(
                f"x265 failed on frames {frames.shape} (coded {ch}x{cw}) at q={q}: {exc}"
            ) from exc
        finally:
            del ctx  # the last reference: closes the encoder, and x265 writes out its frame log
        stream = b"".join(chunks)
        if not stream:
            raise CodecError(f"x265 produced an empty bitstream for {frames.shape} at q={q}")
        return stream

    def decode_stream(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """Decode with PyAV's ``hevc`` decoder; see :func:`vosc.codecs.common.pyav_decode`."""
        return pyav_decode("hevc", bitstream, num_frames, height, width, self.coded_size(height, width))

    def decode(self, bitstream: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        """Decode to ``(num_frames, height, width, 3)`` uint8 RGB."""
        return self.decode_stream(bitstream, num_frames, height, width).frames

    def version(self) -> str:
        """``x265 <version> / PyAV <version> / libavcodec <version>``."""
        return _x265_version(self.encoder)


def parse_x265_csv(path: Path, num_frames: int) -> list[float]:
    """Per-frame average QP (column ``QP``) from an x265 frame log, ordered by ``POC``.

    Raises:
        CodecError: The file is missing, lacks the ``POC``/``QP`` columns, or has not ``num_frames``
            rows with distinct POCs, naming the file.
    """
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise CodecError(f"x265 frame log {path} could not be read: {exc}") from exc
    if not lines:
        raise CodecError(f"x265 frame log {path} is empty")
    header = [c.strip() for c in lines[0].split(",")]
    if "POC" not in header or "QP" not in header:
        raise CodecError(f"x265 frame log {path} has no POC/QP columns: {header[:6]}")
    i_poc, i_qp = header.index("POC"), header.index("QP")
    rows = {}
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.split(",")]
        rows[int(cells[i_poc])] = float(cells[i_qp])
    if sorted(rows) != list(range(num_frames)):
        raise CodecError(
            f"x265 frame log {path} has POCs {sorted(rows)[:10]}..., expected 0..{num_frames - 1}"
        )
    return [rows[i] for i in range(num_frames)]


@functools.lru_cache(maxsize=4)
def _x265_version(encoder: str) -> str:
    """Read the x265 version from the info SEI of a one-frame 16x16 encode (``info=1``)."""
    av = import_av()
    codec = X265Codec(encoder=encoder)
    ctx = codec._context(16, 16, 51, info=True)
    frame = av.VideoFrame.from_ndarray(np.full((24, 16), 128, np.uint8), format="yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in list(ctx.encode(frame)) + list(ctx.encode(None)))
    m = re.search(rb"x265 \(build (\d+)\) - ([0-9A-Za-z.+_-]+)", data)
    x265 = f"x265 {m.group(2).decode()} (build {m.group(1).decode()})" if m else "x265 unknown"
    lavc = ".".join(str(x) for x in av.library_versions["libavcodec"])
    return f"{x265} / PyAV {av.__version__} / libavcodec {lavc}"
