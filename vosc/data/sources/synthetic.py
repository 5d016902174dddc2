"""Built-in synthetic videos: real photo cut-outs (``skimage.data``) moving over real photo backgrounds.

Deterministic for a given seed. Each video pans over a background photo while ``K`` sprites (photo crops
cut out with elliptical masks, or textured with the horse silhouette of ``skimage.data.horse``) move
with constant velocity, bounce off the borders, breathe in scale and occlude each other (later ids on
top). Written in DAVIS-2017 layout (default) or YouTube-VOS layout (``layout="ytvos"``: ``train/``,
``valid/`` with first-appearance annotations and a late-starting object, ``valid_all_frames/``).

Command line: ``python -m vosc.data.synthetic --out DIR --videos N [--frames F --size WxH --seed S
--objects K --layout {davis,ytvos}]``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from vosc.data.errors import DatasetLayoutError
from vosc.data.palette import write_frame, write_mask
from vosc.data.sources.base import OnError, VideoSource
from vosc.data.sources.synthetic_scenes import _photo, render_rich_video

log = logging.getLogger(__name__)

Layout = Literal["davis", "ytvos"]
Style = Literal["classic", "rich"]
STYLES = ("classic", "rich")
MANIFEST = "synthetic.json"
YTVOS_STRIDE = 5

# (photo, (row0, row1, col0, col1)) crops cut out with an inscribed ellipse.
_SPRITE_CROPS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("astronaut", (20, 250, 140, 340)),
    ("chelsea", (20, 290, 90, 340)),
    ("coffee", (40, 340, 140, 470)),
    ("rocket", (30, 420, 250, 400)),
    ("immunohistochemistry", (100, 400, 100, 300)),
)
_BACKGROUNDS = ("rocket", "coffee", "immunohistochemistry", "hubble_deep_field", "brick", "grass", "gravel",
                "astronaut")


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a generated set (stored in ``synthetic.json``)."""

    videos: int = 4
    frames: int = 8
    width: int = 160
    height: int = 96
    seed: int = 0
    objects: int = 2
    layout: str = "davis"
    val_fraction: float = 0.25
    style: str = "classic"
    distractors: int = 0


def _sprite_library() -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb, alpha) sprites at their native size; alpha is bool."""
    out = []
    for name, (r0, r1, c0, c1) in _SPRITE_CROPS:
        rgb = _photo(name)[r0:r1, c0:c1]
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        alpha = ((yy - h / 2 + 0.5) / (h / 2)) ** 2 + ((xx - w / 2 + 0.5) / (w / 2)) ** 2 <= 1.0
        out.append((rgb, alpha))
    import skimage.data

    horse = ~skimage.data.horse()
    tex = cv2.resize(_photo("chelsea"), (horse.shape[1], horse.shape[0]), interpolation=cv2.INTER_AREA)
    out.append((tex, horse))
    return out


@dataclass
class _Sprite:
    rgb: np.ndarray
    alpha: np.ndarray
    pos: np.ndarray
    vel: np.ndarray
    phase: float
    start: int


def _make_sprites(rng: np.random.Generator, cfg: SyntheticConfig, total: int, late: bool) -> list[_Sprite]:
    lib = _sprite_library()
    sprites = []
    slots = rng.permutation(cfg.objects)
    for k in range(cfg.objects):
        rgb, alpha = lib[int(rng.integers(len(lib)))]
        target_h = rng.uniform(0.35, 0.6) * cfg.height
        s = target_h / rgb.shape[0]
        w, h = max(4, round(rgb.shape[1] * s)), max(4, round(rgb.shape[0] * s))
        rgb_s = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        alpha_s = cv2.resize(alpha.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        x = (slots[k] + 0.5) / cfg.objects * cfg.width
        y = rng.uniform(0.35, 0.65) * cfg.height
        speed = rng.uniform(0.02, 0.05) * cfg.width
        ang = rng.uniform(0, 2 * np.pi)
        start = 0
        if late and k == cfg.objects - 1 and cfg.objects > 1:
            start = YTVOS_STRIDE * int(rng.integers(1, max(2, (total - 1) // YTVOS_STRIDE)))
        sprites.append(_Sprite(rgb_s, alpha_s, np.array([x, y]), speed * np.array([np.cos(ang), np.sin(ang)]),
                               float(rng.uniform(0, 2 * np.pi)), start))
    return sprites


def _render_video(rng: np.random.Generator, cfg: SyntheticConfig, total: int, late: bool,
                  step: float) -> tuple[np.ndarray, np.ndarray]:
    """Render ``total`` frames in the configured style (``classic`` here, ``rich`` in
    :mod:`vosc.data.sources.synthetic_scenes`).

    Returns:
        Frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8 ids ``1..K``.
    """
    if cfg.style == "rich":
        start = 0
        if late and cfg.objects > 1:  # the last object enters at an annotated (5-step) frame
            start = YTVOS_STRIDE * int(rng.integers(1, max(2, (total - 1) // YTVOS_STRIDE)))
        return render_rich_video(rng, total, cfg.width, cfg.height, cfg.objects, cfg.distractors, start)
    W, H = cfg.width, cfg.height
    bg = _photo(_BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))])
    zoom = max(1.4 * W / bg.shape[1], 1.4 * H / bg.shape[0])
    bg = cv2.resize(bg, (max(W + 2, round(bg.shape[1] * zoom)), max(H + 2, round(bg.shape[0] * zoom))),
                    interpolation=cv2.INTER_AREA)
    pan0 = np.array([rng.uniform(0, bg.shape[1] - W), rng.uniform(0, bg.shape[0] - H)])
    pan_v = rng.uniform(-1, 1, size=2) * 0.01 * W * step
    sprites = _make_sprites(rng, cfg, total, late)
    frames = np.zeros((total, H, W, 3), np.uint8)
    masks = np.zeros((total, H, W), np.uint8)
    for t in range(total):
        px, py = np.clip(pan0 + pan_v * t, 0, [bg.shape[1] - W, bg.shape[0] - H]).astype(int)
        frame = bg[py:py + H, px:px + W].copy()
        mask = np.zeros((H, W), np.uint8)
        for oid, sp in enumerate(sprites, start=1):
            if t >= sp.start:
                _paste(frame, mask, sp, oid, t, step, W, H)
        frames[t], masks[t] = frame, mask
    return frames, masks


def _paste(
    frame: np.ndarray, mask: np.ndarray, sp: _Sprite, oid: int, t: int, step: float, W: int, H: int
) -> None:
    """Move sprite ``sp`` to time ``t`` (bouncing) and composite it onto ``frame``/``mask`` in place."""
    scale = 1.0 + 0.1 * np.sin(sp.phase + 0.3 * t * step)
    h, w = sp.rgb.shape[:2]
    sw, sh = max(2, round(w * scale)), max(2, round(h * scale))
    rgb = cv2.resize(sp.rgb, (sw, sh), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(sp.alpha.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
    lo, hi = np.array([sw / 4, sh / 4]), np.array([W - sw / 4, H - sh / 4])
    span = np.maximum(hi - lo, 1e-6)
    raw = sp.pos - lo + sp.vel * t * step
    pos = lo + span - np.abs(np.mod(raw, 2 * span) - span)  # triangle wave = bouncing
    composite(frame, mask, rgb, alpha, int(np.rint(pos[0] - sw / 2)), int(np.rint(pos[1] - sh / 2)), oid)


def composite(frame: np.ndarray, mask: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
              oid: int) -> None:
    """Paste the ``alpha`` pixels of ``rgb`` ``(h, w, 3)`` with their top-left corner at ``(x0, y0)`` onto
    ``frame`` ``(H, W, 3)`` and id ``oid`` onto ``mask`` ``(H, W)``, in place, clipped to the frame."""
    h, w = alpha.shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub_a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    frame[fy0:fy1, fx0:fx1][sub_a] = rgb[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub_a]
    mask[fy0:fy1, fx0:fx1][sub_a] = oid


def _manifest_matches(manifest: Path, cfg: SyntheticConfig) -> bool:
    """Whether ``manifest`` describes ``cfg`` (keys added since a set was written take their defaults)."""
    return {**asdict(SyntheticConfig()), **json.loads(manifest.read_text())} == asdict(cfg)


def _video_names(cfg: SyntheticConfig) -> tuple[list[str], list[str]]:
    names = [f"synth-{i:03d}" for i in range(cfg.videos)]
    n_val = min(cfg.videos, max(1, round(cfg.videos * cfg.val_fraction))) if cfg.videos > 1 else 0
    train, val = names[: len(names) - n_val], names[len(names) - n_val:]
    return train, (val or train)


def render_synthetic_videos(
    videos: int = 4,
    frames: int = 8,
    size: tuple[int, int] = (160, 96),
    seed: int = 0,
    objects: int = 2,
    style: Style = "classic",
    distractors: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render videos in memory, exactly as :func:`generate_synthetic` writes them in DAVIS layout.

    Video ``i`` depends only on ``(seed, i)``, so two seeds give disjoint, reproducible sets (e.g. a
    training and a held-out set).

    Args:
        videos: Number of videos ``N``.
        frames: Frames per video ``T``.
        size: ``(W, H)``.
        seed: Random seed.
        objects: Objects per video ``K``.
        style: ``"classic"`` or ``"rich"`` (see :func:`generate_synthetic`).
        distractors: Unannotated sprites per video (``rich`` only).

    Yields:
        ``N`` pairs of frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8 ids ``0..K``.
    """
    cfg = SyntheticConfig(videos, frames, int(size[0]), int(size[1]), seed, objects, style=style,
                          distractors=distractors)
    for i in range(videos):
        yield _render_video(np.random.default_rng([seed, i]), cfg, frames, late=False, step=1.0)


def _write_davis(out: Path, cfg: SyntheticConfig) -> None:
    train, val = _video_names(cfg)
    rendered = render_synthetic_videos(cfg.videos, cfg.frames, (cfg.width, cfg.height), cfg.seed, cfg.objects,
                                       cfg.style, cfg.distractors)  # type: ignore[arg-type]
    for name, (frames, masks) in zip(train + [v for v in val if v not in train], rendered, strict=False):
        for t in range(cfg.frames):
            write_frame(out / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", frames[t])
            write_mask(out / "Annotations" / "480p" / name / f"{t:05d}.png", masks[t])
    sets = out / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "train.txt").write_text("".join(f"{n}\n" for n in train))
    (sets / "val.txt").write_text("".join(f"{n}\n" for n in val))


def _write_ytvos(out: Path, cfg: SyntheticConfig) -> None:
    train, val = _video_names(cfg)
    total = (cfg.frames - 1) * YTVOS_STRIDE + 1
    metas: dict[str, dict] = {"train": {}, "valid": {}}
    for i, name in enumerate(train + [v for v in val if v not in train]):
        rng = np.random.default_rng([cfg.seed, i])
        for split in [s for s, names in (("train", train), ("valid", val)) if name in names]:
            frames, masks = _render_video(rng, cfg, total, late=True, step=1.0 / YTVOS_STRIDE)
            metas[split][name] = _write_ytvos_video(out, split, name, frames, masks)
    for split, meta in metas.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / split / "meta.json").write_text(json.dumps({"videos": meta}, indent=1))


def _write_ytvos_video(out: Path, split: str, name: str, frames: np.ndarray, masks: np.ndarray) -> dict:
    objects: dict[str, dict] = {}
    seen: set[int] = set()
    for t in range(0, len(frames), YTVOS_STRIDE):
        fid = f"{t:05d}"
        write_frame(out / split / "JPEGImages" / name / f"{fid}.jpg", frames[t])
        present = sorted(int(v) for v in np.unique(masks[t]) if v)
        for oid in present:
            objects.setdefault(str(oid), {"category": "photo", "frames": []})["frames"].append(fid)
        new = [o for o in present if o not in seen]
        if split == "train":
            write_mask(out / split / "Annotations" / name / f"{fid}.png", masks[t])
        elif new:
            write_mask(
                out / split / "Annotations" / name / f"{fid}.png",
                np.where(np.isin(masks[t], new), masks[t], 0),
            )
        seen.update(present)
    if split == "valid":
        for t in range(len(frames)):
            write_frame(out / "valid_all_frames" / "JPEGImages" / name / f"{t:05d}.jpg", frames[t])
    return {"objects": objects}


def generate_synthetic(out: str | Path, videos: int = 4, frames: int = 8, size: tuple[int, int] = (160, 96),
                       seed: int = 0, objects: int = 2, layout: Layout = "davis", val_fraction: float = 0.25,
                       style: Style = "classic", distractors: int = 0) -> Path:
    """Generate a synthetic dataset into ``out`` (atomically: a temp folder renamed into place).

    Args:
        out: Target folder; must not exist, be empty, or hold a set generated with the same parameters
            (then nothing is done).
        videos: Number of videos ``N`` (the last ``val_fraction`` of them form the val split).
        frames: Frames per video (YouTube-VOS layout: annotated 5-step frames; 30 fps frames are
            ``5 * (frames - 1) + 1``).
        size: ``(W, H)``.
        seed: Random seed; the same parameters give the same files.
        objects: Objects per video ``K`` (≤ 255).
        layout: ``"davis"`` or ``"ytvos"``.
        val_fraction: Share of videos in the val/valid split (the last videos: video ``i`` depends only on
            ``(seed, i)``, so validation videos are never training videos).
        style: ``"classic"`` (photo cut-outs with linear bouncing motion) or ``"rich"`` (random blob, ellipse
            and horse silhouettes with random photo textures, non-rigid deformation, random-walk motion,
            scale trends, rotation, camera pan/zoom, occlusion; see
            :mod:`vosc.data.sources.synthetic_scenes`).
        distractors: Unannotated sprites per video (``rich``), half of them textured like an object.

    Returns:
        ``out``.

    Raises:
        DatasetLayoutError: ``out`` holds something else.
    """
    out = Path(out)
    cfg = SyntheticConfig(
        videos, frames, int(size[0]), int(size[1]), seed, objects, layout, val_fraction, style, distractors
    )
    if layout not in ("davis", "ytvos"):
        raise ValueError(f"layout must be 'davis' or 'ytvos', got {layout!r}")
    if style not in STYLES or distractors < 0:
        raise ValueError(f"style must be one of {STYLES} and distractors >= 0, got {style!r}, {distractors}")
    if not 1 <= objects <= 255 or videos < 1 or frames < 1:
        raise ValueError(f"invalid synthetic parameters {cfg}")
    manifest = out / MANIFEST
    if manifest.is_file():
        if _manifest_matches(manifest, cfg):
            return out
        raise DatasetLayoutError(out, f"holds a synthetic set with other parameters ({manifest.read_text()})")
    if out.exists() and any(out.iterdir()):
        raise DatasetLayoutError(out, "exists, is not empty and is not a synthetic set")
    _generate_atomically(out, cfg)
    log.info("generated synthetic %s set: %s", layout, out)
    return out


def _generate_atomically(out: Path, cfg: SyntheticConfig) -> None:
    """Write the set and its manifest into a temp folder beside ``out`` (new or empty) and rename it into
    place; a set with the same parameters that another process finished first is kept."""
    manifest = out / MANIFEST
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (_write_davis if cfg.layout == "davis" else _write_ytvos)(tmp, cfg)
        (tmp / MANIFEST).write_text(json.dumps(asdict(cfg)))
        try:
            if out.exists() and not any(out.iterdir()):
                out.rmdir()
            os.replace(tmp, out)
        except OSError:
            # another process (e.g. another DDP rank) finished the same set first
            if not (manifest.is_file() and _manifest_matches(manifest, cfg)):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class SyntheticSource(VideoSource):
    """The synthetic set as a source: generated into ``root`` on first use, then read like DAVIS
    (``layout="davis"``) or YouTube-VOS (``layout="ytvos"``).

    Args:
        root: Folder of the generated set.
        split: DAVIS ``"train"``/``"val"``; YouTube-VOS ``"train"``/``"valid"``.
        videos, frames, width, height, seed, objects, layout, style, distractors, val_fraction: Generator
            parameters (see :func:`generate_synthetic`); ``val_fraction=1`` makes every video a validation
            video (a held-out set of its own seed).
        name: Source name.
        on_error: See :class:`VideoSource`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        videos: int = 4,
        frames: int = 8,
        width: int = 160,
        height: int = 96,
        seed: int = 0,
        objects: int = 2,
        layout: Layout = "davis",
        name: str = "synthetic",
        on_error: OnError = "raise",
        style: Style = "classic",
        distractors: int = 0,
        val_fraction: float = 0.25,
    ) -> None:
        super().__init__(name, validate=True, on_error=on_error)
        from vosc.data.sources.davis import DavisSource
        from vosc.data.sources.youtube_vos import YouTubeVOSSource

        self.root = generate_synthetic(root, videos, frames, (width, height), seed, objects, layout,
                                       val_fraction=val_fraction, style=style, distractors=distractors)
        inner: VideoSource
        if layout == "davis":
            inner = DavisSource(self.root, split=split, name=name, on_error=on_error)
        else:
            inner = YouTubeVOSSource(self.root, split=split, name=name, on_error=on_error)
        self.videos, self.skipped = inner.videos, inner.skipped
