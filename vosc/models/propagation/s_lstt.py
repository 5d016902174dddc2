"""S-LSTT block of AOST and the LSTT stack (per-layer output norms, optional weight sharing)."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from vosc.models.propagation.lstt_block import LSTTBlock, LSTTBlockBase
from vosc.models.propagation.memory import LayerMemory


class SLSTTBlock(LSTTBlockBase):
    """AOST block: ``linear_QV`` gives ``Q (= K)`` and ``V``; ``linear_ID_KV`` gives one gate per head
    (memory keys ``× (1 + tanh(gate))``) and a value offset (memory values ``+ ID_V``)."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024, droppath: float = 0.1,
                 max_dis: int = 7) -> None:
        super().__init__(d_model, num_heads, ffn_dim, droppath, max_dis)
        self.linear_QV = nn.Linear(d_model, 2 * d_model)
        self.linear_ID_KV = nn.Linear(d_model, d_model + num_heads)
        self._init_weight()

    def query_value(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q, v = self.linear_QV(x).split(self.d_model, dim=-1)
        return q, v

    def fuse(self, key: Tensor, value: Tensor, id_emb: Tensor) -> tuple[Tensor, Tensor]:
        gate, id_v = self.linear_ID_KV(id_emb).split([self.num_heads, self.d_model], dim=-1)
        b, length, c = key.shape
        k = key.view(b, length, self.num_heads, c // self.num_heads) * (1 + gate.tanh()).unsqueeze(-1)
        return k.view(b, length, c), value + id_v


class LongShortTermTransformer(nn.Module):
    """A stack of ``num_layers`` (S-)LSTT blocks with their output LayerNorms.

    Args:
        num_layers: ``n_l``.
        block: ``"lstt"`` (AOT) or ``"slstt"`` (AOST).
        shared_layers: One block applied ``num_layers`` times and one output norm (AOST-share).
        d_model, num_heads, ffn_dim, droppath, max_dis: Block hyper-parameters.
    """

    def __init__(
        self,
        num_layers: int = 3,
        block: str = "slstt",
        shared_layers: bool = False,
        d_model: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        droppath: float = 0.1,
        max_dis: int = 7,
    ) -> None:
        super().__init__()
        blocks = {"lstt": LSTTBlock, "slstt": SLSTTBlock}
        if block not in blocks:
            raise ValueError(f"unknown block {block!r}; expected 'lstt' or 'slstt'")
        cls = blocks[block]
        self.num_layers = num_layers
        self.shared_layers = shared_layers
        if shared_layers:
            self.layer = cls(d_model, num_heads, ffn_dim, droppath, max_dis)
            self.decoder_norm = nn.LayerNorm(d_model)
        else:
            self.layers = nn.ModuleList(cls(d_model, num_heads, ffn_dim, droppath, max_dis)
                                        for _ in range(num_layers))
            self.decoder_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(num_layers))

    def block(self, i: int) -> LSTTBlockBase:
        """The block applied as layer ``i``."""
        return cast(LSTTBlockBase, self.layer if self.shared_layers else self.layers[i])

    def norm(self, i: int, x: Tensor) -> Tensor:
        """Output norm of layer ``i`` applied to ``x`` ``(B, L, C)``."""
        return self.decoder_norm(x) if self.shared_layers else self.decoder_norms[i](x)

    def run(self, x: Tensor, pos: Tensor, size_2d: tuple[int, int], start: int, stop: int,
            memories: list[LayerMemory] | None = None, id_emb: Tensor | None = None
            ) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
        """Apply layers ``start .. stop-1`` to ``x`` (the input of layer ``start``).

        Args:
            x: ``(B, L, C)``.
            pos: ``(1 or B, L, C)``.
            size_2d: ``(h, w)``.
            start, stop: Layer range.
            memories: Per-layer memories (indexed by absolute layer), unless ``id_emb`` is given.
            id_emb: ``(B, L, C)`` identity embedding (reference-frame mode).

        Returns:
            Raw (un-normed) outputs of each applied layer and their unfused ``(key, value)`` pairs.
        """
        outs, kvs = [], []
        for i in range(start, stop):
            mem = None if memories is None else memories[i]
            x, kv = self.block(i)(x, pos, size_2d, memory=mem, id_emb=id_emb)
            outs.append(x)
            kvs.append(kv)
        return outs, kvs
