"""VOSModule: identity shuffling, parameter groups and schedules, checks, a real training step."""

from __future__ import annotations

import math

import pytest
import torch

from vosc.config import ConfigError
from vosc.lit.vos_module import (
    NonFiniteLossError,
    VOSModule,
    apply_permutation,
    shuffle_permutation,
    unshuffle_logits,
)
from vosc.models.variants import build_model
from vosc.types import VOSBatch
from vosc.utils.optim import WarmupPolyLR, param_groups, warmup_poly_lr

TINY = {"d_model": 32, "ffn_dim": 64, "num_heads": 2, "droppath": 0.0}


@pytest.fixture(scope="module")
def tiny_aost() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("aost", **TINY)


def _batch(b: int = 2, t: int = 3, size: int = 64, n_obj: int = 2, seed: int = 0) -> VOSBatch:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(b, t, 1, size, size, dtype=torch.long)
    for i in range(t):  # two moving squares
        masks[:, i, :, 8 + 2 * i : 28 + 2 * i, 8:28] = 1
        masks[:, i, :, 36:56, 30 + 2 * i : 50 + 2 * i] = 2 if n_obj > 1 else 0
    frames = torch.randn(b, t, 3, size, size, generator=g) * 0.2 + masks.float() * 0.8
    return VOSBatch(frames=frames, masks=masks, num_objects=torch.full((b,), n_obj), codec=["x265"] * b,
                    q=torch.full((b,), 42), bits=torch.full((b,), 8000),
                    sequences=[f"seq{i}" for i in range(b)])


def test_shuffle_keeps_background_and_unshuffle_inverts_it() -> None:
    torch.manual_seed(1)
    perm = shuffle_permutation(11, 4)
    assert (perm[:, 0] == 0).all()
    assert all(sorted(p.tolist()) == list(range(11)) for p in perm)
    assert not all((p == torch.arange(11)).all() for p in perm)
    logits = torch.randn(4, 11, 5, 5)  # original identity space
    shuffled = torch.empty_like(logits)
    for b in range(4):
        shuffled[b, perm[b]] = logits[b]  # network sees object k as perm[k]
    n_obj = torch.tensor([1, 2, 3, 10])
    back = unshuffle_logits(shuffled, perm, n_obj)
    for b in range(4):
        k = int(n_obj[b]) + 1
        assert torch.allclose(back[b, :k], logits[b, :k])
        assert (back[b, k:] == -1e4).all()
    masks = torch.randint(0, 3, (4, 1, 5, 5))
    relabelled = apply_permutation(masks, perm)
    for b in range(4):
        assert torch.equal(relabelled[b], perm[b][masks[b]])


def test_param_groups_follow_reference_rules(tiny_aost: torch.nn.Module) -> None:
    groups = param_groups(tiny_aost, weight_decay=0.07, encoder_lr_ratio=0.1)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(tiny_aost.named_parameters())
    for name, p in named.items():
        if not p.requires_grad:
            assert id(p) not in by_param, f"frozen parameter {name} is optimised"
            continue
        g = by_param[id(p)]
        no_wd = p.ndim <= 1 or "relative_emb_v" in name or "conv_out" in name
        assert g["weight_decay"] == (0.0 if no_wd else 0.07), name
        assert g["lr_ratio"] == (0.1 if name.startswith("encoder.") else 1.0), name
        assert g["freeze_after_switch"] == ("id_bank" in name), name
    assert any(not p.requires_grad for n, p in named.items() if n.startswith("encoder."))  # stem frozen


def test_param_groups_give_stcn_pretrained_encoders_the_encoder_ratio() -> None:
    """STCN's pretrained backbones (key encoder, value encoder's net) take ``encoder_lr_ratio``; the value
    encoder's fusion block, new in STCN, trains at the full rate (as every AOST part outside ``encoder.``)."""
    from vosc.models.stcn import STCN

    model = STCN("resnet18", "resnet18", key_dim=16, value_dim=32, key_comp_dim=32, decoder_dims=(32, 16, 16))
    groups = param_groups(model, weight_decay=0.03, encoder_lr_ratio=0.1,
                          encoder_prefix=model.encoder_prefixes)
    by_param = {id(p): g for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    for name, p in names.items():
        pretrained = name.startswith(("key_encoder.", "value_encoder.net."))
        assert by_param[id(p)]["lr_ratio"] == (0.1 if pretrained else 1.0), name
    assert any(n.startswith("value_encoder.fuser.") for n in names)
    assert {g["name"] for g in param_groups(model, 0.03, encoder_prefix="encoder.")} == \
        {"other", "other_no_wd"}


def test_warmup_poly_schedule_with_encoder_ratio_and_id_bank_freeze(tiny_aost: torch.nn.Module) -> None:
    assert warmup_poly_lr(0, 100, 1e-3, 1e-5) == pytest.approx(1e-5)
    assert warmup_poly_lr(5, 100, 1e-3, 1e-5) == pytest.approx(1e-3)
    assert warmup_poly_lr(100, 100, 1e-3, 1e-5) == pytest.approx(1e-5 + (1e-3 - 1e-5) * (1 / 96) ** 0.9)
    opt = torch.optim.AdamW(param_groups(tiny_aost, 0.07), lr=1e-3)
    sched = WarmupPolyLR(opt, total_steps=100, base_lr=1e-3, min_lr=1e-5, switch_step=50)
    for _ in range(10):
        opt.step()
        sched.step()
    now = warmup_poly_lr(10, 100, 1e-3, 1e-5)
    for g in opt.param_groups:
        expect = 1e-5 + (now - 1e-5) * g["lr_ratio"]
        assert g["lr"] == pytest.approx(expect)
    for _ in range(45):
        opt.step()
        sched.step()
    frozen = [g for g in opt.param_groups if g["freeze_after_switch"]]
    assert frozen and all(g["lr"] == 0.0 for g in frozen)


def test_config_errors_list_valid_choices(tiny_aost: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match=r"valid choices: \[1, 2, 3\]"):
        VOSModule(model=tiny_aost, depths=[2, 4])
    with pytest.raises(ConfigError, match=r"alpha=.* must be > 0"):
        VOSModule(model=tiny_aost, alpha=0.0)
    aot = build_model("aotb", **TINY)
    with pytest.raises(ConfigError, match=r"full depth only; valid choice: \[3\]"):
        VOSModule(model=aot, depths=[1, 2, 3])
    assert VOSModule(model=aot).depths == [3]
    assert VOSModule(model=tiny_aost).depths == [1, 2, 3]
    assert VOSModule(model=tiny_aost, alpha=math.inf).alpha == math.inf


def test_aux_weight_decays_linearly_to_zero(tiny_aost: torch.nn.Module) -> None:
    """The official formula ``w * max(A - step, 0) / A`` with ``A = ratio * total + 1e-5``: the step at
    exactly ``ratio * total`` still has a weight of ``1e-5 / A``."""
    mod = VOSModule(model=tiny_aost, total_steps=100, aux_weight=1.0, aux_ratio=0.5)
    assert mod.aux_weight_at(0) == 1.0
    assert mod.aux_weight_at(25) == (50 + 1e-5 - 25) / (50 + 1e-5)
    assert mod.aux_weight_at(50) == ((50 + 1e-5) - 50) / (50 + 1e-5) and mod.aux_weight_at(80) == 0.0
    official = VOSModule(model=tiny_aost, total_steps=100000)  # the train-parity fixture's values
    assert official.aux_weight_at(25000) == 0.750000000025
    assert official.aux_weight_at(80000) == 0.20000000008000002
    assert VOSModule(model=tiny_aost, total_steps=100, aux_weight=0.0).aux_weight_at(0) == 0.0


@pytest.mark.parametrize("switch", [1.0, 0.0], ids=["memory-from-gt", "memory-from-predictions"])
def test_training_step_gives_finite_loss_and_gradients_everywhere(tiny_aost: torch.nn.Module,
                                                                  switch: float) -> None:
    torch.manual_seed(0)
    mod = VOSModule(model=tiny_aost, total_steps=10, seq_switch_ratio=switch)
    loss = mod.training_step(_batch(), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in tiny_aost.named_parameters() if p.requires_grad and p.grad is None]
    # memory from predictions: every identity embedding is detached (official freeze_id), the ID bank
    # (and AOST's id_norm) get no gradient at all; with ground-truth memory every parameter gets one
    ids = [n for n, _ in tiny_aost.named_parameters() if n.startswith("id_bank.")]
    expected = ids if switch == 0.0 else []
    assert missing == expected, missing
    tiny_aost.zero_grad(set_to_none=True)


def test_alpha_weights_the_depth_losses(tiny_aost: torch.nn.Module) -> None:
    """The returned loss is ``sum_d alpha^d L_d / sum_d alpha^d`` of the per-depth losses the step logs
    (written out here, not through ``depth_weights``), for several alphas; ``inf`` keeps only the deepest."""
    batch = _batch(seed=3)
    for alpha in (0.5, 1.0, 2.0, 4.0, math.inf):
        torch.manual_seed(5)
        mod = VOSModule(model=tiny_aost, total_steps=10, alpha=alpha, aux_weight=0.0, shuffle_ids=False)
        mod.eval()
        logged: dict[str, float] = {}

        def capture(values: dict, logged: dict[str, float] = logged, **_: object) -> None:
            logged.update({k: float(v) for k, v in values.items()})

        mod.log_dict = capture  # type: ignore[method-assign]  # the step's per-depth values, as it logs them
        with torch.no_grad():
            loss = float(mod.training_step(batch, 0))
        per_depth = [logged[f"train/loss_d{d}"] for d in (1, 2, 3)]
        assert len({round(v, 6) for v in per_depth}) == 3, per_depth  # the depths' losses differ
        if math.isinf(alpha):
            want = per_depth[2]
        else:
            weights = [alpha**d for d in (1, 2, 3)]
            want = sum(w * v for w, v in zip(weights, per_depth, strict=True)) / sum(weights)
        assert loss == pytest.approx(want, rel=2e-6), (alpha, loss, per_depth)
        assert logged["train/loss"] == pytest.approx(loss)


def test_non_finite_loss_names_step_batch_and_sequences(tiny_aost: torch.nn.Module) -> None:
    batch = _batch()
    batch.frames[0, 1, 0, 0, 0] = float("nan")
    mod = VOSModule(model=tiny_aost, total_steps=10)
    with pytest.raises(NonFiniteLossError, match=r"step 0, batch 7, .*\['seq0', 'seq1'\]"):
        mod.training_step(batch, 7)


def test_predict_clip_resizes_to_the_network_size_and_returns_input_size(tiny_aost: torch.nn.Module) -> None:
    batch = _batch(b=1, t=3, size=64)
    frames = batch.frames[..., :60, :50]
    mod = VOSModule(model=tiny_aost)
    mod.eval()
    pred = mod.predict_clip(frames, batch.masks[:, 0, :, :60, :50], batch.num_objects, depth=2)
    assert pred.shape == (1, 3, 60, 50)
    assert torch.equal(pred[:, 0], batch.masks[:, 0, 0, :60, :50])
    assert int(pred.max()) <= 2
