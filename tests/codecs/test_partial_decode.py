"""Keyframe-aware partial decoding in sequence mode: byte-identical to decoding the whole sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codec_helpers import make_clip

from vosc.codecs import VVenCCodec, X265Codec
from vosc.codecs.annexb import access_unit_bounds, cut_stream, parameter_sets_before, random_access_units
from vosc.codecs.cache import SequenceCodecCache, content_key_frames

pytestmark = pytest.mark.codec

SEQ = make_clip(20, 48, 80, seed=5)


@pytest.fixture(scope="module")
def x265_stream() -> bytes:
    return X265Codec().encode(SEQ, 37)


def test_random_access_points(x265_stream: bytes) -> None:
    assert random_access_units(x265_stream, "hevc") == [0, 8, 16]  # keyint=8
    assert len(access_unit_bounds(x265_stream, "hevc")) == 21
    vvc = VVenCCodec().encode(SEQ[:10], 37)
    assert random_access_units(vvc, "vvc") == [0]  # low delay: only the first picture is intra
    head = parameter_sets_before(x265_stream, access_unit_bounds(x265_stream, "hevc")[8], "hevc")
    assert head.count(b"\x00\x00\x01") == 3 and head in x265_stream  # VPS, SPS, PPS


def test_cut_stream_decodes_identically(x265_stream: bytes) -> None:
    codec = X265Codec()
    full = codec.decode_stream(x265_stream, 20, 48, 80)
    part = codec.decode_stream(cut_stream(x265_stream, 8, 12, "hevc"), 5, 48, 80)
    assert np.array_equal(part.frames, full.frames[8:13])
    assert part.frame_types == full.frame_types[8:13] and part.frame_types is not None
    assert part.frame_types[0] == "I"
    with pytest.raises(ValueError, match="not a random-access point"):
        cut_stream(x265_stream, 9, 12, "hevc")
    with pytest.raises(ValueError, match="cannot cut"):
        cut_stream(x265_stream, 16, 20, "hevc")


@pytest.mark.parametrize("codec_name", ["x265", "vvenc"])
def test_partial_equals_full(tmp_path: Path, codec_name: str) -> None:
    codec = X265Codec() if codec_name == "x265" else VVenCCodec()
    seq = SEQ if codec_name == "x265" else SEQ[:14]
    content = content_key_frames(seq)
    full = SequenceCodecCache(tmp_path, decode_policy="full")
    partial = SequenceCodecCache(tmp_path, decode_policy="partial")
    clips = [[9, 10, 11, 12, 13], [5, 6, 7, 8, 9], [11, 10, 9], [2], [0, 3, 6, 9]]
    for idx in clips:
        want = full.get_frames(codec, 37, "s", content, lambda: seq, idx)
        got = partial.get_frames(codec, 37, "s", content, lambda: seq, idx)
        assert np.array_equal(got[0], want[0]) and got[0].shape == (len(idx), 48, 80, 3)
        assert got[1:] == want[1:]  # bits, QPs, picture types
    assert full.decodes == 1 and partial.decodes == 0 and partial.partial_decodes == len(clips)
    assert partial.decoded_bytes == 0  # partial decodes are not kept
    if codec_name == "x265":
        # 8..13; 0..9; 8..11; 0..2; 0..6 and 8..9 (a random-access point between needed frames)
        assert partial.decoded_frames == 6 + 10 + 4 + 3 + 9
    else:  # only frame 0 is a random-access point: 0..13, 0..9, 0..11, 0..2, 0..9
        assert partial.decoded_frames == 14 + 10 + 12 + 3 + 10


def test_segments() -> None:
    seg = SequenceCodecCache.segments
    assert seg([0, 8, 16], [9, 10, 11, 12, 13]) == [(8, 13)]
    assert seg([0, 8, 16], [2, 14, 26]) == [(0, 2), (8, 14), (16, 26)]
    assert seg([0, 8, 16, 24, 32], [2, 14, 26, 38]) == [(0, 2), (8, 14), (24, 26), (32, 38)]
    assert seg([0, 8, 16], [7, 8, 9]) == [(0, 9)]  # adjacent: continue instead of restarting
    assert seg([0, 8, 16], [6, 17, 3]) == [(0, 6), (16, 17)]
    assert seg([0], [40, 5]) == [(0, 40)]


def test_auto_policy(tmp_path: Path) -> None:
    codec = X265Codec()
    content = content_key_frames(SEQ)
    roomy = SequenceCodecCache(tmp_path)  # the sequence fits the LRU: decode whole, keep it
    roomy.get_frames(codec, 37, "s", content, lambda: SEQ, [16, 17])
    roomy.get_frames(codec, 37, "s", content, lambda: SEQ, [1, 2])
    assert roomy.decodes == 1 and roomy.lru_hits == 1 and roomy.partial_decodes == 0
    no_lru = SequenceCodecCache(tmp_path, max_decoded_bytes=0)
    frames, bits, _, _ = no_lru.get_frames(codec, 37, "s", content, lambda: SEQ, [16, 17])
    assert no_lru.partial_decodes == 1 and no_lru.decodes == 0 and no_lru.decoded_frames == 2
    want = roomy.get_frames(codec, 37, "s", content, lambda: SEQ, [16, 17])
    assert np.array_equal(frames, want[0]) and bits == want[1]
    with pytest.raises(ValueError, match="decode_policy"):
        SequenceCodecCache(tmp_path, decode_policy="lazy")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="has 20 frames"):
        no_lru.get_frames(codec, 37, "s", content, lambda: SEQ, [20])
