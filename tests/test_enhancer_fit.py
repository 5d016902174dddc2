"""vosc.enhancer_fit: window sampling, schedule, losses, and a short real fit on x265-coded clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vosc.data.sources import generate_synthetic, render_synthetic_videos
from vosc.enhancer_fit import (
    DecodedPair,
    code_clips,
    enhance_clip,
    evaluate_dpsnr,
    fit_enhancer,
    lr_factor,
    sample_windows,
)
from vosc.losses.enhancement import charbonnier, pixel_loss
from vosc.models.enhancer import CODECS, CompressionAwareEnhancer


def _clip(t: int = 4, h: int = 8, w: int = 10, name: str = "c") -> DecodedPair:
    """Frame ``i`` of ``decoded`` is constant ``i / 10``, of ``raw`` constant ``i / 10 + 0.5``."""
    dec = torch.arange(t, dtype=torch.float32)[:, None, None, None].expand(t, 3, h, w) / 10
    return DecodedPair(name, dec + 0.5, dec.clone(), "vvenc", 37, torch.arange(t, dtype=torch.float32) + 30,
                     torch.tensor([0] + [1] * (t - 2) + [-1]), 0.1)


def test_sample_windows_stacks_the_two_previous_frames_and_the_target() -> None:
    clip = _clip()
    win, target, codec, qps, types = sample_windows([clip], 64, 6, torch.Generator().manual_seed(0))
    assert win.shape == (64, 3, 3, 6, 6) and target.shape == (64, 3, 6, 6)
    t = (win[:, -1, 0, 0, 0] * 10).round().long()
    assert torch.equal(win[:, 0, 0, 0, 0] * 10, (t - 2).clamp(min=0).float())
    assert torch.equal(win[:, 1, 0, 0, 0] * 10, (t - 1).clamp(min=0).float())
    assert torch.allclose(target[:, 0, 0, 0], win[:, -1, 0, 0, 0] + 0.5)
    assert torch.equal(qps, t.float() + 30)
    assert torch.equal(codec, torch.full((64,), CODECS.index("vvenc")))
    expect_types = torch.tensor([0, 1, 1, 3])[t]  # -1 (unknown) -> index 3
    assert torch.equal(types, expect_types)
    assert set(t.tolist()) == {0, 1, 2, 3}


def test_bad_inputs_raise_specific_errors() -> None:
    with pytest.raises(ValueError, match="'small'.*8x10.*16-px"):
        sample_windows([_clip(name="small")], 2, 16, torch.Generator())
    with pytest.raises(ValueError, match="needs clips"):
        fit_enhancer(CompressionAwareEnhancer("tiny"), [], 10)
    with pytest.raises(ValueError, match="codec 'h264'"):
        code_clips([("a", np.zeros((2, 16, 16, 3), np.uint8))], "h264", [32])
    with pytest.raises(ValueError, match="unknown kind 'l3'"):
        pixel_loss(torch.zeros(2), torch.ones(2), "l3")


def test_pixel_losses_and_schedule() -> None:
    a, b = torch.zeros(4, 3), torch.full((4, 3), 0.5)
    assert float(pixel_loss(a, b, "mse")) == pytest.approx(0.25)
    assert float(pixel_loss(a, b, "charbonnier")) == pytest.approx(float(charbonnier(a, b)))
    assert lr_factor(0, 100, 10, 0.05) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.05) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lr_factor(100, 100, 10, 0.05) == pytest.approx(0.05)
    assert lr_factor(500, 100, 10, 0.05) == pytest.approx(0.05)


def test_render_synthetic_videos_matches_the_written_set(tmp_path) -> None:
    from PIL import Image

    videos = list(render_synthetic_videos(3, 4, (64, 48), seed=5, objects=2))
    again = list(render_synthetic_videos(3, 4, (64, 48), seed=5, objects=2))
    other = next(iter(render_synthetic_videos(1, 4, (64, 48), seed=6, objects=2)))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(videos, again, strict=False))
    assert not np.array_equal(videos[0][0], other[0])
    root = generate_synthetic(tmp_path / "s", videos=3, frames=4, size=(64, 48), seed=5, objects=2)
    for i, (frames, masks) in enumerate(videos):
        assert frames.shape == (4, 48, 64, 3) and masks.shape == (4, 48, 64)
        ann = np.asarray(Image.open(root / "Annotations" / "480p" / f"synth-{i:03d}" / "00002.png"))
        assert np.array_equal(ann, masks[2])


@pytest.mark.codec
def test_short_fit_on_real_x265_clips_lowers_the_loss_and_evaluates(tmp_path) -> None:
    videos = [(f"v{i}", f) for i, (f, _) in enumerate(render_synthetic_videos(3, 6, (96, 64), seed=1))]
    clips = code_clips(videos, "x265", [42])
    assert [c.name for c in clips] == ["v0", "v1", "v2"]
    c0 = clips[0]
    assert c0.raw.shape == c0.decoded.shape == (6, 3, 64, 96) and c0.bpp > 0
    assert c0.qps.shape == (6,) and bool((c0.qps > 30).all()) and c0.types.tolist()[0] == 0
    torch.manual_seed(0)
    enhancer = CompressionAwareEnhancer("tiny")
    assert torch.equal(enhance_clip(enhancer, c0), c0.decoded)  # identity at initialisation
    win, target, codec, qps, types = sample_windows(clips, 32, 32, torch.Generator().manual_seed(123))

    def fixed_batch_mse() -> float:
        with torch.no_grad():
            return float(pixel_loss(win[:, -1] + enhancer.enhance_window(win, codec, qps, types), target,
                                    "mse"))

    before = fixed_batch_mse()
    losses = fit_enhancer(enhancer, clips, 60, batch=8, crop=32, lr=3e-3, warmup_steps=5)
    assert len(losses) == 60 and not enhancer.training
    assert fixed_batch_mse() < before
    out = enhance_clip(enhancer, c0, chunk=4)
    assert out.shape == c0.decoded.shape and not torch.equal(out, c0.decoded)
    # chunked enhancement sees the same history as a whole-clip forward
    with torch.no_grad():
        whole = enhancer(c0.decoded[None], ["x265"], torch.tensor([42]), c0.qps[None], c0.types[None])[0]
    assert torch.allclose(out, whole, atol=1e-5)
    rows = evaluate_dpsnr(enhancer, clips)
    assert [r["name"] for r in rows] == ["v0", "v1", "v2"]
    assert all(r["dpsnr"] == pytest.approx(r["psnr_out"] - r["psnr_in"]) for r in rows)
