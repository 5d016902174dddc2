"""Fixtures for the metric tests: small synthetic DAVIS-layout trees written with real palette PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosc.data.palette import write_mask


def make_davis_tree(root: Path, sequences: dict[str, np.ndarray], subset: str = "val") -> Path:
    """Write ``Annotations/480p/<seq>/<frame>.png`` and ``ImageSets/2017/<subset>.txt``; returns ``root``."""
    for name, masks in sequences.items():
        for t, mask in enumerate(masks):
            write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", mask)
    index = root / "ImageSets" / "2017" / f"{subset}.txt"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("\n".join(sequences) + "\n")
    return root


def write_preds(root: Path, sequences: dict[str, np.ndarray]) -> Path:
    """Write ``<root>/<seq>/<frame>.png`` predictions."""
    for name, masks in sequences.items():
        for t, mask in enumerate(masks):
            write_mask(root / name / f"{t:05d}.png", mask)
    return root


def moving_squares(
    frames: int = 6, size: tuple[int, int] = (40, 60), shift: int = 0, objects: int = 2
) -> np.ndarray:
    """``(T, H, W)`` uint8 masks with ``objects`` squares moving right by 2 px per frame (+ ``shift``)."""
    masks = np.zeros((frames, *size), dtype=np.uint8)
    for t in range(frames):
        for k in range(objects):
            y, x = 5 + 15 * k, 4 + 2 * t + shift + 10 * k
            masks[t, y : y + 10, x : x + 12] = k + 1
    return masks


@pytest.fixture()
def tiny_davis(tmp_path: Path) -> tuple[Path, Path]:
    """A two-sequence synthetic DAVIS tree and shifted predictions: ``(gt_root, pred_dir)``."""
    gt = {"alpha": moving_squares(), "beta": moving_squares(frames=5, objects=1)}
    pred = {"alpha": moving_squares(shift=1), "beta": moving_squares(frames=5, objects=1, shift=3)}
    return make_davis_tree(tmp_path / "gt", gt), write_preds(tmp_path / "pred", pred)


class DavisFactory:
    """Helpers handed to tests through the ``davis_factory`` fixture."""

    make_tree = staticmethod(make_davis_tree)
    write_preds = staticmethod(write_preds)
    moving_squares = staticmethod(moving_squares)


@pytest.fixture()
def davis_factory() -> type[DavisFactory]:
    """Writers for synthetic DAVIS trees (``make_tree``, ``write_preds``, ``moving_squares``)."""
    return DavisFactory
