"""Content-addressed bitstream cache for ``sequence`` compression mode, plus a decoded-sequence LRU.

In ``sequence`` mode a whole sequence is encoded once at native resolution; its bitstream is stored
under ``root/<key[:2]>/<key>.bin`` (with ``<key>.json`` metadata: frame count and size), where the key
is a SHA-256 over the sequence id, a content key of its frames, the codec name, ``codec.params()``,
``q`` and ``codec.version()``. Any change of input, parameters or encoder version gives a new key;
entries are never overwritten in place (atomic temp-file + ``os.replace`` writes, safe with several
DataLoader workers racing on the same key).

Bits of a clip in sequence mode: the sum of the access-unit sizes of the clip's frames (the Annex-B
stream split per picture by the decoder's parser; parameter sets and SEI count towards the picture
they precede). Over all frames this is exactly ``8 * len(bitstream)``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vosc.codecs.annexb import access_unit_bounds, parameter_sets_before, random_access_units
from vosc.codecs.base import Codec, CodecError, DecodedStream
from vosc.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


def content_key_frames(frames: np.ndarray) -> str:
    """SHA-256 of a ``(T, H, W, 3)`` uint8 array (shape and bytes)."""
    h = hashlib.sha256(repr((frames.shape, str(frames.dtype))).encode())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()


def content_key_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over each file's name, size and modification time (cheap stand-in for the pixels)."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.fspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class BitstreamCache:
    """On-disk, content-addressed store of encoded sequences.

    Args:
        root: Cache folder (created on demand).

    Attributes:
        hits: Bitstreams served from disk.
        encodes: Bitstreams encoded (misses).
        encode_seconds: Total wall seconds spent encoding.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.encodes = 0
        self.encode_seconds = 0.0

    def key_for(self, codec: Codec, q: int | None, sequence: str, content: str) -> str:
        """Cache key: SHA-256 over sequence, content key, codec name, params, ``q`` and encoder version."""
        payload = {
            "sequence": sequence,
            "content": content,
            "codec": codec.name,
            "params": codec.params(),
            "q": q,
            "version": codec.version(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"bitstream cache key must be a hex digest, got {key!r}")
        folder = self.root / key[:2]
        return folder / f"{key}.bin", folder / f"{key}.json"

    def get(self, key: str) -> tuple[bytes, dict[str, int]] | None:
        """Return ``(bitstream, meta)`` for ``key`` (meta: ``num_frames``, ``height``, ``width``), or
        ``None``.

        Raises:
            CodecError: The entry is corrupt (metadata unreadable or missing fields), naming the file.
        """
        bin_path, meta_path = self._paths(key)
        if not bin_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            shape = {k: int(meta[k]) for k in ("num_frames", "height", "width")}
        except (OSError, ValueError, KeyError) as exc:
            raise CodecError(
                f"corrupt bitstream cache entry {meta_path}: {exc}; delete it to re-encode"
            ) from exc
        data = bin_path.read_bytes()
        if len(data) != int(meta.get("bytes", len(data))):
            raise CodecError(
                f"bitstream cache entry {bin_path} has {len(data)} bytes, metadata says {meta['bytes']}"
            )
        self.hits += 1
        return data, shape

    def frame_qps(self, key: str) -> list[float] | None:
        """Per-frame QPs stored with entry ``key`` (``None`` when absent or not reported).

        Raises:
            CodecError: The stored list is malformed, naming the file.
        """
        _, meta_path = self._paths(key)
        try:
            qps = json.loads(meta_path.read_text()).get("frame_qps")
        except (OSError, ValueError) as exc:
            raise CodecError(
                f"corrupt bitstream cache entry {meta_path}: {exc}; delete it to re-encode"
            ) from exc
        if qps is None:
            return None
        if not isinstance(qps, list) or not all(isinstance(v, int | float) for v in qps):
            raise CodecError(f"bitstream cache entry {meta_path}: frame_qps is not a list of numbers")
        return [float(v) for v in qps]

    def put(
        self, key: str, bitstream: bytes, num_frames: int, height: int, width: int, **info: object
    ) -> None:
        """Store a bitstream atomically (metadata first, so a present ``.bin`` always has its ``.json``)."""
        bin_path, meta_path = self._paths(key)
        meta = {"num_frames": num_frames, "height": height, "width": width, "bytes": len(bitstream), **info}
        atomic_write_json(meta_path, meta, trailing_newline=False, fsync=True, sort_keys=True, default=str)
        atomic_write_bytes(bin_path, bitstream, fsync=True)

    def encode_seconds_of(self, key: str) -> float:
        """Wall seconds the original encode of entry ``key`` took (0.0 when not recorded).

        Raises:
            CodecError: The metadata is unreadable, naming the file.
        """
        _, meta_path = self._paths(key)
        try:
            return float(json.loads(meta_path.read_text()).get("encode_seconds", 0.0))
        except (OSError, ValueError, TypeError) as exc:
            raise CodecError(
                f"corrupt bitstream cache entry {meta_path}: {exc}; delete it to re-encode"
            ) from exc

    def fetch(self, codec: Codec, frames: np.ndarray, q: int, key: str, **info: object) -> CachedStream:
        """The bitstream of ``key``, encoding ``frames`` with ``codec`` at ``q`` on a miss.

        Args:
            codec: The codec.
            frames: ``(T, H, W, 3)`` uint8 RGB of the whole sequence.
            q: Quality parameter.
            key: From :meth:`key_for`.
            **info: Extra metadata stored with a new entry (e.g. ``sequence``).

        Returns:
            A :class:`CachedStream` (on a hit: the stored encode time and per-frame QPs).

        Raises:
            CodecError: A cached entry's frame count/size differs from ``frames``.
        """
        t, h, w = frames.shape[:3]
        found = self.get(key)
        if found is not None:
            data, meta = found
            if (meta["num_frames"], meta["height"], meta["width"]) != (t, h, w):
                raise CodecError(f"bitstream cache entry {self._paths(key)[1]} is for {meta}, but the frames "
                                 f"are {t}x{h}x{w}")
            return CachedStream(data, True, self.encode_seconds_of(key), self.frame_qps(key))
        t0 = time.perf_counter()
        encoded = codec.encode_stream(frames, q)
        seconds = time.perf_counter() - t0
        self.encode_seconds += seconds
        self.encodes += 1
        self.put(key, encoded.bitstream, t, h, w, codec=codec.name, q=q, version=codec.version(),
                 encode_seconds=seconds, frame_qps=encoded.frame_qps, **info)
        # INFO: a sequence-mode encode takes seconds to minutes; this is its progress line (one per encode)
        log.info("encoded %s%s q=%s: %d frames %dx%d in %.1f s, %d bytes (encode #%d of this process) -> %s",
                 codec.name, f" {info['sequence']}" if info.get("sequence") else "", q, t, w, h, seconds,
                 len(encoded.bitstream), self.encodes, key[:12])
        return CachedStream(encoded.bitstream, False, seconds, encoded.frame_qps)

    def get_or_encode(self, codec: Codec, frames: np.ndarray, q: int, key: str) -> tuple[bytes, bool]:
        """``(bitstream, hit)`` of :meth:`fetch`."""
        found = self.fetch(codec, frames, q, key)
        return found.bitstream, found.hit


@dataclass
class CachedStream:
    """What :meth:`BitstreamCache.fetch` returns.

    Attributes:
        bitstream: Raw Annex-B bytes.
        hit: Served from disk.
        encode_seconds: Wall seconds of the encode (the original one on a hit).
        frame_qps: Per-frame QPs the encoder reported, or ``None``.
    """

    bitstream: bytes
    hit: bool
    encode_seconds: float
    frame_qps: list[float] | None


def decode_cached(codec: Codec, bitstream: bytes, num_frames: int, h: int, w: int) -> DecodedStream:
    """Decode a cached sequence bitstream: frames ``(T, H, W, 3)`` plus per-frame access-unit bytes."""
    return codec.decode_stream(bitstream, num_frames, h, w)


ClipResult = tuple[np.ndarray, int, list[float] | None, list[str] | None]

DecodePolicy = Literal["auto", "partial", "full"]


@dataclass
class _Entry:
    """A cached sequence bitstream with its access-unit layout."""

    data: bytes
    shape: tuple[int, int, int]
    qps: list[float] | None


class SequenceCodecCache:
    """Sequence-mode compression with a disk bitstream cache and a per-process decoded LRU.

    A warm LRU serves clips by indexing already-decoded frames (no encoding, no decoding); a warm
    disk cache costs one decode per request that misses the LRU; a cold one encodes the sequence once.
    Per-frame QPs reported by the encoder are stored with the bitstream, so a warm cache has them too.

    On an LRU miss the sequence is decoded either whole (and kept in the LRU) or only partially:
    from the last random-access point at or before the first requested frame (x265, ``keyint=8``:
    an IDR/CRA picture every 8 frames at most; VVenC low delay: frame 0 only) up to the last
    requested frame, with the parameter sets prepended; when a random-access point lies between two
    requested frames the stretch before it that no requested frame needs is skipped
    (:meth:`segments`). The partial decode gives the same frames byte for byte.

    Args:
        root: Bitstream cache folder.
        max_decoded_bytes: Upper bound of decoded frames kept in memory (per process); 0 turns the
            LRU off.
        decode_policy: ``"auto"``: decode whole sequences and keep them when they fit into the LRU,
            else decode partially; ``"partial"``: always decode partially on a miss (the LRU is not
            filled; for datasets far larger than it, e.g. YouTube-VOS); ``"full"``: always decode
            whole sequences (the behaviour before partial decoding).

    Attributes:
        bitstreams: The :class:`BitstreamCache`.
        decodes: Whole sequences decoded by this process.
        partial_decodes: Partial decodes by this process.
        decoded_frames: Pictures decoded by this process (whole and partial decodes).
        lru_hits: Requests served from decoded memory.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        max_decoded_bytes: int = 1 << 30,
        decode_policy: DecodePolicy = "auto",
    ) -> None:
        if decode_policy not in ("auto", "partial", "full"):
            raise ValueError(f"decode_policy must be 'auto', 'partial' or 'full', got {decode_policy!r}")
        self.bitstreams = BitstreamCache(root)
        self.max_decoded_bytes = int(max_decoded_bytes)
        self.decode_policy = decode_policy
        self._lru: OrderedDict[str, DecodedStream] = OrderedDict()
        self._bytes = 0
        self.decodes = 0
        self.partial_decodes = 0
        self.decoded_frames = 0
        self.lru_hits = 0

    @property
    def decoded_bytes(self) -> int:
        """Bytes of decoded frames currently held."""
        return self._bytes

    def _entry(
        self, codec: Codec, q: int, key: str, load_frames: Callable[[], np.ndarray]
    ) -> _Entry:
        """The bitstream of ``key`` from disk, encoding ``load_frames()`` on a miss."""
        found = self.bitstreams.get(key)
        if found is None:
            frames = load_frames()
            data, _ = self.bitstreams.get_or_encode(codec, frames, q, key)
            t, h, w = frames.shape[:3]
        else:
            data, meta = found
            t, h, w = meta["num_frames"], meta["height"], meta["width"]
        qps = self.bitstreams.frame_qps(key)
        if qps is not None and len(qps) != t:
            raise CodecError(f"bitstream cache entry {key[:12]}: {len(qps)} frame QPs for {t} frames")
        return _Entry(data, (t, h, w), qps)

    def _full(self, codec: Codec, sequence: str, key: str, entry: _Entry) -> DecodedStream:
        t, h, w = entry.shape
        if entry.qps is not None:
            dec = codec.decode_pictures(entry.data, t, h, w)
            dec.frame_qps = list(entry.qps)
        else:
            dec = decode_cached(codec, entry.data, t, h, w)
        self.decodes += 1
        self.decoded_frames += t
        if sum(dec.frame_bytes) != len(entry.data):
            raise CodecError(
                f"{sequence}: per-frame bytes sum to {sum(dec.frame_bytes)}, stream has {len(entry.data)}"
            )
        self._insert(key, dec)
        return dec

    def _use_partial(self, codec: Codec, entry: _Entry) -> bool:
        if codec.standard is None or self.decode_policy == "full":
            return False
        t, h, w = entry.shape
        return self.decode_policy == "partial" or t * h * w * 3 > self.max_decoded_bytes

    @staticmethod
    def segments(raps: Sequence[int], idx: Sequence[int]) -> list[tuple[int, int]]:
        """Access-unit ranges ``(first, last)`` (inclusive) to decode so that every frame of ``idx``
        is decoded, each range starting at a random-access unit of ``raps`` (sorted, containing 0).

        Frame ``i`` needs ``[last RAP <= i, i]``; overlapping or adjacent needs are merged (continuing a
        decode is never more work than restarting at a later random-access point).
        """
        out: list[list[int]] = []
        for i in sorted(set(idx)):
            r = raps[bisect.bisect_right(raps, i) - 1]
            if out and r <= out[-1][1] + 1:
                out[-1][1] = i
            else:
                out.append([r, i])
        return [(a, b) for a, b in out]

    def _partial(self, codec: Codec, sequence: str, entry: _Entry, idx: list[int]) -> ClipResult:
        """Decode only the access units :meth:`segments` needs and pick the clip's frames from them."""
        standard = codec.standard
        assert standard is not None
        t, h, w = entry.shape
        bounds = access_unit_bounds(entry.data, standard)
        if len(bounds) - 1 != t:
            raise CodecError(f"{sequence}: {len(bounds) - 1} access units in the cached stream, expected {t}")
        raps = random_access_units(entry.data, standard)
        if not raps or raps[0] != 0:
            raise CodecError(f"{sequence}: the cached stream does not start with a random-access picture")
        frames: dict[int, np.ndarray] = {}
        types: dict[int, str] = {}
        qps: dict[int, float] = {}
        for first, last in self.segments(raps, idx):
            head = parameter_sets_before(entry.data, bounds[first], standard) if first else b""
            sub = head + entry.data[bounds[first] : bounds[last + 1]]
            n = last - first + 1
            dec = codec.decode_pictures(sub, n, h, w) if entry.qps else codec.decode_stream(sub, n, h, w)
            self.decoded_frames += n
            for i in idx:
                if first <= i <= last:
                    frames[i] = dec.frames[i - first]
                    if dec.frame_types is not None:
                        types[i] = dec.frame_types[i - first]
                    if dec.frame_qps is not None:
                        qps[i] = dec.frame_qps[i - first]
        self.partial_decodes += 1
        bits = 8 * sum(bounds[i + 1] - bounds[i] for i in idx)
        if entry.qps is not None:
            qps = {i: entry.qps[i] for i in idx}
        return (
            np.stack([frames[i] for i in idx]),
            bits,
            [qps[i] for i in idx] if len(qps) == len(set(idx)) else None,
            [types[i] for i in idx] if len(types) == len(set(idx)) else None,
        )

    def _insert(self, key: str, dec: DecodedStream) -> None:
        size = int(dec.frames.nbytes)
        if size > self.max_decoded_bytes:
            return
        self._lru[key] = dec
        self._bytes += size
        while self._bytes > self.max_decoded_bytes:
            _, old = self._lru.popitem(last=False)
            self._bytes -= int(old.frames.nbytes)

    def get_frames(
        self,
        codec: Codec,
        q: int | None,
        sequence: str,
        content_key: str,
        load_frames: Callable[[], np.ndarray],
        indices: Sequence[int],
    ) -> ClipResult:
        """Frames ``indices`` of ``sequence`` after sequence-level compression.

        Args:
            codec: The codec (``none`` returns ``load_frames()[indices]`` with 0 bits).
            q: Quality parameter.
            sequence: Sequence id.
            content_key: Content key of the sequence's frames (:func:`content_key_frames` or
                :func:`content_key_files`).
            load_frames: Returns the whole sequence ``(N, H, W, 3)`` uint8; called only to encode.
            indices: Frame indices of the clip, any order, within ``0..N-1``.

        Returns:
            ``(frames (len(indices), H, W, 3) uint8, bits of those frames, frame_qps, frame_types)``.

        Raises:
            IndexError: An index is outside the sequence, naming the sequence.
        """
        idx = [int(i) for i in indices]
        if codec.name == "none":
            frames = load_frames()
            self._check_indices(idx, len(frames), sequence)
            return frames[idx], 0, None, None
        qv = codec.check_q(q)
        key = self.bitstreams.key_for(codec, qv, sequence, content_key)
        if key in self._lru:
            self._lru.move_to_end(key)
            self.lru_hits += 1
            dec = self._lru[key]
        else:
            entry = self._entry(codec, qv, key, load_frames)
            self._check_indices(idx, entry.shape[0], sequence)
            if idx and self._use_partial(codec, entry):
                return self._partial(codec, sequence, entry, idx)
            dec = self._full(codec, sequence, key, entry)
        self._check_indices(idx, len(dec.frames), sequence)
        bits = 8 * sum(dec.frame_bytes[i] for i in idx)
        qps = None if dec.frame_qps is None else [dec.frame_qps[i] for i in idx]
        types = None if dec.frame_types is None else [dec.frame_types[i] for i in idx]
        return dec.frames[idx], bits, qps, types

    @staticmethod
    def _check_indices(idx: list[int], n: int, sequence: str) -> None:
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"sequence {sequence!r} has {n} frames; frame indices {bad} are out of range")
