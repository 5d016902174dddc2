"""A newcomer's first hour (issue 16): honest debug configs, readable sweeps, `train.py --help`, the
final-metrics line, `python -m vosc.data.synthetic` into an existing folder, and the default thread counts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train  # noqa: E402

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
}


def _compose(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_help_lists_only_training_groups() -> None:
    out = subprocess.run(
        [sys.executable, "train.py", "--help"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    groups = out.split("== Configuration groups")[1].split("== Config ")[0]
    names = {line.split(":")[0] for line in groups.splitlines() if ":" in line}
    assert {"data", "codec", "model", "lit", "trainer", "callbacks", "logger", "experiment", "debug"} <= names
    assert not names & {"dataset", "ladder"}, names  # evaluate.py's groups


def test_final_metrics_line_prints_learning_rates_in_scientific_notation() -> None:
    from vosc.lit.builders import format_metrics

    text = format_metrics(
        {
            "lr-AdamW/encoder": 7.832883944689134e-05,
            "lr-AdamW/other": 2e-3,
            "train/loss": 1.23284,
            "val/J&F": 0.5,
        }
    )
    assert "'lr-AdamW/encoder': 7.833e-05" in text and "'lr-AdamW/other': 2.000e-03" in text
    assert "'train/loss': 1.2328" in text and "'val/J&F': 0.5000" in text


def test_debug_keeps_the_accelerator_trains_fp32_on_cpu_and_logs_what_it_sets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = _compose(["experiment=tiny", "debug=fdr", "trainer.precision=16-mixed"])
    assert cfg.trainer.accelerator == "auto"  # not forced to cpu any more
    assert _compose(["experiment=tiny", "debug=fdr", "trainer.accelerator=gpu"]).trainer.accelerator == "gpu"
    cfg = _compose(["experiment=tiny", "debug=fdr", "trainer.precision=16-mixed", "trainer.accelerator=cpu"])
    with caplog.at_level(logging.INFO, logger="vosc.train"):
        changes = train.apply_debug(cfg, "fdr")
    assert cfg.trainer.precision == "32-true" and changes[-1] == "trainer.precision=32-true"
    assert {
        "trainer.max_steps=1",
        "data.num_workers=0",
        "callbacks.model_checkpoint.save_last=False",
        "trainer.num_sanity_val_steps=0",
    } <= set(changes)
    assert "debug=fdr sets: " in caplog.text and "trainer.precision 16-mixed -> 32-true" in caplog.text
    kept = _compose(
        [
            "experiment=tiny",
            "debug=fdr",
            "trainer.precision=16-mixed",
            "trainer.accelerator=cpu",
            "debug_cpu_fp32=false",
        ]
    )
    train.apply_debug(kept, "fdr")
    assert kept.trainer.precision == "16-mixed"


def test_sweep_jobs_are_named_after_their_overrides_and_fdr_writes_no_checkpoints(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "experiment=tiny",
        "debug=fdr",
        "lit.alpha=1,4",
        "model.num_layers=2",
        "callbacks.rich_progress_bar=null",
        f"paths.root_dir={tmp_path}",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for num, alpha in enumerate((1, 4)):
        job = sweep / str(num)
        log_text = (job / "fdr.log").read_text()
        assert f"W&B run of this multirun job: name 'alpha={alpha}', group 'sweep'" in log_text, log_text[
            -2000:
        ]
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        assert not list(job.rglob("*.ckpt")), sorted(p.name for p in job.rglob("*.ckpt"))
        saved = OmegaConf.load(job / ".hydra" / "config.yaml")
        assert saved.callbacks.model_checkpoint.save_last is False


def test_synthetic_cli_keeps_an_existing_set_or_regenerates_it_with_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vosc.data.synthetic import main

    out = tmp_path / "synth"
    args = ["--out", str(out), "--videos", "1", "--frames", "3", "--size", "48x32"]
    main(args)
    stamp = (out / "synthetic.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="vosc.data.synthetic"):
        main(args)
    assert "already holds this synthetic set: kept the existing data (--force regenerates it)" in caplog.text
    assert (out / "synthetic.json").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="other parameters.*--force regenerates it"):
        main([*args[:-2], "--size", "64x32"])
    main([*args[:-2], "--size", "64x32", "--force"])
    assert '"width": 64' in (out / "synthetic.json").read_text()


def test_default_threads_are_auto_one_per_process_on_small_machines() -> None:
    from vosc.utils.threads import auto_threads, resolve_threads

    cfg = _compose([])  # python train.py: experiment=quickstart
    assert cfg.threads == "auto" and cfg.data.num_workers == 1
    assert auto_threads(workers=1, cores=2) == 1 and auto_threads(workers=0, cores=2) == 1
    assert auto_threads(workers=2, cores=8) == 3 and auto_threads(workers=0, cores=64) == 4
    assert resolve_threads("auto", 1) == auto_threads(1) and resolve_threads(3) == 3
    assert resolve_threads(None) is None
    with pytest.raises(ValueError, match="threads must be 'auto', null or a positive integer, got 'many'"):
        resolve_threads("many")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # tests/conftest.py and the entry points default it
