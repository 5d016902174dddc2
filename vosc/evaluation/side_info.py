"""``analysis=encoder``: segmentation at the encoder, masks as side information (DESIGN §9, issue 25).

The seeds' system moves the VOS network to the encoder side. Per sequence and depth :class:`EncoderSideSweep`

1. **encoder side** (:func:`encode_side`): runs the VOS network once on the *original* frames (given the
   first-frame masks as in ``decoder`` mode), codes the predicted id maps with a lossless
   :class:`~vosc.codecs.mask_codec.MaskCodec`, and codes the video: plain, with the background blurred outside
   the dilated predicted objects (:class:`~vosc.codecs.roi.BackgroundBlur`, any codec), and/or with x265
   region-of-interest QP offsets from the predicted objects (:class:`~vosc.codecs.roi.RoiX265Codec`);
2. **decoder side** (:func:`decode_side`, which has no VOS network): decodes the video (then, optionally, the
   enhancer, for viewing and PSNR) and the masks. The decoded masks are the result: written as palette PNGs
   and scored with J&F. For a lossless mask codec they equal the encoder's masks bit for bit (checked), so
   the J&F equals the J&F of the same model on raw frames.

Every bit a real decoder needs is counted: the video bitstream (ROI offsets are ordinary HEVC QP deltas in it;
the blur needs nothing) plus the whole mask stream (header included). The RD point's ``bpp`` is the total;
``video_bpp`` and ``mask_bpp`` are reported apart. Runtimes split as in the seed: ``t_e`` = video encode
(+ pre-filter) + VOS + mask encode, ``t_d`` = video decode + mask decode + enhancer.

Results go to ``<out_dir>/<dataset>/<codec>+enc[+roi][+blur]/q<q>/d<depth>[/enh]/`` and their curves are
labelled ``x265+enc d3`` etc., so that one ``out_dir`` holds and reports both modes side by side (the BD
tables then compare ``x265+enc`` with ``x265``). The ``none`` point of the ladder runs as in ``decoder`` mode
(raw frames, the ``original`` row).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vosc.codecs.base import Codec, CodecError
from vosc.codecs.cache import BitstreamCache, content_key_frames
from vosc.codecs.mask_codec import MaskCodec, X265LosslessMaskCodec
from vosc.codecs.roi import BackgroundBlur, RoiX265Codec
from vosc.config import ConfigError
from vosc.data.sources.base import VideoRecord
from vosc.evaluation.fingerprint import SequenceInputs
from vosc.evaluation.frames import enhance_frames, frame_psnr
from vosc.evaluation.sweep import LoadedSequence, Sweep, Variant
from vosc.metrics.rate import psnr_y_regions
from vosc.metrics.rd import RDCurve
from vosc.types import OperatingPoint

log = logging.getLogger(__name__)

__all__ = ["EncodedSide", "EncoderSideSweep", "decode_side", "encode_side", "method_name"]

#: Runtime keys on each side (``t_e``, ``t_d``).
ENCODER_KEYS = ("encode", "prefilter", "vos", "mask_encode")
DECODER_KEYS = ("decode", "mask_decode", "enhance")


def method_name(codec: str, roi: bool = False, prefilter: bool = False, mask_suffix: str = "") -> str:
    """The curve / folder / table name of an encoder-side codec: ``x265+enc``, ``x265+enc+roi+blur``,
    ``x265+enc+m4`` (a lossy mask coder, :attr:`~vosc.codecs.mask_codec.MaskCodec.method_suffix`)."""
    if codec == "none":
        return "none"
    return f"{codec}+enc" + ("+roi" if roi else "") + ("+blur" if prefilter else "") + mask_suffix


@dataclass
class EncodedSide:
    """Everything the encoder sends for one sequence, and what it cost.

    Attributes:
        video: The video bitstream (raw Annex-B).
        masks: The mask side-information stream.
        encoder_masks: ``(T, H, W)`` uint8 ids the VOS network predicted on the original frames.
        frame_qps: Per-frame QPs the video encoder reported (enhancer conditioning), or ``None``.
        seconds: Encoder-side seconds by stage: ``encode``, ``prefilter``, ``vos``, ``mask_encode``.
        video_cached: The video came from the bitstream cache (its original encode time is reported).
    """

    video: bytes
    masks: bytes
    encoder_masks: np.ndarray
    frame_qps: list[float] | None
    seconds: dict[str, float] = field(default_factory=dict)
    video_cached: bool = False


def encode_side(codec: Codec, q: int, raw: np.ndarray, encoder_masks: np.ndarray, vos_s: float,
                mask_stream: tuple[bytes, float], prefilter: BackgroundBlur | None = None,
                cache: tuple[BitstreamCache, str, str | None] | None = None) -> EncodedSide:
    """Code the video of one sequence at ``q`` next to its (already coded) masks.

    Args:
        codec: The video codec; a :class:`RoiX265Codec` gets the encoder's masks as regions of interest.
        q: Quality parameter.
        raw: ``(T, H, W, 3)`` uint8 original frames.
        encoder_masks: ``(T, H, W)`` uint8 ids predicted at the encoder.
        vos_s: Seconds the VOS network took on ``raw``.
        mask_stream: ``(bytes, seconds)`` of the mask coder.
        prefilter: Optional background pre-filter applied before coding.
        cache: ``(cache, name, content)`` to reuse bitstreams of plain (non-ROI) codecs; ``name`` identifies
            the sequence, ``content`` its frames (``None``: a hash of the coded frames, e.g. after the
            pre-filter). With the decoder-mode key, both modes share one bitstream (and its encode time).
    """
    seconds = {"vos": vos_s, "mask_encode": mask_stream[1], "prefilter": 0.0}
    frames = raw
    if prefilter is not None:
        t0 = time.perf_counter()
        frames = prefilter(raw, encoder_masks)
        seconds["prefilter"] = time.perf_counter() - t0
    cached = False
    if isinstance(codec, RoiX265Codec):
        t0 = time.perf_counter()
        stream = codec.encode_with_masks(frames, q, encoder_masks)
        seconds["encode"] = time.perf_counter() - t0
        video, qps = stream.bitstream, stream.frame_qps
    elif cache is not None:
        store, name, content = cache
        plain = content if prefilter is None and content else content_key_frames(frames)
        found = store.fetch(codec, frames, q, store.key_for(codec, q, name, plain),
                            sequence=name.rsplit("/", 1)[-1])
        video, qps, cached = found.bitstream, found.frame_qps, found.hit
        seconds["encode"] = found.encode_seconds
    else:
        t0 = time.perf_counter()
        encoded = codec.encode_stream(frames, q)
        seconds["encode"] = time.perf_counter() - t0
        video, qps = encoded.bitstream, encoded.frame_qps
    return EncodedSide(video, mask_stream[0], encoder_masks, qps, seconds, cached)


def decode_side(
    codec: Codec, mask_codec: MaskCodec, side: EncodedSide, shape: tuple[int, int, int],
    decoded_videos: dict[bytes, tuple[Any, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None, dict[str, float]]:
    """The decoder: video and masks from the two streams. There is no VOS network here.

    Args:
        codec: The video codec (any decoder of its standard would do).
        mask_codec: The mask coder.
        side: What the encoder sent.
        shape: ``(T, H, W)``.
        decoded_videos: Decoded video streams by bitstream, with their decode seconds: a bitstream already
            decoded (the same plain video sent beside the masks of another depth) is not decoded again, and
            reports the seconds its decode took.

    Returns:
        ``(frames (T, H, W, 3) uint8, masks (T, H, W) uint8, picture types, seconds {decode, mask_decode})``.

    Raises:
        CodecError: A lossless mask coder did not give back the encoder's masks.
    """
    t, h, w = shape
    videos = {} if decoded_videos is None else decoded_videos
    if side.video not in videos:
        t0 = time.perf_counter()
        stream = codec.decode_stream(side.video, t, h, w)
        videos[side.video] = (stream, time.perf_counter() - t0)
    stream, decode_s = videos[side.video]
    t1 = time.perf_counter()
    masks = mask_codec.decode(side.masks)
    mask_s = time.perf_counter() - t1
    if mask_codec.lossless and not np.array_equal(masks, side.encoder_masks):
        raise CodecError(f"mask coder {mask_codec.label!r} is not lossless on these maps")
    return stream.frames, masks, stream.frame_types, {"decode": decode_s, "mask_decode": mask_s}


@dataclass
class _Analysed:
    """The VOS network's output on the original frames at one depth, and its coded form."""

    masks: np.ndarray
    vos_s: float
    stream: bytes
    encode_s: float


@dataclass
class EncoderSideSweep(Sweep):
    """The sweep of ``analysis=encoder`` (module docstring); the arguments of
    :class:`~vosc.evaluation.sweep.Sweep` plus the three below.

    Attributes:
        mask_codec: Coder of the side information (default: HEVC lossless).
        roi: Object-aware x265 (region QP offsets from the encoder's masks); ``None``: plain coding.
        prefilter: Background pre-filter for every codec; ``None``: none.
    """

    mask_codec: MaskCodec = field(default_factory=X265LosslessMaskCodec)
    roi: RoiX265Codec | None = None
    prefilter: BackgroundBlur | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        others = sorted({op.codec for op in self.ladder} - {"none", "x265"})
        if self.roi is not None and others:
            raise ConfigError(f"side_info.object_aware with roi codes x265 only; the ladder also has "
                              f"{others} (use object_aware=blur for other codecs, or two runs)")
        self._analysed: dict[int, _Analysed] = {}

    def method(self, codec: str) -> str:
        """Display / folder name of ``codec`` in this mode."""
        return method_name(codec, self.roi is not None and codec == "x265", self.prefilter is not None,
                           self.mask_codec.method_suffix)

    def folder(self, variant: Variant) -> Path:
        if variant.op.codec == "none":
            return super().folder(variant)
        path = self.out_root / self.dataset / self.method(variant.op.codec) / f"q{variant.op.q}"
        return path / f"d{variant.depth}" / ("enh" if variant.enhanced else "")

    def side_settings(self, codec: str) -> dict[str, Any]:
        """What the encoder side adds to the inputs of a result (fingerprint, provenance)."""
        return {"analysis": "encoder", "mask_codec": self.mask_codec.params(),
                "roi": self.roi.params()["roi"] if self.roi is not None and codec == "x265" else None,
                "prefilter": self.prefilter.params() if self.prefilter is not None else None}

    def inputs(self, variant: Variant, seq: SequenceInputs) -> dict[str, Any]:
        from vosc.evaluation.fingerprint import hash_json

        out = super().inputs(variant, seq)
        if variant.op.codec != "none":
            out.update({k: hash_json(v) for k, v in self.side_settings(variant.op.codec).items()})
        return out

    def curves(self) -> dict[tuple[str, int, bool], RDCurve]:
        """As :meth:`Sweep.curves`, keyed and labelled by method (``x265+enc d3``)."""
        out = {}
        for (codec, depth, enhanced), curve in super().curves().items():
            if codec != "none":
                curve.provenance.codec = self.method(codec)
                curve.provenance.extra.update(self.side_settings(codec), mask_coder=self.mask_codec.label)
            out[(curve.provenance.codec, depth, enhanced)] = curve
        return out

    # ------------------------------------------------------------------ running
    def _run_sequence(self, rec: VideoRecord, indices: list[int], seq: SequenceInputs,
                      todo: list[Variant]) -> None:
        self._analysed = {}
        super()._run_sequence(rec, indices, seq, todo)

    def _analyse(self, rec: VideoRecord, data: LoadedSequence, depth: int) -> _Analysed:
        """VOS on the original frames at ``depth`` and the coded masks (once per sequence and depth)."""
        if depth not in self._analysed:
            pred, vos_s = self._segment(Variant(OperatingPoint("none"), depth), rec, data.raw, data.masks)
            t0 = time.perf_counter()
            stream = self.mask_codec.encode(pred)
            self._analysed[depth] = _Analysed(pred, vos_s, stream, time.perf_counter() - t0)
            log.info("  %s d%d: masks coded with %s: %d bytes (%.4f bpp)", rec.name, depth,
                     self.mask_codec.label, len(stream), 8 * len(stream) / pred.size)
        return self._analysed[depth]

    def _run_op(self, op: OperatingPoint, op_todo: list[Variant], rec: VideoRecord, indices: list[int],
                seq: SequenceInputs, data: LoadedSequence) -> None:
        if op.codec == "none":
            super()._run_op(op, op_todo, rec, indices, seq, data)
            return
        assert op.q is not None
        codec = self.roi if self.roi is not None and op.codec == "x265" else self.codecs[op.codec]
        videos: dict[bytes, tuple[Any, float]] = {}  # a plain video is the same at every depth: decoded once
        for depth in sorted({v.depth for v in op_todo}):
            found = self._analyse(rec, data, depth)
            side = encode_side(codec, op.q, data.raw, found.masks, found.vos_s,
                               (found.stream, found.encode_s), self.prefilter,
                               (self.cache, f"{self.source.name}/{rec.name}", seq.frames))
            frames, masks, types, dec_s = decode_side(codec, self.mask_codec, side, found.masks.shape, videos)
            for variant in (v for v in op_todo if v.depth == depth):
                self._finish_variant(variant, rec, indices, seq, data, side, (frames, masks, types), dec_s)

    def _finish_variant(self, variant: Variant, rec: VideoRecord, indices: list[int], seq: SequenceInputs,
                        data: LoadedSequence, side: EncodedSide,
                        decoded: tuple[np.ndarray, np.ndarray, list[str] | None],
                        dec_s: dict[str, float]) -> None:
        """Enhance (if asked), measure PSNR inside/outside the objects and write the result of one variant."""
        frames, masks, types = decoded
        enhance_s = 0.0
        if variant.enhanced:
            assert self.enhancer is not None
            t0 = time.perf_counter()
            frames = enhance_frames(self.enhancer, frames, variant.op, side.frame_qps, types, self.device)
            enhance_s = time.perf_counter() - t0
        regions = data.gt if data.gt is not None else side.encoder_masks
        inside, outside = psnr_y_regions(data.raw, frames, regions)
        runtimes = {**{k: side.seconds.get(k, 0.0) for k in ENCODER_KEYS}, **dec_s, "enhance": enhance_s}
        record = {"analysis": "encoder", "bits": 8 * (len(side.video) + len(side.masks)),
                  "video_bits": 8 * len(side.video), "mask_bits": 8 * len(side.masks),
                  "mask_coder": self.mask_codec.label, "method": self.method(variant.op.codec),
                  "psnr_frames": frame_psnr(data.raw, frames), "psnr_inside": inside, "psnr_outside": outside,
                  "psnr_regions": "ground truth" if data.gt is not None else "encoder masks",
                  "encode_cached": side.video_cached, "frame_qps": side.frame_qps, "frame_types": types,
                  "gt_skipped": data.skip_reason}
        self._write_result(variant, rec, indices, seq, masks, data.gt, runtimes, record,
                           (ENCODER_KEYS, DECODER_KEYS))
