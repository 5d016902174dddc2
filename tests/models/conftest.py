"""Fixtures of the model tests: small inputs with two objects."""

from __future__ import annotations

import pytest
import torch


def make_clip(h: int, w: int, t: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames ``(1, T, 3, h, w)`` and masks ``(1, T, 1, h, w)`` with objects 1 and 2."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(1, t, 3, h, w, generator=g)
    masks = torch.zeros(1, t, 1, h, w, dtype=torch.long)
    for i in range(t):
        masks[0, i, 0, h // 4 : h // 2, w // 4 + i : w // 2 + i] = 1
        masks[0, i, 0, h // 2 :, (3 * w) // 5 :] = 2
    return frames, masks


@pytest.fixture
def clip65() -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-frame 65×81 clip (sides 16k+1)."""
    return make_clip(65, 81)
