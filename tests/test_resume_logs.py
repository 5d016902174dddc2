"""Issue 13 item 3: a resume keeps the logs. The CSV file keeps the steps before the checkpoint, and the
resumed run continues the same W&B run (real W&B, offline): one run id, stored in the run folder."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train  # noqa: E402

COMMON = ["experiment=tiny", "logger=many_loggers", "lit.total_steps=6", "trainer.val_check_interval=3",
          "callbacks.mask_images=null", "callbacks.preemption.every_minutes=null",
          "callbacks.preemption.every_n_train_steps=2"]


def _cfg(root: Path, out: Path, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True,
                      overrides=[f"paths.root_dir={root}", *COMMON, *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg["hydra"]
    return cfg


def test_resume_keeps_csv_rows_and_the_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train.run(_cfg(tmp_path, run, ["trainer.max_steps=4"]))  # last.ckpt at step 4, mid-epoch
    train.run(_cfg(tmp_path, run, ["trainer.max_steps=6", "ckpt_path=last"]))  # same run folder
    with open(run / "csv" / "metrics.csv", newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert steps == list(range(6)), steps  # nothing lost, nothing twice
    run_id = (run / "wandb" / "run_id").read_text().strip()
    attempts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and {p.name.rsplit("-", 1)[-1] for p in attempts} == {run_id}, attempts
