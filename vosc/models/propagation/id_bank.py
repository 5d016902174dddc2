"""Identity bank: embeds an 11-channel one-hot (or soft) mask into the 1/16 token grid."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def one_hot_ids(masks: Tensor, num_ids: int) -> Tensor:
    """Turn id maps into one-hot channels.

    Args:
        masks: ``(B, 1, H, W)`` or ``(B, H, W)`` integer ids in ``[0, num_ids)``, or ``(B, num_ids, H, W)``
            float probabilities (returned as float unchanged).
        num_ids: Number of identities incl. background (``max_obj + 1``).

    Returns:
        ``(B, num_ids, H, W)`` float.
    """
    if masks.is_floating_point() and masks.dim() == 4 and masks.shape[1] == num_ids:
        return masks
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(
            f"masks must be (B,1,H,W) ids or (B,{num_ids},H,W) probabilities, got {tuple(masks.shape)}"
        )
    ids = torch.arange(num_ids, device=masks.device).view(1, -1, 1, 1)
    return (masks.long() == ids).float()


class IDBank(nn.Module):
    """Patch-wise identity embedding ``Conv2d(11 → d, k=17, s=16, p=8)`` (Swin: ``k=16, p=0``).

    Args:
        num_ids: Identities incl. background (11).
        d_model: Embedding width.
        align_corners: ``True`` → 17×17 kernel with padding 8; ``False`` (Swin) → 16×16, no padding.
        use_norm: Apply a ``LayerNorm`` over channels (AOST).
    """

    def __init__(self, num_ids: int = 11, d_model: int = 256, align_corners: bool = True,
                 use_norm: bool = False) -> None:
        super().__init__()
        k, p = (17, 8) if align_corners else (16, 0)
        self.conv = nn.Conv2d(num_ids, d_model, kernel_size=k, stride=16, padding=p)
        self.norm = nn.LayerNorm(d_model) if use_norm else None
        nn.init.orthogonal_(self.conv.weight.view(d_model, -1), gain=float(k) ** -2)

    def forward(self, one_hot: Tensor) -> Tensor:
        """Embed identities.

        Args:
            one_hot: ``(B, 11, H, W)`` float.

        Returns:
            ``(B, h * w, d_model)`` tokens at stride 16.
        """
        emb = self.conv(one_hot).flatten(2).transpose(1, 2)
        if self.norm is not None:
            emb = self.norm(emb)
        return emb
