"""Training losses."""

from vosc.losses.segmentation import (
    SegmentationLoss,
    bootstrapped_cross_entropy,
    combine_depths,
    depth_weights,
    soft_jaccard_loss,
    top_k_ratio,
)

__all__ = [
    "SegmentationLoss",
    "bootstrapped_cross_entropy",
    "combine_depths",
    "depth_weights",
    "soft_jaccard_loss",
    "top_k_ratio",
]
