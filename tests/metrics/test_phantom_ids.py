"""Ground-truth ids that skip numbers (issue 26 item 6): ids 1 and 5 make the official toolkit score the
absent ids 2..4 as J = F = 1. vosc scores them the same, but warns, naming the sequence and the phantom ids,
and flags the sequence in the results (J&F CLI table and JSON, evaluate.py's RD points and summary table)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vosc.metrics.jf import evaluate_davis, evaluate_sequence, main


def _gappy(frames: int = 4) -> np.ndarray:
    gt = np.zeros((frames, 32, 40), np.uint8)
    gt[:, 4:12, 4:14] = 1
    gt[:, 18:28, 20:36] = 5
    return gt


def test_phantom_ids_are_scored_one_and_announced(caplog: pytest.LogCaptureFixture) -> None:
    gt = _gappy()
    with caplog.at_level(logging.WARNING, logger="vosc.metrics.jf"):
        result = evaluate_sequence(gt, gt, sequence="gappy")
    assert result.object_ids == (1, 2, 3, 4, 5) and result.phantom_ids == (2, 3, 4)
    assert np.all(result.j[1:4] == 1.0) and np.all(result.f[1:4] == 1.0)  # as the official toolkit
    assert any("gappy" in r.getMessage() and "2, 3, 4" in r.getMessage() for r in caplog.records)
    clean = _gappy()
    clean[clean == 5] = 2
    assert evaluate_sequence(clean, clean, sequence="clean").phantom_ids == ()


def test_jf_cli_warns_and_flags_the_sequence(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             davis_factory: Any) -> None:
    gt = _gappy()
    clean = gt.copy()
    clean[clean == 5] = 2
    root = davis_factory.make_tree(tmp_path / "gt", {"gappy": gt, "clean": clean})
    pred = davis_factory.write_preds(tmp_path / "pred", {"gappy": gt, "clean": clean})
    with caplog.at_level(logging.INFO, logger="vosc.metrics.jf"):
        assert main(["--gt", str(root), "--pred", str(pred), "--workers", "2", "--json",
                     str(tmp_path / "jf.json")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("gappy" in w and "2, 3, 4" in w and "J = F = 1" in w for w in warnings), warnings
    assert not any("clean" in w for w in warnings)
    table = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert "gappy *" in table and "phantom ids" in table
    data = json.loads((tmp_path / "jf.json").read_text())
    assert data["phantom_ids"] == {"gappy": [2, 3, 4]}
    result, _ = evaluate_davis(root, pred, workers=0)
    assert result.phantom_ids == {"gappy": (2, 3, 4)}


def test_evaluate_sweep_flags_the_sequence(tmp_path: Path, synthetic_davis: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from vosc.codecs import IdentityCodec
    from vosc.data.palette import read_mask, write_mask
    from vosc.data.sources.davis import DavisSource
    from vosc.evaluation.report import summary_rows
    from vosc.evaluation.sweep import Sweep
    from vosc.inference.segmenter import VideoSegmenter
    from vosc.models.vos_model import VOSModel
    from vosc.types import OperatingPoint

    data = Path(shutil.copytree(synthetic_davis, tmp_path / "davis"))
    for path in sorted((data / "Annotations" / "480p" / "synth-001").glob("*.png")):
        mask = read_mask(path, raw=True)
        top = int(mask[mask != 255].max())
        mask[mask == top] = top + 2  # ids 1..k-1, k+2: k and k+1 are phantoms
        write_mask(path, mask)
    torch.manual_seed(0)
    model = VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=1, droppath=0.0).eval()
    sweep = Sweep(source=DavisSource(data, split="train"), dataset="synth", model=model,
                  make_segmenter=lambda m, d: VideoSegmenter(m, depth=d, max_long_edge=96),
                  codecs={"none": IdentityCodec()}, ladder=[OperatingPoint("none")], depths=[1],
                  out_root=tmp_path / "eval", cache_root=tmp_path / "cache", max_frames=4)
    with caplog.at_level(logging.WARNING):
        sweep.run()
        point = sweep.curves()[("none", 1, False)].points[0]
    assert list(point.extra["phantom_ids"]) == ["synth-001"]
    ids = point.extra["phantom_ids"]["synth-001"]
    assert len(ids) == 2 and ids[1] == ids[0] + 1
    assert point.extra["per_sequence"]["synth-001"]["phantom_ids"] == ids
    assert any("synth-001" in r.getMessage() and "phantom" in r.getMessage() for r in caplog.records)
    row = summary_rows([sweep.curves()[("none", 1, False)]])[0]
    assert row["phantom_ids"] == f"synth-001: {ids[0]}, {ids[1]}"
