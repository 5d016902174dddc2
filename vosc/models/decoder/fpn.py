"""FPN decoders: 1/16 → 1/8 → 1/4 with encoder adapters, GroupNorm(8) convs, 11 identity logits.

``FPNDecoder`` has one input conv; with ``in_dims`` of several entries it is AOST's scalable FPN (one
input conv per depth, everything after it shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvGN(nn.Module):
    """``Conv2d`` (same padding, bias) followed by ``GroupNorm``."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, gn_groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, padding=kernel_size // 2)
        self.gn = nn.GroupNorm(gn_groups, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim, h, w)`` → ``(B, out_dim, h, w)``."""
        return self.gn(self.conv(x))


class FPNDecoder(nn.Module):
    """FPN segmentation head.

    Args:
        in_dims: Input channels of the input conv(s): one entry (AOT) or one per depth (AOST).
        out_dim: Identity logits (``max_obj + 1``).
        hidden_dim: Channels at 1/16 (half of it at 1/8 and 1/4).
        shortcut_dims: Encoder channels ``(c4, c8, c16, c16')``.
        align_corners: Bilinear upsampling mode.
        scalable: One input conv per entry of ``in_dims`` (``conv_in.i``), even for one entry; default:
            ``len(in_dims) > 1``.
        readout_dim: vosc's propagation variants (``> 0``): a 1×1 ``readout`` conv per input conv from a
            ``readout_dim``-channel 1/16 map (what the LSTT added to the tokens) straight to 1/16 logits,
            upsampled and added to the FPN's logits; ``conv_out`` then starts at zero, so at initialisation
            the logits are the readout's alone (set by :func:`vosc.models.propagation.init.readout_init`).
            ``0`` (the reference and every official checkpoint): no readout.
    """

    def __init__(self, in_dims: Sequence[int], out_dim: int = 11, hidden_dim: int = 256,
                 shortcut_dims: Sequence[int] = (24, 32, 96, 1280), align_corners: bool = True,
                 scalable: bool | None = None, readout_dim: int = 0) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.scalable = len(in_dims) > 1 if scalable is None else scalable
        self.conv_in: nn.Module
        if self.scalable:
            self.conv_in = nn.ModuleList(ConvGN(d, hidden_dim, 1) for d in in_dims)
        else:
            self.conv_in = ConvGN(in_dims[0], hidden_dim, 1)
        self.conv_16x = ConvGN(hidden_dim, hidden_dim, 3)
        self.conv_8x = ConvGN(hidden_dim, hidden_dim // 2, 3)
        self.conv_4x = ConvGN(hidden_dim // 2, hidden_dim // 2, 3)
        self.adapter_16x = nn.Conv2d(shortcut_dims[-2], hidden_dim, 1)
        self.adapter_8x = nn.Conv2d(shortcut_dims[-3], hidden_dim, 1)
        self.adapter_4x = nn.Conv2d(shortcut_dims[-4], hidden_dim // 2, 1)
        self.conv_out = nn.Conv2d(hidden_dim // 2, out_dim, 1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.readout: nn.ModuleList | None = None
        if readout_dim > 0:
            self.readout = nn.ModuleList(nn.Conv2d(readout_dim, out_dim, 1) for _ in in_dims)
            for conv in (*self.readout, self.conv_out):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(cast(Tensor, conv.bias))

    def forward(self, x: Tensor, shortcuts: Sequence[Tensor], conv_in_idx: int = 0,
                readout_in: Tensor | None = None) -> Tensor:
        """Decode.

        Args:
            x: ``(B, in_dims[conv_in_idx], h16, w16)`` input (already concatenated).
            shortcuts: Encoder features ``[f4, f8, f16, ...]``, ``(B, c_i, h_i, w_i)``.
            conv_in_idx: Which input conv (depth − 1) for the scalable head.
            readout_in: ``(B, readout_dim, h16, w16)``, needed when the decoder has a readout.

        Returns:
            ``(B, out_dim, h4, w4)`` logits at 1/4 resolution.
        """
        conv_in = cast(nn.ModuleList, self.conv_in)[conv_in_idx] if self.scalable else self.conv_in
        skip = None
        if self.readout is not None:
            if readout_in is None:
                raise ValueError("this decoder has a readout: pass readout_in")
            skip = self.readout[conv_in_idx if self.scalable else 0](readout_in)
        x = F.relu(conv_in(x))
        x = F.relu(self.conv_16x(self.adapter_16x(shortcuts[-2]) + x))
        x = F.interpolate(x, size=shortcuts[-3].shape[-2:], mode="bilinear", align_corners=self.align_corners)
        x = F.relu(self.conv_8x(self.adapter_8x(shortcuts[-3]) + x))
        x = F.interpolate(x, size=shortcuts[-4].shape[-2:], mode="bilinear", align_corners=self.align_corners)
        x = F.relu(self.conv_4x(self.adapter_4x(shortcuts[-4]) + x))
        logits = self.conv_out(x)
        if skip is not None:
            logits = logits + F.interpolate(skip, size=logits.shape[-2:], mode="bilinear",
                                            align_corners=self.align_corners)
        return logits


def decoder_input(projected: Tensor, normed: Sequence[Tensor], size_2d: tuple[int, int],
                  intermediate: bool) -> Tensor:
    """Build the decoder input map.

    Args:
        projected: ``(B, C, h, w)`` projected 1/16 encoder feature.
        normed: Normed LSTT outputs of layers ``1..d``, each ``(B, h*w, C)``.
        size_2d: ``(h, w)``.
        intermediate: Concatenate all (``cat(projected, normed...)``) or use only the last one.

    Returns:
        ``(B, C_in, h, w)``.
    """
    b, c = projected.shape[:2]
    maps = [t.transpose(1, 2).reshape(b, c, *size_2d) for t in normed]
    return torch.cat([projected, *maps], dim=1) if intermediate else maps[-1]
