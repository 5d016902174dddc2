"""VOSModule with an enhancer (DESIGN §8 stage 3): joint training step, optimiser groups, chunked
validation enhancement, initial weights from an enhancer checkpoint, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from vosc.config import ConfigError
from vosc.lit.enhancer_module import save_enhancer_weights
from vosc.lit.vos_module import VOSModule
from vosc.models.enhancer import CompressionAwareEnhancer, enhance_batch
from vosc.models.variants import build_model
from vosc.types import VOSBatch

TINY = {"d_model": 32, "ffn_dim": 64, "num_heads": 2, "droppath": 0.0}


def _batch(b: int = 2, t: int = 3, size: int = 64, seed: int = 0) -> VOSBatch:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(b, t, 1, size, size, dtype=torch.long)
    for i in range(t):  # two moving squares
        masks[:, i, :, 8 + 2 * i : 28 + 2 * i, 8:28] = 1
        masks[:, i, :, 36:56, 30 + 2 * i : 50 + 2 * i] = 2
    frames = torch.randn(b, t, 3, size, size, generator=g) * 0.2 + masks.float() * 0.8
    return VOSBatch(frames=frames, masks=masks, num_objects=torch.full((b,), 2), codec=["x265"] * b,
                    q=torch.full((b,), 42), bits=torch.full((b,), 8000),
                    sequences=[f"seq{i}" for i in range(b)], frame_qps=torch.full((b, t), 43.0),
                    frame_types=torch.tensor([[0] + [1] * (t - 1)] * b))


def _perturbed_enhancer(seed: int = 0) -> CompressionAwareEnhancer:
    """A tiny CAE whose zero-initialised tail is perturbed (a non-identity, "trained" enhancer)."""
    torch.manual_seed(seed)
    enh = CompressionAwareEnhancer(size="tiny")
    with torch.no_grad():
        enh.tail.weight.normal_(0, 0.05)
    return enh


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    now = dict(module.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, now[n].detach())]


def test_one_trainer_step_updates_enhancer_and_vos_and_checkpoint_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("aost", **TINY)
    enh = _perturbed_enhancer()
    mod = VOSModule(model=model, enhancer=enh, total_steps=4, lr=1e-3, enhancer_lr=1e-2, warmup_ratio=0.0,
                    enhancer_config={"_target_": "vosc.models.enhancer.CompressionAwareEnhancer",
                                     "size": "tiny"})
    vos0, enh0 = _snapshot(model), _snapshot(enh)
    opt = mod.configure_optimizers()["optimizer"]
    enh_group = [g for g in opt.param_groups if g.get("name") == "enhancer"]
    assert len(enh_group) == 1 and enh_group[0]["lr_ratio"] == pytest.approx(10.0)
    assert {id(p) for p in enh_group[0]["params"]} == {id(p) for p in enh.parameters()}
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(mod, DataLoader([_batch()], batch_size=None))
    vos_changed, enh_changed = _changed(vos0, model), _changed(enh0, enh)
    assert len(enh_changed) > len(enh0) // 2, f"enhancer barely updated: {enh_changed}"
    assert len(vos_changed) > len(vos0) // 2, "VOS model barely updated"
    # the checkpoint holds both networks and rebuilds the enhancer from its stored config
    path = tmp_path / "joint.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert any(k.startswith("enhancer.") for k in state["state_dict"])
    assert state["vosc"]["enhancer"]["class"] == "CompressionAwareEnhancer"
    back = VOSModule.load_from_checkpoint(path, model=build_model("aost", **TINY))
    assert isinstance(back.enhancer, CompressionAwareEnhancer)
    for name, p in enh.state_dict().items():
        assert torch.equal(back.enhancer.state_dict()[name], p), name


def test_training_and_validation_see_the_enhanced_frames() -> None:
    torch.manual_seed(0)
    model = build_model("aost", **TINY)
    enh = _perturbed_enhancer(1)
    batch = _batch(b=1, t=5, seed=2)
    with_enh = VOSModule(model=model, enhancer=enh, shuffle_ids=False, aux_weight=0.0, total_steps=10).eval()
    plain = VOSModule(model=model, shuffle_ids=False, aux_weight=0.0, total_steps=10).eval()
    assert plain.enhancer is None and torch.equal(plain.enhance(batch), batch.frames)
    with torch.no_grad():
        full = enhance_batch(enh, batch)
        assert not torch.allclose(full, batch.frames)
        # chunked enhancement (validation) = whole-clip enhancement: each chunk sees its 2 previous frames
        assert torch.allclose(with_enh.enhance(batch, chunk=2), full, atol=1e-5)
        torch.manual_seed(3)
        l_enh = float(with_enh.training_step(batch, 0))
        torch.manual_seed(3)
        l_plain = float(plain.training_step(batch, 0))
        torch.manual_seed(3)
        l_fed = float(plain.training_step(VOSBatch(**{**batch.__dict__, "frames": full}), 0))
    assert l_enh != pytest.approx(l_plain, rel=1e-6)
    assert l_enh == pytest.approx(l_fed, rel=1e-5)  # training = plain VOS on the enhanced frames
    with_enh.on_validation_epoch_start()
    with_enh.validation_step(batch, 0)
    assert torch.allclose(with_enh.vis_sample["enhanced_frames"], full[0, :5], atol=1e-5)


def test_enhancer_checkpoint_initialises_the_enhancer(tmp_path: Path) -> None:
    trained = _perturbed_enhancer(4)
    ckpt = save_enhancer_weights(trained, tmp_path / "s2.ckpt")
    model = build_model("aost", **TINY)
    mod = VOSModule(model=model, enhancer=CompressionAwareEnhancer(size="tiny"), enhancer_ckpt=str(ckpt))
    for name, p in trained.state_dict().items():
        assert torch.equal(mod.enhancer.state_dict()[name], p), name
    assert "enhancer_ckpt" not in mod.hparams and mod.enhancer_init == str(ckpt)
    with pytest.raises(ConfigError, match=r"enhancer_ckpt=.*no enhancer"):
        VOSModule(model=model, enhancer_ckpt=str(ckpt))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        VOSModule(model=model, enhancer=CompressionAwareEnhancer(size="tiny"),
                  enhancer_ckpt=str(tmp_path / "missing.ckpt"))
