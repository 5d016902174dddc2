"""Issue 26 item 1: ``last.ckpt`` is always the newest state, written by one owner, never as ``last-vN.ckpt``.

The pre-emption callback wrote ``last.ckpt`` first (e.g. at step 6 with ``every_n_train_steps=3``);
Lightning's ``ModelCheckpoint(save_last=True)`` then found the file there and saved the final weights as
``last-v1.ckpt``, leaving ``last.ckpt`` at step 6. The same after a SIGTERM and a resume with
``ckpt_path=last``. First with a small module in process, then through ``train.py`` as a user runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from vosc.lit.callbacks import AtomicCheckpointIO
from vosc.lit.preemption import PreemptionCheckpoint

REPO = Path(__file__).resolve().parents[2]


class _Tiny(L.LightningModule):
    def __init__(self, signal_at: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.signal_at = signal_at

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.layer(batch[0]).square().mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/score", -self.layer(batch[0]).square().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _model_checkpoint(root: Path) -> L.Callback:
    """The run's ``ModelCheckpoint`` exactly as ``conf/callbacks/model_checkpoint.yaml`` builds it."""
    node = OmegaConf.load(REPO / "conf" / "callbacks" / "model_checkpoint.yaml").model_checkpoint
    node.dirpath = str(root / "checkpoints")
    node.monitor = "val/score"
    return instantiate(node)


def _fit(root: Path, max_steps: int, module: _Tiny, ckpt_path: str | None = None) -> None:
    callbacks = [_model_checkpoint(root), PreemptionCheckpoint(every_n_train_steps=3, every_minutes=None)]
    trainer = L.Trainer(max_steps=max_steps, callbacks=callbacks, default_root_dir=root, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        val_check_interval=4, check_val_every_n_epoch=None, limit_val_batches=1,
                        plugins=[AtomicCheckpointIO()])
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=2)
    trainer.fit(module, data, data, ckpt_path=ckpt_path)


def _last(root: Path) -> dict:
    names = sorted(p.name for p in (root / "checkpoints").glob("last*.ckpt"))
    assert names == ["last.ckpt"], names  # no last-v1.ckpt
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _same_weights(ckpt: dict, module: torch.nn.Module) -> bool:
    return all(torch.equal(ckpt["state_dict"][k], v) for k, v in module.state_dict().items())


def test_last_ckpt_holds_the_final_step_and_weights_after_preemption_saves(tmp_path: Path) -> None:
    module = _Tiny()
    _fit(tmp_path, 10, module)  # pre-emption saves at 3, 6, 9; validation at 4, 8; the end at 10
    ckpt = _last(tmp_path)
    assert ckpt["global_step"] == 10 and _same_weights(ckpt, module)


def test_last_ckpt_holds_the_final_step_after_sigterm_and_resume(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _fit(tmp_path, 20, _Tiny(signal_at=4))
    assert exc.value.code == 128 + signal.SIGTERM
    assert _last(tmp_path)["global_step"] == 5
    module = _Tiny()
    _fit(tmp_path, 11, module, ckpt_path="last")
    ckpt = _last(tmp_path)
    assert ckpt["global_step"] == 11 and _same_weights(ckpt, module)


@pytest.mark.slow
def test_train_py_last_ckpt_is_the_final_state_with_step_based_preemption_saves(tmp_path: Path) -> None:
    """``train.py`` as a user runs it: 8 steps, pre-emption saves every 3, validation only at step 8 (so the
    best checkpoint holds the final weights too)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    argv = [sys.executable, str(REPO / "train.py"), f"paths.root_dir={tmp_path}", "experiment=tiny",
            "logger=csv",
            "trainer.max_steps=8", "lit.total_steps=8", "trainer.val_check_interval=8",
            "callbacks.mask_images=null", "callbacks.preemption.every_minutes=null",
            "callbacks.preemption.every_n_train_steps=3", "callbacks.rich_progress_bar=null",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = _last(tmp_path / "run")
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    final = torch.load(best, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == final["global_step"] == 8
    assert all(torch.equal(v, final["state_dict"][k]) for k, v in ckpt["state_dict"].items())


def test_a_second_writer_of_last_ckpt_is_refused(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [ModelCheckpoint(save_last=True), PreemptionCheckpoint()]
    trainer = L.Trainer(max_steps=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                        callbacks=callbacks, accelerator="cpu")
    data = DataLoader(TensorDataset(torch.randn(4, 4)), batch_size=2)
    with pytest.raises(ValueError, match="would both write last.ckpt .* use vosc.lit.checkpointing.RunCheck"):
        trainer.fit(_Tiny(), data)
