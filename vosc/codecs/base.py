"""The codec interface: compress a clip of RGB frames and decode it back, counting bits."""

from __future__ import annotations

import abc

import numpy as np

from vosc.types import EncodedClip


class CodecError(RuntimeError):
    """An encoder or decoder failed, or produced output that does not match its input."""


class EncoderNotFoundError(CodecError):
    """The encoder binary/library is missing; the message says which and how to install it."""


class Codec(abc.ABC):
    """A video codec at a chosen quality parameter.

    Implementations are plain classes (Hydra instantiates them from ``conf/codec/*.yaml``), use one
    CPU core, and are deterministic: the same frames and ``q`` give the same bytes.
    """

    #: Registry name (``"none"``, ``"x265"``, ``"vvenc"``).
    name: str = "abstract"
    #: Valid range of the quality parameter, inclusive.
    q_range: tuple[int, int] = (0, 51)

    @abc.abstractmethod
    def encode(self, frames: np.ndarray, q: int) -> bytes:
        """Encode frames.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB; any ``H, W`` (odd sizes are padded internally).
            q: Quality parameter (CRF / QP).

        Returns:
            The raw Annex-B bitstream (no container).
        """

    @abc.abstractmethod
    def decode(self, bitstream: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        """Decode a bitstream produced by :meth:`encode`.

        Returns:
            ``(num_frames, height, width, 3)`` uint8 RGB, cropped back to the original size.
        """

    @abc.abstractmethod
    def compress(self, frames: np.ndarray, q: int | None) -> EncodedClip:
        """Encode then decode, timing both and counting ``8 * len(bitstream)`` bits."""

    @abc.abstractmethod
    def version(self) -> str:
        """Encoder identification (library/binary version), used in cache keys and provenance."""

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
