"""Shared by the training tests: run ``train.run(cfg)`` with ``train.build`` wrapped (not replaced), and check
that a ``fast_dev_run`` really trained one step (tests/test_train_runs.py, tests/test_train_stcn.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402


def run_and_capture(cfg: DictConfig, monkeypatch: pytest.MonkeyPatch,
                     callbacks: list[Any] | None = None) -> tuple[float | None, Any, set[str]]:
    """``train.run(cfg)``, the trainer it built (``train.build`` wrapped, not replaced, ``callbacks`` added)
    and the names of the trainable network weights that the run changed."""
    built: list[Any] = []
    before: dict[str, torch.Tensor] = {}
    real_build = train.build

    def build(c: DictConfig) -> tuple[Any, Any, Any]:
        built.append(real_build(c))
        built[-1][2].callbacks.extend(callbacks or [])
        net = built[-1][1].model
        before.update({n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad})
        return built[-1]

    monkeypatch.setattr(train, "build", build)
    result = train.run(cfg)
    assert len(built) == 1
    after = dict(built[0][1].model.named_parameters())
    return result, built[0][2], {n for n, p in before.items() if not torch.equal(p, after[n].detach())}


def assert_trained_one_step(result: float | None, trainer: Any, changed: set[str]) -> None:
    """A ``fast_dev_run=1``: one optimizer step that changed the weights, with a finite training loss, then
    validation's J&F returned."""
    metrics = trainer.callback_metrics
    assert trainer.global_step == 1 and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 1
    assert changed, "no trainable weight changed"
    assert math.isfinite(float(metrics["train/loss"])) and float(metrics["train/loss"]) > 0
    assert result is not None and 0.0 <= result <= 1.0
    assert result == pytest.approx(float(metrics["val/J&F"]))
