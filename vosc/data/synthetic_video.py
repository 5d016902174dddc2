"""Synthetic videos as a user would bring them: an mp4 per video plus first-appearance masks.

``python -m vosc.data.synthetic --out DIR --format mp4`` writes, for every video ``NAME``:

* ``DIR/NAME.mp4``: H.264 (``libx264``, CRF 18) at 25 fps, read back by PyAV;
* ``DIR/NAME/masks/<t:05d>.png``: DAVIS-palette masks of the frames where objects first appear (only the new
  objects), the input of ``python -m vosc.segment --mask DIR/NAME/masks``;
* ``DIR/NAME/gt/<t:05d>.png``: every frame's ground truth.

With ``layout="ytvos"`` the last object enters late (at a frame ``5k``, ``k >= 1``), as in the YouTube-VOS
layout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vosc.data.palette import write_mask
from vosc.data.sources.synthetic import SyntheticConfig, _render_video
from vosc.inference.video_io import OverlayWriter

log = logging.getLogger(__name__)

__all__ = ["write_synthetic_mp4"]


def write_synthetic_mp4(out: str | Path, videos: int = 1, frames: int = 30, size: tuple[int, int] = (160, 96),
                        seed: int = 0, objects: int = 2, layout: str = "davis", style: str = "classic",
                        distractors: int = 0, fps: float = 25.0) -> list[Path]:
    """Render ``videos`` videos and write them as mp4 files with their masks (see the module docstring).

    Args:
        out: Output folder (created; existing files of the same names are replaced).
        videos: Number of videos; video ``i`` depends only on ``(seed, i)``.
        frames: Frames per video ``T``.
        size: ``(W, H)``.
        seed: Random seed.
        objects: Objects per video ``K``.
        layout: ``"davis"`` (every object in frame 0) or ``"ytvos"`` (the last object enters late).
        style: ``"classic"`` or ``"rich"``.
        distractors: Unannotated sprites per video (``rich``).
        fps: Frame rate of the mp4.

    Returns:
        The mp4 paths.
    """
    if layout not in ("davis", "ytvos"):
        raise ValueError(f"layout must be 'davis' or 'ytvos', got {layout!r}")
    out = Path(out)
    cfg = SyntheticConfig(videos, frames, int(size[0]), int(size[1]), seed, objects, style=style,
                          distractors=distractors)
    paths = []
    for i in range(videos):
        name = f"synth{i:03d}"
        rng = np.random.default_rng([seed, i])
        rgb, masks = _render_video(rng, cfg, frames, late=layout == "ytvos", step=1.0)
        with OverlayWriter(out / f"{name}.mp4", fps, cfg.width, cfg.height, crf=18) as writer:
            for frame in rgb:
                writer.write_rgb(frame)
        seen: set[int] = set()
        for t, mask in enumerate(masks):
            write_mask(out / name / "gt" / f"{t:05d}.png", mask)
            new = [int(v) for v in np.unique(mask) if v and int(v) not in seen]
            if new:
                write_mask(out / name / "masks" / f"{t:05d}.png", np.where(np.isin(mask, new), mask, 0))
                seen.update(new)
        log.info("wrote %s (%d frames, objects first seen at %s)", out / f"{name}.mp4", frames,
                 sorted(int(p.stem) for p in (out / name / "masks").glob("*.png")))
        paths.append(out / f"{name}.mp4")
    return paths
