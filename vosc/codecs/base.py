"""The codec interface: compress a clip of RGB frames and decode it back, counting bits."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass

import numpy as np

from vosc.codecs.annexb import Standard
from vosc.types import EncodedClip


class CodecError(RuntimeError):
    """An encoder or decoder failed, or produced output that does not match its input."""


class EncoderNotFoundError(CodecError):
    """The encoder binary/library is missing; the message says which and how to install it."""


def check_frames(frames: np.ndarray, codec: str) -> None:
    """Raise ``ValueError`` unless ``frames`` is a non-empty ``(T, H, W, 3)`` uint8 array."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise ValueError(f"codec {codec!r}: expected frames of shape (T, H, W, 3), got {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"codec {codec!r}: expected uint8 frames, got {frames.dtype}")
    if min(frames.shape[:3]) == 0:
        raise ValueError(f"codec {codec!r}: empty clip of shape {frames.shape}")


class Codec(abc.ABC):
    """A video codec at a chosen quality parameter.

    Implementations are plain classes (Hydra instantiates them from ``conf/codec/*.yaml``), use one
    CPU core, and are deterministic: the same frames and ``q`` give the same bytes.

    The public entry points (:meth:`encode`, :meth:`encode_stream`, :meth:`compress`) check the frames and
    ``q`` once, here; implementations provide :meth:`_encode` (and optionally :meth:`_encode_stream`) on
    checked inputs, and the decoders.
    """

    #: Registry name (``"none"``, ``"x265"``, ``"vvenc"``).
    name: str = "abstract"
    #: Valid range of the quality parameter, inclusive.
    q_range: tuple[int, int] = (0, 51)
    #: Coding standard of the bitstream (``"hevc"``, ``"vvc"``); ``None`` for the identity codec.
    standard: Standard | None = None

    def check_input(self, frames: np.ndarray, q: int | None) -> int:
        """Check frames (``(T, H, W, 3)`` uint8, non-empty) and ``q``; return ``q`` as an int."""
        check_frames(frames, self.name)
        return self.check_q(q)

    def encode(self, frames: np.ndarray, q: int) -> bytes:
        """Encode frames.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB; any ``H, W`` (odd sizes are padded internally).
            q: Quality parameter (CRF / QP).

        Returns:
            The raw Annex-B bitstream (no container).
        """
        return self._encode(frames, self.check_input(frames, q))

    @abc.abstractmethod
    def _encode(self, frames: np.ndarray, q: int) -> bytes:
        """:meth:`encode` on checked inputs."""

    @abc.abstractmethod
    def decode(self, bitstream: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        """Decode a bitstream produced by :meth:`encode`.

        Returns:
            ``(num_frames, height, width, 3)`` uint8 RGB, cropped back to the original size.
        """

    def compress(self, frames: np.ndarray, q: int | None) -> EncodedClip:
        """Encode then decode, timing both (wall seconds) and counting ``8 * len(bitstream)`` bits.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.
            q: Quality parameter.

        Returns:
            An :class:`EncodedClip` whose frames have the input's shape, dtype, order and count.

        Raises:
            ValueError: Bad frames or ``q``.
            CodecError: The decoded frames do not match the input.
        """
        q = self.check_input(frames, q)
        t0 = time.perf_counter()
        encoded = self._encode_stream(frames, q)
        t1 = time.perf_counter()
        t, h, w = frames.shape[:3]
        dec = self.decode_stream(encoded.bitstream, t, h, w)
        t2 = time.perf_counter()
        if dec.frames.shape != frames.shape or dec.frames.dtype != frames.dtype:
            raise CodecError(
                f"codec {self.name!r}: decoded {dec.frames.shape} {dec.frames.dtype} from {frames.shape}"
            )
        return EncodedClip(
            frames=dec.frames,
            bits=8 * len(encoded.bitstream),
            codec=self.name,
            q=q,
            encode_seconds=t1 - t0,
            decode_seconds=t2 - t1,
            frame_qps=encoded.frame_qps if encoded.frame_qps is not None else dec.frame_qps,
            frame_types=dec.frame_types,
            bitstream=encoded.bitstream,
        )

    @abc.abstractmethod
    def version(self) -> str:
        """Encoder identification (library/binary version), used in cache keys and provenance."""

    def encode_stream(self, frames: np.ndarray, q: int) -> EncodedStream:
        """Encode like :meth:`encode`, also returning the per-frame QPs the encoder used when known.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.
            q: Quality parameter.

        Returns:
            The bitstream (identical to :meth:`encode`'s) and ``T`` QPs in display order, or ``None``.
        """
        return self._encode_stream(frames, self.check_input(frames, q))

    def _encode_stream(self, frames: np.ndarray, q: int) -> EncodedStream:
        """:meth:`encode_stream` on checked inputs; the default encodes with :meth:`_encode` and reads the
        QPs with :meth:`stream_qps`."""
        bitstream = self._encode(frames, q)
        return EncodedStream(bitstream=bitstream, frame_qps=self.stream_qps(bitstream))

    def stream_qps(self, bitstream: bytes) -> list[float] | None:
        """Per-frame QP read from a bitstream, in display order; ``None`` when the codec cannot tell."""
        return None

    def decode_stream(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """Decode like :meth:`decode`, also returning per-frame access-unit sizes, types and QPs.

        Implementations override this; the default raises ``NotImplementedError``.
        """
        raise NotImplementedError(f"codec {self.name!r} does not report per-frame access units")

    def decode_pictures(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """Like :meth:`decode_stream` but may leave ``frame_qps`` out when reading them costs extra
        (VVenC: one more FFmpeg run); used when the QPs are known already (sequence cache)."""
        return self.decode_stream(bitstream, num_frames, height, width)

    def params(self) -> dict[str, object]:
        """Every encoder parameter that changes the bitstream (for cache keys and provenance)."""
        return {}

    def check_q(self, q: int | None) -> int:
        """Validate ``q`` against :attr:`q_range` and return it.

        Raises:
            ValueError: ``q`` is ``None`` or out of range, naming the codec and the valid range.
        """
        lo, hi = self.q_range
        if q is None or not (lo <= int(q) <= hi):
            raise ValueError(f"codec {self.name!r}: quality parameter q={q!r} out of range [{lo}, {hi}]")
        return int(q)


@dataclass
class EncodedStream:
    """An encoded bitstream with what the encoder reported per frame.

    Attributes:
        bitstream: Raw Annex-B bytes (no container).
        frame_qps: Per-frame QP in display order (length ``T``), or ``None`` when unknown. x265: the
            average QP of the frame from x265's own frame log; VVenC: the slice QP.
    """

    bitstream: bytes
    frame_qps: list[float] | None = None


@dataclass
class DecodedStream:
    """A decoded bitstream with per-frame information.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB, cropped to the original size, in display order.
        frame_bytes: Bytes of each frame's access unit, length ``T``; sums to ``len(bitstream)``
            (parameter sets and SEI count towards the frame they precede). Decode order equals display
            order for the low-delay configurations used here.
        frame_types: Picture type per frame (``"I"``, ``"P"``, ``"B"``) when the decoder reports it.
        frame_qps: Per-frame QP when obtainable, else ``None``.
    """

    frames: np.ndarray
    frame_bytes: list[int]
    frame_types: list[str] | None = None
    frame_qps: list[float] | None = None

    @property
    def frame_bits(self) -> list[int]:
        """``8 * frame_bytes``."""
        return [8 * b for b in self.frame_bytes]
