"""The training computation (vosc.lit.training_loss): the differences to the official AOST engine that the
train-parity fixture exposed, each written out here independently of the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vosc.lit.training_loss import clip_training_loss, shuffle_permutation
from vosc.losses.segmentation import SegmentationLoss
from vosc.models.variants import build_model
from vosc.models.vos_model import VOSModel

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="module")
def tiny_aost() -> VOSModel:
    torch.manual_seed(0)
    model = build_model("aost", d_model=32, ffn_dim=64, num_heads=2, droppath=0.0)
    assert isinstance(model, VOSModel)
    return model.train()


def _clip(b: int = 2, t: int = 4, size: int = 49) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    masks = torch.zeros(b, t, 1, size, size, dtype=torch.long)
    for i in range(t):
        masks[:, i, :, 4 + 2 * i : 20 + 2 * i, 6:22] = 1
        masks[0, i, :, 28:44, 20 + 2 * i : 36 + 2 * i] = 2  # sample 1 has one object only
    frames = torch.randn(b, t, 3, size, size, generator=g) * 0.2 + masks.float() * 0.7
    return frames, masks


def _run(model: VOSModel, step: int, aux_weight: float, from_pred: bool):  # type: ignore[no-untyped-def]
    frames, masks = _clip()
    perm = shuffle_permutation(11, 2, torch.Generator().manual_seed(3))
    return clip_training_loss(model, SegmentationLoss(), frames, masks, torch.tensor([2, 1]), perm, step=step,
                              total_steps=100000, depths=[1, 2, 3], alpha=2.0, aux_weight=aux_weight,
                              memory_from_pred=from_pred, long_term_gap=2), masks


@pytest.mark.parametrize("from_pred", [False, True], ids=["memory-from-gt", "memory-from-predictions"])
def test_predicted_memory_detaches_every_identity_embedding(tiny_aost: VOSModel, from_pred: bool) -> None:
    """Official ``freeze_id``: with predicted memory the ID bank and id_norm get no gradient at all (None,
    not zero; the reference's identities are detached too), so they do not count in the clipped norm.
    vosc used to give them gradients and only zero their learning rate."""
    tiny_aost.zero_grad(set_to_none=True)
    out, _ = _run(tiny_aost, 80000 if from_pred else 0, 0.2, from_pred)
    out.loss.backward()
    none = sorted(n for n, p in tiny_aost.named_parameters() if p.requires_grad and p.grad is None)
    ids = sorted(n for n, _ in tiny_aost.named_parameters() if n.startswith("id_bank."))
    assert none == (ids if from_pred else [])
    assert len(ids) == 4  # conv weight/bias and the AOST LayerNorm
    assert tiny_aost.detach_ids is False  # restored
    tiny_aost.zero_grad(set_to_none=True)


def test_aux_and_propagated_losses_are_averaged_separately(tiny_aost: VOSModel) -> None:
    """Per frame and sample ``(1 L_1 + 2 L_2 + 4 L_3) / 7``; ``aux`` = mean over samples of frame 0,
    ``pred`` = one mean over frames 1..T-1 and samples, ``loss = aux_weight * aux + pred`` (not a mean over
    all frames); the per-sample losses use only the sample's own identities."""
    with torch.no_grad():
        out, masks = _run(tiny_aost, 25000, 0.75, False)
    loss_fn = SegmentationLoss()
    per = torch.stack([torch.stack([loss_fn(out.logits[t][d], masks[:, t], 25000, 100000) for d in (1, 2, 3)])
                       for t in range(4)])  # (T, D, B)
    assert torch.equal(per, out.depth_loss)
    frame = (1 * per[:, 0] + 2 * per[:, 1] + 4 * per[:, 2]) / 7
    assert torch.allclose(out.frame_loss, frame, atol=1e-6)
    assert torch.allclose(out.aux_loss, frame[0].mean(), atol=1e-6)
    assert torch.allclose(out.pred_loss, frame[1:].mean(), atol=1e-6)
    assert torch.allclose(out.loss, 0.75 * frame[0].mean() + frame[1:].mean(), atol=1e-6)
    assert not torch.allclose(out.loss, frame.mean(), atol=1e-4)
    assert bool((out.logits[1][3][1, 2:] == -1e4).all())  # sample 1: identities above its 1 object masked
    assert len(out.raw_logits) == 4 and out.raw_logits[0][3].shape == (2, 11, 13, 13)


def test_zero_aux_weight_skips_the_reference_without_moving_the_memory_gap(tiny_aost: VOSModel) -> None:
    """The reference decode is not a frame step, so with or without it the propagated frames see the same
    memory (frame 2 joins the long-term memory 2 frames after the reference): identical losses."""
    with torch.no_grad():
        with_ref, _ = _run(tiny_aost, 0, 1.0, False)
        without, _ = _run(tiny_aost, 0, 0.0, False)
    assert torch.isnan(without.depth_loss[0]).all() and float(without.aux_loss) == 0.0
    assert without.logits[0] == {} and without.raw_logits[0] == {}
    assert torch.equal(with_ref.depth_loss[1:], without.depth_loss[1:])


def test_ddp_strategies_allow_parameters_without_gradient() -> None:
    """With predicted memory the ID bank gets no gradient: DDP must not wait for it."""
    for name in ("ddp", "ddp_cpu"):
        strategy = str(OmegaConf.load(CONF / "trainer" / f"{name}.yaml").strategy)
        assert strategy.endswith("find_unused_parameters_true"), (name, strategy)
