"""LSTT block of AOT (pre-LN): self-attention → long+short-term attention → depthwise-conv FFN.

Token sequences are batch-first ``(B, L, C)`` (row-major ``h × w`` grid). A block either attends to
the given memories, or — when ``id_emb`` is given (reference frame) — to its own frame fused with the
identity embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vosc.models.propagation.attention import LocalAttention, MultiheadAttention
from vosc.models.propagation.memory import LayerMemory


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample (dim 0) while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(B, ...)`` → same shape, rescaled by ``1/keep`` where kept."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = torch.rand(shape, dtype=x.dtype, device=x.device).add_(keep).floor_()
        return x.div(keep) * mask


class GNActDWConv2d(nn.Module):
    """GroupNorm(32) → GELU → depthwise 5×5 conv (no bias) on a token grid."""

    def __init__(self, dim: int, gn_groups: int = 32) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(gn_groups, dim)
        self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, bias=False)

    def forward(self, x: Tensor, size_2d: tuple[int, int]) -> Tensor:
        """``(B, h*w, C)`` → ``(B, h*w, C)``."""
        b, _length, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, *size_2d)
        x = self.conv(F.gelu(self.gn(x)))
        return x.flatten(2).transpose(1, 2)


class LSTTBlockBase(nn.Module):
    """Shared parts: ``norm1``/``self_attn``, ``norm2``/long- and short-term attention, ``norm3``/FFN.

    Subclasses define ``query_value`` (current-frame Q=K and V) and ``fuse`` (ID into K, V).
    """

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024, droppath: float = 0.1,
                 max_dis: int = 7) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiheadAttention(d_model, num_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.long_term_attn = MultiheadAttention(d_model, num_heads, use_linear=False)
        self.short_term_attn = LocalAttention(d_model, num_heads, max_dis=max_dis)
        self.norm3 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.activation = GNActDWConv2d(ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.droppath = DropPath(droppath)

    def _init_weight(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def query_value(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Current-frame ``(Q, V)`` from the normed tokens ``(B, L, C)``; ``Q`` doubles as the key."""
        raise NotImplementedError

    def fuse(self, key: Tensor, value: Tensor, id_emb: Tensor) -> tuple[Tensor, Tensor]:
        """Fuse identities into a frame's key/value ``(B, L, C)`` → memory key/value ``(B, L, C)``."""
        raise NotImplementedError

    def forward(self, tgt: Tensor, pos: Tensor, size_2d: tuple[int, int], memory: LayerMemory | None = None,
                id_emb: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the block.

        Args:
            tgt: ``(B, L, C)`` tokens.
            pos: ``(1 or B, L, C)`` position encoding (added to self-attention Q and K only).
            size_2d: ``(h, w)`` with ``h * w = L``.
            memory: Memories to attend to (when ``id_emb`` is None).
            id_emb: ``(B, L, C)`` identity embedding of this frame: attend to the frame itself.

        Returns:
            ``(out (B, L, C), (key, value))`` — the frame's unfused key and value ``(B, L, C)`` for a
            later memory update (``fuse``).
        """
        x = self.norm1(tgt)
        qk = x + pos
        tgt = tgt + self.droppath(self.self_attn(qk, qk, x))
        x = self.norm2(tgt)
        q, v = self.query_value(x)
        if id_emb is not None:
            gk, gv = self.fuse(q, v, id_emb)
            memory = LayerMemory(gk, gv, gk, gv)
        elif memory is None:
            raise ValueError("LSTT block needs either a memory or an identity embedding")
        lt = self.long_term_attn(q, memory.long_k, memory.long_v)
        st = self.short_term_attn(q, memory.short_k, memory.short_v, size_2d)
        tgt = tgt + lt + st
        x = self.norm3(tgt)
        tgt = tgt + self.droppath(self.linear2(self.activation(self.linear1(x), size_2d)))
        return tgt, (q, v)


class LSTTBlock(LSTTBlockBase):
    """AOT block: ``Q = K = linear_Q(x)``; memory value ``linear_V(x + ID)``."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024, droppath: float = 0.1,
                 max_dis: int = 7) -> None:
        super().__init__(d_model, num_heads, ffn_dim, droppath, max_dis)
        self.linear_Q = nn.Linear(d_model, d_model)
        self.linear_V = nn.Linear(d_model, d_model)
        self._init_weight()

    def query_value(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.linear_Q(x), x

    def fuse(self, key: Tensor, value: Tensor, id_emb: Tensor) -> tuple[Tensor, Tensor]:
        return key, self.linear_V(value + id_emb)
