"""RGB <-> YUV 4:2:0 conversion (BT.601, limited range), even-size padding and raw-plane packing.

The conversion is done here in numpy rather than by swscale so that both directions use the same
matrix and rounding (swscale's round trip caps PSNR at about 43 dB). Chroma is subsampled by
averaging 2x2 blocks and upsampled by pixel replication, so ``yuv420_to_rgb(rgb_to_yuv420(x))`` is
close to ``x`` for smooth content (exact for flat 2x2 blocks up to rounding).

Shapes: RGB frames are ``(T, H, W, 3)`` uint8 with even ``H, W`` (use :func:`pad_to_even` first);
planes are ``Y (T, H, W)``, ``U, V (T, H/2, W/2)``, uint8 for 8 bit and uint16 for 10 bit.
"""

from __future__ import annotations

import numpy as np

# BT.601 RGB -> YCbCr for limited range at 8 bit (ITU-R BT.601, R'G'B' in [0, 1] scaled to 255).
_RGB2YUV = (
    np.array(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ],
        dtype=np.float64,
    )
    / 255.0
)
_YUV2RGB = np.linalg.inv(_RGB2YUV)
_OFFSET = np.array([16.0, 128.0, 128.0])

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def _check_rgb(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected (T, H, W, 3) uint8 RGB frames, got shape {frames.shape} dtype {frames.dtype}"
        )
    if frames.shape[0] == 0:
        raise ValueError("expected at least one frame, got T=0")


def _check_bit_depth(bit_depth: int) -> None:
    if bit_depth not in (8, 10):
        raise ValueError(f"bit_depth must be 8 or 10, got {bit_depth}")


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad ``(T, H, W, C)`` frames at the bottom/right by edge replication to even ``H`` and ``W``.

    Returns the input itself when both sizes are already even.
    """
    h, w = frames.shape[1:3]
    ph, pw = h % 2, w % 2
    if ph == 0 and pw == 0:
        return frames
    pad = [(0, 0), (0, ph), (0, pw)] + [(0, 0)] * (frames.ndim - 3)
    return np.pad(frames, pad, mode="edge")


def crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop ``(T, H', W', ...)`` frames back to ``(T, height, width, ...)`` (top-left anchored)."""
    if frames.shape[1] < height or frames.shape[2] < width:
        raise ValueError(f"cannot crop frames of shape {frames.shape} to {height}x{width}")
    return np.ascontiguousarray(frames[:, :height, :width])


def rgb_to_yuv420(frames: np.ndarray, bit_depth: int = 8) -> Planes:
    """Convert RGB frames to planar YUV 4:2:0.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB with even ``H`` and ``W``.
        bit_depth: 8 (uint8 planes, Y in 16..235) or 10 (uint16 planes, Y in 64..940).

    Returns:
        ``(Y, U, V)`` with shapes ``(T, H, W)``, ``(T, H/2, W/2)``, ``(T, H/2, W/2)``.
    """
    _check_rgb(frames)
    _check_bit_depth(bit_depth)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"rgb_to_yuv420 needs even sizes, got {h}x{w}; call pad_to_even first")
    scale = float(1 << (bit_depth - 8))
    yuv = frames.astype(np.float32) @ _RGB2YUV.T.astype(np.float32)
    yuv += _OFFSET.astype(np.float32)
    yuv *= scale
    hi = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    y = np.clip(np.rint(yuv[..., 0]), 0, hi).astype(dtype)
    chroma = yuv[..., 1:].reshape(t, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
    chroma = np.clip(np.rint(chroma), 0, hi).astype(dtype)
    return y, np.ascontiguousarray(chroma[..., 0]), np.ascontiguousarray(chroma[..., 1])


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Convert planar YUV 4:2:0 back to RGB with the inverse of :func:`rgb_to_yuv420`.

    Args:
        y: ``(T, H, W)`` luma.
        u: ``(T, H/2, W/2)`` Cb.
        v: ``(T, H/2, W/2)`` Cr.
        bit_depth: 8 or 10 (sample range of the planes).

    Returns:
        ``(T, H, W, 3)`` uint8 RGB.
    """
    _check_bit_depth(bit_depth)
    t, h, w = y.shape
    if u.shape != (t, h // 2, w // 2) or v.shape != u.shape:
        raise ValueError(f"chroma planes {u.shape}/{v.shape} do not match luma {y.shape} for 4:2:0")
    inv_scale = 1.0 / float(1 << (bit_depth - 8))
    yuv = np.empty((t, h, w, 3), dtype=np.float32)
    yuv[..., 0] = y
    yuv[..., 1] = u.repeat(2, axis=1).repeat(2, axis=2)
    yuv[..., 2] = v.repeat(2, axis=1).repeat(2, axis=2)
    yuv *= inv_scale
    yuv -= _OFFSET.astype(np.float32)
    rgb = yuv @ _YUV2RGB.T.astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def pack_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> bytes:
    """Pack planes frame by frame as raw ``yuv420p`` (uint8) or ``yuv420p10le`` (uint16) bytes."""
    dtype = np.dtype("<u2") if y.dtype == np.uint16 else np.dtype(np.uint8)
    t = y.shape[0]
    flat = [np.concatenate([y[i].ravel(), u[i].ravel(), v[i].ravel()]) for i in range(t)]
    return np.concatenate(flat).astype(dtype, copy=False).tobytes()


def unpack_planes(buf: bytes, num_frames: int, height: int, width: int, bit_depth: int = 8) -> Planes:
    """Inverse of :func:`pack_planes` for ``num_frames`` frames of even ``height x width``.

    Raises:
        ValueError: ``buf`` does not hold exactly ``num_frames`` frames.
    """
    _check_bit_depth(bit_depth)
    dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
    luma, chroma = height * width, (height // 2) * (width // 2)
    per_frame = luma + 2 * chroma
    data = np.frombuffer(buf, dtype=dtype)
    if data.size != num_frames * per_frame:
        raise ValueError(
            f"raw yuv420 buffer holds {data.size} samples, expected {num_frames} frames of "
            f"{height}x{width} ({num_frames * per_frame} samples)"
        )
    data = data.reshape(num_frames, per_frame)
    out_dtype = np.uint8 if bit_depth == 8 else np.uint16
    y = data[:, :luma].reshape(num_frames, height, width).astype(out_dtype)
    u = data[:, luma : luma + chroma].reshape(num_frames, height // 2, width // 2).astype(out_dtype)
    v = data[:, luma + chroma :].reshape(num_frames, height // 2, width // 2).astype(out_dtype)
    return y, u, v


def planes_to_i420(y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` as the ``(H * 3 / 2, W)`` array layout PyAV uses for ``yuv420p``/``yuv420p10le``."""
    h, w = y.shape[1:]
    out = np.empty((h * 3 // 2, w), dtype=y.dtype)
    out[:h] = y[index]
    out[h:].reshape(-1)[: u[index].size] = u[index].ravel()
    out[h:].reshape(-1)[u[index].size :] = v[index].ravel()
    return out


def i420_to_planes(arr: np.ndarray, height: int, width: int) -> Planes:
    """Split one PyAV ``(H * 3 / 2, W)`` planar 4:2:0 array into ``(Y, U, V)`` with a leading T=1 axis."""
    flat = arr[height:].reshape(-1)
    c = (height // 2) * (width // 2)
    y = arr[:height][None]
    u = flat[:c].reshape(1, height // 2, width // 2)
    v = flat[c : 2 * c].reshape(1, height // 2, width // 2)
    return y, u, v
