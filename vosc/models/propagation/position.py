"""Sine position encoding of the 1/16 feature grid (DETR style, normalised to ``[0, 2π]``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """Fixed 2-D sine/cosine position encoding.

    Args:
        num_pos_feats: Channels per axis (half of ``d_model``).
        temperature: Frequency base.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = 2 * math.pi

    def forward(self, h: int, w: int, device: torch.device | None = None) -> Tensor:
        """Encode an ``h × w`` grid.

        Returns:
            ``(h * w, 2 * num_pos_feats)`` float32, row-major positions (y first, then x channels).
        """
        eps = 1e-6
        y = torch.arange(h, device=device, dtype=torch.float32).view(h, 1).expand(h, w)
        x = torch.arange(w, device=device, dtype=torch.float32).view(1, w).expand(h, w)
        y = y / (float(h - 1) + eps) * self.scale
        x = x / (float(w - 1) + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=-1).flatten(-2)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=-1).flatten(-2)
        return torch.cat((pos_y, pos_x), dim=-1).reshape(h * w, 2 * self.num_pos_feats)
