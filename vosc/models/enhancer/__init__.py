"""Compression-aware enhancement networks placed before the VOS encoder (DESIGN §8).

``IdentityEnhancer`` is the "enhancer off" baseline; ``CompressionAwareEnhancer`` ("cae") is the
FiLM-conditioned residual U-Net. Both share the :class:`Enhancer` interface: ``forward`` on ``[0, 1]``
RGB clips ``(B, T, 3, H, W)`` and ``enhance`` on ImageNet-normalised clips of the same shape.
"""

from vosc.models.enhancer.base import (
    CODECS,
    FRAME_TYPES,
    Enhancer,
    IdentityEnhancer,
    enhance_batch,
    imagenet_denormalize,
    imagenet_normalize,
)
from vosc.models.enhancer.cae import SIZES, CompressionAwareEnhancer

__all__ = [
    "CODECS",
    "FRAME_TYPES",
    "SIZES",
    "CompressionAwareEnhancer",
    "Enhancer",
    "IdentityEnhancer",
    "enhance_batch",
    "imagenet_denormalize",
    "imagenet_normalize",
]
