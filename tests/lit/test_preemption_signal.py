"""PreemptionCheckpoint against Lightning's own SIGTERM handling: a SIGTERM that arrives *during* a batch
must end the run with status 128 + 15 after writing last.ckpt, not with Lightning's ``SIGTERMException``
(status 0).

Lightning registers its SIGTERM handler after the callbacks' ``setup``, composed with ours; its flag made the
loop exit at the end of the same batch, before the callback's exit. Deterministic here: the signal is sent
from inside a training step."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from vosc.lit.preemption import PreemptionCheckpoint


class _Tiny(L.LightningModule):
    def __init__(self, signal_at: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.signal_at = signal_at

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)  # handled before the step returns: mid-batch
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_sigterm_during_a_batch_exits_with_143_after_writing_last_ckpt(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    cb = PreemptionCheckpoint(every_n_train_steps=None, every_minutes=None)
    trainer = L.Trainer(max_steps=20, callbacks=[cb], default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=2)
    with pytest.raises(SystemExit) as exc:
        trainer.fit(_Tiny(signal_at=3), data)
    assert exc.value.code == 128 + signal.SIGTERM
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4  # the batch that was running when the signal came completed
    # after the run the signal gets what it had before (Lightning's teardown may leave our handler installed,
    # inactive: it then defers to the earlier handler)
    handler = signal.getsignal(signal.SIGTERM)
    assert handler == before or (handler == cb._handler and not cb._active)
