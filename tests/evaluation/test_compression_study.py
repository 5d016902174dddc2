"""``bench/compression_study.py`` end to end on a tiny ladder: two models (raw- and compression-trained
stand-ins), one enhancer stage, the held-out synthetic set and the two DAVIS val sequences; every output
is written and every table has the comparisons the study promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vosc.lit.enhancer_module import save_enhancer_weights
from vosc.models.enhancer import CompressionAwareEnhancer
from vosc.models.vos_model import VOSModel

REPO = Path(__file__).resolve().parents[2]
TINY = {"_target_": "vosc.models.vos_model.VOSModel", "encoder": "mobilenetv2_050", "block": "slstt",
        "num_layers": 3, "d_model": 32, "ffn_dim": 64, "num_heads": 2, "droppath": 0.0}

pytestmark = [pytest.mark.codec, pytest.mark.slow]


def _vosc_ckpt(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = VOSModel(**{k: v for k, v in TINY.items() if k != "_target_"})
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"hyper_parameters": {"model_config": dict(TINY)}, "state_dict": state}, path)
    return path


def test_study_writes_every_output(tmp_path: Path, davis_mini: Path) -> None:
    raw, comp = _vosc_ckpt(tmp_path / "raw.ckpt", 0), _vosc_ckpt(tmp_path / "x265.ckpt", 1)
    torch.manual_seed(0)
    enh = CompressionAwareEnhancer("tiny")
    with torch.no_grad():
        enh.tail.weight.normal_(0.0, 1e-3)
    enh_ckpt = save_enhancer_weights(enh, tmp_path / "s1.ckpt")
    out = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VOSC_SHARED": str(davis_mini.parents[1]),
           "VOSC_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, str(REPO / "bench" / "compression_study.py"), "--model", f"raw={raw}",
           "--model", f"x265={comp}", "--enhancer", f"s1={enh_ckpt}", "--datasets", "synthetic_heldout",
           "davis_mini", "--ladder", "none", "x265:37", "x265:47", "vvenc:42", "vvenc:47",
           "--max-frames", "4",
           "--eval-arg", "synthetic_heldout:dataset.source.videos=4", "--davis-long-edge", "128",
           "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    index = json.loads((out / "index.json").read_text())
    assert set(index["datasets"]) == {"synthetic_heldout", "davis_mini"}
    for ds in ("synthetic_heldout", "davis_mini"):
        study = json.loads((out / ds / "study.json").read_text())
        assert (out / ds / "study.md").is_file()
        assert [Path(p).name for p in study["plots"]] == ["rd_jf_d1.png", "rd_jf_d2.png", "rd_jf_d3.png"]
        assert all(Path(p).stat().st_size > 1000 for p in study["plots"])
        runtime = study["tables"]["runtime"]
        # 2 models x (none + 4 compressed) + the enhancer's 4 compressed points, at 3 depths
        assert len(runtime) == (2 * 5 + 4) * 3
        assert {r["model"] for r in runtime} == {"raw", "x265", "x265+s1"}
        for r in runtime:
            assert r["t_total ms"] >= r["t_vos ms"] > 0 and r["J&F"] is not None
            assert (r["bpp"] > 0) == (r["codec"] != "none")
        kinds = {}
        for row in study["tables"]["bd"]:
            kinds.setdefault(row["comparison"], set()).add((row["test"], row["depth"]))
            assert row["anchor"].split()[-1] == row["test"].split()[-1]  # same depth
        assert len(kinds["VVenC vs x265"]) == 3 * 3  # raw, x265, x265+s1 at 3 depths
        assert len(kinds["compression-trained vs raw"]) == 2 * 3  # x265 and vvenc at 3 depths
        assert len(kinds["enhancer vs off"]) == 2 * 3
        checks = {r["check"] for r in study["tables"]["checks"]}
        assert checks == {"J&F falls as q rises", "deeper is better"}
    # bitstreams are shared by every model: one cache
    assert any((out / "cache").rglob("*")) and not (out / "runs" / "raw" / "cache").exists()
