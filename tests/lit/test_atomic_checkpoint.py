"""AtomicCheckpointIO: a checkpoint is either the old file or the complete new one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vosc.lit.callbacks import AtomicCheckpointIO


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_save_is_atomic(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(4)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    with pytest.raises(RuntimeError, match="cannot pickle"):
        io.save_checkpoint({"step": 2, "bad": _Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1  # the old checkpoint survives a failed save
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left
