"""Fixtures of the inference tests: a tiny randomly initialised AOST and a small synthetic video."""

from __future__ import annotations

import pytest
import torch

from vosc.models.variants import build_model
from vosc.models.vos_model import VOSModel


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every inference test runs on one intra-op thread (see ``one_torch_thread``)."""


@pytest.fixture(scope="session")
def tiny_aost() -> VOSModel:
    """AOST (MobileNetV2, 3 S-LSTT layers) with narrow tokens, random weights, eval mode."""
    torch.manual_seed(0)
    return build_model("aost", d_model=64, num_heads=4, ffn_dim=128, droppath=0.0).eval()
