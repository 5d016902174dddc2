"""Annex-B access-unit splitting, checked against PyAV's parsers on real streams."""

from __future__ import annotations

import pytest
from codec_helpers import make_clip

from vosc.codecs import VVenCCodec, X265Codec
from vosc.codecs.annexb import access_unit_sizes, nal_units


def test_synthetic_hevc_stream() -> None:
    # VPS, SPS, PPS, IDR slice (first_slice=1), TRAIL slice (first=1), suffix SEI, TRAIL slice (first=1)
    vps, sps, pps = b"\x00\x00\x00\x01\x40\x01\x0c", b"\x00\x00\x01\x42\x01\x01", b"\x00\x00\x01\x44\x01\xc1"
    idr = b"\x00\x00\x01\x26\x01\xaf\x11"
    trail1, suffix = b"\x00\x00\x01\x02\x01\xd0\x22", b"\x00\x00\x01\x50\x01\x05"
    trail2 = b"\x00\x00\x01\x02\x01\xd0\x33\x00"
    stream = vps + sps + pps + idr + trail1 + suffix + trail2
    assert len(nal_units(stream)) == 7
    assert access_unit_sizes(stream, "hevc") == [
        len(vps + sps + pps + idr),
        len(trail1 + suffix),
        len(trail2),
    ]


def test_bad_input() -> None:
    assert access_unit_sizes(b"", "hevc") == []
    with pytest.raises(ValueError, match="start code"):
        access_unit_sizes(b"\x01\x02\x03", "vvc")
    with pytest.raises(ValueError, match="standard"):
        access_unit_sizes(b"\x00\x00\x01\x40", "avc")  # type: ignore[arg-type]


@pytest.mark.codec
def test_matches_parser_on_real_streams() -> None:
    clip = make_clip(10, 48, 80, seed=2)
    for codec, standard in ((X265Codec(), "hevc"), (VVenCCodec(decoder="pyav"), "vvc")):
        stream = codec.encode(clip, 32)
        parsed = codec.decode_stream(stream, 10, 48, 80).frame_bytes
        assert access_unit_sizes(stream, standard) == parsed
        assert sum(parsed) == len(stream) and len(parsed) == 10
