"""Fixtures of the inference tests: a tiny randomly initialised AOST and a small synthetic video."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vosc.models.vos_model import VOSModel, build_model


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the CI machine has 2 shared cores; spinning threads slow small ops 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_aost() -> VOSModel:
    """AOST (MobileNetV2, 3 S-LSTT layers) with narrow tokens, random weights, eval mode."""
    torch.manual_seed(0)
    return build_model("aost", d_model=64, num_heads=4, ffn_dim=128, droppath=0.0).eval()
