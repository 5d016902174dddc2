"""Stage-1 enhancer training on in-memory coded clips, without Lightning.

For quick fits (benchmarks, tests, a first look at a codec/QP) where a datamodule is more machinery than
needed: clips are coded once with a real codec (:func:`code_clips`), then the enhancer is trained on
random crops of 3-frame windows ``(t-2, t-1, t)`` with the loss on frame ``t`` only (a third of the compute
of a whole-clip forward), AdamW, linear warm-up and cosine decay (:func:`fit_enhancer`), and measured on
whole clips (:func:`evaluate_dpsnr`). The Lightning path (:class:`vosc.lit.enhancer_module.EnhancerModule`)
trains the same network on :class:`vosc.types.VOSBatch` clips from the datamodule.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vosc.codecs import build_codec
from vosc.lit.enhancer_module import clip_psnr
from vosc.losses.enhancement import pixel_loss
from vosc.models.enhancer.base import CODECS, FRAME_TYPES
from vosc.models.enhancer.cae import WINDOW, CompressionAwareEnhancer

log = logging.getLogger(__name__)

PixelLoss = Literal["mse", "charbonnier"]
_TYPE_IDS = {name: i for i, name in enumerate(FRAME_TYPES)}


@dataclass
class DecodedPair:
    """A clip and its decoded version after one real encode (tensors in ``[0, 1]``; the datamodule's
    :class:`vosc.data.compressed_dataset.CodedClip` is a different, numpy-side record).

    Attributes:
        name: Clip name.
        raw: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
        decoded: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
        codec: Codec name (one of :data:`~vosc.models.enhancer.base.CODECS`).
        q: Nominal quality parameter.
        qps: ``(T,)`` float per-frame QP (the codec's, else ``q``).
        types: ``(T,)`` int64 picture-type ids (0 = I, 1 = P, 2 = B, -1 = unknown).
        bpp: Measured bits per pixel of the bitstream.
    """

    name: str
    raw: Tensor
    decoded: Tensor
    codec: str
    q: int
    qps: Tensor
    types: Tensor
    bpp: float


def _to01(frames: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def code_clips(videos: Iterable[tuple[str, np.ndarray]], codec: str, qs: Sequence[int]) -> list[DecodedPair]:
    """Encode and decode every ``(name, frames (T, H, W, 3) uint8)`` at every q with a real codec.

    Raises:
        ValueError: ``codec`` is not an enhancer codec (see :data:`~vosc.models.enhancer.base.CODECS`).
    """
    if codec not in CODECS:
        raise ValueError(f"code_clips: codec {codec!r} is not one of {CODECS}")
    coder = build_codec(codec)
    out = []
    for name, frames in videos:
        for q in qs:
            enc = coder.compress(frames, int(q))
            t = frames.shape[0]
            qps = torch.tensor(enc.frame_qps if enc.frame_qps else [float(q)] * t, dtype=torch.float32)
            types = torch.tensor(
                [_TYPE_IDS.get(x, -1) for x in enc.frame_types] if enc.frame_types else [-1] * t
            )
            out.append(
                DecodedPair(name, _to01(frames), _to01(enc.frames), codec, int(q), qps, types, float(enc.bpp))
            )
    return out


def sample_windows(clips: Sequence[DecodedPair], batch: int, crop: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Random training windows.

    Returns:
        Decoded windows ``(N, 3, 3, crop, crop)`` (frames ``max(t-2,0), max(t-1,0), t``), raw frame ``t``
        ``(N, 3, crop, crop)``, codec indices ``(N,)``, QPs ``(N,)`` and picture-type indices ``(N,)``
        (unknown = ``len(FRAME_TYPES)``).

    Raises:
        ValueError: a clip is smaller than ``crop``.
    """
    wins, targets, codecs, qps, types = [], [], [], [], []
    for i in torch.randint(len(clips), (batch,), generator=generator).tolist():
        c = clips[i]
        t_len, _, h, w = c.raw.shape
        if h < crop or w < crop:
            raise ValueError(f"sample_windows: clip {c.name!r} is {h}x{w}, smaller than the {crop}-px crop")
        t = int(torch.randint(0, t_len, (1,), generator=generator))
        y, x = (int(torch.randint(0, n - crop + 1, (1,), generator=generator)) for n in (h, w))
        idx = [max(t - k, 0) for k in range(WINDOW - 1, -1, -1)]
        wins.append(c.decoded[idx, :, y:y + crop, x:x + crop])
        targets.append(c.raw[t, :, y:y + crop, x:x + crop])
        codecs.append(CODECS.index(c.codec))
        qps.append(float(c.qps[t]))
        types.append(int(c.types[t]) if int(c.types[t]) >= 0 else len(FRAME_TYPES))
    return (torch.stack(wins), torch.stack(targets), torch.tensor(codecs), torch.tensor(qps),
            torch.tensor(types))


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` at ``steps``."""
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    prog = min(1.0, step / max(1, steps))
    return warm * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * prog)))


def fit_enhancer(
    enhancer: CompressionAwareEnhancer,
    clips: Sequence[DecodedPair],
    steps: int,
    batch: int = 16,
    crop: int = 48,
    lr: float = 2e-3,
    loss: PixelLoss = "mse",
    warmup_steps: int = 20,
    min_lr_ratio: float = 0.05,
    seed: int = 0,
    log_every: int = 100,
) -> list[float]:
    """Train ``enhancer`` (stage 1, pixel loss) on random windows of ``clips``; leaves it in eval mode.

    Returns:
        The loss of every step.

    Raises:
        ValueError: no clips, or ``steps < 1``.
        FloatingPointError: a non-finite loss.
    """
    if not clips or steps < 1:
        raise ValueError(f"fit_enhancer: needs clips and steps >= 1 (got {len(clips)} clips, {steps} steps)")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(enhancer.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup_steps, min_lr_ratio))
    enhancer.train()
    losses, t0 = [], time.perf_counter()
    for step in range(steps):
        win, target, codec_idx, qps, types = sample_windows(clips, batch, crop, g)
        value = pixel_loss(win[:, -1] + enhancer.enhance_window(win, codec_idx, qps, types), target, loss)
        if not torch.isfinite(value):
            raise FloatingPointError(f"fit_enhancer: non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        losses.append(float(value.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            log.info(
                "fit_enhancer step %d/%d loss %.6f (%.1fs)",
                step + 1,
                steps,
                losses[-1],
                time.perf_counter() - t0,
            )
    enhancer.eval()
    return losses


@torch.no_grad()
def enhance_clip(enhancer: CompressionAwareEnhancer, clip: DecodedPair, chunk: int = 8) -> Tensor:
    """Enhanced ``(T, 3, H, W)`` frames of ``clip``, ``chunk`` frames at a time with their history."""
    dec, t = clip.decoded, clip.decoded.shape[0]
    outs = []
    for s in range(0, t, chunk):
        lo = max(0, s - (WINDOW - 1))
        o = enhancer(
            dec[None, lo : s + chunk],
            [clip.codec],
            torch.tensor([clip.q]),
            clip.qps[None, lo : s + chunk],
            clip.types[None, lo : s + chunk],
        )
        outs.append(o[0, s - lo:])
    return torch.cat(outs)


def evaluate_dpsnr(enhancer: CompressionAwareEnhancer, clips: Sequence[DecodedPair]) -> list[dict]:
    """PSNR (RGB, over each clip) of the decoded and the enhanced frames.

    Returns:
        One ``{"name", "codec", "q", "bpp", "psnr_in", "psnr_out", "dpsnr"}`` per clip.
    """
    enhancer.eval()
    rows = []
    for c in clips:
        out = enhance_clip(enhancer, c)
        p_in, p_out = float(clip_psnr(c.decoded[None], c.raw[None])), float(clip_psnr(out[None], c.raw[None]))
        rows.append({"name": c.name, "codec": c.codec, "q": c.q, "bpp": c.bpp, "psnr_in": p_in,
                     "psnr_out": p_out, "dpsnr": p_out - p_in})
    return rows
