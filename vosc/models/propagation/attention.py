"""Attention layers of the LSTT: global multi-head attention and 15×15 local (short-term) attention.

All tensors are batch-first token sequences ``(B, L, C)`` with ``C = num_head * head_dim``; a token
sequence of an ``h × w`` grid is row-major.

The local attention reproduces the reference ``MultiheadLocalAttentionV2`` (window ``2·max_dis+1``,
query-dependent relative key bias from a grouped 1×1 conv, learned relative value bias, keys outside
the frame excluded) without unfolding the key map: each query row attends to the band of key rows
``y ± max_dis`` (a strided view of the zero-padded keys, no copy of the windows); the window logits are
gathered from one ``Q Kᵀ`` product per row band through a cached index, and the window weights are
scattered back into the band for the value product. All steps are batched matrix products plus
gather/scatter (fast on CPU and GPU, differentiable), numerically equal to the unfold formulation up
to float rounding.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with an output projection.

    Args:
        d_model: Channels ``C``.
        num_head: Heads.
        use_linear: Project Q, K, V with ``linear_Q/K/V`` (self-attention); long-term attention in the
            LSTT receives already projected tensors (``False``).
        dropout: Attention dropout.
    """

    def __init__(
        self, d_model: int, num_head: int = 8, use_linear: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_head = num_head
        self.dropout = dropout
        self.use_linear = use_linear
        if use_linear:
            self.linear_Q = nn.Linear(d_model, d_model)
            self.linear_K = nn.Linear(d_model, d_model)
            self.linear_V = nn.Linear(d_model, d_model)
        self.projection = nn.Linear(d_model, d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attend.

        Args:
            q: ``(B, Lq, C)``.
            k: ``(B, Lk, C)``.
            v: ``(B, Lk, C)``.

        Returns:
            ``(B, Lq, C)``.
        """
        if self.use_linear:
            q, k, v = self.linear_Q(q), self.linear_K(k), self.linear_V(v)
        b, lq, c = q.shape
        nh = self.num_head
        q = q.view(b, lq, nh, c // nh).transpose(1, 2)
        k = k.view(b, -1, nh, c // nh).transpose(1, 2)
        v = v.view(b, -1, nh, c // nh).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.projection(out.transpose(1, 2).reshape(b, lq, c))


_BAND_CACHE: dict[tuple[int, int, int, str], tuple[Tensor, Tensor]] = {}


def band_index(h: int, w: int, max_dis: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Where each query's window lies inside its key band (cached per size and device).

    The keys a query row ``y`` can see are rows ``y - max_dis .. y + max_dis`` — a contiguous band of
    ``K * w`` tokens (``K = 2·max_dis + 1``) of the row-major key sequence padded with ``max_dis`` zero rows.

    Returns:
        ``(index, outside)``: ``(h*w, K²)`` int64 positions inside the band (clamped where the key is
        outside the frame) and the bool mask of those outside slots; window slot ``o = ky * K + kx``
        holds key ``(y + ky - max_dis, x + kx - max_dis)``.
    """
    key = (h, w, max_dis, str(device))
    if key not in _BAND_CACHE:
        with torch.inference_mode(False):  # usable by autograd later even if first built in inference mode
            _BAND_CACHE[key] = _build_band_index(h, w, max_dis, device)
    return _BAND_CACHE[key]


def _build_band_index(h: int, w: int, max_dis: int, device: torch.device) -> tuple[Tensor, Tensor]:
    ks = 2 * max_dis + 1
    y = torch.arange(h, device=device).view(h, 1, 1, 1)
    x = torch.arange(w, device=device).view(1, w, 1, 1)
    ky = torch.arange(ks, device=device).view(1, 1, ks, 1)
    kx = torch.arange(ks, device=device).view(1, 1, 1, ks)
    gy, gx = y + ky - max_dis, x + kx - max_dis
    outside = ((gx < 0) | (gx >= w) | (gy < 0) | (gy >= h)).reshape(h * w, ks * ks)
    index = (ky * w + gx.clamp(0, w - 1)).expand(h, w, ks, ks).reshape(h * w, ks * ks)
    return index, outside


def _key_bands(x: Tensor, size_2d: tuple[int, int], num_head: int, max_dis: int) -> Tensor:
    """``(B, h*w, C)`` → overlapping row bands ``(B, heads, h, C/heads, K*w)`` (an unfold view, no copy)."""
    w = size_2d[1]
    b, length, c = x.shape
    xh = x.view(b, length, num_head, c // num_head).transpose(1, 2)
    xp = F.pad(xh, (0, 0, max_dis * w, max_dis * w))
    return xp.unfold(2, (2 * max_dis + 1) * w, w)


class LocalAttention(nn.Module):
    """Short-term attention over a ``(2·max_dis+1)²`` window with relative key and value biases.

    Args:
        d_model: Channels ``C``.
        num_head: Heads.
        max_dis: Window radius (7 → 15×15).
        dropout: Dropout on the window weights.
        impl: ``"fast"`` (dense-product gather/scatter) or ``"unfold"`` (the reference's formulation:
            zero-padded unfold of the keys, dense scatter of the weights; kept for speed comparisons).
    """

    def __init__(self, d_model: int, num_head: int = 8, max_dis: int = 7, dropout: float = 0.0,
                 impl: str = "fast") -> None:
        super().__init__()
        if impl not in ("fast", "unfold"):
            raise ValueError(f"LocalAttention impl must be 'fast' or 'unfold', got {impl!r}")
        self.impl = impl
        self.d_model = d_model
        self.num_head = num_head
        self.max_dis = max_dis
        self.window = (2 * max_dis + 1) ** 2
        self.relative_emb_k = nn.Conv2d(d_model, num_head * self.window, kernel_size=1, groups=num_head)
        self.relative_emb_v = nn.Parameter(torch.zeros(num_head, d_model // num_head, self.window))
        self.projection = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        for p in (self.relative_emb_k.weight, self.projection.weight):
            nn.init.xavier_uniform_(p)

    def relative_key_bias(self, q: Tensor) -> Tensor:
        """Grouped 1×1 conv of the (unscaled) queries: ``(B, L, C)`` → ``(B, heads, L, window)``."""
        b, length, c = q.shape
        nh = self.num_head
        weight = self.relative_emb_k.weight.view(nh, self.window, c // nh)
        bias = cast(Tensor, self.relative_emb_k.bias).view(1, nh, 1, self.window)
        return torch.matmul(q.view(b, length, nh, c // nh).transpose(1, 2), weight.transpose(1, 2)) + bias

    def forward(self, q: Tensor, k: Tensor, v: Tensor, size_2d: tuple[int, int]) -> Tensor:
        """Attend from every query to its window in the short-term memory.

        Args:
            q: ``(B, h*w, C)`` queries of the current frame.
            k: ``(B, h*w, C)`` keys of the memory frame.
            v: ``(B, h*w, C)`` values of the memory frame.
            size_2d: ``(h, w)``.

        Returns:
            ``(B, h*w, C)``.
        """
        if self.impl == "unfold":
            return self._forward_unfold(q, k, v, size_2d)
        h, w = size_2d
        b, length, c = q.shape
        nh, hd, band = self.num_head, c // self.num_head, (2 * self.max_dis + 1) * w
        rel_k = self.relative_key_bias(q)  # (B, nh, L, window)
        qh = (q.view(b, length, nh, hd).transpose(1, 2) * hd**-0.5).reshape(b, nh, h, w, hd)
        kb = _key_bands(k, size_2d, nh, self.max_dis)
        vb = _key_bands(v, size_2d, nh, self.max_dis)
        index, outside = band_index(h, w, self.max_dis, q.device)
        idx = index.view(1, 1, length, self.window).expand(b, nh, length, self.window)
        logits = torch.matmul(qh, kb).view(b, nh, length, band)
        logits = torch.gather(logits, -1, idx).masked_fill_(outside, float("-inf")) + rel_k
        attn = self.dropout(torch.softmax(logits, dim=-1))  # (B, nh, L, window); 0 outside the frame
        weights = attn.new_zeros(b, nh, length, band).scatter_add_(-1, idx, attn)
        out = torch.matmul(weights.view(b, nh, h, w, band), vb.transpose(-1, -2)).view(b, nh, length, hd)
        out = out + torch.matmul(attn, self.relative_emb_v.transpose(1, 2).unsqueeze(0))
        return self.projection(out.transpose(1, 2).reshape(b, length, c))

    def _forward_unfold(self, q: Tensor, k: Tensor, v: Tensor, size_2d: tuple[int, int]) -> Tensor:
        """Reference-style path: ``F.unfold`` of zero-padded keys for the logits, boolean-mask scatter of
        the window weights into a padded dense map for the values (same shapes as :meth:`forward`)."""
        h, w = size_2d
        b, length, c = q.shape
        nh, hd, r, ks = self.num_head, c // self.num_head, self.max_dis, 2 * self.max_dis + 1
        q2 = q.transpose(1, 2).reshape(b, c, h, w)
        rel_k = self.relative_emb_k(q2).view(b, nh, self.window, length)
        k2 = k.transpose(1, 2).reshape(b * nh, hd, h, w)
        unfolded = F.unfold(F.pad(k2, (r, r, r, r)), kernel_size=ks).view(b * nh, hd, self.window, h, w)
        qk = ((q2 / hd**0.5).view(b * nh, hd, 1, h, w) * unfolded).sum(dim=1).view(b, nh, self.window, length)
        inside = F.unfold(F.pad(q.new_ones(1, 1, h, w), (r, r, r, r)), kernel_size=ks).view(
            1, 1, self.window, length
        )
        attn = torch.softmax(qk + rel_k - (1 - inside) * 1e8, dim=2)
        bias = torch.einsum("bhwn,hcw->bhnc", attn, self.relative_emb_v)
        ky, kx = torch.meshgrid(
            torch.arange(h + 2 * r, device=q.device), torch.arange(w + 2 * r, device=q.device), indexing="ij"
        )
        qy, qx = torch.meshgrid(
            torch.arange(h, device=q.device), torch.arange(w, device=q.device), indexing="ij"
        )
        dy = qy.reshape(-1, 1) - ky.reshape(1, -1) + r
        dx = qx.reshape(-1, 1) - kx.reshape(1, -1) + r
        local = (dy.abs() <= r) & (dx.abs() <= r)
        dense = q.new_zeros(b, nh, length, h + 2 * r, w + 2 * r)
        dense[local.view(1, 1, length, h + 2 * r, w + 2 * r).expand(b, nh, -1, -1, -1)] = \
            attn.transpose(-1, -2).reshape(-1)
        dense = dense[:, :, :, r:-r, r:-r].reshape(b, nh, length, length)
        out = dense @ v.view(b, length, nh, hd).transpose(1, 2) + bias
        return self.projection(out.transpose(1, 2).reshape(b, length, c))
