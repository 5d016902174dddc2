"""Coders of per-sequence object-id maps: the side information of ``analysis=encoder``.

In the encoder-side system (DESIGN §9, issue 25) the VOS network runs at the encoder on the original frames;
its masks travel next to the video bitstream and the decoder only decodes them. Every coder here writes one
self-contained byte string per sequence (a 13-byte header: magic, coder id, ``T``, ``H``, ``W``, then the
payload) and the bits counted are ``8 * len(bytes)``, header included.

Coders (measured on the DAVIS mini sequences in ``docs/encoder_side.md``):

* :class:`DeflateMaskCodec` — zlib or raw LZMA2 over the frame-differenced id maps (``m_t XOR m_{t-1}``);
  the simplest honest coder.
* :class:`FFV1MaskCodec` — FFmpeg's FFV1 (intra, context-modelled range coder) over the id maps as ``gray``
  pictures, via PyAV; packets framed by varint lengths.
* :class:`X265LosslessMaskCodec` — HEVC lossless (``lossless=1``, inter prediction) over the id maps as 4:0:0
  ``gray`` pictures, via PyAV's libx265; raw Annex-B.
* :class:`DownsampledMaskCodec` — lossy: an inner lossless coder over maps subsampled by ``factor``
  (nearest), upsampled (nearest) at the decoder. Its J&F is that of the decoded maps, not the encoder's.
"""

from __future__ import annotations

import abc
import lzma
import struct
import zlib
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from vosc.codecs.base import CodecError
from vosc.codecs.common import import_av
from vosc.config import ConfigError

__all__ = [
    "DeflateMaskCodec",
    "DownsampledMaskCodec",
    "FFV1MaskCodec",
    "MaskCodec",
    "MaskCodecError",
    "X265LosslessMaskCodec",
    "check_masks",
]

MAGIC = b"VMK1"
_HEADER = struct.Struct("<4sBIHH")  # magic, coder id, T, H, W: 13 bytes
#: Coder ids written in the header (a stream decoded by another coder is an error, not garbage).
CODER_IDS = {"deflate": 1, "ffv1": 2, "x265-lossless": 3, "downsampled": 4}


class MaskCodecError(CodecError):
    """Mask side information that cannot be coded or decoded (bad header, truncated, wrong coder)."""


def check_masks(masks: np.ndarray, where: str = "masks") -> None:
    """Raise :class:`ValueError` unless ``masks`` is a non-empty ``(T, H, W)`` uint8 id map stack
    (``H, W`` < 65536)."""
    if not isinstance(masks, np.ndarray) or masks.ndim != 3:
        shape = getattr(masks, "shape", None)
        raise ValueError(f"{where}: expected (T, H, W) id maps, got shape {shape}")
    if masks.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 id maps, got {masks.dtype}")
    if min(masks.shape) == 0 or max(masks.shape[1:]) >= 1 << 16:
        raise ValueError(f"{where}: unsupported map stack shape {masks.shape}")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise MaskCodecError("mask stream truncated inside a length field")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


class MaskCodec(abc.ABC):
    """A coder of one sequence's id maps to bytes and back.

    Subclasses implement :meth:`_encode_payload` / :meth:`_decode_payload`; the header (13 bytes) is written
    and checked here. ``lossless`` coders give back exactly the input.
    """

    #: Registry name (header coder id via :data:`CODER_IDS`).
    name: str = "abstract"
    lossless: bool = True

    def encode(self, masks: np.ndarray) -> bytes:
        """Code ``(T, H, W)`` uint8 id maps (0 = background, 1..N objects); returns the whole stream."""
        check_masks(masks, f"mask codec {self.name!r}")
        t, h, w = masks.shape
        if t >= 1 << 32:
            raise ValueError(f"mask codec {self.name!r}: too many frames ({t})")
        return _HEADER.pack(MAGIC, CODER_IDS[self.name], t, h, w) + self._encode_payload(masks)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a stream of :meth:`encode` to ``(T, H, W)`` uint8 id maps.

        Raises:
            MaskCodecError: Not a mask stream, written by another coder, truncated or inconsistent.
        """
        if len(data) < _HEADER.size:
            raise MaskCodecError(
                f"mask stream of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
        magic, coder, t, h, w = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise MaskCodecError(f"not a vosc mask stream (magic {magic!r}, expected {MAGIC!r})")
        if coder != CODER_IDS[self.name]:
            names = {v: k for k, v in CODER_IDS.items()}
            raise MaskCodecError(
                f"mask stream written by coder {names.get(coder, coder)!r}, decoded as {self.name!r}")
        out = self._decode_payload(data[_HEADER.size :], t, h, w)
        if out.shape != (t, h, w) or out.dtype != np.uint8:
            raise MaskCodecError(
                f"{self.name}: decoded {out.shape} {out.dtype}, header says ({t}, {h}, {w}) uint8")
        return out

    @abc.abstractmethod
    def _encode_payload(self, masks: np.ndarray) -> bytes: ...

    @abc.abstractmethod
    def _decode_payload(self, payload: bytes, t: int, h: int, w: int) -> np.ndarray: ...

    def params(self) -> dict[str, Any]:
        """Everything that changes the stream (fingerprints and provenance)."""
        return {"name": self.name}

    @property
    def label(self) -> str:
        """Short display name, e.g. ``lzma-diff``."""
        return self.name

    @property
    def method_suffix(self) -> str:
        """Added to encoder-side method names (``x265+enc+m4``): empty for lossless coders, whose J&F is the
        encoder's."""
        return ""


def _difference(masks: np.ndarray) -> np.ndarray:
    d = masks.copy()
    d[1:] = masks[1:] ^ masks[:-1]
    return d


def _undifference(d: np.ndarray) -> np.ndarray:
    return np.bitwise_xor.accumulate(d, axis=0).astype(np.uint8)


class DeflateMaskCodec(MaskCodec):
    """zlib or raw LZMA2 over the (optionally frame-differenced, XOR) id maps.

    Args:
        method: ``"zlib"`` or ``"lzma"`` (raw LZMA2, no xz container).
        difference: Code ``m_t XOR m_{t-1}`` (frame 0 as is).
        level: Compression level (zlib 0..9; LZMA preset 0..9).
    """

    name = "deflate"

    def __init__(
        self, method: Literal["zlib", "lzma"] = "lzma", difference: bool = True, level: int = 9
    ) -> None:
        if method not in ("zlib", "lzma"):
            raise ConfigError(f"DeflateMaskCodec method must be 'zlib' or 'lzma', got {method!r}")
        if not 0 <= int(level) <= 9:
            raise ConfigError(f"DeflateMaskCodec level must be in [0, 9], got {level}")
        self.method, self.difference, self.level = method, bool(difference), int(level)

    def _filters(self) -> list[dict[str, Any]]:
        return [{"id": lzma.FILTER_LZMA2, "preset": self.level}]

    def _encode_payload(self, masks: np.ndarray) -> bytes:
        raw = (_difference(masks) if self.difference else masks).tobytes()
        if self.method == "zlib":
            return bytes([0]) + zlib.compress(raw, self.level)
        return bytes([1]) + lzma.compress(raw, format=lzma.FORMAT_RAW, filters=self._filters())

    def _decode_payload(self, payload: bytes, t: int, h: int, w: int) -> np.ndarray:
        if not payload or payload[0] != (0 if self.method == "zlib" else 1):
            raise MaskCodecError(f"deflate mask stream is not {self.method}")
        try:
            if self.method == "zlib":
                raw = zlib.decompress(payload[1:])
            else:
                raw = lzma.decompress(payload[1:], format=lzma.FORMAT_RAW, filters=self._filters())
        except (zlib.error, lzma.LZMAError) as exc:
            raise MaskCodecError(f"{self.method} mask payload is corrupt: {exc}") from exc
        if len(raw) != t * h * w:
            raise MaskCodecError(f"{self.method} mask payload holds {len(raw)} bytes, expected {t * h * w}")
        maps = np.frombuffer(raw, np.uint8).reshape(t, h, w)
        return _undifference(maps) if self.difference else maps.copy()

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "difference": self.difference, "level": self.level}

    @property
    def label(self) -> str:
        return f"{self.method}{'-diff' if self.difference else ''}"


def _gray_frame(av: Any, plane: np.ndarray, pts: int) -> Any:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="gray")
    frame.pts = pts
    return frame


class FFV1MaskCodec(MaskCodec):
    """FFV1 (FFmpeg's lossless intra codec, context-modelled) over the id maps as ``gray`` pictures.

    Packets are stored with varint lengths, preceded by the codec extradata (varint length, usually 0).

    Args:
        coder: FFV1 ``coder`` option (``rice``, ``range_def``, ``range_tab``); ``None``: FFmpeg's default.
    """

    name = "ffv1"

    def __init__(self, coder: str | None = None) -> None:
        self.coder = coder

    def _encode_payload(self, masks: np.ndarray) -> bytes:
        av = import_av()
        t, h, w = masks.shape
        ctx = av.CodecContext.create("ffv1", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "gray"
        ctx.time_base, ctx.thread_count = Fraction(1, 25), 1
        if self.coder:
            ctx.options = {"coder": self.coder}
        packets = []
        for i in range(t):
            packets += [bytes(p) for p in ctx.encode(_gray_frame(av, masks[i], i))]
        packets += [bytes(p) for p in ctx.encode(None)]
        if len(packets) != t:
            raise MaskCodecError(f"ffv1 produced {len(packets)} packets for {t} maps")
        extra = bytes(ctx.extradata or b"")
        return b"".join([_varint(len(extra)), extra] + [_varint(len(p)) + p for p in packets])

    def _decode_payload(self, payload: bytes, t: int, h: int, w: int) -> np.ndarray:
        av = import_av()
        n, pos = _read_varint(payload, 0)
        extra, pos = payload[pos : pos + n], pos + n
        ctx = av.CodecContext.create("ffv1", "r")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.thread_count = w, h, "gray", 1
        if extra:
            ctx.extradata = extra
        out = np.empty((t, h, w), np.uint8)
        for i in range(t):
            n, pos = _read_varint(payload, pos)
            if pos + n > len(payload):
                raise MaskCodecError(f"ffv1 mask stream truncated in packet {i}")
            frames = ctx.decode(av.Packet(payload[pos : pos + n]))
            pos += n
            if len(frames) != 1:
                raise MaskCodecError(f"ffv1 packet {i} decoded to {len(frames)} pictures")
            out[i] = frames[0].to_ndarray(format="gray")
        if pos != len(payload):
            raise MaskCodecError(f"ffv1 mask stream has {len(payload) - pos} trailing bytes")
        return out

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "coder": self.coder}


class X265LosslessMaskCodec(MaskCodec):
    """HEVC lossless (libx265 ``lossless=1``, 4:0:0 ``gray``) over the id maps: intra + inter prediction.

    Pictures are padded like :class:`~vosc.codecs.x265.X265Codec` (edge replication; small and 64-row
    pictures) and cropped back. One GOP per sequence (``keyint`` = ``T``), one thread.

    Args:
        preset: x265 preset.
    """

    name = "x265-lossless"

    def __init__(self, preset: str = "veryfast") -> None:
        self.preset = preset

    def _encode_payload(self, masks: np.ndarray) -> bytes:
        from vosc.codecs.x265 import X265Codec

        av = import_av()
        t, h, w = masks.shape
        ch, cw = X265Codec.coded_size(h, w)
        padded = np.pad(masks, [(0, 0), (0, ch - h), (0, cw - w)], mode="edge")
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = cw, ch, "gray"
        ctx.time_base, ctx.framerate, ctx.thread_count = Fraction(1, 25), Fraction(25, 1), 1
        ctx.options = {"preset": self.preset, "x265-params": f"lossless=1:keyint={max(t, 1)}:pools=none:"
                       "frame-threads=1:info=0:log-level=error"}
        chunks = []
        try:
            for i in range(t):
                chunks += [bytes(p) for p in ctx.encode(_gray_frame(av, padded[i], i))]
            chunks += [bytes(p) for p in ctx.encode(None)]
        except av.error.FFmpegError as exc:
            raise MaskCodecError(f"x265 lossless failed on id maps {masks.shape}: {exc}") from exc
        return b"".join(chunks)

    def _decode_payload(self, payload: bytes, t: int, h: int, w: int) -> np.ndarray:
        av = import_av()
        ctx = av.CodecContext.create("hevc", "r")
        ctx.thread_count = 1
        pictures = []
        for packet in list(ctx.parse(payload)) + list(ctx.parse(None)):
            pictures += ctx.decode(packet)
        pictures += ctx.decode(None)
        if len(pictures) != t:
            raise MaskCodecError(f"x265-lossless mask stream decoded to {len(pictures)} maps, not {t}")
        return np.stack([p.to_ndarray(format="gray")[:h, :w] for p in pictures]).astype(np.uint8)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset}


class DownsampledMaskCodec(MaskCodec):
    """Lossy: ``inner`` over the maps subsampled by ``factor`` (nearest), upsampled (nearest) when decoded.

    Args:
        inner: A lossless coder of the small maps.
        factor: Subsampling factor (>= 1) in both directions.
    """

    name = "downsampled"
    lossless = False

    def __init__(self, inner: MaskCodec, factor: int = 2) -> None:
        if int(factor) < 1:
            raise ConfigError(f"DownsampledMaskCodec factor must be >= 1, got {factor}")
        self.inner, self.factor = inner, int(factor)

    def _encode_payload(self, masks: np.ndarray) -> bytes:
        f = self.factor
        return self.inner.encode(np.ascontiguousarray(masks[:, f // 2 :: f, f // 2 :: f]))

    def _decode_payload(self, payload: bytes, t: int, h: int, w: int) -> np.ndarray:
        small = self.inner.decode(payload)
        f = self.factor
        if small.shape != (t, len(range(f // 2, h, f)), len(range(f // 2, w, f))):
            raise MaskCodecError(
                f"downsampled mask maps {small.shape} do not match ({t}, {h}, {w}) / {f}")
        rows = np.minimum(np.arange(h) // f, small.shape[1] - 1)
        cols = np.minimum(np.arange(w) // f, small.shape[2] - 1)
        return np.ascontiguousarray(small[:, rows][:, :, cols])

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor, "inner": self.inner.params()}

    @property
    def label(self) -> str:
        return f"{self.inner.label}/{self.factor}"

    @property
    def method_suffix(self) -> str:
        return f"+m{self.factor}"
