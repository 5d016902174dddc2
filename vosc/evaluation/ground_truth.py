"""Which sequences of an evaluation are scored, and why not: the ground-truth policy of the sweep.

A sequence evaluated with ``references="first"`` (DAVIS protocol) is either fully annotated (scored) or
annotated on its first frame only (test-dev: segmented, never scored). Anything in between used to change
J&F without a word: a mask missing mid-sequence dropped the sequence from J&F while bpp still counted it,
and a missing first mask moved the reference frame. Both now raise
:class:`~vosc.metrics.errors.MissingGroundTruthError` naming the missing file, unless ``missing_gt="skip"``
is set: then the sequence is segmented and counted in bpp, left out of J&F, and the reason is recorded in
its done marker and reported in the summary (``jf_sequences`` / ``bpp_sequences`` / ``gt_skipped``).

With ``references="all"`` (YouTube-VOS: first-appearance masks) partial annotation is the layout itself;
such sequences are scored only when every frame is annotated.

:func:`check_sequences` runs all these checks, and the header and size of every evaluated frame, before the
first sequence of a sweep starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from vosc.data.errors import CorruptImageError, InconsistentFrameSizeError, MissingFrameError
from vosc.data.sources.base import VideoRecord
from vosc.metrics.errors import MissingGroundTruthError

log = logging.getLogger(__name__)

MissingGT = Literal["error", "skip"]
MISSING_GT_CHOICES = ("error", "skip")

__all__ = ["MISSING_GT_CHOICES", "MissingGT", "check_sequences", "ground_truth_status"]


def _mask_path(rec: VideoRecord, index: int) -> str:
    folder = next(iter(rec.mask_paths.values())).parent
    return str(folder / f"{rec.frame_ids[index]}.png")


def ground_truth_status(rec: VideoRecord, indices: Sequence[int], has: np.ndarray, references: str,
                        missing_gt: MissingGT = "error") -> tuple[bool, str | None]:
    """Whether a sequence is scored, and the reason when its J&F is skipped.

    Args:
        rec: The sequence.
        indices: Frame indices that are evaluated (``T``).
        has: ``(T,)`` bool, whether each of those frames has a ground-truth mask.
        references: ``"first"`` or ``"all"`` (see :class:`~vosc.evaluation.sweep.Sweep`).
        missing_gt: ``"error"`` (default) or ``"skip"``.

    Returns:
        ``(scored, skip_reason)``: ``scored`` is ``True`` when J&F is computed; ``skip_reason`` is set when
        a partially annotated sequence is left out of J&F under ``missing_gt="skip"``.

    Raises:
        MissingGroundTruthError: A partially annotated ``references="first"`` sequence under
            ``missing_gt="error"``, naming the first missing mask file.
        ValueError: Unknown ``missing_gt``.
    """
    if missing_gt not in MISSING_GT_CHOICES:
        raise ValueError(f"missing_gt must be one of {list(MISSING_GT_CHOICES)}, got {missing_gt!r}")
    if bool(has.all()):
        return True, None
    if references != "first" or (bool(has[0]) and int(has.sum()) == 1):
        return False, None  # first-appearance masks (YouTube-VOS) or first-frame-only (test-dev): no J&F
    k = int(np.flatnonzero(~has)[0])
    path = _mask_path(rec, indices[k])
    what = "first-frame (reference) mask" if k == 0 else f"ground-truth mask of frame {k} of {len(indices)}"
    reason = f"{path}: {what} of sequence {rec.name!r} is missing"
    if missing_gt == "error":
        raise MissingGroundTruthError(
            path, f"{what} of sequence {rec.name!r} is missing ({int((~has).sum())} of {len(indices)} "
            "evaluated frames lack a mask); J&F needs every frame. Restore the file, or set missing_gt=skip "
            "to leave this sequence out of J&F (it is listed in the summary)")
    log.warning("missing_gt=skip: %s; the sequence is left out of J&F (still counted in bpp)", reason)
    return False, reason


def _frame_size(path: Path) -> tuple[int, int]:
    """``(W, H)`` from the image header (no pixel decoding)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError as exc:
        raise MissingFrameError(path, "frame file is missing") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot read image header ({exc})") from exc


def check_sequences(videos: Sequence[VideoRecord], max_frames: int | None, references: str,
                    missing_gt: MissingGT = "error") -> int:
    """Validate every evaluated frame's header and size (and, under ``missing_gt="error"``, the ground
    truth) of every sequence before the first one runs, so that a bad file late in the set wastes no work.

    Returns:
        The number of frame headers checked.

    Raises:
        MissingFrameError, CorruptImageError: A frame is missing or its header unreadable.
        InconsistentFrameSizeError: A frame's size differs from the first frame of its sequence.
        MissingGroundTruthError: See :func:`ground_truth_status`.
    """
    checked = 0
    for rec in videos:
        n = len(rec) if max_frames is None else min(len(rec), max_frames)
        size = _frame_size(rec.frame_paths[0])
        for i in range(1, n):
            other = _frame_size(rec.frame_paths[i])
            if other != size:
                raise InconsistentFrameSizeError(
                    rec.frame_paths[i], f"frame size {other[0]}x{other[1]} differs from {size[0]}x{size[1]} "
                    f"of {rec.frame_paths[0].name} (sequence {rec.name!r})")
        checked += n
        if missing_gt == "error":
            has = np.array([rec.has_mask(i) for i in range(n)], dtype=bool)
            ground_truth_status(rec, list(range(n)), has, references, missing_gt)
    return checked
