"""JFMetric: equals the CLI / official numbers, de-duplicates sequences, and gives the same numbers
under real DDP (2 CPU processes, gloo, ``torch.multiprocessing`` spawn) as in one process."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vosc.metrics.errors import UnknownObjectError
from vosc.metrics.jf import GLOBAL_KEYS, load_davis_gt, load_predictions, read_sequence_list
from vosc.metrics.jf_metric import JFMetric

# Rank 1 gets a padded duplicate of "s0", as DistributedSampler padding does.
RANK_SEQUENCES = {0: ["s0", "s1", "s2"], 1: ["s3", "s0"]}
# A rank that receives nothing must not hang or break the gather.
UNEVEN_SEQUENCES = {0: ["s0", "s1", "s2", "s3"], 1: []}


def _synthetic(sequence: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(pred, gt)`` of a small two-object sequence named ``s<k>``."""
    rng = np.random.default_rng(int(sequence[1:]))
    gt = np.zeros((7, 48, 64), dtype=np.uint8)
    for t in range(7):
        gt[t, 5 + t : 25 + t, 4 : 24 + 2 * t] = 1
        gt[t, 30:44, 30 + t : 50 + t] = 2
    pred = gt.copy()
    pred[rng.random(gt.shape) > 0.9] = 0
    pred[:, :, : int(rng.integers(3, 12))] = 2
    return pred, gt


def _load(root: Path, sequence: str) -> tuple[np.ndarray, np.ndarray]:
    gt, frames = load_davis_gt(root / "gt", sequence)
    pred, _ = load_predictions(root / "preds" / "erode5", sequence, frames)
    return pred, gt


PLANS = {"padded": RANK_SEQUENCES, "idle": UNEVEN_SEQUENCES}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name, plan in PLANS.items():
            metric = JFMetric()
            for sequence in plan[rank]:
                pred, gt = _synthetic(sequence)
                metric.update(torch.from_numpy(pred), torch.from_numpy(gt), sequence)
            values = {k: float(v) for k, v in metric.compute().items()}
            per_object = metric.compute_result().per_object
            Path(out, f"{name}_rank{rank}.json").write_text(
                json.dumps({"global": values, "per_object": per_object}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metric_single_process_equals_official_and_deduplicates(jf_golden: Path) -> None:
    root = jf_golden / "two"
    official = json.loads((jf_golden / "official.json").read_text())["two/erode5"]
    metric = JFMetric()
    for sequence in read_sequence_list(root / "gt"):
        pred, gt = _load(root, sequence)
        metric.update(pred, gt, sequence)
    metric.update(*_load(root, "blackswan"), "blackswan")  # duplicate: must not count twice
    values = metric.compute()
    for key in GLOBAL_KEYS:
        assert float(values[key]) == pytest.approx(official["global"][key], abs=1e-6)
    assert set(metric.compute_result().per_object) == set(official["per_object"])


def _single(plan: dict[int, list[str]]) -> dict[str, float]:
    single = JFMetric()
    for sequence in sorted({s for seqs in plan.values() for s in seqs}):
        single.update(*_synthetic(sequence), sequence)
    return {k: float(v) for k, v in single.compute().items()}


def test_metric_under_ddp_gloo_equals_single_process(tmp_path: Path) -> None:
    """Two real gloo processes (spawned: forking a process that already runs threads can deadlock):
    a padded duplicate sequence is counted once, and a rank that receives nothing neither hangs nor
    changes the result."""
    expected = {name: _single(plan) for name, plan in PLANS.items()}
    assert 0.3 < expected["padded"]["J&F-Mean"] < 0.99

    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    for rank in (0, 1):
        got = json.loads((tmp_path / f"padded_rank{rank}.json").read_text())
        assert got["global"] == pytest.approx(expected["padded"], abs=1e-12)
        assert len(got["per_object"]) == 8  # 4 sequences x 2 objects, duplicate removed
        idle = json.loads((tmp_path / f"idle_rank{rank}.json").read_text())
        assert idle["global"] == pytest.approx(expected["idle"], abs=1e-12)


def test_metric_rejects_unknown_ids_and_bad_shapes() -> None:
    gt = np.zeros((4, 10, 10), dtype=np.uint8)
    gt[:, 2:5, 2:5] = 1
    pred = gt.copy()
    pred[2, 7:9, 7:9] = 3
    metric = JFMetric()
    with pytest.raises(UnknownObjectError, match="object id 3"):
        metric.update(pred, gt, "seq")
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        metric.update(gt[0], gt[0], "seq")
    with pytest.raises(ValueError, match="UTF-8 bytes"):
        metric.update(gt, gt, "x" * 200)
