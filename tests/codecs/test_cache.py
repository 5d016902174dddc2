"""Content-addressed bitstream cache and the sequence-mode decoded LRU (real x265 encodes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from codec_helpers import make_clip

from vosc.codecs import CodecError, IdentityCodec, X265Codec
from vosc.codecs.cache import (
    BitstreamCache,
    SequenceCodecCache,
    content_key_files,
    content_key_frames,
    decode_cached,
)

pytestmark = pytest.mark.codec

SEQ = make_clip(12, 32, 48, seed=7)


def test_key_depends_on_every_input() -> None:
    cache = BitstreamCache("unused")
    x = X265Codec()
    base = cache.key_for(x, 37, "blackswan", "abc")
    assert base == cache.key_for(X265Codec(), 37, "blackswan", "abc")
    others = {
        cache.key_for(x, 38, "blackswan", "abc"),
        cache.key_for(x, 37, "bmx-trees", "abc"),
        cache.key_for(x, 37, "blackswan", "abd"),
        cache.key_for(X265Codec(rate_control="qp"), 37, "blackswan", "abc"),
        cache.key_for(X265Codec(keyint=16), 37, "blackswan", "abc"),
    }
    assert base not in others and len(others) == 5


def test_content_keys(tmp_path: Path) -> None:
    assert content_key_frames(SEQ) == content_key_frames(SEQ.copy())
    assert content_key_frames(SEQ) != content_key_frames(SEQ[:-1])
    f = tmp_path / "00000.jpg"
    f.write_bytes(b"abc")
    k1 = content_key_files([f])
    f.write_bytes(b"abcd")
    assert content_key_files([f]) != k1


def test_get_or_encode_hit_is_identical_and_atomic(tmp_path: Path) -> None:
    codec = X265Codec()
    cache = BitstreamCache(tmp_path)
    key = cache.key_for(codec, 32, "seq", content_key_frames(SEQ))
    data, hit = cache.get_or_encode(codec, SEQ, 32, key)
    assert not hit and cache.encodes == 1 and cache.encode_seconds > 0
    again, hit2 = BitstreamCache(tmp_path).get_or_encode(codec, SEQ, 32, key)
    assert hit2 and again == data
    files = sorted(p.name for p in (tmp_path / key[:2]).iterdir())
    assert files == [f"{key}.bin", f"{key}.json"]  # no temporary files left behind
    meta = json.loads((tmp_path / key[:2] / f"{key}.json").read_text())
    assert (meta["num_frames"], meta["height"], meta["width"], meta["bytes"]) == (12, 32, 48, len(data))
    dec = decode_cached(codec, data, 12, 32, 48)
    assert dec.frames.shape == SEQ.shape and sum(dec.frame_bytes) == len(data)


def test_fetch_reports_the_original_encode_on_a_hit(tmp_path: Path) -> None:
    """The public API the evaluation sweep uses: a hit returns the stored encode time and per-frame QPs."""
    codec = X265Codec()
    key = BitstreamCache(tmp_path).key_for(codec, 37, "seq", content_key_frames(SEQ))
    miss = BitstreamCache(tmp_path).fetch(codec, SEQ, 37, key, sequence="seq")
    assert (not miss.hit and miss.encode_seconds > 0 and miss.frame_qps is not None
            and len(miss.frame_qps) == 12)
    hit = BitstreamCache(tmp_path).fetch(codec, SEQ, 37, key)
    assert hit.hit and hit.bitstream == miss.bitstream and hit.frame_qps == miss.frame_qps
    assert hit.encode_seconds == pytest.approx(miss.encode_seconds)
    assert json.loads((tmp_path / key[:2] / f"{key}.json").read_text())["sequence"] == "seq"


def test_coding_standard_is_a_codec_attribute() -> None:
    from vosc.codecs import VVenCCodec

    assert (X265Codec.standard, VVenCCodec.standard, IdentityCodec.standard) == ("hevc", "vvc", None)


def test_corrupt_entry_names_file(tmp_path: Path) -> None:
    codec = X265Codec()
    cache = BitstreamCache(tmp_path)
    key = cache.key_for(codec, 32, "seq", "content")
    cache.get_or_encode(codec, SEQ[:3], 32, key)
    meta = tmp_path / key[:2] / f"{key}.json"
    meta.write_text("{not json")
    with pytest.raises(CodecError, match=str(meta)):
        cache.get(key)
    with pytest.raises(ValueError, match="hex digest"):
        cache.get("../../etc/passwd")


def test_mismatched_frames_raise(tmp_path: Path) -> None:
    codec = X265Codec()
    cache = BitstreamCache(tmp_path)
    key = cache.key_for(codec, 32, "seq", "content")
    cache.get_or_encode(codec, SEQ[:3], 32, key)
    with pytest.raises(CodecError, match="is for"):
        cache.get_or_encode(codec, SEQ, 32, key)


def test_sequence_cache_warm_serves_without_encoding(tmp_path: Path) -> None:
    codec = X265Codec()
    calls: list[int] = []

    def load() -> np.ndarray:
        calls.append(1)
        return SEQ

    cold = SequenceCodecCache(tmp_path)
    content = content_key_frames(SEQ)
    frames, bits, _, types = cold.get_frames(codec, 37, "seq", content, load, [2, 3, 4, 5, 6])
    assert frames.shape == (5, 32, 48, 3) and frames.dtype == np.uint8 and bits > 0
    assert cold.bitstreams.encodes == 1 and cold.decodes == 1 and len(calls) == 1
    assert types is not None and len(types) == 5

    # same process: served from decoded memory, identical frames, no encode, no decode
    again = cold.get_frames(codec, 37, "seq", content, load, [2, 3, 4, 5, 6])
    assert np.array_equal(again[0], frames) and again[1] == bits
    assert cold.bitstreams.encodes == 1 and cold.decodes == 1 and cold.lru_hits == 1 and len(calls) == 1

    # new process (fresh object): disk hit, decoded once, frames never loaded, nothing encoded
    warm = SequenceCodecCache(tmp_path)
    frames2, bits2, _, _ = warm.get_frames(codec, 37, "seq", content, load, [2, 3, 4, 5, 6])
    assert np.array_equal(frames2, frames) and bits2 == bits
    assert warm.bitstreams.encodes == 0 and warm.bitstreams.hits == 1 and warm.bitstreams.encode_seconds == 0
    assert len(calls) == 1

    # frames match the clip-level decode of the whole sequence at the same indices
    direct = codec.compress(SEQ, 37)
    assert np.array_equal(direct.frames[2:7], frames)


def test_per_frame_bits_sum_to_total(tmp_path: Path) -> None:
    codec = X265Codec()
    cache = SequenceCodecCache(tmp_path)
    content = content_key_frames(SEQ)
    _, total, _, _ = cache.get_frames(codec, 32, "seq", content, lambda: SEQ, range(12))
    assert total == codec.compress(SEQ, 32).bits
    parts = [cache.get_frames(codec, 32, "seq", content, lambda: SEQ, [i])[1] for i in range(12)]
    assert sum(parts) == total and min(parts) > 0
    with pytest.raises(IndexError, match="'seq' has 12 frames"):
        cache.get_frames(codec, 32, "seq", content, lambda: SEQ, [12])


def test_lru_is_bounded(tmp_path: Path) -> None:
    codec = X265Codec()
    one = SEQ[:3].nbytes
    cache = SequenceCodecCache(tmp_path, max_decoded_bytes=one + one // 2)
    for name in ("a", "b"):
        cache.get_frames(codec, 40, name, name, lambda: SEQ[:3], [0])
    assert cache.decoded_bytes == one  # "a" was evicted
    cache.get_frames(codec, 40, "a", "a", lambda: SEQ[:3], [0])
    assert cache.decodes == 3 and cache.bitstreams.encodes == 2  # re-decoded from disk, not re-encoded


def test_identity_in_sequence_mode(tmp_path: Path) -> None:
    cache = SequenceCodecCache(tmp_path)
    frames, bits, qps, types = cache.get_frames(IdentityCodec(), None, "seq", "x", lambda: SEQ, [4, 1])
    assert bits == 0 and qps is None and types is None
    assert np.array_equal(frames, SEQ[[4, 1]])
