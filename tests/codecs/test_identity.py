"""The ``none`` codec and the registry."""

from __future__ import annotations

import numpy as np
import pytest
from codec_helpers import make_clip

from vosc.codecs import CODECS, IdentityCodec, build_codec


def test_identity_returns_copy_and_zero_bits() -> None:
    clip = make_clip(4, 7, 9)
    out = IdentityCodec().compress(clip, None)
    assert out.bits == 0 and out.codec == "none" and out.q is None and out.bpp == 0.0
    assert np.array_equal(out.frames, clip) and out.frames is not clip
    assert IdentityCodec().compress(clip, 37).bits == 0  # q is ignored


def test_identity_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        IdentityCodec().compress(np.zeros((2, 4, 4, 3), np.float32), None)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        IdentityCodec().compress(np.zeros((4, 4, 3), np.uint8), None)


def test_registry() -> None:
    assert set(CODECS) == {"none", "x265", "vvenc"}
    assert isinstance(build_codec("none"), IdentityCodec)
    with pytest.raises(KeyError, match="known codecs"):
        build_codec("av1")
