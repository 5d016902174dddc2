"""STCN network (pure ``nn.Module``; the per-video memory loop is
:class:`vosc.inference.stcn.STCNPropagator`).

Data flow per frame (``B`` videos, ``K`` objects, ``h, w = H/16, W/16``)::

    frame ─► key encoder (timm ResNet-50 to layer3) ─► f16 (1024) ─► key_proj ─► k16 (64)      [key]
                                 │  f8 (512), f4 (256)       └─► key_comp ─► f16_thin (512)
    frame + object mask + others' mask ─► value encoder (ResNet-18 to layer3 + fusion with f16, CBAM)
                                                             ─► v16 (512) per object            [value]
    k16 vs memory keys ─► affinity ─► top-k softmax ─► readout of memory values (per object)
    cat(readout, f16_thin) ─► decoder (8×/4× skips) ─► one logit per object ─► soft aggregation

Parameter names equal the official checkpoint's except ``key_encoder.net.*`` (official ``key_encoder.*``,
``res2`` = ``layer1``), ``value_encoder.net.*``, ``key_proj.*`` (official ``key_proj.key_proj.*``) and
CBAM's ``channel_mlp``/``spatial``; see :mod:`vosc.checkpoints.stcn`.

Batch norms keep their running statistics in training too (the official network trains in ``eval()``
mode); their affine parameters train.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vosc.models.encoder.timm_backbone import TimmBackbone
from vosc.models.stcn.modules import Decoder, ValueEncoder
from vosc.models.stcn.readout import affinity, topk_weights, weighted_readout


@dataclass
class KeyFeatures:
    """Key-encoder outputs of ``B`` frames of size ``H × W`` (``h, w = H/16, W/16``).

    Attributes:
        k16: ``(B, key_dim, h, w)`` keys.
        f16_thin: ``(B, key_comp_dim, h, w)`` compressed features for the decoder.
        f16: ``(B, C16, h, w)`` features for the value encoder.
        f8: ``(B, C8, 2h, 2w)`` skip.
        f4: ``(B, C4, 4h, 4w)`` skip.
    """

    k16: Tensor
    f16_thin: Tensor
    f16: Tensor
    f8: Tensor
    f4: Tensor


class STCN(nn.Module):
    """Space-Time Correspondence Network.

    Args:
        key_encoder: timm ResNet of the key encoder (``resnet50``; ``resnet18`` for small variants).
        value_encoder: timm ResNet of the value encoder (``resnet18``).
        key_dim: Key channels (64).
        value_dim: Value channels (512).
        key_comp_dim: Channels of the compressed query features concatenated with the readout (512).
        decoder_dims: Decoder widths at 1/16, 1/8, 1/4 (512, 256, 256).
        top_k: Memory elements per query in the readout at inference (20); ``None``: all.
        pretrained: Key-encoder weights: ``False``, ``True`` (timm cache / hub) or a file path.
        freeze_bn_stats: Keep every batch norm in eval mode (running statistics fixed) during training.
    """

    stride: int = 16

    def __init__(self, key_encoder: str = "resnet50", value_encoder: str = "resnet18", key_dim: int = 64,
                 value_dim: int = 512, key_comp_dim: int = 512,
                 decoder_dims: tuple[int, int, int] | list[int] = (512, 256, 256), top_k: int | None = 20,
                 pretrained: bool | str = False, freeze_bn_stats: bool = True) -> None:
        super().__init__()
        self.key_encoder = TimmBackbone(key_encoder, pretrained=pretrained, freeze_bn=False, freeze_at=0)
        c4, c8, c16 = self.key_encoder.dims[:3]
        self.value_encoder = ValueEncoder(value_encoder, key_dim=c16, value_dim=value_dim)
        self.key_proj = nn.Conv2d(c16, key_dim, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(self.key_proj.bias)
        self.key_comp = nn.Conv2d(c16, key_comp_dim, kernel_size=3, padding=1)
        self.decoder = Decoder(value_dim + key_comp_dim, tuple(decoder_dims), (c8, c4))
        self.key_dim, self.value_dim = key_dim, value_dim
        self.top_k = top_k
        self.freeze_bn_stats = freeze_bn_stats

    def train(self, mode: bool = True) -> STCN:
        """Set the mode; batch norms stay in eval mode when ``freeze_bn_stats``."""
        super().train(mode)
        if mode and self.freeze_bn_stats:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------------------ encoders
    def encode_key(self, frames: Tensor) -> KeyFeatures:
        """Key features of ``(B, 3, H, W)`` normalised frames (``H, W`` multiples of 16)."""
        f4, f8, f16, _ = self.key_encoder(frames)
        return KeyFeatures(self.key_proj(f16), self.key_comp(f16), f16, f8, f4)

    def encode_value(self, frames: Tensor, f16: Tensor, masks: Tensor) -> Tensor:
        """Memory values of every object, batched over objects.

        Args:
            frames: ``(B, 3, H, W)`` normalised frames.
            f16: ``(B, C16, h, w)`` their key-encoder features (:attr:`KeyFeatures.f16`).
            masks: ``(B, K, H, W)`` (soft) object masks; each object's second mask channel is the sum of
                the other objects' masks (zeros when ``K == 1``).

        Returns:
            ``(B, K, value_dim, h, w)``.
        """
        b, k = masks.shape[:2]
        if k == 1:
            others = torch.zeros_like(masks)
        else:
            off_diag = 1 - torch.eye(k, dtype=masks.dtype, device=masks.device)
            others = (masks[:, None] * off_diag[None, :, :, None, None]).sum(2)
        rep = (lambda x: x[:, None].expand(b, k, *x.shape[1:]).flatten(0, 1))
        v = self.value_encoder(rep(frames), rep(f16), masks.flatten(0, 1)[:, None], others.flatten(0, 1)[:, None])
        return v.view(b, k, *v.shape[1:])

    # ------------------------------------------------------------------------------ readout + decoding
    def read_memory(self, mem_keys: Tensor, mem_values: Tensor, query_key: Tensor,
                    top_k: int | None | str = "default", indices: Tensor | None = None) -> Tensor:
        """Memory readout for every object (one affinity shared by all objects).

        Args:
            mem_keys: ``(B, key_dim, N)`` memory keys (``N`` = memory frames × ``h·w``, in adding order).
            mem_values: ``(B, K, value_dim, N)``.
            query_key: ``(B, key_dim, h, w)``.
            top_k: Elements per query (default: the model's ``top_k`` in eval mode, ``None`` in training
                mode, as the official training); ``None``: dense softmax over the whole memory.
            indices: Optional forced ``(B, k, h·w)`` top-k selection (parity checks).

        Returns:
            ``(B, K, value_dim, h, w)``.
        """
        k = (None if self.training else self.top_k) if top_k == "default" else top_k
        b, _, h, w = query_key.shape
        aff = affinity(mem_keys, query_key.flatten(2))
        weights, idx = topk_weights(aff, k, indices)
        return weighted_readout(mem_values, weights, idx).view(b, mem_values.shape[1], -1, h, w)

    def decode(self, readout: Tensor, feats: KeyFeatures) -> tuple[Tensor, Tensor]:
        """Per-object logits from the readout, batched over objects.

        Args:
            readout: ``(B, K, value_dim, h, w)``.
            feats: Key features of the query frames.

        Returns:
            ``(logits (B, K, H, W), logits_4x (B, K, H/4, W/4))`` before the sigmoid.
        """
        b, k = readout.shape[:2]
        thin = feats.f16_thin[:, None].expand(b, k, *feats.f16_thin.shape[1:])
        x16 = torch.cat([readout, thin], dim=2).flatten(0, 1)
        logits, logits_4x = self.decoder(x16, feats.f8, feats.f4)
        return logits.view(b, k, *logits.shape[-2:]), logits_4x.view(b, k, *logits_4x.shape[-2:])

    @staticmethod
    def aggregate(prob: Tensor, eps: float = 1e-7) -> Tensor:
        """Soft aggregation of per-object probabilities with the background.

        Args:
            prob: ``(B, K, H, W)`` per-object probabilities (sigmoid of the decoder logits).
            eps: Clamp before the inverse sigmoid.

        Returns:
            ``(B, 1 + K, H, W)`` logits whose softmax over dim 1 is the aggregated probability
            (channel 0 background = ``prod(1 - p)``).
        """
        bg = torch.prod(1 - prob, dim=1, keepdim=True)
        new_prob = torch.cat([bg, prob], dim=1).clamp(eps, 1 - eps)
        return torch.log(new_prob / (1 - new_prob))

    def segment(self, feats: KeyFeatures, mem_keys: Tensor, mem_values: Tensor,
                top_k: int | None | str = "default", indices: Tensor | None = None) -> dict[str, Tensor]:
        """Read the memory and decode: the whole per-frame step after the key encoder.

        Returns:
            ``{"logits": (B, 1+K, H, W) aggregated logits, "object_logits": (B, K, H, W),
            "object_logits_4x": (B, K, H/4, W/4)}``.
        """
        readout = self.read_memory(mem_keys, mem_values, feats.k16, top_k, indices)
        obj_logits, obj_logits_4x = self.decode(readout, feats)
        return {"logits": self.aggregate(torch.sigmoid(obj_logits)), "object_logits": obj_logits,
                "object_logits_4x": obj_logits_4x}
