"""Fixtures of the codec tests: tiny deterministic clips and a few real DAVIS frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codec_helpers import make_clip
from PIL import Image


@pytest.fixture(scope="session")
def tiny_clip() -> np.ndarray:
    """``(5, 48, 64, 3)`` uint8."""
    return make_clip(5, 48, 64)


@pytest.fixture(scope="session")
def odd_clip() -> np.ndarray:
    """``(5, 47, 63, 3)`` uint8: odd height and width."""
    return make_clip(5, 47, 63, seed=1)


@pytest.fixture(scope="session")
def davis_frames(davis_mini: Path) -> np.ndarray:
    """First 5 frames of DAVIS ``blackswan``, centre 240x320 crop, ``(5, 240, 320, 3)`` uint8."""
    folder = davis_mini / "JPEGImages" / "480p" / "blackswan"
    files = sorted(folder.glob("*.jpg"))[:5]
    assert len(files) == 5, f"expected >= 5 frames in {folder}"
    frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    h, w = frames.shape[1:3]
    top, left = (h - 240) // 2, (w - 320) // 2
    return np.ascontiguousarray(frames[:, top : top + 240, left : left + 320])
