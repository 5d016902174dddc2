"""VVenC through the FFmpeg binary of imageio-ffmpeg: real encodes of tiny clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codec_helpers import assert_order, make_clip, psnr

from vosc.codecs import EncoderNotFoundError, VVenCCodec, build_codec

pytestmark = pytest.mark.codec


@pytest.fixture(scope="module")
def vvenc() -> VVenCCodec:
    return VVenCCodec()


def test_decoded_shape_dtype_count_order(vvenc: VVenCCodec, tiny_clip: np.ndarray) -> None:
    out = vvenc.compress(tiny_clip, 22)
    assert out.frames.shape == tiny_clip.shape and out.frames.dtype == np.uint8
    assert out.codec == "vvenc" and out.q == 22 and out.bitstream is not None
    assert out.bits == 8 * len(out.bitstream) > 0
    assert_order(tiny_clip, out.frames)
    assert psnr(tiny_clip, out.frames) > 33.0


def test_odd_size_and_ffmpeg_decoder_agree(vvenc: VVenCCodec, odd_clip: np.ndarray) -> None:
    stream = vvenc.encode(odd_clip, 32)
    via_pyav = VVenCCodec(decoder="pyav").decode_stream(stream, 5, 47, 63)
    via_ffmpeg = VVenCCodec(decoder="ffmpeg").decode_stream(stream, 5, 47, 63)
    assert via_pyav.frames.shape == via_ffmpeg.frames.shape == (5, 47, 63, 3)
    assert np.array_equal(via_pyav.frames, via_ffmpeg.frames)
    assert sum(via_pyav.frame_bytes) == sum(via_ffmpeg.frame_bytes) == len(stream)
    assert_order(odd_clip, via_pyav.frames)
    assert psnr(odd_clip, via_pyav.frames) > 30.0


def test_rate_decreases_with_q(vvenc: VVenCCodec, tiny_clip: np.ndarray) -> None:
    bits = [vvenc.compress(tiny_clip, q).bits for q in (22, 37, 52)]
    assert bits[0] > bits[1] > bits[2] > 0, bits


def test_deterministic_and_low_delay(vvenc: VVenCCodec) -> None:
    clip = make_clip(10, 32, 48, seed=4)
    first = vvenc.encode(clip, 37)
    assert first == vvenc.encode(clip, 37)
    dec = vvenc.decode_stream(first, 10, 32, 48)
    assert dec.frame_types is not None and dec.frame_types[0] == "I"
    assert "I" not in dec.frame_types[1:]  # low delay: only the first frame is intra
    assert len(dec.frame_bytes) == 10 and sum(dec.frame_bytes) == len(first)


def test_q_validation(vvenc: VVenCCodec, tiny_clip: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"vvenc.*\[0, 63\]"):
        vvenc.compress(tiny_clip, 64)
    with pytest.raises(ValueError, match="decoder"):
        VVenCCodec(decoder="vtm")  # type: ignore[arg-type]


def test_missing_ffmpeg_names_it(tmp_path: Path, tiny_clip: np.ndarray) -> None:
    codec = VVenCCodec(ffmpeg_path=str(tmp_path / "ffmpeg"))
    with pytest.raises(EncoderNotFoundError, match=r"FFmpeg binary.*pip install imageio-ffmpeg"):
        codec.compress(tiny_clip, 37)


def test_registry_version_params(vvenc: VVenCCodec) -> None:
    codec = build_codec("vvenc", decoder="ffmpeg")
    assert isinstance(codec, VVenCCodec)
    assert codec.version().startswith("libvvenc ") and "ffmpeg" in codec.version()
    assert codec.params()["vvenc_params"]["Threads"] == "0"  # type: ignore[index]


def test_real_davis_frames(vvenc: VVenCCodec, davis_frames: np.ndarray) -> None:
    crop = np.ascontiguousarray(davis_frames[:3, :96, :128])
    hi, lo = vvenc.compress(crop, 27), vvenc.compress(crop, 47)
    assert hi.bits > lo.bits > 0
    assert psnr(crop, hi.frames) > psnr(crop, lo.frames) > 20.0
    assert psnr(crop, hi.frames) > 30.0
    assert_order(crop, hi.frames)


@pytest.mark.parametrize("shape", [(2, 1, 5, 3), (2, 9, 8, 3)])
def test_tiny_pictures_are_padded(vvenc: VVenCCodec, shape: tuple[int, int, int, int]) -> None:
    clip = np.full(shape, 90, np.uint8)
    out = vvenc.compress(clip, 20)
    assert out.frames.shape == shape and out.bits > 0
    assert np.abs(out.frames.astype(int) - 90).max() <= 10
