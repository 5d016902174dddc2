"""A Rich progress bar per (operating point, depth, sequence) of an evaluation sweep, with frames/s.

Shown on interactive terminals only (``transient``: the finished bar is removed); log files get the
per-sequence INFO line of :mod:`vosc.evaluation.sweep` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["sequence_progress"]


@contextmanager
def sequence_progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield an ``advance()`` callable that moves a bar of ``total`` frames on by one frame.

    Args:
        description: E.g. ``"x265 q42 d3 blackswan"``.
        total: Frames of the sequence.
        enabled: ``False``: no bar (``advance`` does nothing).
    """
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:.2f} frames/s"), TimeRemainingColumn(), console=console,
                  transient=True, disable=not (enabled and console.is_terminal)) as bar:
        task = bar.add_task(description, total=total, fps=0.0)
        start, done = time.perf_counter(), 0

        def advance() -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=1, fps=done / max(time.perf_counter() - start, 1e-9))

        yield advance
