"""Object-aware video coding for ``analysis=encoder``: the encoder knows the masks and moves bits to them.

Two tools (DESIGN §9, issue 25):

* :class:`RoiX265Codec` — x265 with per-block QP offsets. Each picture goes through a PyAV filter graph of
  ``addroi`` filters, which attach ``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data; FFmpeg's libx265 wrapper
  turns it into x265's per-block quantiser offsets (x265 needs adaptive quantisation on, as in the
  ``veryfast`` preset). Regions: one box per object (the object's bounding box grown by ``margin``) or, with
  ``block``, a finer map of ``block``-pixel cells covering the grown mask, merged into horizontal runs;
  then the whole picture at ``background_qoffset``. The first region that covers a block sets its offset
  (measured: with the whole-picture region first, the object boxes have no effect), so objects come first.
  The offsets are ordinary HEVC QP deltas in the bitstream: a decoder needs nothing more.
* :class:`BackgroundBlur` — a pre-filter for any codec (x265, VVenC): Gaussian blur outside the dilated mask,
  with a feathered edge. Nothing to send: the decoder just decodes the blurred background.

Both take the encoder's id maps ``(T, H, W)`` uint8 (0 = background).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from vosc.codecs.base import EncodedStream, check_frames
from vosc.codecs.common import import_av
from vosc.codecs.mask_codec import check_masks
from vosc.codecs.x265 import RateControl, X265Codec
from vosc.config import ConfigError
from vosc.metrics.rate import psnr_y_regions as region_psnr  # re-exported: the reports' name for it

__all__ = ["BackgroundBlur", "Box", "RoiX265Codec", "object_boxes", "region_psnr"]


@dataclass(frozen=True)
class Box:
    """A region of interest in pixels: top-left ``(x, y)``, size ``w x h``, x265 ``qoffset`` in [-1, 1]."""

    x: int
    y: int
    w: int
    h: int
    qoffset: float


def _grow(mask: np.ndarray, margin: int) -> np.ndarray:
    """``(H, W)`` bool mask dilated by ``margin`` pixels (square)."""
    if margin <= 0 or not mask.any():
        return mask
    import cv2

    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def object_boxes(mask: np.ndarray, qoffset: float, margin: int = 8, block: int | None = None) -> list[Box]:
    """Regions covering the objects of one id map.

    Args:
        mask: ``(H, W)`` uint8 id map (0 = background).
        qoffset: Offset of every returned region.
        margin: Pixels added around each object (or the mask, with ``block``).
        block: ``None``: one bounding box per object id. An int: the ``block``-pixel cells that touch the
            grown mask, merged into runs along each row of cells.

    Returns:
        Boxes clipped to the picture (empty when the map has no object).
    """
    h, w = mask.shape
    if block is None:
        out = []
        for obj in np.unique(mask[mask > 0]):
            ys, xs = np.nonzero(mask == obj)
            x0, y0 = max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin)
            x1, y1 = min(w, int(xs.max()) + 1 + margin), min(h, int(ys.max()) + 1 + margin)
            out.append(Box(x0, y0, x1 - x0, y1 - y0, qoffset))
        return out
    grown = _grow(mask > 0, margin)
    rows, cols = -(-h // block), -(-w // block)
    padded = np.zeros((rows * block, cols * block), bool)
    padded[:h, :w] = grown
    cells: np.ndarray = np.asarray(padded.reshape(rows, block, cols, block).any(axis=(1, 3)))
    out = []
    for r in range(rows):
        c = 0
        while c < cols:
            if not cells[r, c]:
                c += 1
                continue
            start = c
            while c < cols and cells[r, c]:
                c += 1
            x0, y0 = start * block, r * block
            out.append(Box(x0, y0, min(w, c * block) - x0, min(h, (r + 1) * block) - y0, qoffset))
    return out


class RoiX265Codec(X265Codec):
    """x265 whose pictures carry region-of-interest QP offsets from the encoder's masks (module docstring).

    Args:
        object_qoffset: Offset of the object regions (negative: finer quantisation), in [-1, 1].
        background_qoffset: Offset of the rest of the picture, in [-1, 1].
        margin: Pixels added around the objects.
        block: ``None``: a box per object; an int (e.g. 16, 32, 64): a block map of that cell size.
        rate_control, preset, tune, keyint, encoder: As :class:`~vosc.codecs.x265.X265Codec`.
    """

    name = "x265"

    def __init__(self, object_qoffset: float = -0.2, background_qoffset: float = 0.2, margin: int = 8,
                 block: int | None = None, rate_control: RateControl = "crf", preset: str = "veryfast",
                 tune: str = "zerolatency", keyint: int = 8, encoder: str = "libx265") -> None:
        super().__init__(rate_control, preset, tune, keyint, encoder)
        for key, value in (("object_qoffset", object_qoffset), ("background_qoffset", background_qoffset)):
            if not -1.0 <= float(value) <= 1.0:
                raise ConfigError(f"RoiX265Codec {key} must be in [-1, 1], got {value}")
        if int(margin) < 0 or (block is not None and int(block) < 4):
            raise ConfigError(
                f"RoiX265Codec margin must be >= 0 and block >= 4 or null, got {margin}, {block}")
        self.object_qoffset, self.background_qoffset = float(object_qoffset), float(background_qoffset)
        self.margin, self.block = int(margin), None if block is None else int(block)

    def params(self) -> dict[str, object]:
        roi = {"object_qoffset": self.object_qoffset, "background_qoffset": self.background_qoffset,
               "margin": self.margin, "block": self.block}
        return {**super().params(), "roi": roi}

    def regions(self, mask: np.ndarray) -> list[Box]:
        """Regions of one ``(H, W)`` id map, objects first, then the whole picture (background offset)."""
        h, w = mask.shape
        boxes = object_boxes(mask, self.object_qoffset, self.margin, self.block)
        return [*boxes, Box(0, 0, w, h, self.background_qoffset)]

    def encode_with_masks(self, frames: np.ndarray, q: int, masks: np.ndarray) -> EncodedStream:
        """Encode ``(T, H, W, 3)`` uint8 RGB frames with the regions of ``(T, H, W)`` uint8 id maps.

        Returns:
            The raw Annex-B stream (decode with :meth:`decode_stream`) and x265's per-frame QPs.
        """
        q = self.check_input(frames, q)
        check_masks(masks, "RoiX265Codec masks")
        if masks.shape != frames.shape[:3]:
            raise ValueError(f"RoiX265Codec: masks {masks.shape} do not match frames {frames.shape[:3]}")
        av = import_av()

        def prepare(frame: Any, i: int) -> Any:
            graph = av.filter.Graph()
            last = graph.add_buffer(width=frame.width, height=frame.height, format="yuv420p",
                                    time_base=Fraction(1, 25))
            for b in self.regions(masks[i]):
                node = graph.add("addroi", f"x={b.x}:y={b.y}:w={b.w}:h={b.h}:qoffset={b.qoffset:.4f}")
                last.link_to(node)
                last = node
            sink = graph.add("buffersink")
            last.link_to(sink)
            graph.configure()
            graph.push(frame)
            out = graph.pull()
            out.pts = i
            return out

        return self._encode_stream(frames, q, prepare=prepare)


class BackgroundBlur:
    """Gaussian blur outside the dilated object mask, feathered (a pre-filter for any codec).

    Args:
        sigma: Blur standard deviation in pixels (> 0).
        dilate: Pixels the mask is grown by before blending.
        feather: Width in pixels of the soft transition (0: hard edge).
    """

    def __init__(self, sigma: float = 3.0, dilate: int = 16, feather: int = 8) -> None:
        if float(sigma) <= 0 or int(dilate) < 0 or int(feather) < 0:
            raise ConfigError(f"BackgroundBlur needs sigma > 0, dilate >= 0, feather >= 0; got {sigma}, "
                              f"{dilate}, {feather}")
        self.sigma, self.dilate, self.feather = float(sigma), int(dilate), int(feather)

    def params(self) -> dict[str, Any]:
        """Everything that changes the output (fingerprints, provenance)."""
        return {"name": "blur", "sigma": self.sigma, "dilate": self.dilate, "feather": self.feather}

    def __call__(self, frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Blur the background of ``(T, H, W, 3)`` uint8 frames outside ``(T, H, W)`` id maps' objects.

        Returns:
            ``(T, H, W, 3)`` uint8; object pixels (and ``dilate`` around them) unchanged.
        """
        import cv2

        check_frames(frames, "BackgroundBlur")
        check_masks(masks, "BackgroundBlur masks")
        if masks.shape != frames.shape[:3]:
            raise ValueError(f"BackgroundBlur: masks {masks.shape} do not match frames {frames.shape[:3]}")
        out = np.empty_like(frames)
        for i, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
            keep = _grow(mask > 0, self.dilate).astype(np.float32)
            if self.feather:
                keep = np.maximum(keep, cv2.GaussianBlur(keep, (0, 0), self.feather / 2))
            blurred = cv2.GaussianBlur(frame, (0, 0), self.sigma)
            mixed = keep[..., None] * frame + (1.0 - keep[..., None]) * blurred
            out[i] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return out


def boxes_of(masks: Sequence[np.ndarray], codec: RoiX265Codec) -> list[list[Box]]:
    """The regions :class:`RoiX265Codec` attaches to each ``(H, W)`` id map (for reports and tests)."""
    return [codec.regions(m) for m in masks]
