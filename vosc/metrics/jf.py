"""DAVIS J&F (region similarity J and boundary accuracy F), numerically identical to the official
``davis2017-evaluation`` toolkit (semi-supervised task), vectorised and parallel over sequences.

Definitions (``DESIGN.md`` §6):

* Objects of a sequence are ids ``1..N`` with ``N`` the largest id of the first ground-truth frame;
  void (255) is set to background and not excluded.
* ``J`` is the IoU of one object's masks, 1 where both are empty.
* ``F`` matches one-pixel boundaries (``seg2bmap``) within a tolerance of
  ``ceil(0.008 * diagonal)`` pixels (disk dilation): precision and recall, ``F = 2PR / (P + R)``,
  1 when both boundaries are empty.
* The first and last frame of every sequence are excluded. Per object: Mean, Recall (share of
  frames > 0.5) and Decay (mean of the first of four overlapping bins minus the last).
* Global values average over objects (not sequences); ``J&F-Mean = (J-Mean + F-Mean) / 2``.

Ground-truth ids that skip numbers (ids 1 and 5 in the first frame) are scored as the official tool does:
the absent ids 2..4 count as objects with J = F = 1 wherever the prediction does not use them. Such
*phantom* ids raise the mean without a word in the official tool; vosc logs a warning naming the sequence
and the ids, and :attr:`SequenceJF.phantom_ids` / :attr:`JFResult.phantom_ids` flag it (CLI table and JSON).

Unlike the official tool, a missing prediction frame, an object id the ground truth does not define,
or a size mismatch raises a :class:`~vosc.metrics.errors.MetricInputError` naming the file. One
documented deviation: the official tool casts the Decay bin indices to ``uint8``, which wraps for
sequences of more than 256 evaluated frames; vosc uses exact integer indices (identical below that).

CLI::

    python -m vosc.metrics.jf --gt DAVIS_ROOT --pred PRED_DIR [--set val] [--year 2017] \
        [--resolution 480p] [--workers N] [--json OUT]

The torchmetrics ``JFMetric`` (accumulates per sequence, de-duplicated under DDP) lives in
:mod:`vosc.metrics.jf_metric` (``from vosc.metrics.jf_metric import JFMetric``), which imports this module
and not the other way round.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vosc.data.errors import EmptyReferenceMaskError, InconsistentFrameSizeError
from vosc.data.palette import read_mask
from vosc.metrics.errors import (
    MissingGroundTruthError,
    MissingPredictionError,
    SizeMismatchError,
    UnknownObjectError,
)
from vosc.metrics.jf_core import (
    BOUND_TH,
    boundary_f,
    boundary_tolerance,
    disk,
    frame_statistics,
    jaccard,
    seg2bmap,
)
from vosc.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Void label of the DAVIS annotations (mapped to background, not excluded).
VOID_LABEL: int = 255
#: Keys of the ``global`` block, in the order of the official toolkit.
GLOBAL_KEYS: tuple[str, ...] = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")

__all__ = [
    "BOUND_TH",
    "GLOBAL_KEYS",
    "JFResult",
    "ObjectStats",
    "SequenceJF",
    "aggregate",
    "boundary_f",
    "disk",
    "evaluate_davis",
    "evaluate_sequence",
    "frame_statistics",
    "jaccard",
    "load_davis_gt",
    "phantom_ids",
    "seg2bmap",
    "warn_phantom_ids",
]


# ----------------------------------------------------------------------------------------------------
# Per sequence and aggregation
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectStats:
    """Statistics of one object over the evaluated frames of its sequence."""

    sequence: str
    object_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def key(self) -> str:
        """Official per-object key ``<sequence>_<id>``."""
        return f"{self.sequence}_{self.object_id}"


@dataclass
class SequenceJF:
    """Per-frame J and F of every object of one sequence.

    Attributes:
        sequence: Sequence name.
        object_ids: Object ids ``1..N``.
        frame_ids: Names of the evaluated frames, length ``T'``.
        j: ``(N, T')`` float64 per-frame J.
        f: ``(N, T')`` float64 per-frame F.
        phantom_ids: Ids of ``1..N`` absent from the first ground-truth frame (scored, as the official tool,
            J = F = 1 where the prediction does not use them either).
    """

    sequence: str
    object_ids: tuple[int, ...]
    frame_ids: tuple[str, ...]
    j: np.ndarray
    f: np.ndarray
    phantom_ids: tuple[int, ...] = ()

    def object_stats(self) -> list[ObjectStats]:
        """Mean / Recall / Decay of J and F per object."""
        stats = []
        for row, obj in enumerate(self.object_ids):
            jm, jr, jd = frame_statistics(self.j[row])
            fm, fr, fd = frame_statistics(self.f[row])
            stats.append(ObjectStats(self.sequence, obj, jm, jr, jd, fm, fr, fd))
        return stats


@dataclass
class JFResult:
    """Aggregated J&F over a set of sequences.

    Attributes:
        global_: ``J&F-Mean``, ``J-Mean``, ``J-Recall``, ``J-Decay``, ``F-Mean``, ``F-Recall``, ``F-Decay``.
        per_object: ``<seq>_<id>`` → ``{"J": mean J, "F": mean F}``.
        per_sequence: sequence → ``{"J&F", "J", "F"}`` averaged over its objects.
        objects: Full per-object statistics, in aggregation order.
        phantom_ids: sequence → its phantom ids (:attr:`SequenceJF.phantom_ids`), only sequences that have
            some.
    """

    global_: dict[str, float]
    per_object: dict[str, dict[str, float]]
    per_sequence: dict[str, dict[str, float]]
    objects: list[ObjectStats] = field(default_factory=list)
    phantom_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The official-shaped JSON: ``{"global": {...}, "per_object": {...}}``, plus ``"phantom_ids"``
        (sequence → ids) when a sequence has phantom ids."""
        out: dict[str, Any] = {"global": dict(self.global_),
                               "per_object": {k: dict(v) for k, v in self.per_object.items()}}
        if self.phantom_ids:
            out["phantom_ids"] = {k: list(v) for k, v in self.phantom_ids.items()}
        return out


def aggregate_objects(objects: Iterable[ObjectStats], sort: bool = False) -> JFResult:
    """Average per-object statistics into a :class:`JFResult`.

    Args:
        objects: Per-object statistics, in the order the official tool would see them (index file).
        sort: Sort by (sequence, id) first (order-independent results, e.g. after a DDP gather).

    Raises:
        ValueError: No objects at all.
    """
    objects = sorted(objects, key=lambda o: (o.sequence, o.object_id)) if sort else list(objects)
    if not objects:
        raise ValueError("no objects to aggregate: J&F needs at least one evaluated object")
    columns = [
        np.array([getattr(o, name) for o in objects], dtype=np.float64)
        for name in ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")
    ]
    jm, jr, jd, fm, fr, fd = (float(np.mean(c)) for c in columns)  # 1-D means, as the official tool
    global_ = dict(zip(GLOBAL_KEYS, ((jm + fm) / 2.0, jm, jr, jd, fm, fr, fd), strict=True))
    per_object = {o.key: {"J": o.j_mean, "F": o.f_mean} for o in objects}
    per_sequence: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(o.sequence for o in objects):
        rows = [i for i, o in enumerate(objects) if o.sequence == name]
        j, f = float(np.mean(columns[0][rows])), float(np.mean(columns[3][rows]))
        per_sequence[name] = {"J&F": (j + f) / 2.0, "J": j, "F": f}
    return JFResult(global_, per_object, per_sequence, objects)


def aggregate(sequences: Iterable[SequenceJF]) -> JFResult:
    """Aggregate per-sequence results (see :func:`aggregate_objects`); phantom ids are carried over."""
    sequences = list(sequences)
    result = aggregate_objects(o for seq in sequences for o in seq.object_stats())
    result.phantom_ids = {s.sequence: s.phantom_ids for s in sequences if s.phantom_ids}
    return result


def phantom_ids(first_gt: np.ndarray, num_objects: int) -> tuple[int, ...]:
    """Ids of ``1..num_objects`` absent from the first ground-truth frame ``(H, W)`` (void is not an id)."""
    present = np.zeros(max(num_objects + 1, 256), dtype=bool)
    present[np.unique(np.asarray(first_gt))] = True
    return tuple(i for i in range(1, num_objects + 1) if not present[i])


def warn_phantom_ids(sequence: str, ids: Sequence[int], num_objects: int) -> None:
    """Log the warning about a sequence's phantom ids (nothing when there are none)."""
    if ids:
        log.warning("%s: ground-truth ids %s are not in the first frame (ids skip numbers; objects 1..%d are "
                    "counted, as the official toolkit does): scored J = F = 1 where the prediction does not "
                    "use them, which raises the mean", sequence, ", ".join(map(str, ids)), num_objects)


def _foreground_window(gt: np.ndarray, pred: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of all foreground of one frame grown by one pixel, or ``None`` when empty.

    Boundaries (``seg2bmap``), IoU and the dilation are all exact on this window: every foreground,
    boundary and dilation source pixel lies inside it, and ``seg2bmap`` is zero on its grown rim.
    """
    fg = (gt != 0) | (pred != 0)
    rows = np.flatnonzero(fg.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(fg.any(axis=0))
    height, width = fg.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, height)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, width)),
    )


def _frame_jf(
    gt: np.ndarray, pred: np.ndarray, num_objects: int, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..N`` on one frame (``(H, W)`` id maps), computed on the foreground window."""
    window = _foreground_window(gt, pred)
    if window is None:  # everything empty: J = F = 1 for every object
        return np.ones(num_objects), np.ones(num_objects)
    gt_w, pred_w = gt[window], pred[window]
    ids = np.arange(1, num_objects + 1)[:, None, None]
    g, p = gt_w[None] == ids, pred_w[None] == ids
    return jaccard(g, p), boundary_f(g, p, kernel=kernel)


def _check_prediction(gt: np.ndarray, pred: np.ndarray, num_objects: int, names: Sequence[str],
                      sequence: str) -> None:
    """Raise when the evaluated prediction frames do not fit the ground truth (``names``: the frames' names).

    Raises:
        SizeMismatchError: ``pred`` and ``gt`` shapes differ.
        UnknownObjectError: ``pred`` contains an id greater than ``num_objects``.
    """
    if pred.shape != gt.shape:
        raise SizeMismatchError(
            names[0] if names else sequence, f"prediction {pred.shape} != ground truth {gt.shape}"
        )
    if pred.size and int(pred.max()) > num_objects:
        bad = int(np.argmax(pred.reshape(pred.shape[0], -1).max(axis=1) > num_objects))
        raise UnknownObjectError(
            names[bad], f"object id {int(pred[bad].max())} not in the ground truth (ids 1..{num_objects})"
        )


def evaluate_sequence(
    gt: np.ndarray,
    pred: np.ndarray,
    sequence: str = "sequence",
    frame_ids: Sequence[str] | None = None,
    num_objects: int | None = None,
    exclude_first_last: bool = True,
    bound_th: float = BOUND_TH,
    pred_files: Sequence[str | Path] | None = None,
) -> SequenceJF:
    """J and F of every object of one sequence.

    Args:
        gt: ``(T, H, W)`` integer ground truth (255 = void, set to background).
        pred: ``(T, H, W)`` integer prediction, same frames as ``gt`` (or already restricted to the
            evaluated frames ``1..T-2`` when ``exclude_first_last`` and its length is ``T - 2``).
        sequence: Name used in results and errors.
        frame_ids: Frame names, length ``T`` (defaults to ``00000``...).
        num_objects: ``N``; default: the largest id of the first ground-truth frame.
        exclude_first_last: Drop the first and last frame (official semi-supervised protocol).
        bound_th: Boundary tolerance.
        pred_files: Paths of the evaluated prediction frames, only to name files in errors.

    Returns:
        The per-frame J and F of objects ``1..N``.

    Raises:
        EmptyReferenceMaskError: The first ground-truth frame has no object and ``num_objects`` is unset.
        SizeMismatchError: ``pred`` and ``gt`` frame sizes differ.
        UnknownObjectError: ``pred`` contains an id greater than ``N``.
    """
    gt = np.where(np.asarray(gt) == VOID_LABEL, 0, np.asarray(gt))
    pred = np.asarray(pred)
    total = gt.shape[0]
    frame_ids = tuple(frame_ids) if frame_ids is not None else tuple(f"{i:05d}" for i in range(total))
    if num_objects is None:
        num_objects = int(gt[0].max()) if total else 0
        if num_objects == 0:
            raise EmptyReferenceMaskError(sequence, "the first ground-truth frame has no object")
    phantoms = phantom_ids(gt[0], num_objects) if total else ()
    warn_phantom_ids(sequence, phantoms, num_objects)
    keep = slice(1, total - 1) if exclude_first_last else slice(0, total)
    gt, frame_ids = gt[keep], frame_ids[keep]
    if pred.shape[0] != gt.shape[0]:
        pred = pred[keep]
    names = [str(p) for p in pred_files] if pred_files is not None else [f"{sequence}/{f}" for f in frame_ids]
    _check_prediction(gt, pred, num_objects, names, sequence)
    j = np.empty((num_objects, gt.shape[0]))
    f = np.empty_like(j)
    kernel = disk(boundary_tolerance(gt.shape[1], gt.shape[2], bound_th))
    for t in range(gt.shape[0]):
        j[:, t], f[:, t] = _frame_jf(gt[t], pred[t], num_objects, kernel)
    return SequenceJF(sequence, tuple(range(1, num_objects + 1)), frame_ids, j, f, phantoms)


# ----------------------------------------------------------------------------------------------------
# DAVIS layout
# ----------------------------------------------------------------------------------------------------
#: Threads decoding PNGs of one sequence (PIL releases the GIL while decoding).
READ_THREADS: int = 4


def read_masks(paths: Sequence[Path]) -> list[np.ndarray]:
    """Decode indexed PNGs (threaded), in order, as raw indices
    (:func:`vosc.data.palette.read_mask` with ``raw=True``)."""
    if len(paths) < 8:
        return [read_mask(p, raw=True) for p in paths]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(partial(read_mask, raw=True), paths))


def read_sequence_list(gt_root: str | Path, subset: str = "val", year: str | int = 2017) -> list[str]:
    """Sequence names of ``ImageSets/<year>/<subset>.txt``.

    Raises:
        MissingGroundTruthError: The index file is missing or empty.
    """
    index = Path(gt_root) / "ImageSets" / str(year) / f"{subset}.txt"
    if not index.is_file():
        raise MissingGroundTruthError(index, "sequence index file not found (check --gt, --set, --year)")
    names = [line.strip() for line in index.read_text().splitlines() if line.strip()]
    if not names:
        raise MissingGroundTruthError(index, "sequence index file lists no sequence")
    return names


def load_davis_gt(
    gt_root: str | Path, sequence: str, resolution: str = "480p"
) -> tuple[np.ndarray, list[str]]:
    """Ground truth of one sequence: ``Annotations/<resolution>/<sequence>/*.png`` in name order.

    Returns:
        ``(T, H, W)`` uint8 masks (void still 255) and the ``T`` frame names.

    Raises:
        MissingGroundTruthError: The folder is missing or has no PNG.
        InconsistentFrameSizeError: Frames differ in size.
    """
    folder = Path(gt_root) / "Annotations" / resolution / sequence
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        raise MissingGroundTruthError(folder, "no ground-truth PNG for this sequence")
    masks = read_masks(files)
    for path, mask in zip(files, masks, strict=True):
        if mask.shape != masks[0].shape:
            raise InconsistentFrameSizeError(path, f"size {mask.shape} != first frame {masks[0].shape}")
    return np.stack(masks), [p.stem for p in files]


def load_predictions(
    pred_dir: str | Path, sequence: str, frame_ids: Sequence[str]
) -> tuple[np.ndarray, list[Path]]:
    """Read ``<pred_dir>/<sequence>/<frame>.png`` for the given frames.

    Returns:
        ``(T', H, W)`` uint8 predictions and their paths.

    Raises:
        MissingPredictionError: A frame has no prediction file.
        SizeMismatchError: Prediction frames differ in size from one another.
    """
    paths = [Path(pred_dir) / sequence / f"{frame}.png" for frame in frame_ids]
    for path in paths:
        if not path.is_file():
            raise MissingPredictionError(path, "prediction frame missing (every evaluated frame needs a PNG)")
    masks = read_masks(paths)
    for path, mask in zip(paths, masks, strict=True):
        if mask.shape != masks[0].shape:
            raise SizeMismatchError(path, f"size {mask.shape} != {paths[0].name} {masks[0].shape}")
    return np.stack(masks), paths


def _davis_frame(
    gt_path: Path, pred_path: Path, shape: tuple[int, int], num_objects: int, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Read one ground-truth/prediction pair, validate it, and return the frame's J and F (``(N,)`` each)."""
    gt, pred = read_mask(gt_path, raw=True), read_mask(pred_path, raw=True)
    if gt.shape != shape:
        raise InconsistentFrameSizeError(gt_path, f"size {gt.shape} != first frame {shape}")
    if pred.shape != shape:
        raise SizeMismatchError(pred_path, f"prediction size {pred.shape} != ground truth {shape}")
    if int(pred.max()) > num_objects:
        raise UnknownObjectError(
            pred_path, f"object id {int(pred.max())} not in the ground truth (ids 1..{num_objects})"
        )
    if int(gt.max()) == VOID_LABEL:
        gt = np.where(gt == VOID_LABEL, 0, gt)
    return _frame_jf(gt, pred, num_objects, kernel)


def _evaluate_davis_sequence(
    gt_root: str, pred_dir: str, sequence: str, resolution: str, bound_th: float
) -> SequenceJF:
    """Evaluate one DAVIS sequence, reading and scoring frames in a thread pool (PIL, OpenCV and the
    large numpy operations release the GIL)."""
    folder = Path(gt_root) / "Annotations" / resolution / sequence
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if len(files) < 3:
        raise MissingGroundTruthError(
            folder, f"{len(files)} ground-truth PNG(s); J&F excludes the first and last frame and needs >= 3"
        )
    first = read_mask(files[0], raw=True)
    num_objects = int(np.where(first == VOID_LABEL, 0, first).max())
    if num_objects == 0:
        raise EmptyReferenceMaskError(files[0], "the first ground-truth frame has no object")
    pred_paths = [Path(pred_dir) / sequence / f"{p.stem}.png" for p in files[1:-1]]
    for path in pred_paths:
        if not path.is_file():
            raise MissingPredictionError(path, "prediction frame missing (every evaluated frame needs a PNG)")
    kernel = disk(boundary_tolerance(first.shape[0], first.shape[1], bound_th))
    args = (first.shape, num_objects, kernel)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        frames = list(
            pool.map(lambda i: _davis_frame(files[i], pred_paths[i - 1], *args), range(1, len(files) - 1))
        )
    j = np.stack([jv for jv, _ in frames], axis=1)
    f = np.stack([fv for _, fv in frames], axis=1)
    return SequenceJF(sequence, tuple(range(1, num_objects + 1)), tuple(p.stem for p in files[1:-1]), j, f,
                      phantom_ids(first, num_objects))


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` (cheap) unless torch is loaded in this process (then ``spawn``, fork-safe)."""
    if "torch" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def evaluate_davis(
    gt_root: str | Path,
    pred_dir: str | Path,
    subset: str = "val",
    year: str | int = 2017,
    resolution: str = "480p",
    sequences: Sequence[str] | None = None,
    workers: int = 0,
    bound_th: float = BOUND_TH,
) -> tuple[JFResult, list[SequenceJF]]:
    """J&F of a DAVIS-layout prediction folder (semi-supervised protocol).

    Args:
        gt_root: DAVIS root with ``Annotations/<resolution>/`` and ``ImageSets/<year>/<subset>.txt``.
        pred_dir: Folder of ``<sequence>/<frame>.png`` palette predictions.
        subset: Index file name (``val``, ``train``, ...).
        year: ``ImageSets`` sub-folder.
        resolution: Annotation resolution folder.
        sequences: Explicit sequence names (overrides the index file).
        workers: Processes over sequences; 0 evaluates in this process.
        bound_th: Boundary tolerance.

    Returns:
        The aggregated result and the per-sequence per-frame values (index-file order).

    Raises:
        MetricInputError: See :func:`evaluate_sequence`, :func:`load_predictions`, :func:`load_davis_gt`.
    """
    names = list(sequences) if sequences is not None else read_sequence_list(gt_root, subset, year)
    jobs = [(str(gt_root), str(pred_dir), name, resolution, bound_th) for name in names]
    if workers and workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=_pool_context()) as pool:
            results = list(pool.map(_evaluate_davis_sequence, *zip(*jobs, strict=True)))
    else:
        results = [_evaluate_davis_sequence(*job) for job in jobs]
    for seq in results:  # here, not in the workers: their log records would not reach this process
        warn_phantom_ids(seq.sequence, seq.phantom_ids, len(seq.object_ids))
    return aggregate(results), results


def format_table(result: JFResult) -> str:
    """Human-readable global and per-sequence tables."""
    lines = [
        "  ".join(f"{k:>9}" for k in GLOBAL_KEYS),
        "  ".join(f"{result.global_[k]:9.4f}" for k in GLOBAL_KEYS),
    ]
    lines += ["", f"{'sequence':<24}{'J&F':>8}{'J':>8}{'F':>8}"]
    lines += [f"{s + (' *' if s in result.phantom_ids else ''):<24}{v['J&F']:8.4f}{v['J']:8.4f}{v['F']:8.4f}"
              for s, v in result.per_sequence.items()]
    lines += [f"* phantom ids (absent from the first ground-truth frame, scored J = F = 1): {s} "
              f"{', '.join(map(str, ids))}" for s, ids in result.phantom_ids.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m vosc.metrics.jf",
        description="DAVIS J&F (semi-supervised protocol), identical to the official "
        "davis2017-evaluation toolkit.",
    )
    parser.add_argument("--gt", required=True, type=Path, help="DAVIS root (Annotations/, ImageSets/)")
    parser.add_argument(
        "--pred", required=True, type=Path, help="folder of <sequence>/<frame>.png predictions"
    )
    parser.add_argument(
        "--set", default="val", dest="subset", help="ImageSets/<year>/<set>.txt (default: val)"
    )
    parser.add_argument("--year", default="2017", help="ImageSets sub-folder (default: 2017)")
    parser.add_argument("--resolution", default="480p", help="Annotations sub-folder (default: 480p)")
    parser.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes (0 = none)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write official-shaped JSON here (atomic)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result, _ = evaluate_davis(
        args.gt, args.pred, args.subset, args.year, args.resolution, workers=args.workers
    )
    log.info("%s", format_table(result))
    if args.json is not None:
        atomic_write_bytes(args.json, (json.dumps(result.to_json_dict(), indent=1) + "\n").encode())
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
