"""Real video codecs with exact bit counting: ``none``, ``x265`` (PyAV) and ``vvenc`` (FFmpeg/libvvenc).

Use :func:`build_codec` (or Hydra ``_target_``) to get one by name.
"""

from __future__ import annotations

from typing import Any

from vosc.codecs.base import Codec, CodecError, DecodedStream, EncodedStream, EncoderNotFoundError
from vosc.codecs.identity import IdentityCodec
from vosc.codecs.vvenc import VVenCCodec
from vosc.codecs.x265 import X265Codec

CODECS: dict[str, type[Codec]] = {"none": IdentityCodec, "x265": X265Codec, "vvenc": VVenCCodec}


def build_codec(name: str, **kwargs: Any) -> Codec:
    """Instantiate a codec by registry name.

    Args:
        name: ``"none"``, ``"x265"`` or ``"vvenc"``.
        **kwargs: Constructor arguments of that codec.

    Raises:
        KeyError: Unknown name (the message lists the known ones).
    """
    try:
        cls = CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; known codecs: {sorted(CODECS)}") from None
    return cls(**kwargs)


__all__ = [
    "CODECS",
    "Codec",
    "CodecError",
    "DecodedStream",
    "EncodedStream",
    "EncoderNotFoundError",
    "IdentityCodec",
    "VVenCCodec",
    "X265Codec",
    "build_codec",
]
