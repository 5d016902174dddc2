"""``python -m vosc.segment`` (console script ``vosc-segment``): segment a user's video.

Input: a video file (mp4/mkv/webm/..., read with PyAV) or a folder of frames, and first-appearance masks
(``--mask``: a palette PNG for frame 0, ``INDEX=PNG`` for an object that appears at frame ``INDEX``, or a
folder of ``<index>.png`` masks). The frames of a folder are taken in the order of the numbers in their
names (``2.jpg`` before ``10.jpg``; names that cannot be ordered are an error). Output in ``--out``:
``masks/<name>.png`` (DAVIS palette, original size; ``<name>`` is the stem of the frame's own file for a
folder, ``<index:05d>`` for a video file; ``result.json``'s ``mask_names`` says which), ``overlay.mp4``
(masks blended over the frames that were segmented) and ``result.json`` (frames, fps, timings, device,
checkpoint, codec and bpp).

Frames are streamed (one decoded frame at a time) unless ``--codec`` compresses the video first: a codec
encodes the whole video, so the frames are then held in memory.

``--out`` must be new, empty, or hold only an earlier run's outputs, which ``--overwrite`` removes first
(never are old masks or an old overlay left beside new ones); the default is ``<video file name>_vosc`` beside
the video. The process runs one torch thread (``--threads``) with ``OMP_WAIT_POLICY=PASSIVE`` unless the
environment sets it, as ``train.py`` and ``evaluate.py`` do (on a busy 2-core machine 1.18 frames/s against
0.21 with torch's default threads).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads sleep, not spin

import argparse  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vosc.data.errors import DataError  # noqa: E402
from vosc.data.palette import read_input_mask, write_mask  # noqa: E402
from vosc.inference.video_io import (  # noqa: E402
    OverlayWriter,
    VideoInfo,
    VideoReadError,
    folder_frames,
    frame_times,
    iter_frames,
    probe_video,
)
from vosc.utils.io import atomic_write_json  # noqa: E402

log = logging.getLogger("vosc.segment")

__all__ = ["SegmentError", "check_args", "default_out", "main", "parse_masks", "prepare_out", "segment_video"]

#: What a run writes into ``--out`` (``masks/`` holds only ``*.png``), besides an interrupted overlay's temp.
OUTPUT_NAMES = ("masks", "overlay.mp4", "result.json")


class SegmentError(ValueError):
    """Bad command-line input (no mask, a mask of the wrong size, an unreadable video, ...)."""


def parse_masks(specs: Sequence[str], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Read the first-appearance masks of ``--mask`` arguments.

    Args:
        specs: ``PNG`` (frame 0), ``INDEX=PNG``, or a folder whose ``<index>.png`` files are masks.
        size: ``(H, W)`` of the video's frames; every mask must have it.

    Returns:
        ``{frame_index: (H, W) uint8 ids}``.

    Raises:
        SegmentError: No mask, a missing/unreadable file, a wrong size, a duplicate index, or no object.
    """
    masks: dict[int, np.ndarray] = {}
    for spec in specs:
        items: list[tuple[int, Path]]
        m = re.fullmatch(r"(\d+)=(.+)", spec)
        if m:
            items = [(int(m.group(1)), Path(m.group(2)))]
        elif Path(spec).is_dir():
            items = [(int(p.stem), p) for p in sorted(Path(spec).glob("*.png")) if p.stem.isdigit()]
            if not items:
                raise SegmentError(f"{spec}: mask folder holds no <frame index>.png file")
        else:
            items = [(0, Path(spec))]
        for index, path in items:
            if index in masks:
                raise SegmentError(f"{path}: a second mask for frame {index}")
            try:
                masks[index] = read_input_mask(path, expected_size=size)
            except DataError as exc:
                raise SegmentError(str(exc)) from exc
    if not masks:
        raise SegmentError("no first-frame mask given: pass --mask first.png (INDEX=PNG for later objects)")
    if not any(m.any() for m in masks.values()):
        raise SegmentError(f"the masks of frames {sorted(masks)} hold no object (all background)")
    return masks


def default_out(video: Path) -> Path:
    """The default ``--out`` of a video: ``<file name>_vosc`` beside it (``clip.mp4`` → ``clip.mp4_vosc``,
    a frame folder ``clip/`` → ``clip_vosc``), so ``clip.mp4`` and ``clip.mkv`` never share a folder."""
    return video.with_name(f"{video.name}_vosc")


def _is_output(path: Path) -> bool:
    """Whether ``path`` (an entry of an output folder) is something a run writes."""
    if path.name == "masks" and path.is_dir():
        return all(p.is_file() and p.suffix == ".png" for p in path.iterdir())
    return path.name in OUTPUT_NAMES[1:] or (path.name.startswith(".overlay.mp4.tmp-") and path.is_file())


def prepare_out(out: Path, overwrite: bool, dry_run: bool = False) -> None:
    """Make sure ``out`` holds nothing of an earlier run before a new one writes there.

    Args:
        out: The output folder (new, empty, or holding only an earlier run's outputs).
        overwrite: Remove an earlier run's outputs (``masks/``, ``overlay.mp4``, ``result.json``).
        dry_run: Only check (raise what would be refused); remove nothing.

    Raises:
        SegmentError: ``out`` is a file, holds anything a run does not write (even with ``overwrite``),
            or holds an earlier run's outputs without ``overwrite``.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise SegmentError(f"{out}: --out is a file, not a folder")
    entries = sorted(out.iterdir())
    foreign = [p.name for p in entries if not _is_output(p)]
    if foreign:
        raise SegmentError(f"{out}: holds {', '.join(foreign[:5])}, not a vosc-segment output; choose a new "
                           "or empty --out (nothing was changed)")
    if entries and not overwrite:
        names = ", ".join(p.name for p in entries)
        raise SegmentError(f"{out}: holds the outputs of an earlier run ({names}); pass --overwrite to "
                           "replace them, or choose another --out")
    if dry_run:
        return
    for path in entries:
        log.info("--overwrite: removing the earlier run's %s", path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


@dataclass
class SegmentResult:
    """Timings and counts of one :func:`segment_video` call (written as ``result.json``)."""

    frames: int = 0
    objects: list[int] = field(default_factory=list)
    seconds_total: float = 0.0
    seconds_segment: float = 0.0
    seconds_read: float = 0.0
    seconds_write: float = 0.0
    codec: dict[str, Any] | None = None
    mask_names: str = "frame index (%05d)"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``fps`` (frames per second of segmentation alone and end to end)."""
        d = dict(self.__dict__)
        d["fps_segment"] = self.frames / self.seconds_segment if self.seconds_segment else None
        d["fps_total"] = self.frames / self.seconds_total if self.seconds_total else None
        return d


def _compressed_frames(video: Path, codec_name: str, q: int | None, result: SegmentResult) -> np.ndarray:
    """Decode the whole video, encode it with the codec and return the decoded frames ``(T, H, W, 3)``."""
    from vosc.codecs import build_codec

    codec = build_codec(codec_name)
    frames = np.stack(list(iter_frames(video)))
    enc = codec.compress(frames, q)
    t, h, w = frames.shape[:3]
    result.codec = {"name": codec_name, "q": enc.q, "bits": enc.bits, "bpp": enc.bits / (t * h * w),
                    "encode_seconds": enc.encode_seconds, "decode_seconds": enc.decode_seconds,
                    "params": codec.params()}
    log.info("%s q=%s: %d bits, %.5f bpp (encode %.2f s, decode %.2f s)", codec_name, enc.q, enc.bits,
             result.codec["bpp"], enc.encode_seconds, enc.decode_seconds)
    return enc.frames


def _timed(frames: Iterator[np.ndarray], result: SegmentResult) -> Iterator[np.ndarray]:
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            return
        result.seconds_read += time.perf_counter() - t0
        yield frame


def segment_video(segmenter: Any, video: str | Path, masks: dict[int, np.ndarray], out: str | Path, *,
                  codec: str | None = None, q: int | None = None, overlay: bool = True, alpha: float = 0.5,
                  progress: bool = True, overwrite: bool = False, log_every: int = 50) -> SegmentResult:
    """Segment one video with a :class:`~vosc.inference.segmenter.VideoSegmenter` and write the outputs.

    Args:
        segmenter: The segmenter (e.g. from :func:`vosc.load_model`).
        video: Video file or frame folder.
        masks: ``{frame_index: (H, W) uint8 ids}`` first-appearance masks.
        out: Output folder (``masks/``, ``overlay.mp4``); the mask of a folder's frame ``17.jpg`` is
            ``masks/17.png``, the mask of a video file's frame 17 ``masks/00017.png``.
        codec: ``"x265"``/``"vvenc"``: compress the video at ``q`` first and segment the decoded frames.
        q: Codec quality parameter.
        overlay: Write ``overlay.mp4``.
        alpha: Opacity of the overlay colours.
        progress: Show progress: a Rich bar on a terminal; when stdout is not a terminal (a log file), an
            INFO line every ``log_every`` frames (frames done / total, frames/s, elapsed, ETA).
        overwrite: Remove an earlier run's outputs in ``out`` first (:func:`prepare_out`).
        log_every: Frames between two progress lines when stdout is not a terminal.

    Returns:
        Counts and timings (the caller adds them to ``result.json``).

    Raises:
        SegmentError: ``out`` holds an earlier run's outputs (and not ``overwrite``) or other files.
    """
    info = probe_video(video)
    out = Path(out)
    prepare_out(out, overwrite)
    result = SegmentResult()
    stems = [p.stem for p in folder_frames(Path(video))] if Path(video).is_dir() else None
    if stems is not None:
        result.mask_names = "frame file stem"
    start = time.perf_counter()
    frames = _source_frames(video, codec, q, result)
    sink = _open_sink(out, video, info, stems, overlay, alpha)
    ok = False
    try:
        _segment_frames(segmenter, frames, masks, sink, result, name=Path(video).name, total=info.num_frames,
                        progress=progress, log_every=log_every, start=start)
        ok = True
    finally:
        if sink.writer is not None:
            sink.writer.close(keep=ok)
    result.seconds_total = time.perf_counter() - start
    result.seconds_segment = result.seconds_total - result.seconds_read - result.seconds_write
    return result


def _source_frames(video: str | Path, codec: str | None, q: int | None,
                   result: SegmentResult) -> Iterator[np.ndarray]:
    """The frames to segment: streamed from ``video``, or (with a codec) its compressed-decoded frames."""
    if codec not in (None, "none"):
        return iter(_compressed_frames(Path(video), str(codec), q, result))
    return iter_frames(video)


@dataclass
class _OutputSink:
    """Where each frame's result goes: ``masks/<name>.png`` and, with an overlay, its next frame."""

    out: Path
    stems: list[str] | None
    writer: OverlayWriter | None
    times: tuple[list[int], Fraction] | None

    def write(self, r: Any, frame: np.ndarray) -> None:
        """Write the mask of result ``r`` (and its overlay frame, at the source's timestamp)."""
        name = self.stems[r.index] if self.stems is not None else f"{r.index:05d}"
        write_mask(self.out / "masks" / f"{name}.png", r.mask)
        if self.writer is not None:
            pts = self.times[0][r.index] if self.times and r.index < len(self.times[0]) else None
            self.writer.write(frame, r.mask, pts)


def _open_sink(out: Path, video: str | Path, info: VideoInfo, stems: list[str] | None, overlay: bool,
               alpha: float) -> _OutputSink:
    """The output sink of :func:`segment_video`, with an open :class:`OverlayWriter` when ``overlay``."""
    times = frame_times(video) if overlay else None  # the overlay keeps the source's timestamps (VFR too)
    writer = OverlayWriter(out / "overlay.mp4", info.fps or 25.0, info.width, info.height, alpha,
                           time_base=times[1] if times else None) if overlay else None
    return _OutputSink(out, stems, writer, times)


def _segment_frames(segmenter: Any, frames: Iterator[np.ndarray], masks: dict[int, np.ndarray],
                    sink: _OutputSink, result: SegmentResult, *, name: str, total: int | None,
                    progress: bool, log_every: int, start: float) -> None:
    """Run the segmenter over ``frames`` into ``sink``, counting and timing in ``result``, with a Rich bar
    (terminal) or a progress line every ``log_every`` frames (stdout not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vosc.utils.progress import stdout_is_terminal

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.2f} frames/s"), TimeRemainingColumn())
    lines = progress and not stdout_is_terminal()
    with Progress(*columns, disable=not progress or lines, transient=False) as bar:
        task = bar.add_task(name, total=total, fps=0.0)
        seg_start = time.perf_counter()
        for r, frame in _zip_results(segmenter, _timed(frames, result), masks):
            t0 = time.perf_counter()
            sink.write(r, frame)
            result.seconds_write += time.perf_counter() - t0
            result.frames += 1
            result.objects = list(r.object_ids)
            fps = result.frames / (time.perf_counter() - seg_start)
            bar.update(task, advance=1, fps=fps)
            if lines and result.frames % max(log_every, 1) == 0:
                _log_progress(name, result.frames, total, fps, time.perf_counter() - start)


def _log_progress(name: str, done: int, total: int | None, fps: float, elapsed: float) -> None:
    """One progress line of :func:`segment_video` (stdout not a terminal)."""
    from vosc.utils.progress import format_duration

    eta = (total - done) / fps if total and fps > 0 else float("inf")
    log.info("%s: frame %d/%s · %.2f frames/s · elapsed %s · ETA %s", name, done, total or "?", fps,
             format_duration(elapsed), format_duration(eta))


def _zip_results(segmenter: Any, frames: Iterator[np.ndarray], masks: dict[int, np.ndarray]) -> Iterator[Any]:
    """Pairs ``(FrameResult, frame)``: the segmenter consumes the frames lazily; each is kept until its
    result comes back (for the overlay)."""
    held: list[np.ndarray] = []

    def tee() -> Iterator[np.ndarray]:
        for f in frames:
            held.append(f)
            yield f

    for r in segmenter.run(tee(), masks):
        yield r, held.pop(0)


def build_parser() -> argparse.ArgumentParser:
    """The ``vosc-segment`` argument parser."""
    p = argparse.ArgumentParser(prog="vosc-segment",
                                description="Segment a video from first-appearance masks.")
    p.add_argument("video", type=Path, help="video file (mp4/mkv/webm/...) or folder of frames")
    p.add_argument("--mask", action="append", default=[], metavar="PNG|INDEX=PNG|DIR",
                   help="first-frame palette PNG; INDEX=PNG for an object appearing at frame INDEX; or a "
                        "folder of <index>.png masks (repeatable)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or empty (default: <video file name>_vosc beside the video)")
    p.add_argument("--overwrite", action="store_true",
                   help="remove the outputs of an earlier run in --out first (other files are never touched)")
    p.add_argument("--ckpt", default=None, help="vosc checkpoint, or an official AOT/AOST/STCN file (with "
                                                "--model); none: random weights (demo only)")
    p.add_argument("--model", default=None, help="conf/model name (aost, r50_aotl, stcn, ...) for official "
                                                 "files and random weights")
    p.add_argument("--depth", type=int, default=None, help="inference depth n' (default: all layers)")
    p.add_argument("--codec", choices=("none", "x265", "vvenc"), default="none",
                   help="compress the video first and report bpp")
    p.add_argument("--q", type=int, default=None, help="codec quality (x265 CRF, VVenC QP)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1, with OMP_WAIT_POLICY=PASSIVE unless set)")
    p.add_argument("--long-term-gap", type=int, default=5, help="a long-term memory frame every N frames")
    p.add_argument("--max-long-term", type=int, default=None,
                   help="cap on long-term memory frames (FIFO; reference frames kept); bounds memory")
    p.add_argument("--offload", action="store_true",
                   help="keep long-term memory entries in CPU RAM (one working copy on the device)")
    p.add_argument("--max-long-edge", type=int, default=1040, help="network input long-edge cap")
    p.add_argument("--amp", choices=("off", "fp16", "bf16"), default="off",
                   help="mixed precision (fp16: CUDA only)")
    p.add_argument("--channels-last", action="store_true", help="channels-last weights")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (first frames slower)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (nor progress lines)")
    p.add_argument("--log-every", type=int, default=50, metavar="N",
                   help="when stdout is not a terminal: a progress line every N frames (default 50)")
    p.add_argument("-v", "--verbose", action="store_true", help="DEBUG logging")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of combinations argparse cannot check (exits with status 2 and the usage line).

    ``--codec x265|vvenc`` needs ``--q`` in the codec's range; ``--q`` needs a codec; ``--threads`` >= 1.
    """
    if args.codec == "none":
        if args.q is not None:
            parser.error(f"--q {args.q} needs --codec x265|vvenc (without a codec nothing is compressed)")
    else:
        from vosc.codecs import CODECS

        lo, hi = CODECS[args.codec].q_range
        if args.q is None:
            parser.error(f"--codec {args.codec} needs --q (quality parameter in [{lo}, {hi}], e.g. --q 42)")
        if not lo <= args.q <= hi:
            parser.error(f"--q {args.q} is out of range for {args.codec}: valid [{lo}, {hi}]")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: give a positive thread count")
    if args.log_every < 1:
        parser.error(f"--log-every {args.log_every}: give a positive number of frames")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Execute a parsed command line (torch threads set for its duration); returns the ``result.json``
    content."""
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # in-process callers get their setting back


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import vosc

    out = args.out or default_out(args.video)
    prepare_out(out, args.overwrite, dry_run=True)  # refuse before loading anything
    try:
        info: VideoInfo = probe_video(args.video)
    except VideoReadError as exc:
        raise SegmentError(str(exc)) from exc
    try:
        masks = parse_masks(args.mask, (info.height, info.width))
    except SegmentError as exc:
        if not info.rotation:
            raise
        raise SegmentError(f"{exc} (frames are read as displayed: {args.video} has display rotation "
                           f"{info.rotation} degrees; draw masks on the displayed frame)") from exc
    if info.num_frames is not None and max(masks) >= info.num_frames:
        raise SegmentError(f"mask for frame {max(masks)}, but {args.video} has {info.num_frames} frames")
    if args.ckpt is None and args.model is None:
        raise SegmentError("give --ckpt (a checkpoint) and/or --model (a conf/model name)")
    seg = vosc.load_model(args.ckpt, args.model, device=args.device, depth=args.depth,
                          long_term_gap=args.long_term_gap, max_long_term=args.max_long_term,
                          max_long_edge=args.max_long_edge, offload=args.offload, amp=args.amp,
                          channels_last=args.channels_last, compile=args.compile)
    log.info("segmenting %s (%s frames, %dx%d) on %s -> %s", args.video, info.num_frames, info.width,
             info.height, next(seg.model.parameters()).device, out)
    try:
        res = segment_video(seg, args.video, masks, out, codec=args.codec, q=args.q,
                            overlay=not args.no_overlay, alpha=args.alpha, progress=not args.no_progress,
                            overwrite=args.overwrite, log_every=args.log_every)
    except VideoReadError as exc:
        raise SegmentError(str(exc)) from exc
    loaded = seg.loaded  # type: ignore[attr-defined]
    summary = {"video": str(args.video), "width": info.width, "height": info.height, "fps_video": info.fps,
               "checkpoint": loaded.checkpoint, "checkpoint_sha256_16": loaded.checkpoint_hash,
               "checkpoint_kind": loaded.kind, "model": loaded.model_config.get("_target_"),
               "depth": args.depth, "device": str(next(seg.model.parameters()).device), "amp": args.amp,
               "channels_last": args.channels_last, "compile": args.compile, "offload": args.offload,
               "max_long_term": args.max_long_term, "torch_threads": torch.get_num_threads(),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "mask_frames": sorted(masks), "outputs": {"masks": str(out / "masks"),
                                                         "overlay": None if args.no_overlay else
                                                         str(out / "overlay.mp4")},
               **res.as_dict()}
    atomic_write_json(out / "result.json", summary, indent=2)
    log.info("%d frames, %.2f frames/s (segmentation), %.1f s total; wrote %s", res.frames,
             summary["fps_segment"] or 0.0, res.seconds_total, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 on bad input, with a one-line error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from vosc.checkpoints.errors import CheckpointError
    from vosc.checkpoints.official import CheckpointMismatchError
    from vosc.config import ConfigError

    try:
        run(args)
    except (SegmentError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    except (CheckpointMismatchError, CheckpointError, ConfigError) as exc:
        # one line: the matching variant first (``model=X`` is ``--model X`` here); the key lists with -v
        lines = str(exc).splitlines()
        log.error("%s%s", re.sub(r"\bmodel=(\w+)", r"--model \1", lines[0]),
                  f" ({len(lines) - 1} more lines with -v)" if len(lines) > 1 and not args.verbose else "")
        if args.verbose:
            log.debug("%s", "\n".join(lines[1:]))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
