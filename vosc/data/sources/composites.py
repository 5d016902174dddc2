"""Real objects on real photos: static training images cut from a DAVIS training split, made on first use.

Two kinds of image + instance-mask pairs, both written in :class:`StaticImageSource` layout
(``<root>/images/<name>.jpg``, ``<root>/masks/<name>.png``) and turned into pseudo-videos by the static-clip
synthesiser (per-frame affine warps and colour jitter, as in the reference's static pre-training):

* ``frame_*``: every ``frame_step``-th annotated frame of the split's videos, with its real mask;
* ``paste_*``: 1 to ``max_objects`` objects cut out of random annotated frames with their real silhouettes,
  scaled, flipped and pasted over a real photo shipped with scikit-image (astronaut, coffee, chelsea,
  rocket, the motorcycle pair, ...); later objects occlude earlier ones.

Only the ``split`` videos are read (``train``: ``bmx-trees`` and ``motocross-jump`` in
``davis2016-val-mini``), so the held-out sequences never reach training. A manifest records the
parameters; a folder made with other parameters is regenerated.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vosc.data.palette import write_frame, write_mask
from vosc.data.sources.base import OnError
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.static_images import StaticImageSource
from vosc.data.sources.synthetic import composite

log = logging.getLogger(__name__)

MANIFEST = "composites.json"
BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "motorcycle_right",
               "hubble_deep_field", "immunohistochemistry", "retina", "grass", "gravel", "brick")


@dataclass(frozen=True)
class CompositeConfig:
    """Parameters of a generated folder (written to its manifest)."""

    davis_root: str
    split: str
    frame_step: int
    pastes: int
    max_objects: int
    short_edge: int
    seed: int
    version: int = 1


def _photo(name: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A scikit-image photo as RGB, randomly cropped to the aspect of ``size`` ``(H, W)`` and resized."""
    from skimage import data

    if name.startswith("motorcycle_"):
        img = np.asarray(data.stereo_motorcycle()[0 if name.endswith("left") else 1])
    else:
        img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.uint8)
    h, w = img.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w) * rng.uniform(1.0, 1.5)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    big = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = int(rng.integers(0, rh - th + 1)), int(rng.integers(0, rw - tw + 1))
    return np.ascontiguousarray(big[y:y + th, x:x + tw])


def _resize(frame: np.ndarray, mask: np.ndarray, short_edge: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    s = short_edge / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
            cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))


def _paste_one(canvas: np.ndarray, ids: np.ndarray, frame: np.ndarray, obj: np.ndarray, new_id: int,
               rng: np.random.Generator) -> None:
    """Paste the pixels ``obj`` (bool ``(H, W)``) of ``frame`` at a random place, scale and flip."""
    ys, xs = np.nonzero(obj)
    crop = frame[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    sil = obj[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8)
    ch, cw = canvas.shape[:2]
    s = rng.uniform(0.4, 1.0) * min(ch / crop.shape[0], cw / crop.shape[1], 1.5)
    size = (max(4, round(crop.shape[1] * s)), max(4, round(crop.shape[0] * s)))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
    sil = cv2.resize(sil, size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if rng.random() < 0.5:
        crop, sil = crop[:, ::-1], sil[:, ::-1]
    h, w = sil.shape
    y = int(rng.integers(-h // 4, max(1 - h // 4, ch - 3 * h // 4)))
    x = int(rng.integers(-w // 4, max(1 - w // 4, cw - 3 * w // 4)))
    composite(canvas, ids, np.ascontiguousarray(crop), np.ascontiguousarray(sil), x, y, new_id)


def _objects(src: DavisSource) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frame, bool mask)`` of every annotated object of every frame of ``src``."""
    out = []
    for rec in src.videos:
        frames = src.load_frames(rec, range(len(rec)))
        masks = src.load_masks(rec, range(len(rec)), size=frames.shape[1:3])
        for frame, mask in zip(frames, masks, strict=True):
            out += [(frame, mask == k) for k in np.unique(mask) if k and (mask == k).sum() >= 400]
    return out


def generate_composites(root: Path, cfg: CompositeConfig) -> None:
    """Write the folder ``root`` (images/, masks/, manifest) for ``cfg``; see the module docstring."""
    rng = np.random.default_rng(cfg.seed)
    src = DavisSource(cfg.davis_root, split=cfg.split, year=2017)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    count = 0
    for rec in src.videos:
        for i in range(0, len(rec), cfg.frame_step):
            frame = src.load_frames(rec, [i])[0]
            mask = src.load_masks(rec, [i], size=frame.shape[:2])[0]
            frame, mask = _resize(frame, mask, cfg.short_edge)
            write_frame(tmp / "images" / f"frame_{rec.name}_{rec.frame_ids[i]}.jpg", frame)
            write_mask(tmp / "masks" / f"frame_{rec.name}_{rec.frame_ids[i]}.png", mask)
            count += 1
    objects = _objects(src)
    size = (cfg.short_edge, round(cfg.short_edge * 16 / 9))
    for n in range(cfg.pastes):
        canvas = _photo(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], size, rng)
        ids = np.zeros(size, np.uint8)
        for k in range(1, int(rng.integers(1, cfg.max_objects + 1)) + 1):
            frame, obj = objects[int(rng.integers(len(objects)))]
            _paste_one(canvas, ids, frame, obj, k, rng)
        present = [k for k in np.unique(ids) if k and (ids == k).sum() >= 100]
        if not present:
            continue
        ids = np.where(np.isin(ids, present), np.searchsorted(present, ids) + 1, 0).astype(np.uint8)
        write_frame(tmp / "images" / f"paste_{n:04d}.jpg", canvas)
        write_mask(tmp / "masks" / f"paste_{n:04d}.png", ids)
        count += 1
    (tmp / MANIFEST).write_text(json.dumps(asdict(cfg), indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("composites: %d images from %s (%s) written to %s", count, cfg.davis_root, cfg.split, root)


class DavisCompositeSource(StaticImageSource):
    """The composites of the module docstring as a static-image source, generated into ``root`` on first use.

    Args:
        root: Output folder (generated when absent or made with other parameters).
        davis_root: DAVIS-2017-layout root whose ``split`` videos are cut.
        split: ``ImageSets/2017/<split>.txt`` of ``davis_root``.
        frame_step: Every ``frame_step``-th frame becomes a ``frame_*`` image.
        pastes: Number of ``paste_*`` images.
        max_objects: Objects pasted per image (1 to this).
        short_edge: Short edge of the written images.
        seed: Generation seed.
        name, on_error: See :class:`StaticImageSource`.
    """

    def __init__(self, root: str | Path, davis_root: str | Path, split: str = "train", frame_step: int = 4,
                 pastes: int = 200, max_objects: int = 3, short_edge: int = 240, seed: int = 0,
                 name: str = "composites", on_error: OnError = "raise") -> None:
        cfg = CompositeConfig(str(Path(davis_root).resolve()), split, int(frame_step), int(pastes),
                              int(max_objects), int(short_edge), int(seed))
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.is_file() or json.loads(manifest.read_text()) != asdict(cfg):
            generate_composites(root, cfg)
        super().__init__(root, name=name, on_error=on_error)
