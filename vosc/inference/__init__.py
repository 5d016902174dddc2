"""Per-video inference: the memory state machine, object groups, resizing and the video-level API.

* :class:`~vosc.inference.propagator.Propagator` — memory of one batch of videos (any depth per call), over
  any :class:`~vosc.models.base.VOSNetwork` family; :func:`~vosc.inference.propagator.run_clip` — the one
  clip loop (teacher-forced or autoregressive) used by training, the enhancer's task loss, validation
  and parity verification.
* :class:`~vosc.inference.objects.GroupedPropagator` — groups of ``max_obj`` objects, soft aggregation.
* :class:`~vosc.inference.segmenter.VideoSegmenter` — a whole video: references, new objects, resizing,
  test-time augmentation, per-video or per-frame depth.
"""

from vosc.inference.objects import GroupedPropagator, soft_aggregate
from vosc.inference.postprocess import network_size
from vosc.inference.propagator import ClipOutput, Propagator, run_clip
from vosc.inference.segmenter import FrameResult, VideoSegmenter

__all__ = [
    "ClipOutput",
    "FrameResult",
    "GroupedPropagator",
    "Propagator",
    "VideoSegmenter",
    "network_size",
    "run_clip",
    "soft_aggregate",
]
