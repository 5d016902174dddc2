"""End-to-end training runs of train.py at tiny size on CPU: fast_dev_run per model family, the
alpha x depth multirun with one W&B offline run per job, exact resumption, DDP (ddp_spawn) validation."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from train_steps import assert_trained_one_step, run_and_capture  # noqa: E402

import train  # noqa: E402

TINY_MODEL = ["model.d_model=32", "model.ffn_dim=64", "model.num_heads=2", "model.droppath=0.0"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One root per module: the tiny synthetic set is generated once, under <root>/data."""
    return tmp_path_factory.mktemp("train_runs")


def _cfg(root: Path, out: Path, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True,
                      overrides=[f"paths.root_dir={root}", "experiment=tiny", "logger=csv", *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg["hydra"]  # as in a real run: the job config has no hydra node
    return cfg


@pytest.mark.parametrize("family", ["aott", "aost", "r50_aost"])
def test_fast_dev_run_per_model_family(family: str, root: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(root, tmp_path, [f"model={family}", *TINY_MODEL, "trainer.fast_dev_run=1"])
    assert_trained_one_step(*run_and_capture(cfg, monkeypatch))  # raises on non-finite loss, shape errors


def _metrics_csv(out: Path) -> list[dict[str, str]]:
    with open(out / "csv" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _train_losses(out: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in _metrics_csv(out) if r.get("train/loss")}


RESUME = ["trainer.max_steps=6", "lit.total_steps=6", "trainer.val_check_interval=3",
          "lit.seq_switch_ratio=0.5", "callbacks.mask_images=null"]


@pytest.fixture(scope="module")
def short_run(root: Path) -> Path:
    """3 of 6 scheduled steps (one epoch), stopped: the run folder with checkpoints/last.ckpt."""
    part = root / "short_run"
    train.run(_cfg(root, part, [*RESUME, "trainer.max_steps=3"]))
    return part


def test_resume_from_last_ckpt_continues_with_identical_losses(root: Path, short_run: Path,
                                                               tmp_path: Path) -> None:
    common = RESUME
    full = tmp_path / "full"
    train.run(_cfg(root, full, common))
    last = short_run / "checkpoints" / "last.ckpt"
    assert last.is_file()
    resumed = tmp_path / "resumed"
    train.run(_cfg(root, resumed, [*common, f"ckpt_path={last}"]))
    a, b = _train_losses(full), _train_losses(resumed)
    assert sorted(a) == list(range(6)) and sorted(b) == [3, 4, 5]
    assert [a[s] for s in (3, 4, 5)] == [b[s] for s in (3, 4, 5)]  # bit-identical
    assert (resumed / "checkpoints" / "last.ckpt").is_file()
    # the checkpoint rebuilds its network from the stored model config and holds the EMA weights
    from vosc.lit.vos_module import VOSModule

    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert isinstance(ckpt["hyper_parameters"]["model_config"], dict)
    assert "current_model_state" in ckpt and "averaging_state" in ckpt
    loaded = VOSModule.load_from_checkpoint(last, map_location="cpu")
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][name]), name
    assert any(not torch.equal(ckpt["state_dict"][k], v) for k, v in ckpt["current_model_state"].items())


def test_ddp_spawn_two_processes_give_the_single_process_validation_jf(
    root: Path, short_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # validate the (EMA) weights of a short training run on the 2 validation sequences
    common = ["train=false", "callbacks=none", f"ckpt_path={short_run / 'checkpoints' / 'last.ckpt'}"]
    single = _cfg(root, tmp_path / "single", [*common, "trainer.devices=1"])
    train.run(single)
    one = {k: v for k, v in _last_val(tmp_path / "single").items()}
    ddp = _cfg(root, tmp_path / "ddp", [*common, "trainer=ddp_cpu", "trainer.devices=2"])
    seen = tmp_path / "seen"
    seen.mkdir()
    _, trainer, _ = run_and_capture(ddp, monkeypatch, [_ValidatedSequences(seen)])
    two = _last_val(tmp_path / "ddp")
    keys = [f"val/J&F_d{d}" for d in (1, 2, 3)]
    assert all(k in one for k in keys), one
    assert [one[k] for k in keys] == [two[k] for k in keys]
    assert one["val/bpp"] == pytest.approx(two["val/bpp"]) and one["val/bpp"] > 0
    # two processes really ran, each validated its own shard, and together every sequence once
    assert trainer.world_size == 2 and type(trainer.strategy).__name__ == "DDPStrategy"
    ranks = {f.name: f.read_text().split() for f in sorted(seen.iterdir())}
    assert sorted(ranks) == ["rank0-of-2", "rank1-of-2"], ranks
    assert all(ranks.values()) and not set(ranks["rank0-of-2"]) & set(ranks["rank1-of-2"]), ranks
    assert len(ranks["rank0-of-2"]) + len(ranks["rank1-of-2"]) == 2  # the 2 validation sequences


class _ValidatedSequences(L.Callback):
    """Writes ``<out>/rank<r>-of-<world size>``: the sequences this process validated (ddp_spawn: in each
    spawned worker)."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        with open(self.out / f"rank{trainer.global_rank}-of-{trainer.world_size}", "a") as fh:
            fh.write("".join(f"{s}\n" for s in batch.sequences))


def _last_val(out: Path) -> dict[str, float]:
    rows = [r for r in _metrics_csv(out) if r.get("val/J&F")]
    assert rows, f"no validation row in {out}/csv/metrics.csv"
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v != ""}


def _wandb_summary(run_dir: Path, timeout: float = 90.0) -> dict:
    """Summary of an offline run read back with `wandb leet inspect`, waiting for the final record."""
    wandb_bin = Path(sys.executable).with_name("wandb")
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([str(wandb_bin), "leet", "inspect", "--summary", "--json", str(run_dir)],
                             capture_output=True, text=True, timeout=60, check=False)
        if out.returncode == 0:
            info = json.loads(out.stdout)
            if info.get("exit_code") is not None:
                return info
        if time.monotonic() > deadline:
            raise AssertionError(f"W&B run {run_dir} not finished after {timeout}s: "
                                 f"{out.stdout[-500:]}{out.stderr}")
        time.sleep(1.0)


def test_alpha_depth_multirun_gives_one_run_and_one_wandb_run_per_job(root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "train.py", "-m", "experiment=tiny", "debug=fdr", "lit.alpha=2,inf",
           "model.num_layers=1,3", f"paths.root_dir={root}", "hydra.sweep.dir=" + str(root / "sweep")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((root / "sweep").glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(jobs) == 4  # alpha-major: (2, 1), (2, 3), (inf, 1), (inf, 3)
    run_ids = set()
    for job in jobs:
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        layers = int(overrides.split("model.num_layers=")[1].split()[0].strip("'\""))
        assert not list(job.rglob("*.ckpt")), f"{job}: debug=fdr writes no checkpoints"
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job}: expected one W&B run, found {runs}"
        run_ids.add(runs[0].name.rsplit("-", 1)[-1])
        if int(job.name) % 2 == 1:  # read back the 3-layer run of each alpha (every depth logged)
            info = _wandb_summary(runs[0])
            summary = info["summary"]
            assert info["exit_code"] == 0
            expected = [f"val/J&F_d{d}" for d in range(1, layers + 1)]
            expected += [f"train/loss_d{d}" for d in range(1, layers + 1)]
            expected += ["val/J&F", "val/bpp", "train/loss", "train/clips_per_s", "val/masks"]
            missing = [k for k in expected if k not in summary]
            assert not missing, f"{runs[0]}: missing {missing} in {sorted(summary)}"
            assert any(k.startswith("lr-") for k in summary), sorted(summary)
            assert str(info["config"]["lit"]["alpha"]) in {"2", "2.0", "inf", "Infinity"}
    assert len(run_ids) == 4
