"""The ``none`` codec: frames pass through unchanged and cost zero bits."""

from __future__ import annotations

import time

import numpy as np

from vosc.codecs.base import Codec, DecodedStream, check_frames
from vosc.types import EncodedClip


class IdentityCodec(Codec):
    """No compression: ``compress`` returns a copy of the frames with ``bits = 0``; ``q`` is ignored."""

    name = "none"
    q_range = (0, 0)

    def check_q(self, q: int | None) -> int:
        """Any ``q`` (including ``None``) is accepted and ignored; returns 0."""
        return 0

    def _encode(self, frames: np.ndarray, q: int) -> bytes:
        """Return an empty bitstream (nothing is coded)."""
        return b""

    def decode(self, bitstream: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        """Not possible: the identity codec keeps no data in its (empty) bitstream."""
        raise NotImplementedError("the 'none' codec cannot decode: use compress() on the frames")

    def decode_stream(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """Not possible, see :meth:`decode`."""
        return DecodedStream(frames=self.decode(bitstream, num_frames, height, width), frame_bytes=[])

    def compress(self, frames: np.ndarray, q: int | None = None) -> EncodedClip:
        """Return ``(T, H, W, 3)`` uint8 frames unchanged (a copy), 0 bits, ``q=None``."""
        check_frames(frames, self.name)
        t0 = time.perf_counter()
        out = frames.copy()
        return EncodedClip(
            frames=out, bits=0, codec=self.name, q=None, decode_seconds=time.perf_counter() - t0
        )

    def version(self) -> str:
        """``"none"``."""
        return "none"
