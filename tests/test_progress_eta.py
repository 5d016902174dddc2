"""Progress of evaluation sweeps in log files: the ETA of :class:`vosc.utils.progress.SweepETA` and its place
in ``evaluate.py``'s per-sequence lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vosc.utils.progress import SweepETA, format_duration

REPO = Path(__file__).resolve().parents[1]


def test_eta_from_the_computed_work() -> None:
    now = [100.0]
    eta = SweepETA([10, 20, 30, 40], variants=2, clock=lambda: now[0])
    assert eta.eta(0) == "?"  # nothing computed yet
    now[0] += 20.0  # sequence 0: 10 frames x 2 variants in 20 s -> 1 s per frame x variant
    eta.computed(0, 2)
    assert eta.eta(1) == format_duration((20 + 30 + 40) * 2) == "3m00s"
    now[0] += 10.0  # sequence 1 resumed but for one variant: 20 units in 10 s (30 s for 40 units so far)
    eta.computed(1, 1)
    assert eta.eta(2) == format_duration((30 + 40) * 2 * 30 / 40) == "1m45s"
    assert eta.eta(4) == "0s"


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.4, 59.6, 725, 3600, 11220, float("nan"), -3)] == [
        "0s", "1m00s", "12m05s", "1h00m", "3h07m", "?", "?"]


@pytest.mark.slow
def test_evaluate_log_lines_have_an_eta(tmp_path: Path) -> None:
    """A redirected evaluate.py run (random tiny AOST, 3 held-out synthetic sequences, raw frames)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "evaluate.py"), "dataset=synthetic", "model=aost_tiny", "max_frames=4",
           "ladder.points=[none]", "depths=[1]", "torch_threads=1", "baselines=null",
           f"paths.root_dir={tmp_path}", f"out_dir={tmp_path / 'eval'}", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.run.dir={tmp_path / 'hydra'}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = re.findall(r"\[(\d+)/(\d+)\] \S+: \d+ frames, 1/1 variants to compute, ETA (\S+)", proc.stdout)
    assert len(lines) >= 2, proc.stdout[-3000:]
    assert lines[0][2] == "?" and all(re.fullmatch(r"\d+s|\d+m\d\ds", e) for _, _, e in lines[1:]), lines
