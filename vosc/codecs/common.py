"""Helpers shared by the real codecs: PyAV import and decoding of raw Annex-B streams (the input checks and
the timed encode+decode live in :class:`vosc.codecs.base.Codec`)."""

from __future__ import annotations

import numpy as np

from vosc.codecs.base import CodecError, DecodedStream, EncoderNotFoundError, check_frames
from vosc.codecs.yuv import crop, i420_to_planes, yuv420_to_rgb

__all__ = ["PYAV_HINT", "check_frames", "import_av", "picture_type_name", "pyav_decode"]

PYAV_HINT = "install it with `pip install av`"


def import_av():  # noqa: ANN201 - returns the PyAV module
    """Import PyAV or raise :class:`EncoderNotFoundError` with the install command."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise EncoderNotFoundError(f"PyAV is not installed; {PYAV_HINT}") from exc
    return av


def picture_type_name(pict_type: object) -> str:
    """``"I"``, ``"P"``, ``"B"`` ... for a PyAV picture type (an int or a ``PictureType`` enum)."""
    from av.video.frame import PictureType

    try:
        return PictureType(int(pict_type)).name  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return "NONE"


def pyav_decode(
    decoder_name: str,
    bitstream: bytes,
    num_frames: int,
    height: int,
    width: int,
    coded_size: tuple[int, int] | None = None,
) -> DecodedStream:
    """Decode a raw Annex-B stream in-process with PyAV on one thread.

    Both the parser and the decoder are flushed (``parse(None)``, ``decode(None)``), otherwise the
    last frame is lost. The parser's packets are the access units: their sizes give per-frame bytes.

    Args:
        decoder_name: FFmpeg decoder, ``"hevc"`` or ``"vvc"``.
        bitstream: The raw stream.
        num_frames: Expected number of frames ``T``.
        height: Original (unpadded) height ``H``.
        width: Original (unpadded) width ``W``.
        coded_size: ``(height, width)`` of the coded pictures; default: ``H, W`` rounded up to even.

    Returns:
        Frames ``(T, H, W, 3)`` uint8 plus per-frame access-unit bytes and picture types.

    Raises:
        CodecError: Frame count, size, or access-unit accounting does not match.
    """
    av = import_av()
    ph, pw = coded_size or (height + height % 2, width + width % 2)
    ctx = av.CodecContext.create(decoder_name, "r")
    ctx.thread_count = 1
    packets = list(ctx.parse(bitstream)) + list(ctx.parse(None))
    sizes = [p.size for p in packets]
    if sum(sizes) != len(bitstream):
        raise CodecError(f"{decoder_name}: parser packets cover {sum(sizes)} of {len(bitstream)} bytes")
    decoded = []
    for packet in packets:
        decoded.extend(ctx.decode(packet))
    decoded.extend(ctx.decode(None))
    if len(decoded) != num_frames or len(packets) != num_frames:
        raise CodecError(
            f"{decoder_name}: decoded {len(decoded)} frames from {len(packets)} access units, "
            f"expected {num_frames}"
        )
    ys, us, vs, types = [], [], [], []
    bit_depth = 8
    for frame in decoded:
        if (frame.height, frame.width) != (ph, pw):
            raise CodecError(f"{decoder_name}: decoded size {frame.height}x{frame.width}, expected {ph}x{pw}")
        bit_depth = 10 if "10" in frame.format.name else 8
        y, u, v = i420_to_planes(frame.to_ndarray(), ph, pw)
        ys.append(y)
        us.append(u)
        vs.append(v)
        types.append(picture_type_name(frame.pict_type))
    rgb = yuv420_to_rgb(np.concatenate(ys), np.concatenate(us), np.concatenate(vs), bit_depth=bit_depth)
    return DecodedStream(frames=crop(rgb, height, width), frame_bytes=sizes, frame_types=types)


