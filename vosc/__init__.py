"""vosc: semi-supervised video object segmentation (AOT/AOST, STCN) on compressed video.

Quick start (see :mod:`vosc.api`)::

    import vosc
    seg = vosc.load_model("last.ckpt")          # or an official file: vosc.load_model(p, model="aotl")
    for r in seg.run(vosc.iter_frames("video.mp4"), {0: first_mask}):
        r.mask                                          # (H, W) uint8 object ids
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy imports (torch, models) happen on first use only
    import numpy as np

    from vosc.inference.segmenter import VideoSegmenter

__version__ = "0.1.0"

__all__ = ["__version__", "iter_frames", "load_model"]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def load_model(path: str | Path | None, model: str | Mapping[str, Any] | None = None,
               **kwargs: Any) -> VideoSegmenter:
    """A ready :class:`~vosc.inference.segmenter.VideoSegmenter` for a vosc or official checkpoint
    (see :func:`vosc.api.load_model` for the arguments)."""
    from vosc.api import load_model as _load_model

    return _load_model(path, model, **kwargs)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Stream the ``(H, W, 3)`` uint8 RGB frames of a video file or frame folder
    (:func:`vosc.inference.video_io.iter_frames`)."""
    from vosc.inference.video_io import iter_frames as _iter_frames

    return _iter_frames(path)
