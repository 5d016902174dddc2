"""Source → sampler → codec → transforms: training clips and evaluation sequences, compressed on the fly.

Two compression modes (:class:`CompressionSpec`):

* ``clip``: the sampled clip is augmented (scaled, cropped, flipped) first and the resulting
  training-resolution clip is encoded and decoded; ``bits`` are that clip's bitstream.
* ``sequence``: the whole sequence is encoded once at native resolution (bitstream kept in the
  content-addressed disk cache of :class:`vosc.codecs.cache.SequenceCodecCache`, decoded frames in a
  per-worker LRU); the clip's frames are taken from the decoded sequence and then augmented. ``bits``
  are the clip's frames' access units in the sequence bitstream (native resolution).

Static-image sources are always compressed in ``clip`` mode (they have no sequence).
Every item is deterministic in ``(seed, epoch, index)``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from torch.utils.data import Dataset

from vosc.codecs import CODECS, Codec, build_codec
from vosc.codecs.cache import SequenceCodecCache
from vosc.config import ConfigError
from vosc.data.errors import DataError
from vosc.data.sampling import ClipSampler, relabel_objects
from vosc.data.sources.base import VideoRecord, VideoSource
from vosc.data.transforms import ClipAugment, StaticClipSynthesizer
from vosc.types import Clip, OperatingPoint

log = logging.getLogger(__name__)

Mode = Literal["clip", "sequence"]
DEFAULT_CACHE = Path.home() / ".cache" / "vosc" / "bitstreams"


class CompressionSpec:
    """The compression stage of the data pipeline (``conf/codec/*.yaml``; keys = these arguments).

    Args:
        codec: The codec: a :class:`~vosc.codecs.base.Codec` (what ``conf/codec/coder/*.yaml`` instantiate)
            or a registry name ``"none"``, ``"x265"``, ``"vvenc"`` (that codec with its default settings).
        q: Quality parameter: an int (fixed), a list (one drawn per clip), a ``"lo-hi"`` string or a
            ``{low: lo, high: hi}`` mapping (uniform integer in ``[lo, hi]`` per clip); ``None`` for ``none``.
        mode: ``"clip"`` or ``"sequence"`` (see the module docstring).
        cache_dir: Bitstream cache folder for ``sequence`` mode (default ``~/.cache/vosc/bitstreams``).
        max_decoded_bytes: Decoded frames kept in memory per worker in ``sequence`` mode.
        decode_policy: ``sequence`` mode decoding on an in-memory miss: ``"auto"`` (whole sequence when
            it fits in ``max_decoded_bytes``, else from the preceding random-access point),
            ``"partial"`` or ``"full"`` (see :class:`vosc.codecs.cache.SequenceCodecCache`).
        eval_q: Quality parameter of validation/test sequences (default: ``q`` if fixed, else the
            median of its values).
    """

    def __init__(
        self,
        codec: Codec | str = "none",
        q: int | Sequence[int] | str | dict[str, int] | None = None,
        mode: Mode = "clip",
        cache_dir: str | Path | None = None,
        max_decoded_bytes: int = 1 << 30,
        decode_policy: str = "auto",
        eval_q: int | None = None,
    ) -> None:
        if mode not in ("clip", "sequence"):
            raise ValueError(f"compression mode must be 'clip' or 'sequence', got {mode!r}")
        if isinstance(codec, str):
            if codec not in CODECS:
                raise ConfigError(f"codec.codec={codec!r} is unknown; valid choices: {sorted(CODECS)}")
            codec = build_codec(codec)
        if not isinstance(codec, Codec):
            raise ConfigError(f"codec.codec must be a vosc.codecs.Codec or one of {sorted(CODECS)}, "
                              f"got {type(codec).__name__}")
        self.codec: Codec = codec
        self.mode: Mode = mode
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE
        self.max_decoded_bytes = int(max_decoded_bytes)
        if decode_policy not in ("auto", "partial", "full"):
            raise ValueError(f"decode_policy must be 'auto', 'partial' or 'full', got {decode_policy!r}")
        self.decode_policy = decode_policy
        self.q_values = OperatingPoint.parse_q(q)
        name = codec.name
        if name != "none" and not self.q_values:
            raise ValueError(f"codec {name!r} needs a quality parameter q")
        lo, hi = codec.q_range
        bad = [v for v in [*self.q_values, *([] if eval_q is None else [int(eval_q)])] if not lo <= v <= hi]
        if name != "none" and bad:
            raise ConfigError(f"codec.q={bad} out of range for {name}: valid range [{lo}, {hi}]")
        self.eval_q = eval_q if eval_q is not None else (
            None if not self.q_values else int(sorted(self.q_values)[len(self.q_values) // 2]))
        self._cache: SequenceCodecCache | None = None

    @property
    def codec_name(self) -> str:
        """The codec's registry name (``none``, ``x265``, ``vvenc``)."""
        return self.codec.name

    @property
    def cache(self) -> SequenceCodecCache:
        """The sequence-mode cache (built lazily)."""
        if self._cache is None:
            self._cache = SequenceCodecCache(self.cache_dir, self.max_decoded_bytes,
                                             decode_policy=self.decode_policy)  # type: ignore[arg-type]
        return self._cache

    def sample_q(self, rng: np.random.Generator) -> int | None:
        """The clip's quality parameter (``None`` for ``none``)."""
        if self.codec_name == "none" or not self.q_values:
            return None
        if len(self.q_values) == 1:
            return self.q_values[0]
        return int(self.q_values[int(rng.integers(len(self.q_values)))])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None  # rebuilt in each worker
        return state

    def __repr__(self) -> str:
        return f"CompressionSpec(codec={self.codec_name!r}, q={self.q_values}, mode={self.mode!r})"


@dataclass
class TrainEntry:
    """One dataset of the training mixture.

    Args:
        source: The source.
        repeat: Repeat factor (each video appears ``repeat`` times per epoch; DAVIS ×5 in the reference).
        max_gap: Largest gap between clip frames for this source (``None``: the sampler's default).
        gap_divisor: Under a gap curriculum (:meth:`CompressedClipDataset.set_gap_schedule`) this source's
            largest gap is the curriculum's divided by this (5 for YouTube-VOS, annotated every 5th frame).
        augment: This source's own augmentation (e.g. another short edge for a source of another frame
            size); ``None``: the dataset's. Its crop size must equal the dataset's (one batch, one size).
    """

    source: VideoSource
    repeat: int = 1
    max_gap: int | None = None
    gap_divisor: int = 1
    augment: ClipAugment | None = None


@dataclass
class CodedClip(Clip):
    """A :class:`Clip` that also records how many pixels its ``bits`` were spent on.

    Attributes:
        coded_pixels: ``T * H * W`` of the frames the bits belong to: the training-resolution clip in
            ``clip`` mode, the clip's frames at native resolution in ``sequence`` mode. Rate in bits per
            pixel is ``bits / coded_pixels`` (``VOSBatch.extras["coded_pixels"]`` after collation).
    """

    coded_pixels: int = 0


class CompressedClipDataset(Dataset[CodedClip]):
    """Training clips from a mixture of sources.

    Index ``i`` of epoch ``e`` is item ``e * base_len + i`` (so a plain index is epoch 0); its randomness
    is ``np.random.default_rng([seed, e, i])``. :class:`vosc.data.datamodule.EpochSeededSampler` yields
    such indices.

    Args:
        entries: The mixture.
        sampler: Clip sampler (``T``, gaps, reference rules).
        augment: Clip augmentation (scale, crop, flip).
        compression: The compression stage.
        static: Pseudo-video synthesis for static sources.
        max_objects: At most this many objects per clip (ids relabelled ``1..K``).
        seed: Base seed.
        keep_raw: Keep the uncompressed frames (enhancer targets).
    """

    def __init__(
        self,
        entries: Sequence[TrainEntry],
        sampler: ClipSampler,
        augment: ClipAugment,
        compression: CompressionSpec,
        static: StaticClipSynthesizer | None = None,
        max_objects: int = 10,
        seed: int = 0,
        keep_raw: bool = False,
    ) -> None:
        self.entries = list(entries)
        self.sampler, self.augment, self.compression = sampler, augment, compression
        self.static = static or StaticClipSynthesizer(num_frames=sampler.num_frames)
        self.max_objects, self.seed, self.keep_raw = max_objects, seed, keep_raw
        self.items: list[tuple[int, int]] = [
            (e, v)
            for e, ent in enumerate(self.entries)
            for _ in range(ent.repeat)
            for v in range(len(ent.source))
        ]
        if not self.items:
            raise ValueError("the training mixture has no video")
        for ent in self.entries:
            if ent.augment is not None and ent.augment.crop_size != augment.crop_size:
                raise ConfigError(
                    f"training source {ent.source.name!r}: its augment.crop_size "
                    f"{list(ent.augment.crop_size)} differs from data.augment.crop_size "
                    f"{list(augment.crop_size)}; one batch has one size")
        self.gap_schedule: list[tuple[int, int]] = []
        self.dropped: dict[str, str] = {}  # videos that failed at decode time (on_error="skip"), this process

    def set_gap_schedule(self, epochs: Sequence[int], gaps: Sequence[int]) -> None:
        """Largest gap per epoch: ``gaps[k]`` from epoch ``epochs[k]`` on (divided by each entry's
        ``gap_divisor``, at least 1); before ``epochs[0]`` the entries' own ``max_gap``. A function of the
        epoch encoded in the index, so it holds in persistent workers started afterwards and on resume."""
        if len(epochs) != len(gaps) or not gaps:
            raise ValueError(f"gap schedule: {len(epochs)} epochs for {len(gaps)} gaps")
        if any(b < a for a, b in itertools.pairwise(epochs)) or any(g < 1 for g in gaps):
            raise ValueError(f"gap schedule: epochs {list(epochs)} must ascend and gaps {list(gaps)} be >= 1")
        self.gap_schedule = [(int(e), int(g)) for e, g in zip(epochs, gaps, strict=False)]

    def max_gap_at(self, entry: TrainEntry, epoch: int) -> int | None:
        """The largest gap of ``entry`` in ``epoch`` (``None``: the sampler's default)."""
        current = [g for e, g in self.gap_schedule if e <= epoch]
        if not current:
            return entry.max_gap
        return max(1, current[-1] // max(1, entry.gap_divisor))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> CodedClip:
        """Clip ``index``. A video whose files fail while the clip is made (a truncated JPEG, an unsampleable
        video) raises, unless its source has ``on_error="skip"``: then the reason is logged (once per process)
        and item ``i + 1`` (of the same epoch) is returned instead; deterministic, whatever the worker."""
        epoch, i = divmod(int(index), len(self.items))
        for attempt in range(len(self.items)):
            j = (i + attempt) % len(self.items)
            ent = self.entries[self.items[j][0]]
            try:
                return self._item(epoch, j)
            except DataError as exc:
                if ent.source.on_error != "skip":
                    raise
                key = f"{ent.source.name}/{ent.source.videos[self.items[j][1]].name}"
                if key not in self.dropped:
                    log.warning("training video %s dropped (on_error=skip): %s", key, exc)
                self.dropped[key] = str(exc)
        raise RuntimeError(f"no usable training video: every video failed ({sorted(self.dropped)})")

    def _item(self, epoch: int, i: int) -> CodedClip:
        rng = np.random.default_rng([self.seed, epoch, i])
        ent = self.entries[self.items[i][0]]
        rec = ent.source.videos[self.items[i][1]]
        q = self.compression.sample_q(rng)
        if ent.source.is_static:
            return self._static_clip(ent.source, rec, rng, q, ent.augment or self.augment)
        sampled = self.sampler.sample(ent.source, rec, rng, self.max_gap_at(ent, epoch))
        codec = self.compression.codec
        if self.compression.mode == "sequence" and codec.name != "none":
            decoded, bits, qps, types = self.compression.cache.get_frames(
                codec, q, f"{ent.source.name}/{rec.name}", ent.source.content_key(rec),
                lambda: ent.source.load_frames(rec, range(len(rec))), sampled.indices)
            raw = ent.source.load_frames(rec, sampled.indices) if self.keep_raw else None
            augment = ent.augment or self.augment
            params = augment.sample_params(rng, decoded.shape[1:3], sampled.masks[0])
            frames, masks = augment.apply(params, decoded, sampled.masks)
            raw = None if raw is None else augment.apply(params, raw)[0]
            coded = int(np.prod(decoded.shape[:3]))
        else:
            raw_native = ent.source.load_frames(rec, sampled.indices)
            augment = ent.augment or self.augment
            params = augment.sample_params(rng, raw_native.shape[1:3], sampled.masks[0])
            raw, masks = augment.apply(params, raw_native, sampled.masks)
            frames, bits, qps, types = self._compress_clip(raw, q)
            coded = int(np.prod(frames.shape[:3]))
        assert masks is not None
        masks, k = relabel_objects(masks, rng, self.max_objects)
        return CodedClip(
            frames=frames,
            masks=masks,
            sequence=rec.name,
            frame_ids=[rec.frame_ids[j] for j in sampled.indices],
            num_objects=k,
            raw_frames=raw if self.keep_raw else None,
            codec=self.compression.codec_name,
            q=q,
            bits=bits,
            frame_qps=qps,
            frame_types=types,
            coded_pixels=coded,
        )

    def _compress_clip(
        self, raw: np.ndarray, q: int | None
    ) -> tuple[np.ndarray, int, list[float] | None, list[str] | None]:
        codec = self.compression.codec
        if codec.name == "none":
            return raw, 0, None, None
        enc = codec.compress(raw, q)
        return enc.frames, int(enc.bits), enc.frame_qps, enc.frame_types

    def _static_clip(self, source: VideoSource, rec: VideoRecord, rng: np.random.Generator,
                     q: int | None, augment: ClipAugment) -> CodedClip:
        image = source.load_frames(rec, [0])[0]
        mask = source.load_masks(rec, [0], size=image.shape[:2])[0]
        frames_native, masks_native = self.static(rng, image, mask)
        params = augment.sample_params(rng, frames_native.shape[1:3], masks_native[0])
        raw, masks = augment.apply(params, frames_native, masks_native)
        assert masks is not None
        frames, bits, qps, types = self._compress_clip(raw, q)
        masks, k = relabel_objects(masks, rng, self.max_objects)
        return CodedClip(
            frames=frames,
            masks=masks,
            sequence=rec.name,
            frame_ids=[rec.frame_ids[0]] * len(frames),
            num_objects=k,
            raw_frames=raw if self.keep_raw else None,
            codec=self.compression.codec_name,
            q=q,
            bits=bits,
            frame_qps=qps,
            frame_types=types,
            coded_pixels=int(np.prod(frames.shape[:3])),
        )


@dataclass
class EvalClip(CodedClip):
    """A whole evaluation sequence: :class:`Clip` plus which frames are annotated.

    Attributes:
        has_mask: ``(T,)`` bool; frames without ground truth have all-zero masks (YouTube-VOS ``valid``).
        first_appearance: Object id → index (into the clip) of its first annotated frame.
    """

    has_mask: np.ndarray | None = None
    first_appearance: dict[int, int] | None = None


class EvalSequenceDataset(Dataset[EvalClip]):
    """Validation/test items: one item per video = the whole sequence (or its first ``max_frames``
    frames), compressed as a whole at native resolution with ``compression.eval_q`` (one bitstream for
    the sequence whatever the training mode: the realistic setting; the bitstream goes through the
    sequence cache when ``compression.mode == "sequence"`` and the whole sequence is used), then
    optionally resized so that its short edge is ``short_edge``. Object ids are kept as annotated
    (not relabelled);
    ``num_objects`` is the largest id. J&F is computed on these sequences (DAVIS rules: first and last
    frame excluded by the metric).

    Args:
        source: The source.
        compression: The compression stage (``eval_q`` is used).
        short_edge: Resize target of the short edge (``None``: native).
        max_frames: Keep only the first ``max_frames`` frames (``None``: all).
        keep_raw: Keep the uncompressed frames.
    """

    def __init__(self, source: VideoSource, compression: CompressionSpec, short_edge: int | None = None,
                 max_frames: int | None = None, keep_raw: bool = False) -> None:
        self.source, self.compression = source, compression
        self.short_edge, self.max_frames, self.keep_raw = short_edge, max_frames, keep_raw

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> EvalClip:
        rec = self.source.videos[index]
        n = len(rec) if self.max_frames is None else min(len(rec), self.max_frames)
        idx = list(range(n))
        raw = self.source.load_frames(rec, idx)
        masks, has = self.source.load_masks_or_empty(rec, idx, raw.shape[1:3])
        codec, q = self.compression.codec, self.compression.eval_q
        bits, qps, types = 0, None, None
        frames = raw
        if codec.name != "none":
            if self.compression.mode == "sequence" and n == len(rec):
                frames, bits, qps, types = self.compression.cache.get_frames(
                    codec, q, f"{self.source.name}/{rec.name}", self.source.content_key(rec), lambda: raw, idx
                )
            else:
                enc = codec.compress(raw, q)
                frames, bits, qps, types = enc.frames, enc.bits, enc.frame_qps, enc.frame_types
        coded = int(np.prod(frames.shape[:3]))
        frames, raw, masks = self._resize(frames, raw, masks)
        first = {oid: rec.frame_ids.index(fid) for oid, fid in rec.first_appearance.items()
                 if rec.frame_ids.index(fid) < n}
        return EvalClip(
            frames=frames,
            masks=masks,
            sequence=rec.name,
            frame_ids=rec.frame_ids[:n],
            num_objects=int(masks.max(initial=0)),
            raw_frames=raw if self.keep_raw else None,
            codec=codec.name,
            q=q if codec.name != "none" else None,
            bits=int(bits),
            frame_qps=qps,
            frame_types=types,
            coded_pixels=coded,
            has_mask=has,
            first_appearance=first or None,
        )

    def _resize(
        self, frames: np.ndarray, raw: np.ndarray, masks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = frames.shape[1:3]
        if self.short_edge is None or min(h, w) == self.short_edge:
            return frames, raw, masks
        s = self.short_edge / min(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))

        def rs(x: np.ndarray, interp: int) -> np.ndarray:
            return np.stack([cv2.resize(f, size, interpolation=interp) for f in x])

        return rs(frames, cv2.INTER_LINEAR), rs(raw, cv2.INTER_LINEAR), rs(masks, cv2.INTER_NEAREST)
