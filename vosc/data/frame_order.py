"""Temporal order of frame files from their names: by the numbers in the name, never by plain string order.

FFmpeg's ``%d.jpg`` writes ``0.jpg … 11.jpg``; a string sort gives ``0, 1, 10, 11, 2, …``. Here every
name is split into its text and its numbers (``frame_12_left.jpg`` → pattern ``frame_#_left``, numbers
``(12,)``); all names of a folder must share one pattern and are sorted by their numbers. Names that cannot
be ordered raise :class:`~vosc.data.errors.FrameOrderError`, naming the folder and two offending files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from vosc.data.errors import FrameOrderError

__all__ = ["numeric_order"]

_DIGITS = re.compile(r"\d+")


def _pattern(stem: str) -> str:
    return _DIGITS.sub("#", stem)


def numeric_order(files: Iterable[Path], folder: Path) -> list[Path]:
    """Sort frame files by the numbers in their names (``2.jpg`` before ``10.jpg``).

    Args:
        files: Frame files of one folder (any order).
        folder: The folder (named in errors).

    Returns:
        The files in temporal order.

    Raises:
        FrameOrderError: A name has no number while others do (``thumb.jpg`` among ``0.jpg …``), names follow
            different patterns (``a1.jpg`` and ``b_2.jpg``), or two names carry the same numbers (``1.jpg``
            and ``01.jpg``, or ``3.jpg`` and ``3.png``).
    """
    paths = list(files)
    if len(paths) <= 1:
        return paths
    by_pattern: dict[str, Path] = {}
    for p in sorted(paths):
        by_pattern.setdefault(_pattern(p.stem), p)
    if len(by_pattern) > 1:
        numbered = [(k, f) for k, f in by_pattern.items() if "#" in k]
        unnumbered = [f for k, f in by_pattern.items() if "#" not in k]
        if not numbered:
            raise FrameOrderError(folder, f"cannot order the frames: no number in the names "
                                          f"({unnumbered[0].name!r}, {unnumbered[1].name!r}, ...); name them "
                                          f"by frame number (e.g. 00000.jpg)")
        if unnumbered:
            problem = (f"cannot order the frames: {unnumbered[0].name!r} has no frame number while "
                       f"{numbered[0][1].name!r} has one; move the file out or rename it")
        else:
            (a, pa), (b, pb) = sorted(by_pattern.items())[:2]
            problem = (f"cannot order the frames: the names follow different patterns ({pa.name!r} is {a!r}, "
                       f"{pb.name!r} is {b!r}, '#' = a number); keep one pattern per folder")
        raise FrameOrderError(folder, problem)
    if "#" not in next(iter(by_pattern)):
        raise FrameOrderError(folder, f"cannot order the frames: no number in the names ({paths[0].name!r}, "
                                      f"...); name them by frame number (e.g. 00000.jpg)")
    keyed = sorted(((tuple(int(n) for n in _DIGITS.findall(p.stem)), p) for p in paths), key=lambda kp: kp[0])
    for (ka, pa), (kb, pb) in zip(keyed, keyed[1:], strict=False):
        if ka == kb:
            number = ka if len(ka) > 1 else ka[0]
            raise FrameOrderError(folder, f"cannot order the frames: {pa.name!r} and {pb.name!r} carry the "
                                          f"same frame number {number}")
    return [p for _, p in keyed]
