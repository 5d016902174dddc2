"""Rate–accuracy sweep: every operating point × depth (× enhancer off/on) over whole sequences, resumable.

For each sequence and operating point ``(codec, q)`` the sweep

1. compresses the whole sequence once (content-addressed bitstream cache, :mod:`vosc.codecs.cache`, whose
   metadata keeps the encode time and per-frame QPs, so cache hits report them too) and decodes it;
2. optionally enhances the decoded frames (same bitstream for enhancer off and on);
3. runs a :class:`~vosc.inference.segmenter.VideoSegmenter` at each depth, writes palette PNGs atomically to
   ``<variant>/pred/<sequence>/<frame>.png`` and scores them with the official-exact J&F when the sequence
   has ground truth on every frame;
4. writes ``<variant>/sequences/<sequence>.json`` atomically: the per-sequence done marker with bits,
   pixels, PSNR-Y, runtimes (encode, decode, enhance, VOS, write, total), per-object J/F statistics and a
   fingerprint of everything that determines the result (:mod:`vosc.evaluation.fingerprint`: frames,
   annotations, model, checkpoint, codec, segmenter, depth, enhancer, vosc version).

Variant folders are described at :func:`variant_dir`. A re-run skips every sequence whose marker has the same
fingerprint (interrupted runs resume); a different fingerprint raises :class:`StaleResultError`, naming what
changed, unless ``overwrite`` is set (then it recomputes). :meth:`Sweep.curves` aggregates the markers into
one RD curve per codec × depth × enhancer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vosc.codecs.base import Codec
from vosc.codecs.cache import BitstreamCache
from vosc.data.palette import write_mask
from vosc.data.sources.base import VideoRecord, VideoSource
from vosc.evaluation.fingerprint import (
    MARKER_FORMAT,
    SequenceInputs,
    fingerprint,
    input_hashes,
    sequence_inputs,
    stale_reason,
    vosc_version,
)
from vosc.evaluation.frames import EnhancerSpec, _downscale, downscaled_size, enhance_frames
from vosc.evaluation.frames import frame_psnr as _frame_psnr
from vosc.evaluation.ground_truth import MissingGT, check_sequences, ground_truth_status
from vosc.evaluation.phantoms import flag_phantom_ids
from vosc.evaluation.progress import sequence_progress
from vosc.inference.segmenter import VideoSegmenter
from vosc.metrics.jf import ObjectStats, aggregate_objects, evaluate_sequence
from vosc.metrics.rd import Provenance, RDCurve, RDPoint, Runtimes
from vosc.types import OperatingPoint
from vosc.utils.io import atomic_write_json
from vosc.utils.progress import SweepETA

log = logging.getLogger(__name__)

__all__ = ["EnhancerSpec", "StaleResultError", "Sweep", "Variant", "downscaled_size", "enhance_frames",
           "variant_dir"]

EnhancerMode = Literal["off", "on", "both"]


class StaleResultError(RuntimeError):
    """A done marker exists but was computed with different inputs (model, codec, frames, enhancer...)."""


@dataclass(frozen=True)
class Variant:
    """One output folder: an operating point at one depth, with or without the enhancer."""

    op: OperatingPoint
    depth: int
    enhanced: bool = False


def variant_dir(root: Path, dataset: str, variant: Variant) -> Path:
    """``<root>/<dataset>/<codec>/q<q>/d<depth>[/enh]`` (``raw`` instead of ``q<q>`` for ``none``)."""
    op = variant.op
    path = root / dataset / op.codec / ("raw" if op.q is None else f"q{op.q}") / f"d{variant.depth}"
    return path / "enh" if variant.enhanced else path


def stage_extra(markers: list[dict[str, Any]], pixels: int) -> dict[str, Any]:
    """RD-point details shared by both analysis modes: which mode, the encoder/decoder time split
    (``t_e``, ``t_d``; older markers derive it), video and mask bpp, PSNR-Y inside/outside the objects."""
    def rt(m: dict[str, Any], key: str) -> float:
        r = m["runtimes"]
        default = r["encode"] if key == "t_e" else r["decode"] + r["enhance"] + r["vos"]
        return float(r.get(key, default))

    out: dict[str, Any] = {
        "analysis": "/".join(sorted({str(m.get("analysis", "decoder")) for m in markers})),
        "t_e": sum(rt(m, "t_e") for m in markers), "t_d": sum(rt(m, "t_d") for m in markers),
        "video_bpp": sum(m.get("video_bits", m["bits"]) for m in markers) / max(pixels, 1),
        "mask_bpp": sum(m.get("mask_bits", 0) for m in markers) / max(pixels, 1),
    }
    for key in ("psnr_inside", "psnr_outside", "mask_encode", "mask_decode"):
        values = [m.get(key, m["runtimes"].get(key)) for m in markers]
        if values and all(v is not None for v in values):
            out[key] = float(np.mean(values)) if key.startswith("psnr") else float(sum(values))
    return out


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, fsync=True, indent=1, sort_keys=True, allow_nan=False)


@dataclass
class _Decoded:
    """The codec stage of one sequence at one operating point."""

    frames: np.ndarray
    bits: int
    encode_s: float
    decode_s: float
    encode_cached: bool
    frame_qps: list[float] | None = None
    frame_types: list[str] | None = None
    psnr_frames: list[float] | None = None


@dataclass
class LoadedSequence:
    """One sequence as loaded for the sweep.

    Attributes:
        raw: ``(T, H, W, 3)`` uint8 original frames (downscaled when ``resize_long_edge`` is set).
        masks: Reference masks given to the segmenter, ``{frame index: (H, W) uint8}``.
        gt: ``(T, H, W)`` uint8 ground truth when the sequence is scored, else ``None``.
        skip_reason: Why J&F leaves the sequence out (``missing_gt=skip``), else ``None``.
    """

    raw: np.ndarray
    masks: dict[int, np.ndarray]
    gt: np.ndarray | None
    skip_reason: str | None


@dataclass
class Sweep:
    """Runs and aggregates a rate–accuracy sweep (see the module docstring).

    Attributes:
        source: The dataset.
        dataset: Dataset name (output folder and provenance).
        model: VOS model in eval mode, on ``device``.
        make_segmenter: ``(model, depth) -> VideoSegmenter``.
        codecs: Codec by name (every codec of ``ladder``).
        ladder: Operating points.
        depths: Inference depths.
        out_root: Root of the outputs (``<out_root>/<dataset>/...``).
        cache_root: Bitstream cache folder.
        model_name: Model name (provenance).
        model_fingerprint: Hash of the model's config and weights (resume check).
        checkpoint: Checkpoint path (provenance), ``None`` for random init.
        checkpoint_hash: Checkpoint SHA-256 prefix (provenance).
        enhancer: The enhancer, when ``enhancer_mode`` is ``on`` or ``both``.
        enhancer_mode: ``off``, ``on`` (enhanced only) or ``both``.
        max_frames: Use only the first frames of each sequence (smoke tests); ``None`` = all.
        resize_long_edge: Downscale frames (area) and masks (nearest) so that the long edge is at most this
            before coding (smoke tests / low-resolution studies); ``None`` = original size (benchmarks).
        references: ``first`` (DAVIS: the first annotated frame only) or ``all`` (YouTube-VOS: every given
            first-appearance mask).
        overwrite: Recompute sequences whose marker has another fingerprint instead of raising.
        missing_gt: ``error`` (default): a partially annotated sequence raises, naming the missing mask;
            ``skip``: it is segmented and counted in bpp but left out of J&F, and reported
            (:mod:`vosc.evaluation.ground_truth`).
        device: Device of the model and enhancer.
        segmenter_config: Plain description of the segmenter settings (fingerprint and provenance).
    """

    source: VideoSource
    dataset: str
    model: nn.Module
    make_segmenter: Callable[[nn.Module, int], VideoSegmenter]
    codecs: Mapping[str, Codec]
    ladder: list[OperatingPoint]
    depths: list[int]
    out_root: Path
    cache_root: Path
    model_name: str = "model"
    model_fingerprint: str = ""
    checkpoint: str | None = None
    checkpoint_hash: str | None = None
    enhancer: EnhancerSpec | None = None
    enhancer_mode: EnhancerMode = "off"
    max_frames: int | None = None
    resize_long_edge: int | None = None
    references: Literal["first", "all"] = "first"
    overwrite: bool = False
    missing_gt: MissingGT = "error"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    segmenter_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.enhancer_mode not in ("off", "on", "both"):
            raise ValueError(f"enhancer must be 'off', 'on' or 'both', got {self.enhancer_mode!r}")
        if self.enhancer_mode != "off" and self.enhancer is None:
            raise ValueError(
                f"enhancer={self.enhancer_mode} needs an enhancer network (enhancer_net / enhancer_ckpt)"
            )
        if self.max_frames is not None and self.max_frames < 3:
            raise ValueError(
                f"max_frames must be >= 3 (J&F excludes the first and last frame), got {self.max_frames}"
            )
        if self.resize_long_edge is not None and self.resize_long_edge < 16:
            raise ValueError(f"resize_long_edge must be >= 16 pixels, got {self.resize_long_edge}")
        if self.references not in ("first", "all"):
            raise ValueError(f"references must be 'first' or 'all', got {self.references!r}")
        if not self.depths:
            raise ValueError("depths: give at least one inference depth")
        self.cache = BitstreamCache(self.cache_root)
        self.computed = 0
        self.resumed = 0
        self.counts: dict[Variant, dict[str, int]] = {v: {"computed": 0, "resumed": 0} for v in self.variants}
        self._versions: dict[str, str] = {}

    # ------------------------------------------------------------------ variants and fingerprints
    @property
    def variants(self) -> list[Variant]:
        """Every output folder of the sweep, in run order."""
        out = []
        for op in self.ladder:
            flags = (
                [False]
                if op.codec == "none"
                else {"off": [False], "on": [True], "both": [False, True]}[self.enhancer_mode]
            )
            out += [Variant(op, d, e) for d in self.depths for e in flags]
        return out

    def version(self, codec: str) -> str:
        """Encoder version of ``codec`` (memoised)."""
        if codec not in self._versions:
            self._versions[codec] = self.codecs[codec].version()
        return self._versions[codec]

    def inputs(self, variant: Variant, seq: SequenceInputs) -> dict[str, Any]:
        """Hash of every input of one sequence's result in ``variant``, by name (the marker's ``inputs``)."""
        codec = self.codecs[variant.op.codec]
        return input_hashes(seq, {
            "model": self.model_fingerprint, "checkpoint": self.checkpoint_hash,
            "segmenter": self.segmenter_config, "codec": [codec.name, codec.params(), variant.op.q],
            "encoder_version": self.version(codec.name), "depth": variant.depth,
            "references": self.references, "missing_gt": self.missing_gt,
            "enhancer": self.enhancer.fingerprint if variant.enhanced and self.enhancer else None,
            "vosc_version": vosc_version(),
        })

    def fingerprint(self, variant: Variant, seq: SequenceInputs) -> str:
        """Hash of everything that determines one sequence's result in ``variant``."""
        return fingerprint(self.inputs(variant, seq))

    def folder(self, variant: Variant) -> Path:
        """Output folder of ``variant``."""
        return variant_dir(self.out_root, self.dataset, variant)

    def marker_path(self, variant: Variant, sequence: str) -> Path:
        """Done marker of one sequence."""
        return self.folder(variant) / "sequences" / f"{sequence}.json"

    def _indices(self, rec: VideoRecord) -> list[int]:
        n = len(rec) if self.max_frames is None else min(len(rec), self.max_frames)
        return list(range(n))

    def _is_done(self, variant: Variant, rec: VideoRecord, seq: SequenceInputs) -> bool:
        path = self.marker_path(variant, rec.name)
        if not path.exists():
            return False
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StaleResultError(f"{path}: unreadable done marker ({exc}); delete it to recompute") from exc
        reason = stale_reason(marker, self.inputs(variant, seq))
        if reason is None:
            return True
        if self.overwrite:
            log.warning("%s: inputs changed (%s); recomputing (overwrite=true)", path, reason)
            return False
        raise StaleResultError(
            f"{path} was computed with different inputs: {reason}; use another output folder (out_dir=...) "
            f"or overwrite=true to recompute"
        )

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Check every input frame (and the ground truth), then process every sequence (skipping finished
        ones) and log the progress."""
        variants = self.variants
        checked = check_sequences(self.source.videos, self.max_frames, self.references, self.missing_gt)
        log.info("%d frame headers of %d sequences checked", checked, len(self.source))
        eta = SweepETA([len(self._indices(r)) for r in self.source.videos], len(variants))
        for n, rec in enumerate(self.source.videos, 1):
            indices = self._indices(rec)
            seq = sequence_inputs(rec, indices, self.resize_long_edge)
            todo = [v for v in variants if not self._is_done(v, rec, seq)]
            self.resumed += len(variants) - len(todo)
            for v in variants:
                self.counts[v]["computed" if v in todo else "resumed"] += 1
            if not todo:
                log.info(
                    "[%d/%d] %s: all %d variants done, skipped", n, len(self.source), rec.name, len(variants)
                )
                continue
            log.info("[%d/%d] %s: %d frames, %d/%d variants to compute, ETA %s", n, len(self.source),
                rec.name, len(indices), len(todo), len(variants), eta.eta(n - 1))
            self._run_sequence(rec, indices, seq, todo)
            eta.computed(n - 1, len(todo))

    def _load_sequence(self, rec: VideoRecord, indices: list[int]) -> LoadedSequence:
        """Frames, reference masks and scoring ground truth of one sequence (downscaled if asked)."""
        raw = self.source.load_frames(rec, indices)
        gt_masks, has = self.source.load_masks_or_empty(rec, indices, raw.shape[1:3])
        if self.resize_long_edge is not None:
            raw, gt_masks = _downscale(raw, gt_masks, self.resize_long_edge)
        given = [i for i in range(len(indices)) if has[i]]
        if not given:
            raise ValueError(
                f"sequence {rec.name!r}: no annotated frame among the first {len(indices)} frames"
            )
        scored, skip_reason = ground_truth_status(rec, indices, has, self.references, self.missing_gt)
        refs = given[:1] if self.references == "first" else given
        return LoadedSequence(raw, {i: gt_masks[i] for i in refs}, gt_masks if scored else None, skip_reason)

    def _run_sequence(self, rec: VideoRecord, indices: list[int], seq: SequenceInputs,
                      todo: list[Variant]) -> None:
        """Load one sequence once, then compress / enhance / segment it for every unfinished variant."""
        data = self._load_sequence(rec, indices)
        for op in self.ladder:
            op_todo = [v for v in todo if v.op == op]
            if op_todo:
                self._run_op(op, op_todo, rec, indices, seq, data)

    def _run_op(self, op: OperatingPoint, op_todo: list[Variant], rec: VideoRecord, indices: list[int],
                seq: SequenceInputs, data: LoadedSequence) -> None:
        """Decoder-side analysis of one operating point: compress, decode, (enhance), segment the result."""
        decoded = self._compress(op, rec, data.raw, seq.frames)
        enhanced, enhance_s, enh_psnr = None, 0.0, None
        if any(v.enhanced for v in op_todo):
            assert self.enhancer is not None
            t0 = time.perf_counter()
            enhanced = enhance_frames(
                self.enhancer, decoded.frames, op, decoded.frame_qps, decoded.frame_types, self.device
            )
            enhance_s = time.perf_counter() - t0
            enh_psnr = _frame_psnr(data.raw, enhanced)
        for variant in op_todo:
            frames = enhanced if variant.enhanced else decoded.frames
            assert frames is not None
            pred, vos_s = self._segment(variant, rec, frames, data.masks)
            runtimes = {"encode": decoded.encode_s, "decode": decoded.decode_s,
                        "enhance": enhance_s if variant.enhanced else 0.0, "vos": vos_s}
            record = {"analysis": "original" if op.codec == "none" else "decoder", "bits": decoded.bits,
                      "psnr_frames": enh_psnr if variant.enhanced else decoded.psnr_frames,
                      "encode_cached": decoded.encode_cached, "frame_qps": decoded.frame_qps,
                      "frame_types": decoded.frame_types, "gt_skipped": data.skip_reason}
            self._write_result(variant, rec, indices, seq, pred, data.gt, runtimes, record,
                               (("encode",), ("decode", "enhance", "vos")))

    def _compress(self, op: OperatingPoint, rec: VideoRecord, raw: np.ndarray, key: str) -> _Decoded:
        """Encode (or fetch) and decode the whole sequence at ``op``."""
        if op.codec == "none":
            return _Decoded(raw, 0, 0.0, 0.0, False)
        codec = self.codecs[op.codec]
        assert op.q is not None
        cache_key = self.cache.key_for(codec, op.q, f"{self.source.name}/{rec.name}", key)
        t, h, w = raw.shape[:3]
        found = self.cache.fetch(codec, raw, op.q, cache_key, sequence=rec.name)
        data, encode_s, cached, enc_qps = found.bitstream, found.encode_seconds, found.hit, found.frame_qps
        t0 = time.perf_counter()
        stream = codec.decode_stream(data, t, h, w)
        decode_s = time.perf_counter() - t0
        if stream.frames.shape != raw.shape:
            raise RuntimeError(f"{rec.name}: {op.tag} decoded {stream.frames.shape}, expected {raw.shape}")
        qps = enc_qps if enc_qps is not None else stream.frame_qps  # the encoder's real per-frame QPs first
        return _Decoded(stream.frames, 8 * len(data), encode_s, decode_s, cached, qps, stream.frame_types,
                        _frame_psnr(raw, stream.frames))

    def _segment(self, variant: Variant, rec: VideoRecord, frames: np.ndarray,
                 masks: dict[int, np.ndarray]) -> tuple[np.ndarray, float]:
        """Run the VOS network over ``(T, H, W, 3)`` frames; returns ``(T, H, W)`` uint8 ids and seconds."""
        segmenter = self.make_segmenter(self.model, variant.depth)
        label = f"{variant.op.tag} d{variant.depth}{' +enh' if variant.enhanced else ''} {rec.name}"
        t0 = time.perf_counter()
        results = []
        with sequence_progress(label, len(frames)) as advance:
            for r in segmenter.run(frames, masks):
                results.append(r)
                advance()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return np.stack([r.mask for r in results]), time.perf_counter() - t0

    def _write_result(self, variant: Variant, rec: VideoRecord, indices: list[int], seq: SequenceInputs,
                      pred: np.ndarray, gt: np.ndarray | None, runtimes: dict[str, float],
                      record: dict[str, Any], sides: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        """Write one sequence's palette PNGs, score them and write its done marker.

        Args:
            pred: ``(T, H, W)`` uint8 predicted ids.
            gt: ``(T, H, W)`` ground truth, or ``None`` (not scored).
            runtimes: Seconds by stage (``encode``, ``decode``, ``enhance``, ``vos``, ...); ``write`` and
                ``total`` are added, then ``t_e`` / ``t_d``: the sums of the ``sides`` keys (encoder side,
                decoder side; ``write`` is in neither).
            record: Marker fields of the codec stage (``analysis``, ``bits``, ``psnr_frames``, ...).
        """
        t0 = time.perf_counter()
        for i, mask in zip(indices, pred, strict=True):
            write_mask(self.folder(variant) / "pred" / rec.name / f"{rec.frame_ids[i]}.png", mask)
        runtimes = {**runtimes, "write": time.perf_counter() - t0}
        runtimes["total"] = sum(runtimes.values())
        runtimes.update(t_e=sum(runtimes[k] for k in sides[0]), t_d=sum(runtimes[k] for k in sides[1]))
        objects, phantoms = None, []
        if gt is not None:
            scored = evaluate_sequence(gt, pred, rec.name, [rec.frame_ids[i] for i in indices])
            objects, phantoms = [vars(o) for o in scored.object_stats()], list(scored.phantom_ids)
        t, h, w = pred.shape
        marker = {"format": MARKER_FORMAT, "fingerprint": self.fingerprint(variant, seq),
                  "inputs": self.inputs(variant, seq), "sequence": rec.name, "codec": variant.op.codec,
                  "q": variant.op.q, "depth": variant.depth, "enhanced": variant.enhanced, "frames": t,
                  "height": h, "width": w, "pixels": t * h * w, **record, "runtimes": runtimes,
                  "objects": objects, "phantom_ids": phantoms,
                  "computed_at": datetime.now(UTC).isoformat(timespec="microseconds")}
        _write_json(self.marker_path(variant, rec.name), marker)
        self.computed += 1
        jf = ""  # percent points in log lines and tables; fractions in JSON/CSV files and logged metrics
        if objects is not None:
            jf = f" J&F {100 * np.mean([(o['j_mean'] + o['f_mean']) / 2 for o in objects]):.1f}"
        log.info("  %s d%d%s [%s]: %.4f bpp, VOS %.2fs (%.1f fps)%s", variant.op.tag, variant.depth,
                 " +enh" if variant.enhanced else "", record["analysis"], record["bits"] / (t * h * w),
                 runtimes["vos"], t / max(runtimes["vos"], 1e-9), jf)

    # ------------------------------------------------------------------ aggregation
    def load_markers(self, variant: Variant) -> list[dict[str, Any]]:
        """Done markers of every sequence of ``variant``.

        Raises:
            FileNotFoundError: A sequence has no marker (the sweep did not finish), naming the file.
        """
        out = []
        for rec in self.source.videos:
            path = self.marker_path(variant, rec.name)
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: sequence {rec.name!r} of {variant.op.tag} d{variant.depth} "
                    "has no result; run the sweep first"
                )
            out.append(json.loads(path.read_text()))
        return out

    def point(self, variant: Variant) -> RDPoint:
        """Aggregate one variant into an RD point (bpp and PSNR pixel/frame-weighted, J&F over objects)."""
        markers = self.load_markers(variant)
        pixels = sum(m["pixels"] for m in markers)
        frames = sum(m["frames"] for m in markers)
        psnrs = [v for m in markers for v in (m["psnr_frames"] or [])]
        sums = {
            k: sum(m["runtimes"][k] for m in markers)
            for k in ("encode", "decode", "enhance", "vos", "write", "total")
        }
        jf = j = f = None
        with_gt = [m for m in markers if m["objects"] is not None]
        extra: dict[str, Any] = {
            "enhance_s": sums["enhance"],
            "write_s": sums["write"],
            "sequences_with_gt": len(with_gt),
            "jf_sequences": len(with_gt),
            "bpp_sequences": len(markers),
            "gt_skipped": {m["sequence"]: m["gt_skipped"] for m in markers if m.get("gt_skipped")},
            "encode_cached": sum(bool(m["encode_cached"]) for m in markers),
            "enhance_ms_per_frame": 1000.0 * sums["enhance"] / max(frames, 1),
            **stage_extra(markers, pixels),
            "computed_this_run": self.counts[variant]["computed"],
            "resumed_this_run": self.counts[variant]["resumed"],
            "per_sequence": {
                m["sequence"]: {"bits": m["bits"], "frames": m["frames"], "computed_at": m["computed_at"],
                                "PSNR": float(np.mean(m["psnr_frames"])) if m["psnr_frames"] else None}
                for m in markers
            },
        }
        if with_gt:
            result = aggregate_objects(ObjectStats(**o) for m in with_gt for o in m["objects"])
            jf, j, f = result.global_["J&F-Mean"], result.global_["J-Mean"], result.global_["F-Mean"]
            extra["global"] = result.global_
            for name, values in result.per_sequence.items():
                extra["per_sequence"][name].update(values)
        flag_phantom_ids(with_gt, extra, f"{variant.op.tag} d{variant.depth}")
        runtimes = Runtimes(sums["encode"], sums["decode"], sums["vos"], sums["total"], frames)
        return RDPoint(q=variant.op.q, bpp=sum(m["bits"] for m in markers) / max(pixels, 1), jf=jf, j=j,
            f=f, psnr=float(np.mean(psnrs)) if psnrs else None, runtimes=runtimes,
            num_sequences=len(markers), extra=extra)

    def curves(self) -> dict[tuple[str, int, bool], RDCurve]:
        """One curve per ``(codec, depth, enhanced)``, points ordered by ``q`` as in the ladder."""
        curves: dict[tuple[str, int, bool], RDCurve] = {}
        for variant in self.variants:
            k = (variant.op.codec, variant.depth, variant.enhanced)
            if k not in curves:
                codec = self.codecs[variant.op.codec]
                version = self.version(codec.name)
                ffmpeg = version.split(" / ffmpeg ")[1] if " / ffmpeg " in version else None
                prov = Provenance(
                    codec=codec.name,
                    model=self.model_name,
                    dataset=self.dataset,
                    depth=variant.depth,
                    encoder_version=version,
                    ffmpeg_version=ffmpeg,
                    checkpoint=self.checkpoint,
                    checkpoint_hash=self.checkpoint_hash,
                    enhancer=self.enhancer.name if variant.enhanced and self.enhancer else None,
                    vosc_version=vosc_version(),
                    extra={
                        "analysis": "original" if variant.op.codec == "none" else "decoder",
                        "model_fingerprint": self.model_fingerprint,
                        "codec_params": codec.params(),
                        "segmenter": self.segmenter_config,
                        "max_frames": self.max_frames,
                        "resize_long_edge": self.resize_long_edge,
                        "references": self.references,
                        "enhancer_fingerprint": self.enhancer.fingerprint
                        if variant.enhanced and self.enhancer
                        else None,
                    },
                )
                curves[k] = RDCurve(prov)
            curves[k].points.append(self.point(variant))
        return curves

    def curve_path(self, codec: str, depth: int, enhanced: bool) -> Path:
        """``<root>/<dataset>/<codec>/rd_d<depth>[_enh].json``."""
        return self.out_root / self.dataset / codec / f"rd_d{depth}{'_enh' if enhanced else ''}.json"

