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

import hashlib
import json
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from vosc.codecs.base import Codec, CodecError, DecodedStream

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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        """Return ``(bitstream, meta)`` for ``key`` (meta: ``num_frames``, ``height``, ``width``), or ``None``.

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

    def put(
        self, key: str, bitstream: bytes, num_frames: int, height: int, width: int, **info: object
    ) -> None:
        """Store a bitstream atomically (metadata first, so a present ``.bin`` always has its ``.json``)."""
        bin_path, meta_path = self._paths(key)
        meta = {"num_frames": num_frames, "height": height, "width": width, "bytes": len(bitstream), **info}
        atomic_write_bytes(meta_path, json.dumps(meta, sort_keys=True, default=str).encode())
        atomic_write_bytes(bin_path, bitstream)

    def get_or_encode(self, codec: Codec, frames: np.ndarray, q: int, key: str) -> tuple[bytes, bool]:
        """Return the cached bitstream for ``key``, encoding ``frames`` with ``codec`` at ``q`` on a miss.

        Args:
            codec: The codec.
            frames: ``(T, H, W, 3)`` uint8 RGB of the whole sequence.
            q: Quality parameter.
            key: From :meth:`key_for`.

        Returns:
            ``(bitstream, hit)``.

        Raises:
            CodecError: A cached entry's frame count/size differs from ``frames``.
        """
        t, h, w = frames.shape[:3]
        found = self.get(key)
        if found is not None:
            data, meta = found
            if (meta["num_frames"], meta["height"], meta["width"]) != (t, h, w):
                raise CodecError(
                    f"bitstream cache entry {self._paths(key)[1]} is for {meta}, but the frames are {t}x{h}x{w}"
                )
            return data, True
        t0 = time.perf_counter()
        data = codec.encode(frames, q)
        self.encode_seconds += time.perf_counter() - t0
        self.encodes += 1
        self.put(key, data, t, h, w, codec=codec.name, q=q, version=codec.version())
        log.debug("encoded %s q=%s: %d frames, %d bytes -> %s", codec.name, q, t, len(data), key[:12])
        return data, False


def decode_cached(codec: Codec, bitstream: bytes, num_frames: int, h: int, w: int) -> DecodedStream:
    """Decode a cached sequence bitstream: frames ``(T, H, W, 3)`` plus per-frame access-unit bytes."""
    return codec.decode_stream(bitstream, num_frames, h, w)


ClipResult = tuple[np.ndarray, int, list[float] | None, list[str] | None]


class SequenceCodecCache:
    """Sequence-mode compression with a disk bitstream cache and a per-process decoded LRU.

    A warm LRU serves clips by indexing already-decoded frames (no encoding, no decoding); a warm
    disk cache costs one decode per sequence; a cold one encodes the sequence once.

    Args:
        root: Bitstream cache folder.
        max_decoded_bytes: Upper bound of decoded frames kept in memory (per process).

    Attributes:
        bitstreams: The :class:`BitstreamCache`.
        decodes: Sequences decoded by this process.
        lru_hits: Requests served from decoded memory.
    """

    def __init__(self, root: str | os.PathLike[str], max_decoded_bytes: int = 1 << 30) -> None:
        self.bitstreams = BitstreamCache(root)
        self.max_decoded_bytes = int(max_decoded_bytes)
        self._lru: OrderedDict[str, DecodedStream] = OrderedDict()
        self._bytes = 0
        self.decodes = 0
        self.lru_hits = 0

    @property
    def decoded_bytes(self) -> int:
        """Bytes of decoded frames currently held."""
        return self._bytes

    def _decoded(
        self, codec: Codec, q: int, sequence: str, content_key: str, load_frames: Callable[[], np.ndarray]
    ) -> DecodedStream:
        key = self.bitstreams.key_for(codec, q, sequence, content_key)
        if key in self._lru:
            self._lru.move_to_end(key)
            self.lru_hits += 1
            return self._lru[key]
        found = self.bitstreams.get(key)
        if found is None:
            frames = load_frames()
            data, _ = self.bitstreams.get_or_encode(codec, frames, q, key)
            t, h, w = frames.shape[:3]
        else:
            data, meta = found
            t, h, w = meta["num_frames"], meta["height"], meta["width"]
        dec = decode_cached(codec, data, t, h, w)
        self.decodes += 1
        if sum(dec.frame_bytes) != len(data):
            raise CodecError(
                f"{sequence}: per-frame bytes sum to {sum(dec.frame_bytes)}, stream has {len(data)}"
            )
        self._insert(key, dec)
        return dec

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
        dec = self._decoded(codec, qv, sequence, content_key, load_frames)
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
