"""Bootstrapped CE, soft Jaccard, top-k schedule and scalable-supervision weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vosc.losses import (
    SegmentationLoss,
    bootstrapped_cross_entropy,
    combine_depths,
    depth_weights,
    soft_jaccard_loss,
    top_k_ratio,
)
from vosc.losses.segmentation import top_k_count


def test_top_k_schedule_goes_from_all_pixels_to_final_share_over_mining_steps() -> None:
    # 100k total steps, ratio 0.5 -> the reference's 50k mining steps.
    assert top_k_ratio(0, 100_000) == 1.0
    assert top_k_ratio(25_000, 100_000) == pytest.approx(0.575)
    assert top_k_ratio(50_000, 100_000) == pytest.approx(0.15)
    assert top_k_ratio(90_000, 100_000) == pytest.approx(0.15)
    # scaled by the configured total: 400 steps -> 200 mining steps
    assert top_k_ratio(100, 400) == pytest.approx(0.575)
    with pytest.raises(ValueError, match="top_k_percent"):
        top_k_ratio(0, 10, top_k_percent=0.0)


def test_bootstrapped_ce_full_ratio_equals_plain_ce_and_topk_selects_hardest() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 3, (2, 1, 4, 5), generator=g)
    full = bootstrapped_cross_entropy(logits, target, 1.0)
    ref = F.cross_entropy(logits, target[:, 0], reduction="none").mean(dim=(1, 2))
    assert torch.allclose(full, ref, atol=1e-6)
    pixel = F.cross_entropy(logits, target[:, 0], reduction="none").reshape(2, -1)
    hard = bootstrapped_cross_entropy(logits, target, 0.25)  # k = 5 of 20
    expected = pixel.sort(dim=1, descending=True).values[:, :5].mean(dim=1)
    assert torch.allclose(hard, expected, atol=1e-6)
    assert (hard >= full).all()


def test_soft_jaccard_is_zero_for_perfect_and_one_for_disjoint_predictions() -> None:
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[..., :2, :] = 1
    perfect = F.one_hot(target[:, 0], 3).permute(0, 3, 1, 2).float() * 1e4
    assert soft_jaccard_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-4)
    wrong = F.one_hot(1 - target[:, 0], 3).permute(0, 3, 1, 2).float() * 1e4
    assert soft_jaccard_loss(wrong, target).item() == pytest.approx(1.0, abs=1e-4)
    # classes absent from the target (id 2) do not count
    uniform = torch.zeros(1, 3, 4, 4)
    iou = (1 / 3 * 8) / (16 / 3 + 8 - 8 / 3)
    assert soft_jaccard_loss(uniform, target).item() == pytest.approx(1 - iou, abs=1e-5)


def test_segmentation_loss_is_half_ce_half_jaccard_and_has_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 1, 8, 8), generator=g)
    loss_fn = SegmentationLoss()
    out = loss_fn(logits, target, step=0, total_steps=100)
    expected = 0.5 * bootstrapped_cross_entropy(logits, target) + 0.5 * soft_jaccard_loss(logits, target)
    assert out.shape == (2,)
    assert torch.allclose(out, expected)
    out.mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_depth_weights_follow_alpha_powers() -> None:
    w = depth_weights([1, 2, 3], 2.0)
    assert [w[1], w[2], w[3]] == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert depth_weights([1, 2, 3], 1.0)[2] == pytest.approx(1 / 3)
    assert depth_weights([1, 2, 3], math.inf) == {1: 0.0, 2: 0.0, 3: 1.0}
    assert depth_weights([2], 4.0) == {2: 1.0}
    with pytest.raises(ValueError, match="alpha must be > 0"):
        depth_weights([1, 2], 0.0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        depth_weights([1, 2], -1.0)


def test_combine_depths_matches_formula_and_large_alpha_is_finite() -> None:
    losses = {1: torch.tensor(1.0), 2: torch.tensor(2.0), 3: torch.tensor(4.0)}
    assert combine_depths(losses, 2.0).item() == pytest.approx((1 + 4 + 16) / 7)
    assert combine_depths(losses, math.inf).item() == pytest.approx(4.0)
    assert math.isfinite(combine_depths(losses, 1e300).item())


def test_top_k_schedule_is_the_official_formula() -> None:
    """``r = min(1, step / (ratio * total + 1e-5))`` and ``k = int(share * (H*W))``, truncated (train-parity
    fixture: 16641 pixels -> 16641, 9568 and 2496 at steps 0, 25000, 80000 of 100000)."""
    assert top_k_ratio(25000, 100000) == 25000 / (50000 + 1e-5) * 0.15 + (1 - 25000 / (50000 + 1e-5))
    assert top_k_ratio(50000, 100000) != 0.15  # 1e-10 short of the end, as the official schedule
    assert top_k_ratio(80000, 100000) == 0.15
    assert [top_k_count(top_k_ratio(s, 100000), 129 * 129) for s in (0, 25000, 80000)] == [16641, 9568, 2496]
    # ratio * h * w rounds differently from ratio * (h * w): the count uses the product of the sides
    ratio, h, w = 0.29, 10, 10
    assert int(ratio * h * w) == 29 and int(ratio * (h * w)) == 28 and top_k_count(ratio, h * w) == 28
    logits = torch.randn(1, 2, 10, 10)
    target = torch.zeros(1, 1, 10, 10, dtype=torch.long)
    pixel = F.cross_entropy(logits, target[:, 0], reduction="none").flatten()
    expected = pixel.topk(28).values.mean()
    assert torch.allclose(bootstrapped_cross_entropy(logits, target, ratio), expected.view(1))


def test_loss_terms_are_the_parts_of_the_loss() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 9, 9), torch.randint(0, 3, (2, 1, 9, 9))
    loss = SegmentationLoss()
    terms = loss.terms(logits, target, 30000, 100000)
    assert torch.equal(loss(logits, target, 30000, 100000), 0.5 * terms["ce"] + 0.5 * terms["jaccard"])
    assert "jaccard" not in SegmentationLoss(jaccard_weight=0.0).terms(logits, target, 0, 1)
