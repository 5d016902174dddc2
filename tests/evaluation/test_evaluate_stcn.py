"""``evaluate.py model=stcn_small ckpt=<official-format stcn.pth>`` over a small x265 ladder (real Hydra
subprocess, real x265): the official-checkpoint path, STCN through VideoSegmenter, RD outputs at depth 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.codec, pytest.mark.slow]

# vosc name fragment -> official name fragment (the inverse of vosc.checkpoints.stcn's table)
INVERSE = {"key_encoder.net.layer1.": "key_encoder.res2.", "key_encoder.net.": "key_encoder.",
           "value_encoder.net.": "value_encoder.", "key_proj.": "key_proj.key_proj.",
           "attention.channel_mlp.0.": "attention.ChannelGate.mlp.1.",
           "attention.channel_mlp.2.": "attention.ChannelGate.mlp.3.",
           "attention.spatial.": "attention.SpatialGate.spatial.conv."}


def official_stcn_small(path: Path) -> Path:
    """A raw float16 state dict with official names for ``model=stcn_small``."""
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        cfg = compose("evaluate.yaml", overrides=["model=stcn_small"])
    torch.manual_seed(3)
    state = OrderedDict()
    for k, v in instantiate(cfg.model).state_dict().items():
        for new, old in INVERSE.items():
            if new in k:
                k = k.replace(new, old, 1)
                break
        state[k] = v.half() if v.is_floating_point() else v
    torch.save(state, path)
    return path


def test_evaluate_stcn_small_over_a_small_ladder(tmp_path: Path, davis_mini: Path) -> None:
    ckpt = official_stcn_small(tmp_path / "stcn.pth")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "VOSC_SHARED": str(davis_mini.parents[1])}
    cmd = [sys.executable, str(REPO / "evaluate.py"), "dataset=davis_mini", "model=stcn_small",
           f"ckpt={ckpt}", "max_frames=4", "resize_long_edge=128", "torch_threads=1",
           "ladder.points=[none,x265:32,x265:42]", f"out_dir={tmp_path / 'eval'}",
           f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"evaluate.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "RANDOMLY INITIALISED" not in proc.stderr + proc.stdout
    root = tmp_path / "eval" / "davis_mini"
    index = json.loads((root / "evaluation.json").read_text())
    assert index["computed"] == 2 * 3
    from vosc.metrics.rd import RDCurve

    curve = RDCurve.load(root / "x265" / "rd_d1.json")
    assert curve.provenance.checkpoint == str(ckpt) and curve.provenance.depth == 1
    assert [p.q for p in curve.points] == [32, 42] and curve.points[0].bpp > curve.points[1].bpp > 0
    for p in curve.points:
        assert 0 <= p.jf <= 1 and p.runtimes.vos > 0
    for seq in ("blackswan", "car-shadow"):
        pngs = sorted((root / "x265" / "q42" / "d1" / "pred" / seq).glob("*.png"))
        assert [p.stem for p in pngs] == [f"{i:05d}" for i in range(4)]
    # a checkpoint of the wrong architecture fails loudly, naming the file
    bad = subprocess.run(cmd[:3] + ["model=stcn"] + cmd[4:], check=False, cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and str(ckpt) in bad.stderr + bad.stdout
    # one line (issue 28): the counts, and where the key list is
    assert bad.stderr.count("\n") == 1 and "shape-mismatched keys" in bad.stderr, bad.stderr
    full = subprocess.run(cmd[:3] + ["model=stcn"] + cmd[4:], check=False, cwd=REPO,
                          env={**env, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True, timeout=600)
    assert full.returncode != 0 and "shape mismatch: decoder.pred.weight" in full.stderr + full.stdout
