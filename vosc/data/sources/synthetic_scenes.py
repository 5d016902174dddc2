"""The ``rich`` synthetic scene renderer: varied silhouettes, textures and motion for training VOS from
scratch.

Each video is a deterministic function of ``(seed, video index)`` and holds:

* **Camera motion:** a background photo (any colour photo shipped with scikit-image, randomly cropped,
  flipped and colour-shifted) seen through a camera that pans and zooms smoothly.
* **Objects:** ``objects`` annotated objects. A silhouette is a random smooth blob (a radial Fourier
  outline whose harmonics drift over time: non-rigid deformation), an ellipse, or the real horse mask of
  ``skimage.data.horse``; it is filled with a random crop of a random photo (colour-jittered).
* **Motion:** a smooth random walk of the velocity (bouncing off the borders), a slow rotation and a
  scale trend (0.6×–1.5× over the video) with breathing; objects pass in front of each other in a random
  but fixed depth order (occlusion).
* **Distractors:** ``distractors`` unannotated sprites (background), a share of them with the texture of
  an annotated object, so that appearance alone does not identify an object.

Frames are ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8 ids ``0..K``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

# colour photos (RGB) used for textures and backgrounds; all ship with scikit-image (no download)
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
           "colorwheel", "retina", "motorcycle_left")
# grey textures, tinted when used
_GREY = ("camera", "coins", "moon", "brick", "grass", "gravel", "clock", "cell", "text", "page")


@cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


@cache
def _horse() -> np.ndarray:
    import skimage.data

    m = ~skimage.data.horse()
    ys, xs = np.nonzero(m)
    return np.ascontiguousarray(m[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colour-jittered random square crop ``(size, size, 3)`` uint8 of a random photo."""
    names = _PHOTOS + _GREY
    img = _photo(names[int(rng.integers(len(names)))])
    h, w = img.shape[:2]
    side = int(rng.integers(min(h, w) // 4, min(h, w) // 2 + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    tex = cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    if img[..., 0].tobytes() == img[..., 1].tobytes():  # grey: tint
        tex *= rng.uniform(0.5, 1.2, size=3)
    else:
        shaded = tex * rng.uniform(0.8, 1.2, size=3) + rng.uniform(-25, 25, size=3)
        return np.clip(shaded, 0, 255).astype(np.uint8)
    return np.clip(tex, 0, 255).astype(np.uint8)


@dataclass
class _Object:
    tex: np.ndarray  # (S, S, 3) texture, S = 2 * radius_px
    kind: str  # "blob" | "ellipse" | "horse"
    radius: float  # base radius in pixels
    harm: np.ndarray  # (K, 3): amplitude, phase, phase speed of the blob outline harmonics
    aspect: float
    pos: np.ndarray  # (T, 2) centre per frame
    angle: np.ndarray  # (T,) radians
    scale: np.ndarray  # (T,)


def _trajectory(rng: np.random.Generator, total: int, w: int, h: int, margin: float) -> np.ndarray:
    """Smooth random-walk positions ``(T, 2)`` bouncing inside ``[margin, size - margin]``."""
    lo = np.array([margin, margin])
    span = np.maximum(np.array([w, h], dtype=float) - 2 * margin, 1.0)
    p = lo + rng.uniform(0.15, 0.85, size=2) * span
    speed = rng.uniform(0.01, 0.04) * w
    ang = rng.uniform(0, 2 * np.pi)
    v = speed * np.array([np.cos(ang), np.sin(ang)])
    out = np.zeros((total, 2))
    raw = p - lo
    for t in range(total):
        out[t] = lo + span - np.abs(np.mod(raw, 2 * span) - span)  # triangle wave = bouncing
        v = 0.85 * v + 0.15 * (speed * rng.normal(size=2) + v)
        raw = raw + v
    return out


def _make_object(rng: np.random.Generator, total: int, w: int, h: int) -> _Object:
    kind = ("blob", "blob", "ellipse", "horse")[int(rng.integers(4))]
    radius = rng.uniform(0.16, 0.3) * min(w, h) * (1.4 if kind == "horse" else 1.0)
    size = max(8, int(np.ceil(2 * radius * 1.8)))
    k = 5
    harm = np.stack([rng.uniform(0, 0.22, k) / np.arange(1, k + 1) ** 0.5, rng.uniform(0, 2 * np.pi, k),
                     rng.uniform(-0.25, 0.25, k)], axis=1)
    trend = np.exp(np.linspace(0, np.log(rng.uniform(0.6, 1.5)), total))
    scale = trend * (1 + 0.08 * np.sin(rng.uniform(0, 2 * np.pi) + rng.uniform(0.1, 0.4) * np.arange(total)))
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.06, 0.06) * np.arange(total)
    pos = _trajectory(rng, total, w, h, margin=0.2 * radius)
    return _Object(_texture(rng, size), kind, radius, harm, rng.uniform(0.6, 1.0), pos, angle, scale)


def _silhouette(obj: _Object, t: int, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` silhouette of ``obj`` at frame ``t`` (centred, rotated, scaled)."""
    c = (side - 1) / 2
    r = obj.radius * obj.scale[t]
    if obj.kind == "horse":
        horse = _horse().astype(np.float32)
        s = 2 * r / max(horse.shape)
        hc = (horse.shape[1] / 2, horse.shape[0] / 2)
        m = cv2.getRotationMatrix2D(hc, float(np.degrees(obj.angle[t]) * 0.2), s)
        m[:, 2] += [c - hc[0], c - hc[1]]
        return cv2.warpAffine(horse, m, (side, side), flags=cv2.INTER_LINEAR) > 0.5
    yy, xx = np.mgrid[:side, :side].astype(np.float32) - c
    ca, sa = np.cos(obj.angle[t]), np.sin(obj.angle[t])
    u, v = ca * xx + sa * yy, (-sa * xx + ca * yy) / obj.aspect
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if obj.kind == "ellipse":
        return rho <= r
    outline = np.ones_like(theta)
    for k, (a, ph, om) in enumerate(obj.harm, start=1):
        outline += a * np.cos(k * theta + ph + om * t)
    return rho <= r * outline


def _paste(frame: np.ndarray, mask: np.ndarray | None, obj: _Object, t: int, oid: int) -> None:
    """Composite ``obj`` at frame ``t`` onto ``frame`` (and ``mask`` with id ``oid``) in place."""
    h, w = frame.shape[:2]
    side = int(np.ceil(2 * obj.radius * obj.scale[t] * 1.9)) | 1
    alpha = _silhouette(obj, t, side)
    rot = cv2.getRotationMatrix2D(
        (obj.tex.shape[1] / 2, obj.tex.shape[0] / 2), float(np.degrees(obj.angle[t])), side / obj.tex.shape[0]
    )
    rot[:, 2] += (side - obj.tex.shape[1]) / 2
    tex = cv2.warpAffine(obj.tex, rot, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x0, y0 = int(np.rint(obj.pos[t, 0] - side / 2)), int(np.rint(obj.pos[t, 1] - side / 2))
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    frame[fy0:fy1, fx0:fx1][a] = tex[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][a]
    if mask is not None:
        mask[fy0:fy1, fx0:fx1][a] = oid


def _background(rng: np.random.Generator, total: int, w: int, h: int) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` of a camera panning and zooming over a photo."""
    img = _photo(_PHOTOS[int(rng.integers(len(_PHOTOS)))])
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2, size=3), 0, 255).astype(np.uint8)
    zoom0 = max(1.6 * w / img.shape[1], 1.6 * h / img.shape[0]) * rng.uniform(1.0, 1.6)
    zooms = zoom0 * np.exp(np.linspace(0, rng.uniform(-0.25, 0.25), total))
    pan = rng.uniform(-1, 1, size=2) * 0.015 * w
    c0 = np.array([img.shape[1], img.shape[0]]) / 2 + rng.uniform(-0.15, 0.15, size=2) * np.array(
        img.shape[1::-1]
    )
    out = np.zeros((total, h, w, 3), np.uint8)
    for t in range(total):
        z = zooms[t]
        cx, cy = c0 + pan * t / z
        m = np.array([[z, 0, w / 2 - z * cx], [0, z, h / 2 - z * cy]], dtype=np.float64)
        out[t] = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA if z < 1 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    return out


def render_rich_video(rng: np.random.Generator, total: int, width: int, height: int, objects: int,
                      distractors: int = 1, last_start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render one ``rich`` video.

    Args:
        rng: The video's generator (seeded from ``(seed, index)``).
        total: Frames ``T``.
        width: ``W``.
        height: ``H``.
        objects: Annotated objects ``K`` (ids ``1..K``).
        distractors: Unannotated sprites (background in the masks).
        last_start: First frame of the last object (later than 0: it enters mid-video).

    Returns:
        Frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8.
    """
    frames = _background(rng, total, width, height)
    masks = np.zeros((total, height, width), np.uint8)
    objs = [_make_object(rng, total, width, height) for _ in range(objects)]
    extra = [_make_object(rng, total, width, height) for _ in range(distractors)]
    for d in extra:
        if objs and rng.random() < 0.5:  # same texture as an annotated object
            d.tex = cv2.resize(objs[int(rng.integers(len(objs)))].tex, d.tex.shape[1::-1])
        d.radius *= 0.8
    layers = [(o, k + 1) for k, o in enumerate(objs)] + [(d, 0) for d in extra]
    order = rng.permutation(len(layers))
    for t in range(total):
        for j in order:
            obj, oid = layers[j]
            if oid == objects and t < last_start:
                continue
            _paste(frames[t], masks[t], obj, t, oid)  # a distractor in front hides an object (id 0)
    return frames, masks
