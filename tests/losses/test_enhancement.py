"""Enhancer losses: Charbonnier, feature matching through a frozen encoder, task-loss wrapper."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vosc.losses.enhancement import CharbonnierLoss, FeatureMatchingLoss, TaskLoss, charbonnier


class TwoLevelEncoder(nn.Module):
    """A small real conv encoder returning two feature levels (1/2 and 1/4)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = torch.relu(self.c1(x))
        return [f1, torch.relu(self.c2(f1))]


def test_charbonnier_values() -> None:
    a = torch.zeros(2, 3, 3, 4, 4)
    assert math.isclose(charbonnier(a, a, eps=1e-3).item(), 1e-3, rel_tol=1e-5)
    b = a + 0.5
    assert math.isclose(charbonnier(a, b, eps=1e-3).item(), math.sqrt(0.25 + 1e-6), rel_tol=1e-6)
    assert torch.equal(CharbonnierLoss(1e-2)(a, b), charbonnier(a, b, 1e-2))
    with pytest.raises(ValueError, match="differ"):
        charbonnier(a, a[:, :2])


def test_feature_matching_is_zero_on_raw_and_trains_only_the_input() -> None:
    enc = TwoLevelEncoder()
    loss = FeatureMatchingLoss(enc, weights=[1.0, 2.0])
    assert all(not p.requires_grad for p in enc.parameters())
    raw = torch.randn(2, 3, 3, 16, 16)
    assert loss(raw.clone(), raw).item() == 0.0
    enhanced = (raw + 0.3 * torch.randn_like(raw)).requires_grad_(True)
    value = loss(enhanced, raw)
    assert value.item() > 0.01
    value.backward()
    assert enhanced.grad is not None and enhanced.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())
    closer = loss(raw + 0.1 * (enhanced.detach() - raw), raw)
    assert closer < value
    with pytest.raises(ValueError, match="feature levels"):
        FeatureMatchingLoss(enc, weights=[1.0])(raw, raw)
    with pytest.raises(ValueError, match="shapes"):
        loss(raw[:, :2], raw)


def test_task_loss_wrapper_weights_any_callable() -> None:
    frames = torch.randn(1, 2, 3, 8, 8, requires_grad=True)
    target = torch.zeros(1, 2, 3, 8, 8)
    wrapper = TaskLoss(lambda x, t: ((x - t) ** 2).mean(), weight=0.1)
    value = wrapper(frames, target)
    assert torch.allclose(value, 0.1 * ((frames - target) ** 2).mean())
    value.backward()
    assert frames.grad is not None
    with pytest.raises(ValueError, match="scalar"):
        TaskLoss(lambda x: x, weight=1.0)(frames)


def test_vos_task_loss_shows_the_model_frames_at_its_evaluation_scale() -> None:
    """``scale`` resizes the clip as ``segmenter.scales`` does: 16k+1 sides for AOST, ids by nearest, and the
    loss is the cross-entropy at that size (a model seeing other sizes than evaluation learns other
    artefacts)."""
    from vosc.losses.enhancement import VOSTaskLoss
    from vosc.models.variants import build_model

    torch.manual_seed(0)
    vos = build_model("aost_tiny", pretrained=False).eval().requires_grad_(False)
    frames = torch.randn(1, 2, 3, 33, 49)
    masks = torch.zeros(1, 2, 1, 33, 49, dtype=torch.long)
    masks[..., 8:20, 10:30] = 1
    loss3 = VOSTaskLoss(vos, scale=3.0)
    f3, m3 = loss3.rescale(frames, masks)
    assert f3.shape == (1, 2, 3, 97, 145) and m3.shape == (1, 2, 1, 97, 145)  # (33-1)*3+1, (49-1)*3+1
    assert m3.dtype == torch.long and set(m3.unique().tolist()) == {0, 1}
    assert m3.float().mean().item() == pytest.approx(masks.float().mean().item(), abs=0.02)
    f1, m1 = VOSTaskLoss(vos).rescale(frames, masks)
    assert f1 is frames and m1 is masks
    num = torch.tensor([1])
    l1, l3 = VOSTaskLoss(vos)(frames, masks, num), loss3(frames, masks, num)
    assert torch.isfinite(l3) and not torch.isclose(l1, l3)
    with pytest.raises(ValueError, match="scale must be positive"):
        VOSTaskLoss(vos, scale=0.0)
