"""Object groups and soft logit aggregation for more than ``max_obj`` objects."""

from __future__ import annotations

import torch

from vosc.inference.objects import group_counts, num_groups, soft_aggregate, split_ids


def test_group_counts():
    assert num_groups(0, 10) == 1 and num_groups(10, 10) == 1 and num_groups(11, 10) == 2
    assert group_counts(12, 10) == [10, 2]
    assert group_counts(20, 10) == [10, 10]
    assert group_counts(3, 10) == [3]


def test_split_ids_maps_each_group_to_local_ids():
    mask = torch.tensor([0, 1, 10, 11, 12, 21])
    assert split_ids(mask, 0, 10).tolist() == [0, 1, 10, 0, 0, 0]
    assert split_ids(mask, 1, 10).tolist() == [0, 0, 0, 1, 2, 0]
    assert split_ids(mask, 2, 10).tolist() == [0, 0, 0, 0, 0, 1]


def test_soft_aggregate_single_group_is_identity():
    x = torch.randn(1, 11, 3, 4)
    assert soft_aggregate([x], 10) is x


def test_soft_aggregate_maths():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 5, 6, generator=g), torch.randn(2, 4, 5, 6, generator=g)
    b[:, 3] = float("-inf")  # an unused identity of the second group
    merged = soft_aggregate([a, b], 3)
    assert merged.shape == (2, 7, 5, 6)
    pa, pb = a.softmax(1), b.softmax(1)
    probs = torch.sigmoid(merged)  # the inverse of the logit
    torch.testing.assert_close(probs[:, 0], (pa[:, 0] * pb[:, 0]).clamp(1e-5, 1 - 1e-5))
    torch.testing.assert_close(probs[:, 1:4], pa[:, 1:].clamp(1e-5, 1 - 1e-5))
    torch.testing.assert_close(probs[:, 4:6], pb[:, 1:3].clamp(1e-5, 1 - 1e-5))
    assert torch.allclose(probs[:, 6], torch.tensor(1e-5))
    # a pixel that group 0 is sure about wins over everything
    a2 = torch.zeros(1, 4, 1, 1)
    a2[0, 2] = 20.0
    assert soft_aggregate([a2, torch.zeros(1, 4, 1, 1)], 3).argmax(1).item() == 2


def test_unbounded_family_uses_one_group():
    """``max_objects=None`` (STCN-like families): every object in one group, ids and logits unchanged."""
    assert num_groups(25, None) == 1 and group_counts(25, None) == [25]
    mask = torch.tensor([[0, 3, 25]])
    assert torch.equal(split_ids(mask, 0, None), mask)
    logits = torch.randn(1, 26, 2, 2)
    assert soft_aggregate([logits], None) is logits
