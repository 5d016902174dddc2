"""timm encoders: feature shapes/strides, frozen parts, and loading torchvision-named weight files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from vosc.models.encoder.timm_backbone import FrozenBatchNormAct2d, TimmBackbone


@pytest.mark.parametrize("name,size,dims", [("mobilenetv2", (65, 97), (24, 32, 96, 1280)),
                                            ("mobilenetv2_075", (65, 97), (24, 24, 72, 1280)),
                                            ("mobilenetv2_050", (65, 97), (16, 16, 48, 1280)),
                                            ("resnet50", (65, 97), (256, 512, 1024, 1024))])
def test_features_strides_and_freezing(name: str, size: tuple[int, int], dims: tuple[int, ...]) -> None:
    enc = TimmBackbone(name)
    feats = enc(torch.randn(1, 3, *size))
    assert [f.shape[1] for f in feats] == list(dims)
    assert [tuple(f.shape[-2:]) for f in feats] == [(17, 25), (9, 13), (5, 7), (5, 7)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, FrozenBatchNormAct2d) for m in enc.modules())
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    mbv2 = name.startswith("mobilenetv2")
    stem = "net.conv_stem.weight" if mbv2 else "net.conv1.weight"
    first = "net.blocks.1.0.conv_pw.weight" if mbv2 else "net.layer1.0.conv1.weight"
    second = "net.blocks.2.0.conv_pw.weight" if mbv2 else "net.layer2.0.conv1.weight"
    assert stem in frozen and first in frozen and second not in frozen
    assert all(not n.endswith(("running_mean", "running_var")) for n, _ in enc.named_parameters())


@pytest.mark.parametrize(("name", "dims"), [
    ("mobilenetv2", (24, 32, 96, 1280)), ("mobilenetv2_075", (24, 24, 72, 1280)),
    ("mobilenetv2_050", (16, 16, 48, 1280)), ("resnet50", (256, 512, 1024, 1024)),
    ("resnet18", (64, 128, 256, 256)), ("swin_base", (128, 256, 512, 512)),
])
def test_encoder_widths_come_from_timm_feature_info(name: str, dims: tuple[int, ...]) -> None:
    """The widths (read from timm's feature_info, no table) are those of the official encoders, and the
    feature maps have them."""
    enc = TimmBackbone(name, freeze_bn=False, freeze_at=0)
    assert enc.dims == dims
    feats = enc(torch.randn(1, 3, 64, 64))
    assert tuple(f.shape[1] for f in feats) == dims


def test_swin_any_size_and_output_norms() -> None:
    enc = TimmBackbone("swin_base")
    feats = enc(torch.randn(1, 3, 48, 80))
    assert [tuple(f.shape[1:]) for f in feats] == [(128, 12, 20), (256, 6, 10), (512, 3, 5), (512, 3, 5)]
    assert len(enc.norms) == 3 and not hasattr(enc.net, "layers_3")


def test_pretrained_from_torchvision_files(tmp_path: Path) -> None:
    tv = torchvision.models.mobilenet_v2()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(tv.state_dict(), path)
    enc = TimmBackbone("mobilenetv2", pretrained=str(path))
    own = enc.state_dict()
    torch.testing.assert_close(own["net.conv_stem.weight"], tv.state_dict()["features.0.0.weight"])
    torch.testing.assert_close(own["net.blocks.3.0.conv_dw.weight"],
                               tv.state_dict()["features.7.conv.1.0.weight"])
    torch.testing.assert_close(own["net.bn2.running_var"], tv.state_dict()["features.18.1.running_var"])
    rn = torchvision.models.resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(rn.state_dict(), path)
    enc = TimmBackbone("resnet50", pretrained=str(path))
    torch.testing.assert_close(enc.state_dict()["net.layer3.5.conv2.weight"],
                               rn.state_dict()["layer3.5.conv2.weight"])
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        TimmBackbone("mobilenetv2", pretrained=str(tmp_path / "missing.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="bad.pth"):
        TimmBackbone("mobilenetv2", pretrained=str(tmp_path / "bad.pth"))
