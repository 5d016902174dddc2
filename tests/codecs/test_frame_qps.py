"""Per-frame QPs: x265's own frame log, VVenC's slice headers, and the slice-header reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codec_helpers import make_clip

from vosc.codecs import CodecError, VVenCCodec, X265Codec
from vosc.codecs.cache import BitstreamCache, SequenceCodecCache, content_key_frames
from vosc.codecs.ffmpeg import run_ffmpeg_capture, slice_qps_from_trace, trace_headers_argv
from vosc.codecs.x265 import parse_x265_csv

pytestmark = pytest.mark.codec

CLIP = make_clip(12, 56, 96, seed=3)  # not 64 rows: x265 codes those as 66 (padding lowers the AQ average)


def _hevc_slice_qps(stream: bytes) -> list[int]:
    _, err = run_ffmpeg_capture(trace_headers_argv(VVenCCodec().exe, "hevc"), stdin=stream)
    return slice_qps_from_trace(err.decode(errors="replace"))


def test_x265_frame_log_does_not_change_the_bitstream() -> None:
    codec = X265Codec()
    plain = codec.encode(CLIP, 37)
    logged = codec.encode_stream(CLIP, 37)
    assert logged.bitstream == plain
    assert logged.frame_qps is not None and len(logged.frame_qps) == 12
    qps = logged.frame_qps
    # intra pictures (0 and the keyint=8 refresh) get a lower QP than the P pictures around them
    assert qps[0] < min(qps[1:8]) and qps[8] < min(qps[9:])
    assert all(20 < q < 51 for q in qps)


def test_x265_fixed_qp_log_equals_slice_headers() -> None:
    # without adaptive quantisation the frame's average QP is its slice QP: x265's log and the
    # bitstream (FFmpeg trace_headers: init_qp_minus26 + slice_qp_delta) must agree exactly
    enc = X265Codec(rate_control="qp").encode_stream(CLIP, 30)
    assert enc.frame_qps == [float(q) for q in _hevc_slice_qps(enc.bitstream)]
    assert enc.frame_qps[0] < 30 and enc.frame_qps[1] == 30.0  # ipratio lowers the intra QP


def test_x265_crf_qps_in_compress_and_close_to_slice_qps() -> None:
    out = X265Codec().compress(CLIP, 30)
    assert out.frame_qps == X265Codec().encode_stream(CLIP, 30).frame_qps
    slice_qps = _hevc_slice_qps(out.bitstream or b"")
    assert len(slice_qps) == 12
    # with AQ the average differs from the slice QP by a little, never by much
    assert max(abs(a - b) for a, b in zip(out.frame_qps or [], slice_qps, strict=True)) < 2.0


def test_parse_x265_csv_errors(tmp_path: Path) -> None:
    bad = tmp_path / "f.csv"
    with pytest.raises(CodecError, match="could not be read"):
        parse_x265_csv(bad, 2)
    bad.write_text("Encode Order, Type, POC, Bits\n0, I-SLICE, 0, 100\n")
    with pytest.raises(CodecError, match="no POC/QP"):
        parse_x265_csv(bad, 1)
    bad.write_text("Encode Order, Type, POC, QP\n0, I-SLICE, 0, 30.5\n")
    assert parse_x265_csv(bad, 1) == [30.5]
    with pytest.raises(CodecError, match=r"expected 0\.\.1"):
        parse_x265_csv(bad, 2)


def test_vvenc_slice_qps_follow_the_lowdelay_cfg() -> None:
    codec = VVenCCodec(decoder="pyav")
    for q in (27, 37):
        out = codec.compress(CLIP, q)
        qps = out.frame_qps
        assert qps is not None and len(qps) == 12
        assert qps[0] == q + int(codec.vvenc_params["IntraQPOffset"])  # the intra picture: QP - 1
        assert all(q < v <= q + 9 for v in qps[1:])  # GOP offsets 1..5 plus the QP-offset model (0..3)
        assert qps[1] == qps[9]  # same GOP position, same QP
        h, w = CLIP.shape[1:3]
        assert VVenCCodec(decoder="ffmpeg").decode_stream(out.bitstream or b"", 12, h, w).frame_qps == qps
        assert codec.decode_pictures(out.bitstream or b"", 12, h, w).frame_qps is None


@pytest.mark.parametrize("codec_name", ["x265", "vvenc"])
def test_sequence_cache_keeps_qps(tmp_path: Path, codec_name: str) -> None:
    codec = X265Codec() if codec_name == "x265" else VVenCCodec()
    direct = codec.compress(CLIP, 37).frame_qps
    assert direct is not None
    key_args = (codec, 37, "seq", content_key_frames(CLIP))
    cold = SequenceCodecCache(tmp_path)
    _, _, qps, _ = cold.get_frames(*key_args[:3], key_args[3], lambda: CLIP, [3, 4, 5])
    assert qps == direct[3:6]
    key = BitstreamCache(tmp_path).key_for(*key_args)
    assert BitstreamCache(tmp_path).frame_qps(key) == direct

    def no_load() -> np.ndarray:
        raise AssertionError("a warm cache must not load frames")

    for policy in ("full", "partial"):
        warm = SequenceCodecCache(tmp_path, decode_policy=policy)  # type: ignore[arg-type]
        _, _, qps2, _ = warm.get_frames(codec, 37, "seq", content_key_frames(CLIP), no_load, [9, 10])
        assert qps2 == direct[9:11] and warm.bitstreams.encodes == 0
