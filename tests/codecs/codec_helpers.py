"""Helpers of the codec tests (a uniquely named module, importable from test files)."""

from __future__ import annotations

import numpy as np


def make_clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth moving pattern with per-frame brightness steps, ``(t, h, w, 3)`` uint8.

    Each frame differs clearly from the others (so frame order can be checked after lossy coding),
    and the content is smooth enough that a codec at low QP reproduces it closely.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    frames = []
    for i in range(t):
        chans = [
            128 + 60 * np.sin((xx + 3 * i) / 9.0 + phase[0]) * np.cos(yy / 11.0),
            128 + 60 * np.cos((yy - 2 * i) / 7.0 + phase[1]),
            128 + 50 * np.sin((xx + yy + 4 * i) / 13.0 + phase[2]),
        ]
        frame = np.stack(chans, axis=-1) + 12.0 * (i - t / 2)
        frames.append(frame)
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR over a whole clip."""
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def assert_order(reference: np.ndarray, decoded: np.ndarray) -> None:
    """Every decoded frame is closest to the input frame at the same index."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    for i in range(len(dec)):
        errors = [((dec[i] - ref[j]) ** 2).mean() for j in range(len(ref))]
        assert int(np.argmin(errors)) == i, (
            f"decoded frame {i} is closest to input frame {int(np.argmin(errors))}"
        )
