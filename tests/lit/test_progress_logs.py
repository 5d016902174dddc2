"""Progress and logs: sane epoch/step descriptions (the step advancing in the bar), progress lines when stdout
is not a terminal, no Lightning adverts, no duplicated log line in a ``debug=fdr`` run."""

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
import torch
from torch.utils.data import DataLoader, TensorDataset

from vosc.lit.progress import ProgressLog, StepProgressBar, format_duration, quiet_lightning_adverts

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


class _Regression(L.LightningModule):
    """A real (tiny) Lightning module: linear regression, its loss logged as the VOS module logs it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/J&F_d1", 0.25)
        self.log("val/J&F_d2", 0.5)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n: int = 16) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2)


def _fit(callbacks: list[L.Callback], max_steps: int, **kw: object) -> L.Trainer:
    trainer = L.Trainer(max_steps=max_steps, max_epochs=-1, callbacks=callbacks, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
                        num_sanity_val_steps=0, **kw)  # type: ignore[arg-type]
    trainer.fit(_Regression(), _loader(), _loader(4))
    return trainer


def test_progress_bar_step_advances() -> None:
    """The bar's description follows the step (it stayed at the epoch start's step, 0)."""
    seen: list[str] = []
    bar = StepProgressBar(terminal_only=False, refresh_rate=1)

    class Record(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            assert bar.progress is not None and bar.train_progress_bar_id is not None
            seen.append(bar.progress.tasks[bar.train_progress_bar_id].description)

    _fit([bar, Record()], max_steps=5, limit_val_batches=0)
    assert [re.search(r"step (\d+)/5", d).group(1) for d in seen] == ["1", "2", "3", "4", "5"]  # type: ignore[union-attr]


def test_progress_bar_is_off_without_a_terminal() -> None:
    assert not sys.stdout.isatty()  # pytest captures stdout
    assert StepProgressBar().is_disabled and StepProgressBar(terminal_only=False).is_enabled


def test_progress_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Redirected stdout (pytest's capture): a line after step 1 and every 3 steps, with the loss, rate, ETA
    and the last validation J&F per depth."""
    assert ProgressLog().active  # stdout is not a terminal here
    with caplog.at_level(logging.INFO, logger="vosc.progress"):
        _fit([ProgressLog(every_n_steps=3, every_s=3600)], max_steps=7, val_check_interval=4)
    lines = [r.getMessage() for r in caplog.records if r.name == "vosc.progress"]
    steps = [int(m.group(1)) for ln in lines if (m := re.match(r"step (\d+)/7 · epoch 0 · loss ", ln))]
    assert steps == [1, 4, 7], lines
    assert all(re.search(r"· [0-9.]+ steps/s · elapsed \d+s · ETA \S+ · val J&F ", ln) for ln in lines
               if ln.startswith("step"))
    assert "val J&F d1 0.250 d2 0.500" in lines[-1] and "val J&F -" in lines[0]
    assert any(ln.startswith("validation at step 4: J&F d1 0.250 d2 0.500") for ln in lines)
    assert re.search(r"loss (\d+\.\d{4})", lines[0])


def test_progress_log_every_seconds_and_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vosc.progress"):
        _fit([ProgressLog(every_n_steps=1000, every_s=1e-9)], max_steps=3, limit_val_batches=0)
        _fit([ProgressLog(enabled=False)], max_steps=3, limit_val_batches=0)
    steps = [ln.split(" · ")[0] for r in caplog.records if (ln := r.getMessage()).startswith("step")]
    assert steps == ["step 1/3", "step 2/3", "step 3/3"]


def test_progress_log_enhancer_dpsnr() -> None:
    """The enhancer stages validate ΔPSNR, not J&F: the lines show it."""
    trainer = L.Trainer(max_steps=10, logger=False, enable_checkpointing=False)
    trainer.callback_metrics["val/dpsnr"] = torch.tensor(0.3125)
    cb = ProgressLog()
    cb._start = 0.0
    assert cb.line(trainer, 5, 10.0, 0.5).endswith("loss 0.5000 · 0.50 steps/s · elapsed 10s · ETA 10s · "
                                                   "val ΔPSNR +0.312 dB")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.4, 42, 725, 11220, float("inf"), -1)] == [
        "0s", "42s", "12m05s", "3h07m", "?", "?"]
    with pytest.raises(ValueError, match="every_n_steps"):
        ProgressLog(every_n_steps=0)


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
    # stdout was a pipe: progress lines (step and loss) before the end, no Rich bar
    out = proc.stdout
    progress = re.search(r"step 1/1 · epoch 0 · loss \d+\.\d+ · ", out)
    assert progress and progress.start() < out.index("final metrics"), out[-3000:]
    assert "Epoch 0 · step" not in out
