"""``bench/train_speed.py --fixture [--reference]``: vosc's training step against the official AOST engine's,
end to end on a tiny crop of the train-parity batch (one process, one thread, interleaved).

The official code is not part of vosc: the test needs an export of ``yoxu515/aot-benchmark`` branch
``paot`` (``git archive paot | tar -x -C DIR``) in ``$VOSC_AOT_OFFICIAL`` or ``../scratch/aot-official``
beside the checkout, and skips naming both when there is none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official_export() -> Path:
    """The ``paot`` export, or skip."""
    candidates = [Path(p) for p in [os.environ.get("VOSC_AOT_OFFICIAL", "")] if p]
    candidates.append(REPO.parent / "scratch" / "aot-official")
    for c in candidates:
        if (c / "networks" / "engines" / "aost_engine.py").is_file():
            return c
    pytest.skip("no export of the official code (yoxu515/aot-benchmark branch paot): set $VOSC_AOT_OFFICIAL "
                f"or export it to {candidates[-1]}")


def test_reference_mode_times_both_steps_and_their_losses_agree(train_parity: Path, official_export: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "ratio.json"
    cmd = [sys.executable, str(REPO / "bench" / "train_speed.py"), "--fixture", str(train_parity / "aost"),
           "--reference", str(official_export), "--crop", "33", "--repeats", "1", "--warmup", "0",
           "--depth-settings", "1", "1,2,3", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| d1 |" in proc.stdout and "| scalable 1,2,3 |" in proc.stdout
    res = json.loads(out.read_text())
    assert res["machine"]["threads"] == 1 and res["crop"] == 33
    assert sorted(res["per_depth_setting"]) == ["d1", "scalable 1,2,3"]
    for row in res["per_depth_setting"].values():
        for side in ("vosc", "official"):
            assert len(row[side]["wall_s"]) == 1 and row[side]["median_wall_s"] > 0
        assert row["ratio_wall"] > 0 and row["ratio_cpu"] > 0
        assert row["loss_vosc"] == pytest.approx(row["loss_official"], abs=1e-5)  # the same computation


def test_reference_needs_a_fixture() -> None:
    cmd = [sys.executable, str(REPO / "bench" / "train_speed.py"), "--reference", "/nonexistent"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "--reference needs --fixture" in proc.stderr


def test_a_folder_that_is_not_an_export_is_named(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from official_aost import check_export
    finally:
        sys.path.remove(str(REPO / "bench"))
    with pytest.raises(FileNotFoundError, match="not an export of yoxu515/aot-benchmark branch paot"):
        check_export(tmp_path)


def test_fixture_mode_times_vosc_alone(train_parity: Path, tmp_path: Path) -> None:
    """``--fixture`` without ``--reference``: vosc's step only (no official export needed)."""
    out = tmp_path / "vosc.json"
    cmd = [sys.executable, str(REPO / "bench" / "train_speed.py"), "--fixture", str(train_parity / "aost"),
           "--threads", "1", "--crop", "33", "--steps", "1", "--warmup", "0", "--depth-settings", "2",
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert list(res["per_depth_setting"]) == ["2"] and res["per_depth_setting"]["2"]["median_s"] > 0
