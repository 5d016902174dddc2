"""End-to-end ``evaluate.py`` runs (real Hydra subprocess, real x265, real W&B offline): a tiny randomly
initialised AOST on davis2016-val-mini at two x265 points with the enhancer off and on, then a resumed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.codec, pytest.mark.slow]


def _run(args: list[str], out: Path, davis_mini: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "VOSC_SHARED": str(davis_mini.parents[1]),
    }
    cmd = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "dataset=davis_mini",
        "model=aost_tiny",
        "max_frames=5",
        "resize_long_edge=256",
        "torch_threads=1",
        "ladder.points=[none,x265:32,x265:42]",
        f"out_dir={out / 'eval'}",
        f"cache_dir={out / 'cache'}",
        f"hydra.run.dir={out / 'hydra'}",
        *args,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, f"evaluate.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, wall


@pytest.fixture(scope="module")
def enhancer_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cae_tiny enhancer whose last layer is no longer zero (so it changes the frames)."""
    from vosc.lit.enhancer_module import save_enhancer_weights
    from vosc.models.enhancer import CompressionAwareEnhancer

    torch.manual_seed(0)
    net = CompressionAwareEnhancer("tiny")
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 1e-3)
    return save_enhancer_weights(net, tmp_path_factory.mktemp("enh") / "enhancer.ckpt")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, davis_mini: Path, enhancer_ckpt: Path) -> dict:
    out = tmp_path_factory.mktemp("evaluate")
    args = ["enhancer=both", f"enhancer_ckpt={enhancer_ckpt}", "wandb.enabled=true"]
    proc, wall = _run(args, out, davis_mini)
    root = out / "eval" / "davis_mini"
    return {
        "out": out,
        "root": root,
        "args": args,
        "wall": wall,
        "log": proc.stderr + proc.stdout,
        "index": json.loads((root / "evaluation.json").read_text()),
    }


def test_smoke_outputs(first_run: dict, davis_mini: Path) -> None:
    root: Path = first_run["root"]
    index = first_run["index"]
    assert "RANDOMLY INITIALISED" in first_run["log"]
    # 2 sequences x (none + 2 x265 points x enhancer off/on) at depth 3
    assert index["computed"] == 2 * 5 and index["resumed"] == 0
    for variant in ("none/raw/d3", "x265/q32/d3", "x265/q42/d3", "x265/q32/d3/enh", "x265/q42/d3/enh"):
        for seq in ("blackswan", "car-shadow"):
            pngs = sorted((root / variant / "pred" / seq).glob("*.png"))
            assert [p.stem for p in pngs] == [f"{i:05d}" for i in range(5)], variant
            marker = json.loads((root / variant / "sequences" / f"{seq}.json").read_text())
            if variant.startswith("x265"):  # the encoder's real per-frame QPs (enhancer conditioning)
                assert len(marker["frame_qps"]) == 5 and all(10 < q < 60 for q in marker["frame_qps"])
            assert (
                marker["frames"] == 5
                and marker["width"] == 256
                and marker["height"] == 144
                and marker["objects"]
            )
    from vosc.metrics.rd import RDCurve

    off, on = RDCurve.load(root / "x265" / "rd_d3.json"), RDCurve.load(root / "x265" / "rd_d3_enh.json")
    assert [p.q for p in off.points] == [32, 42] and on.provenance.enhancer == "cae_tiny"
    assert off.points[0].bpp > off.points[1].bpp > 0
    assert [p.bpp for p in off.points] == [p.bpp for p in on.points]  # same bitstreams
    assert off.points[0].psnr > off.points[1].psnr > 20
    # the enhancer changed the frames
    assert all(p.psnr != q.psnr for p, q in zip(off.points, on.points, strict=False))
    for p in off.points + on.points:
        assert 0 <= p.jf <= 1 and p.runtimes.vos > 0 and p.runtimes.decode > 0 and p.runtimes.encode > 0
        assert p.runtimes.total >= p.runtimes.encode + p.runtimes.decode + p.runtimes.vos
        assert p.runtimes.fps > 0
    assert all(p.extra["enhance_ms_per_frame"] > 0 for p in on.points)
    raw = RDCurve.load(root / "none" / "rd_d3.json")
    assert raw.points[0].bpp == 0 and raw.points[0].psnr is None
    assert "x265 d3" in (root / "summary.md").read_text()
    assert (root / "summary.csv").read_text().count("\n") == 1 + 5 + 2  # + the two training-free baselines
    _check_baselines(index, root, davis_mini)
    for plot in ("rd_jf.png", "rd_psnr.png"):
        assert (root / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((root / "wandb").rglob("run-*.wandb")), "W&B offline run file missing"


def _check_baselines(index: dict, root: Path, davis_mini: Path) -> None:
    """Every evaluation reports what no learning scores on the same frames: copy-first-mask (recomputed
    here at the evaluated size) and label propagation with the Lite0 ImageNet features."""
    from vosc.data.sources.davis import DavisSource
    from vosc.evaluation.baselines import copy_first_mask_jf

    base = index["baselines"]
    assert set(base) == {"copy-first-mask", "label-prop lite0"}
    summary = (root / "summary.md").read_text()
    assert "copy-first-mask" in summary and "label-prop lite0" in summary and "no training" in summary
    assert (root / "baselines.csv").read_text().count("\n") == 1 + 2
    davis = DavisSource(davis_mini, split="val", year=2017)
    assert base["copy-first-mask"] == pytest.approx(
        copy_first_mask_jf(davis, max_frames=5, long_edge=256).global_["J&F-Mean"], abs=1e-12)
    assert base["label-prop lite0"] > base["copy-first-mask"]  # 5 frames: features already track


def test_enhancer_two_curves_and_bd(first_run: dict) -> None:
    index, root = first_run["index"], first_run["root"]
    assert {"x265 d3", "x265 d3 +cae_tiny", "none d3"} <= set(index["curves"])
    pairs = index["bd"]["enhancer_bd"]
    assert len(pairs) == 1 and pairs[0]["codec"] == "x265"
    bd = pairs[0]["BD-rate % (PSNR)"]  # PSNR is monotonic in the rate, J&F of a random model need not be
    assert bd is not None and bd != 0.0
    rows = (root / "enhancer.csv").read_text().splitlines()
    assert rows[0].startswith("depth,codec,q,bpp,PSNR,ΔPSNR,J&F,ΔJ&F,gap recovered,enhancer ms/frame")
    assert len(rows) == 1 + 2
    assert (root / "enhancer_bd.md").exists()


def test_resume_skips_finished_sequences(first_run: dict, davis_mini: Path) -> None:
    root: Path = first_run["root"]
    markers = sorted(root.rglob("sequences/*.json"))
    before = {p: (p.stat().st_mtime_ns, json.loads(p.read_text())["computed_at"]) for p in markers}
    dropped = root / "x265" / "q42" / "d3" / "sequences" / "car-shadow.json"
    dropped.unlink()  # as if the run had been interrupted before this sequence finished
    _proc, _ = _run(first_run["args"], first_run["out"], davis_mini)
    index = json.loads((root / "evaluation.json").read_text())
    assert index["computed"] == 1 and index["resumed"] == 9
    for path, (mtime, stamp) in before.items():
        if path != dropped:
            assert path.stat().st_mtime_ns == mtime and json.loads(path.read_text())["computed_at"] == stamp
    assert json.loads(dropped.read_text())["computed_at"] != before[dropped][1]
    from vosc.metrics.rd import RDCurve

    q42 = RDCurve.load(root / "x265" / "rd_d3.json").points[1]
    assert (q42.extra["computed_this_run"], q42.extra["resumed_this_run"]) == (1, 1)
    assert json.loads(dropped.read_text())[
        "encode_cached"
    ]  # bitstream from the cache; encode time kept from then
