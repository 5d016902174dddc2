"""Rate and distortion accounting: bits per pixel over sequences and PSNR on luma (Y, BT.601).

bpp of a set of sequences is ``Σ bits / Σ (T · H · W)`` (pixels of the original frames, not of padded
codec frames), i.e. pixel-weighted, as in the DAVIS rate figures of ``DESIGN.md`` §5. PSNR-Y is computed
per frame on the BT.601 limited-range luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (floating
point, no rounding) with peak 255, capped at :data:`MAX_PSNR` for identical frames, then averaged over
frames (frame-mean, the usual codec convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: PSNR reported for identical frames (infinite PSNR would poison averages).
MAX_PSNR: float = 100.0
_LUMA = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0

__all__ = ["MAX_PSNR", "RateAccumulator", "bits_per_pixel", "luma_bt601", "psnr", "psnr_y", "psnr_y_frames",
           "psnr_y_regions"]


def bits_per_pixel(bits: float, num_pixels: int) -> float:
    """``bits / num_pixels``.

    Raises:
        ValueError: ``num_pixels <= 0`` or ``bits < 0``.
    """
    if num_pixels <= 0:
        raise ValueError(f"num_pixels must be positive, got {num_pixels}")
    if bits < 0:
        raise ValueError(f"bits must be non-negative, got {bits}")
    return float(bits) / float(num_pixels)


def luma_bt601(frames: np.ndarray) -> np.ndarray:
    """BT.601 limited-range luma of RGB frames.

    Args:
        frames: ``(..., H, W, 3)`` uint8 (or float in ``[0, 255]``) RGB.

    Returns:
        ``(..., H, W)`` float64 Y in ``[16, 235]``.

    Raises:
        ValueError: The last axis is not 3.
    """
    frames = np.asarray(frames)
    if frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames (..., H, W, 3), got shape {frames.shape}")
    return 16.0 + frames.astype(np.float64) @ _LUMA


def psnr(
    reference: np.ndarray, distorted: np.ndarray, peak: float = 255.0, max_psnr: float = MAX_PSNR
) -> np.ndarray:
    """Per-frame PSNR of single-channel frames.

    Args:
        reference: ``(T, H, W)`` (or ``(H, W)``) values.
        distorted: Same shape.
        peak: Peak signal value.
        max_psnr: Value for identical frames.

    Returns:
        ``(T,)`` float64 PSNR in dB (``(1,)`` for a single frame).

    Raises:
        ValueError: Shapes differ.
    """
    ref, dist = np.asarray(reference, dtype=np.float64), np.asarray(distorted, dtype=np.float64)
    if ref.shape != dist.shape:
        raise ValueError(f"reference {ref.shape} and distorted {dist.shape} shapes differ")
    if ref.ndim == 2:
        ref, dist = ref[None], dist[None]
    mse = ((ref - dist) ** 2).reshape(ref.shape[0], -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(peak**2 / mse)
    return np.minimum(values, max_psnr)


def psnr_y_frames(reference: np.ndarray, distorted: np.ndarray, max_psnr: float = MAX_PSNR) -> np.ndarray:
    """Per-frame PSNR on BT.601 luma of two RGB clips (the one PSNR-Y of vosc).

    Args:
        reference: ``(T, H, W, 3)`` uint8 RGB (original frames).
        distorted: ``(T, H, W, 3)`` uint8 RGB (decoded or enhanced frames).
        max_psnr: Cap for identical frames.

    Returns:
        ``(T,)`` float64 PSNR-Y in dB.

    Raises:
        ValueError: Shapes differ or frames are not RGB.
    """
    reference, distorted = np.asarray(reference), np.asarray(distorted)
    if reference.shape != distorted.shape:
        raise ValueError(f"reference {reference.shape} and distorted {distorted.shape} shapes differ")
    return psnr(luma_bt601(reference), luma_bt601(distorted), max_psnr=max_psnr)


def psnr_y(reference: np.ndarray, distorted: np.ndarray, max_psnr: float = MAX_PSNR) -> float:
    """Frame-mean of :func:`psnr_y_frames` (``(T, H, W, 3)`` uint8 RGB clips) in dB."""
    return float(psnr_y_frames(reference, distorted, max_psnr).mean())


def psnr_y_regions(
    reference: np.ndarray, distorted: np.ndarray, masks: np.ndarray, max_psnr: float = MAX_PSNR
) -> tuple[float | None, float | None]:
    """PSNR-Y (dB) inside and outside the objects, over all pixels of a clip (one MSE per region).

    Args:
        reference: ``(T, H, W, 3)`` uint8 RGB original frames.
        distorted: ``(T, H, W, 3)`` uint8 RGB decoded frames.
        masks: ``(T, H, W)`` id maps; > 0 is inside.
        max_psnr: Cap for identical regions.

    Returns:
        ``(psnr_inside, psnr_outside)``; ``None`` for an empty region.
    """
    ref, dist = luma_bt601(np.asarray(reference)), luma_bt601(np.asarray(distorted))
    inside = np.asarray(masks) > 0

    def one(sel: np.ndarray) -> float | None:
        return float(psnr(ref[sel][None], dist[sel][None], max_psnr=max_psnr)[0]) if sel.any() else None

    return one(inside), one(~inside)


@dataclass
class RateAccumulator:
    """Accumulates bits, pixels and per-frame PSNR over sequences of one operating point.

    Attributes:
        bits: Total bits.
        pixels: Total ``T · H · W`` of the original frames.
        frames: Total frames.
        psnr_frames: Per-frame PSNR-Y values (frame-mean over the whole set).
        per_sequence: ``name → {"bits", "pixels", "bpp"}``.
    """

    bits: int = 0
    pixels: int = 0
    frames: int = 0
    psnr_frames: list[float] = field(default_factory=list)
    per_sequence: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(
        self,
        name: str,
        bits: int,
        shape: tuple[int, int, int],
        reference: np.ndarray | None = None,
        distorted: np.ndarray | None = None,
    ) -> None:
        """Add one sequence.

        Args:
            name: Sequence name (must be new).
            bits: Bits of its bitstream.
            shape: ``(T, H, W)`` of its original frames.
            reference: Optional ``(T, H, W, 3)`` original frames for PSNR-Y.
            distorted: Optional ``(T, H, W, 3)`` decoded frames for PSNR-Y.

        Raises:
            ValueError: Duplicate name, bad shape, negative bits, or only one of the frame arrays.
        """
        if name in self.per_sequence:
            raise ValueError(f"sequence {name!r} added twice to the rate accumulator")
        t, h, w = (int(v) for v in shape)
        pixels = t * h * w
        bpp = bits_per_pixel(bits, pixels)
        if (reference is None) != (distorted is None):
            raise ValueError(
                f"sequence {name!r}: give both reference and distorted frames for PSNR, or neither"
            )
        if reference is not None and distorted is not None:
            if tuple(np.shape(reference)[:3]) != (t, h, w):
                raise ValueError(
                    f"sequence {name!r}: frames {np.shape(reference)} do not match shape {shape}"
                )
            ref_y, dist_y = luma_bt601(reference), luma_bt601(distorted)
            self.psnr_frames.extend(psnr(ref_y, dist_y).tolist())
        self.bits += int(bits)
        self.pixels += pixels
        self.frames += t
        self.per_sequence[name] = {"bits": float(bits), "pixels": float(pixels), "bpp": bpp}

    @property
    def bpp(self) -> float:
        """Pixel-weighted bits per pixel over all sequences."""
        return bits_per_pixel(self.bits, self.pixels)

    @property
    def psnr_y(self) -> float | None:
        """Frame-mean PSNR-Y over all frames with PSNR, ``None`` if none."""
        return float(np.mean(self.psnr_frames)) if self.psnr_frames else None
