"""Progress for runs whose output is a log file: durations as text, whether stdout is a terminal, and the
ETA of a sweep over sequences (``evaluate.py``'s per-sequence lines).

The training callbacks (:mod:`vosc.lit.progress`) and ``vosc-segment`` use the same helpers, so that every
progress line of vosc spells times alike (``42s``, ``12m05s``, ``3h07m``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["SweepETA", "format_duration", "stdout_is_terminal"]


def stdout_is_terminal() -> bool:
    """Whether stdout is an interactive terminal (not a file, pipe, ``nohup`` or SLURM log)."""
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def format_duration(seconds: float) -> str:
    """``3h07m``, ``12m05s`` or ``42s`` (``?`` for an unknown or infinite duration)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class SweepETA:
    """Time left of a sweep over sequences, from the seconds per (frame × variant) computed so far.

    Args:
        frames: Frames of each sequence, in the order the sweep runs them.
        variants: Variants (operating point × depth × enhancer) per sequence.
        clock: Seconds (``time.perf_counter``; a test may pass its own).
    """

    def __init__(self, frames: Sequence[int], variants: int,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.frames = [int(f) for f in frames]
        self.variants = int(variants)
        self._clock = clock
        self._start = self._now()
        self._units = 0  # frame x variant units computed (resumed ones cost nothing)

    def _now(self) -> float:
        return float(self._clock())

    def computed(self, index: int, variants: int) -> None:
        """Sequence ``index`` has been computed for ``variants`` variants."""
        self._units += self.frames[index] * int(variants)

    def eta(self, index: int) -> str:
        """ETA of sequences ``index`` and later (every variant counted as still to compute: an upper bound
        when some are resumed); ``?`` before anything was computed."""
        left = sum(self.frames[index:]) * self.variants
        if left == 0:
            return format_duration(0.0)
        if self._units == 0:
            return "?"
        return format_duration(left * (self._now() - self._start) / self._units)
