"""Long videos: with ``max_long_term`` the memory, and the process's peak memory, stay flat."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # bench/ is not a package: load the script as a module
    path = ROOT / "bench" / "memory_long_video.py"
    spec = importlib.util.spec_from_file_location("memory_long_video", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_capped_peak_memory_is_flat() -> None:
    bench = _bench()
    # AOST (d=256) at 160x96: without the cap, 150 frames hold 31 long-term entries of ~0.5 MB (+ their
    # concatenated copy) instead of 2; the per-entry bytes below make the check independent of RSS noise
    short = bench.measure(50, "160x96", "aost", cap=2, timeout=1500)
    long = bench.measure(150, "160x96", "aost", cap=2, timeout=1500)
    assert short["frames"] == 50 and long["frames"] == 150
    assert short["long_term_entries"] == long["long_term_entries"] == 2
    assert long["memory_mb"] == pytest.approx(short["memory_mb"], rel=1e-6)
    assert long["peak_rss_mb"] <= 1.10 * short["peak_rss_mb"], (short, long)


def test_uncapped_memory_grows(tmp_path: Path) -> None:
    """The measurement can tell: without a cap the long-term memory grows with the video."""
    bench = _bench()
    a = bench.measure(6, "64x48", "aost_tiny", cap=None, timeout=600)
    b = bench.measure(16, "64x48", "aost_tiny", cap=None, timeout=600)
    assert (a["long_term_entries"], b["long_term_entries"]) == (2, 4)
    assert b["memory_mb"] > 1.5 * a["memory_mb"]


def test_offload_moves_nested_entries_and_keeps_outputs() -> None:
    import numpy as np
    import torch

    import vosc
    from vosc.models.base import Memory, _move

    entry = [(torch.ones(1, 3), torch.zeros(1, 3)), {"k": torch.arange(3)}]
    moved = _move(entry, torch.device("cpu"), pin=False)
    assert isinstance(moved[0], tuple) and torch.equal(moved[1]["k"], torch.arange(3))
    memory = Memory(depth=1, max_long_term=2, offload=True)
    memory.push_long(entry, is_reference=True)
    assert memory.device == torch.device("cpu") and memory.long_entries()[0][1][0][0].device.type == "cpu"
    # a whole video with offload gives the same masks (on the CPU the copy is a no-op; CUDA: gpu_check)
    frames = [np.random.default_rng(t).integers(0, 255, (48, 64, 3), dtype=np.uint8) for t in range(12)]
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 1
    segs = [vosc.load_model(None, "aost_tiny", offload=off, max_long_term=2) for off in (False, True)]
    runs = [[r.mask for r in seg.run(frames, {0: mask})] for seg in segs]
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
