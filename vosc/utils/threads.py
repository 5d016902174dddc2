"""The default torch intra-op thread count of training (``threads: auto``).

Measured on a shared 2-core VM (docs/training.md "Threads"): with other jobs on the cores, two spinning OpenMP
threads per process made a quickstart step 10-20x slower than one thread; one thread per process plus the
data-loader worker keeps both cores busy on an idle machine too. ``auto`` therefore leaves half of the cores
that the data-loader workers do not use to other work: ``max(1, min(4, (cores - workers) // 2))`` -- 1 on 2-4
cores, up to 4 on large machines. Entry points also default ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep).
"""

from __future__ import annotations

import os

__all__ = ["auto_threads", "resolve_threads"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def auto_threads(workers: int = 0, cores: int | None = None) -> int:
    """``max(1, min(4, (cores - workers) // 2))`` for ``cores`` usable CPU cores (default: this process's)."""
    cores = _cores() if cores is None else cores
    return max(1, min(4, (cores - max(0, workers)) // 2))


def resolve_threads(setting: int | str | None, workers: int = 0) -> int | None:
    """The intra-op thread count for a ``threads`` setting: ``auto`` → :func:`auto_threads`, an integer as
    given, ``None`` → torch's default (``None`` returned: leave torch alone).

    Raises:
        ValueError: Neither ``auto``, ``None`` nor a positive integer.
    """
    if setting is None:
        return None
    if str(setting) == "auto":
        return auto_threads(workers)
    try:
        value = int(setting)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ValueError(f"threads must be 'auto', null or a positive integer, got {setting!r}")
    return value
