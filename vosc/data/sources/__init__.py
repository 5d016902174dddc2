"""Data sources: DAVIS, YouTube-VOS, static images and the built-in synthetic set."""

from __future__ import annotations

from vosc.data.sources.base import VideoRecord, VideoSource
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.static_images import StaticImageSource
from vosc.data.sources.synthetic import SyntheticSource, generate_synthetic, render_synthetic_videos
from vosc.data.sources.youtube_vos import YouTubeVOSSource

__all__ = [
    "DavisSource",
    "StaticImageSource",
    "SyntheticSource",
    "VideoRecord",
    "VideoSource",
    "YouTubeVOSSource",
    "generate_synthetic",
    "render_synthetic_videos",
]
