"""Progress and logs: sane epoch/step descriptions, no Lightning adverts, no duplicated log line in a
``debug=fdr`` run."""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from vosc.lit.progress import StepProgressBar, quiet_lightning_adverts

REPO = Path(__file__).resolve().parents[2]


def test_step_bounded_description() -> None:
    bar = StepProgressBar()
    trainer = L.Trainer(max_steps=50, max_epochs=-1, callbacks=[bar], logger=False,
                        enable_checkpointing=False)
    bar._trainer = trainer
    assert bar._get_train_description(6).strip() == "Epoch 6 · step 0/50"
    trainer = L.Trainer(max_epochs=3, callbacks=[bar], logger=False, enable_checkpointing=False)
    bar._trainer = trainer
    assert bar._get_train_description(1).strip() == "Epoch 1/2"


def test_adverts_are_dropped_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    quiet_lightning_adverts()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing litlogger")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


@pytest.mark.slow
def test_fdr_run_log_has_no_duplicated_line(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "train.py", "experiment=tiny", "debug=fdr", "logger=csv",
           f"paths.root_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log_file,) = (tmp_path / "outputs" / "fdr" / "runs").glob("*/fdr.log")
    for name, text in (("console", proc.stdout + proc.stderr), ("log file", log_file.read_text())):
        # the message without its prefix: Hydra's "[time][logger][LEVEL] - " or Lightning's own "INFO: "
        lines = [re.sub(r"^(\[[^\]]*\]){3} - |^(INFO|WARNING|ERROR|DEBUG): ", "", ln.rstrip())
                 for ln in text.splitlines() if ln.strip()]
        dupes = [ln for ln, n in collections.Counter(lines).items() if n > 1]
        assert not dupes, f"{name}: duplicated lines {dupes[:5]}"
        assert "litlogger" not in text and "litmodels" not in text and "/-2" not in text
    assert "final metrics" in log_file.read_text()
