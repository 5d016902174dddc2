"""Clip augmentation with identical parameters on every frame (albumentations), and static-image
clip synthesis.

Video clips (DESIGN §4): resize so that the short edge is ``short_edge`` (480) times a random scale
``U(0.7, 1.3)``, pad (bottom/right, zeros) up to the crop size, a *balanced* random crop
(``crop_size``, 465×465; the crop is re-drawn until some object of the reference frame keeps more
than ``min_object_pixels`` pixels, else it is centred on a random reference-object pixel), and a
horizontal flip with probability ``flip_prob``. All random choices are drawn from the caller's numpy
generator; albumentations then applies the fixed parameters to every frame (``images=``/``masks=``
targets), so a clip's frames and masks stay aligned. Masks use nearest-neighbour interpolation and
stay integer ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    """Parameters of one clip's augmentation.

    Attributes:
        resized: ``(H, W)`` after the resize.
        crop: ``(y0, x0, h, w)`` of the crop in the resized-and-padded image.
        flip: Horizontal flip.
    """

    resized: tuple[int, int]
    crop: tuple[int, int, int, int]
    flip: bool


class ClipAugment:
    """Resize / scale / balanced crop / flip, the same on every frame of a clip.

    Args:
        crop_size: ``(H, W)`` of the output (465, 465 in the reference; tests use tiny sizes).
        short_edge: The frame's short edge is first resized to this (``None``: keep native size).
        scale_range: Random scale factor range applied after the short-edge resize.
        flip_prob: Probability of a horizontal flip.
        min_object_pixels: A crop is balanced when some reference object keeps more pixels than this.
        crop_tries: Random crop draws before centring the crop on a reference object.
    """

    def __init__(
        self,
        crop_size: Sequence[int] = (465, 465),
        short_edge: int | None = 480,
        scale_range: Sequence[float] = (0.7, 1.3),
        flip_prob: float = 0.5,
        min_object_pixels: int = 100,
        crop_tries: int = 10,
    ) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.short_edge = short_edge
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip_prob = flip_prob
        self.min_object_pixels = min_object_pixels
        self.crop_tries = crop_tries

    def sample_params(
        self, rng: np.random.Generator, frame_hw: tuple[int, int], ref_mask: np.ndarray
    ) -> AugmentParams:
        """Draw the parameters for a clip.

        Args:
            rng: Random generator.
            frame_hw: ``(H, W)`` of the input frames.
            ref_mask: ``(H, W)`` reference-frame ids (used for the balanced crop).
        """
        h, w = frame_hw
        base = 1.0 if self.short_edge is None else self.short_edge / min(h, w)
        s = base * rng.uniform(*self.scale_range)
        rh, rw = max(1, round(h * s)), max(1, round(w * s))
        ch, cw = self.crop_size
        ph, pw = max(rh, ch), max(rw, cw)
        small = cv2.resize(ref_mask.astype(np.uint8), (rw, rh), interpolation=cv2.INTER_NEAREST)
        padded = np.zeros((ph, pw), np.uint8)
        padded[:rh, :rw] = small
        y0, x0 = self._balanced_crop(rng, padded)
        return AugmentParams((rh, rw), (y0, x0, ch, cw), bool(rng.random() < self.flip_prob))

    def _balanced_crop(self, rng: np.random.Generator, mask: np.ndarray) -> tuple[int, int]:
        ch, cw = self.crop_size
        ph, pw = mask.shape
        y0 = x0 = 0
        for _ in range(self.crop_tries):
            y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
            counts = np.bincount(mask[y0:y0 + ch, x0:x0 + cw].ravel(), minlength=1)[1:]
            if counts.size and counts.max() > self.min_object_pixels:
                return y0, x0
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            return y0, x0
        k = int(rng.integers(ys.size))
        y0 = int(np.clip(ys[k] - ch // 2, 0, ph - ch))
        x0 = int(np.clip(xs[k] - cw // 2, 0, pw - cw))
        return y0, x0

    def compose(self, params: AugmentParams) -> A.Compose:
        """The albumentations pipeline realising ``params`` (deterministic)."""
        rh, rw = params.resized
        y0, x0, ch, cw = params.crop
        return A.Compose([
            A.Resize(rh, rw, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
            A.PadIfNeeded(ch, cw, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            A.Crop(x_min=x0, y_min=y0, x_max=x0 + cw, y_max=y0 + ch),
            A.HorizontalFlip(p=1.0 if params.flip else 0.0),
        ])

    def apply(self, params: AugmentParams, frames: np.ndarray, masks: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Apply ``params`` to every frame.

        Args:
            params: From :meth:`sample_params`.
            frames: ``(T, H, W, 3)`` uint8.
            masks: ``(T, H, W)`` integer ids, or ``None``.

        Returns:
            Frames ``(T, h, w, 3)`` uint8 and masks ``(T, h, w)`` uint8 (or ``None``), ``(h, w) = crop_size``.
        """
        tf = self.compose(params)
        if masks is None:
            return np.ascontiguousarray(tf(images=frames)["images"]), None
        out = tf(images=frames, masks=masks.astype(np.uint8))
        return np.ascontiguousarray(out["images"]), np.ascontiguousarray(out["masks"]).astype(np.uint8)


class StaticClipSynthesizer:
    """Turn one image + instance mask into a pseudo-video: every frame is an independent random affine
    warp (scale, translation, rotation, shear) of the image followed by colour jitter.

    Args:
        num_frames: Clip length ``T``.
        scale: Affine scale range.
        translate: Translation range, fraction of the size.
        rotate: Rotation range in degrees.
        shear: Shear range in degrees.
        jitter: Colour-jitter strength (brightness/contrast/saturation ``1 ± jitter``, hue ``± jitter/5``).
    """

    def __init__(
        self,
        num_frames: int = 5,
        scale: Sequence[float] = (0.9, 1.1),
        translate: Sequence[float] = (-0.1, 0.1),
        rotate: Sequence[float] = (-15.0, 15.0),
        shear: Sequence[float] = (-10.0, 10.0),
        jitter: float = 0.2,
    ) -> None:
        self.num_frames = num_frames
        j = float(jitter)
        self._tf = [
            A.Affine(
                scale=tuple(scale),
                translate_percent=tuple(translate),
                rotate=tuple(rotate),
                shear=tuple(shear),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=1.0,
            ),
            A.ColorJitter(
                brightness=(1 - j, 1 + j),
                contrast=(1 - j, 1 + j),
                saturation=(1 - j, 1 + j),
                hue=(-j / 5, j / 5),
                p=1.0,
            ),
        ]

    def __call__(
        self, rng: np.random.Generator, image: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Synthesise a clip.

        Args:
            rng: Random generator (seeds albumentations per frame, so the result is deterministic).
            image: ``(H, W, 3)`` uint8.
            mask: ``(H, W)`` integer ids.

        Returns:
            Frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8; objects absent from frame 0 are
            erased from the later frames.
        """
        frames, masks = [], []
        for _ in range(self.num_frames):
            tf = A.Compose(self._tf, seed=int(rng.integers(2**31 - 1)))
            out = tf(image=image, mask=mask.astype(np.uint8))
            frames.append(out["image"])
            masks.append(out["mask"])
        m = np.stack(masks)
        m[~np.isin(m, np.unique(m[0]))] = 0
        return np.stack(frames), m
