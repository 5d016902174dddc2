"""EnhancerModule and stage-1 training on clips really compressed with x265.

* Stage 1 on held-out content: a tiny enhancer trained for ``STEPS`` CPU steps (:func:`fit_enhancer`, MSE,
  16 x 32-px crops, one thread) on 240 clips of the project's synthetic generator with ``OBJECTS`` = 10
  sprites per video, coded with x265 at CRF 42, gains more than 0.5 dB PSNR on 12 synthetic clips it never
  saw (other seed). Measured when written: +0.557 dB mean after 2,500 steps (every clip +0.42 dB or more),
  106 s of fitting beside another one-thread job on the 2-core machine. With the former 2 sprites the check
  needed 9,000 steps (+0.511 dB, 9.3 min); the gain of a short fit grows with the sprites per video, and the
  cheaper recipes tried on 2 sprites are listed in README "Enhancer" (issue 13 item 10).
* The Lightning module itself (a handful of steps): logs per-QP ΔPSNR, trains, round-trips its weights.
* Conditioning matters once trained; stage 2 (frozen VOS model) updates only the enhancer.
"""

from __future__ import annotations

import copy
import dataclasses

import cv2
import lightning as L
import numpy as np
import pytest
import skimage.data
import torch
from torch.utils.data import DataLoader

from vosc.codecs import build_codec
from vosc.data.sources import render_synthetic_videos
from vosc.enhancer_fit import DecodedPair, code_clips, enhance_clip, evaluate_dpsnr, fit_enhancer
from vosc.lit.enhancer_module import EnhancerModule, clip_psnr, load_enhancer_weights, save_enhancer_weights
from vosc.models.enhancer import CompressionAwareEnhancer, imagenet_normalize
from vosc.types import VOSBatch

CLIP_T, CLIP_SIZE, CRF = 6, 96, 42
TYPE_IDS = {"I": 0, "P": 1, "B": 2}
#: skimage photos the Lightning-test clips are made from; the held-out clips use a different photo.
TRAIN_IMAGES, HELD_OUT_IMAGE = ("astronaut", "coffee", "chelsea"), "rocket"
HELD_OUT_STARTS = [(510, 40), (510, 480)]
TRAIN_STARTS = [(40, 40), (40, 330), (200, 180), (330, 40), (330, 330)]
CROP = 32
#: Stage-1 budget of the >0.5 dB test: synthetic training / held-out videos, sprites per video, CPU steps.
SYNTH_TRAIN, SYNTH_HELD_OUT, OBJECTS, STEPS = 240, 12, 10, 2500


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _to01(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _pan_clips(name: str, starts: list[tuple[int, int]]) -> list[np.ndarray]:
    """``(T, S, S, 3)`` uint8 clips panning (1 px down, 3 px right per frame) over skimage photo ``name``
    upscaled 1.5x, starting at each ``(y, x)`` of ``starts``."""
    img = skimage.data.__getattribute__(name)()
    img = cv2.resize(img, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(np.stack([img[y + t: y + t + CLIP_SIZE, x + 3 * t: x + 3 * t + CLIP_SIZE]
                                           for t in range(CLIP_T)])) for y, x in starts]


@pytest.fixture(scope="module")
def x265_clips() -> dict[str, list[tuple]]:
    """``{"train": [...], "held_out": [...]}`` of ``(raw (T,3,S,S), decoded (T,3,S,S), crf, types, name)``:
    panning clips of the training photos and of the held-out photo, compressed with real x265 at CRF 42
    (the first held-out clip also at CRF 32)."""
    codec = build_codec("x265")
    out: dict[str, list[tuple]] = {"train": [], "held_out": []}
    jobs = [("train", n, c, CRF) for n in TRAIN_IMAGES for c in _pan_clips(n, TRAIN_STARTS)]
    held_out = _pan_clips(HELD_OUT_IMAGE, HELD_OUT_STARTS)
    jobs += [("held_out", HELD_OUT_IMAGE, c, CRF) for c in held_out]
    jobs += [("held_out", HELD_OUT_IMAGE, held_out[0], 32)]
    for split, name, raw, crf in jobs:
        enc = codec.compress(raw, crf)
        assert enc.frame_types is not None and len(enc.frame_types) == CLIP_T
        out[split].append((_to01(raw), _to01(enc.frames), crf, enc.frame_types, name))
    return out


def _make_batch(raws: list[torch.Tensor], decs: list[torch.Tensor], crfs: list[int],
                types: list[list[str]], names: list[str]) -> VOSBatch:
    """VOSBatch from ``(T, 3, H, W)`` raw/decoded clips; masks: one square object in the middle."""
    raw, dec = torch.stack(raws), torch.stack(decs)
    b, t, _, h, w = raw.shape
    masks = torch.zeros(b, t, 1, h, w, dtype=torch.long)
    masks[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    return VOSBatch(
        frames=imagenet_normalize(dec), masks=masks, num_objects=torch.ones(b, dtype=torch.long),
        codec=["x265"] * b, q=torch.tensor(crfs), bits=torch.zeros(b, dtype=torch.long), sequences=names,
        raw_frames=raw, frame_qps=torch.tensor(crfs, dtype=torch.float32)[:, None].expand(b, t).clone(),
        frame_types=torch.tensor([[TYPE_IDS[x] for x in ty] for ty in types]))


def _whole(clip: tuple) -> VOSBatch:
    raw, dec, crf, types, name = clip
    return _make_batch([raw], [dec], [crf], [types], [name])


def _train_batches(clips: list[tuple], steps: int, batch: int = 2, frames: int = 3, crop: int = CROP,
                   seed: int = 0) -> list[VOSBatch]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        items = [clips[int(i)] for i in torch.randint(len(clips), (batch,), generator=g)]
        t0, y, x = (torch.randint(0, n, (1,), generator=g).item() for n in
                    (CLIP_T - frames + 1, CLIP_SIZE - crop + 1, CLIP_SIZE - crop + 1))
        sl = (slice(t0, t0 + frames), slice(None), slice(y, y + crop), slice(x, x + crop))
        batches.append(_make_batch([r[sl] for r, *_ in items], [d[sl] for _, d, *_ in items],
                                   [c for *_, c, _, _ in items], [ty[t0:t0 + frames] for *_, ty, _ in items],
                                   [n for *_, n in items]))
    return batches


@pytest.fixture(scope="module")
def synthetic_crf42() -> dict[str, list[DecodedPair]]:
    """Clips of the project's synthetic generator (``OBJECTS`` photo sprites over photo backgrounds, 160x96,
    8 frames) coded with real x265 at CRF 42: ``SYNTH_TRAIN`` training videos (seed 0) and ``SYNTH_HELD_OUT``
    held-out videos (seed 1000, never seen in training)."""
    def videos(seed: int, n: int) -> list[tuple[str, np.ndarray]]:
        return [(f"s{seed}-{i}", frames) for i, (frames, _) in
                enumerate(render_synthetic_videos(n, 8, (160, 96), seed=seed, objects=OBJECTS))]
    return {"train": code_clips(videos(0, SYNTH_TRAIN), "x265", [CRF]),
            "held_out": code_clips(videos(1000, SYNTH_HELD_OUT), "x265", [CRF])}


@pytest.fixture(scope="module")
def trained(synthetic_crf42) -> CompressionAwareEnhancer:
    """A tiny enhancer after ``STEPS`` stage-1 CPU steps (MSE, 16 x 32-px crops) on the synthetic training
    clips."""
    torch.manual_seed(0)
    enhancer = CompressionAwareEnhancer("tiny")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # fixed: the result is reproducible for a given thread count
    try:
        losses = fit_enhancer(enhancer, synthetic_crf42["train"], STEPS, batch=16, crop=32, lr=2e-3,
                              loss="mse")
    finally:
        torch.set_num_threads(before)
    assert np.mean(losses[-100:]) < np.mean(losses[:100])
    return enhancer


@pytest.mark.codec
@pytest.mark.slow
@pytest.mark.timeout(900)  # the 2500-step fixture: ~2.5 min beside another test process, more when busier
def test_stage1_improves_psnr_by_half_a_db_on_held_out_synthetic_clips_at_crf42(trained,
                                                                                 synthetic_crf42) -> None:
    held_out = synthetic_crf42["held_out"]
    assert not {c.name for c in held_out} & {c.name for c in synthetic_crf42["train"]}
    rows = evaluate_dpsnr(trained, held_out)
    gains = [r["dpsnr"] for r in rows]
    assert float(np.mean(gains)) > 0.5, gains
    assert min(gains) > 0.0, gains  # every unseen clip gains, not just the average


@pytest.mark.codec
@pytest.mark.slow
@pytest.mark.timeout(1800)  # may be the first user of the 2500-step fixture (test selection, ordering)
def test_conditioning_changes_output_once_trained(trained, synthetic_crf42) -> None:
    """On the held-out CRF-42 clips, the trained enhancer gains with the clips' true conditioning (x265, their
    per-frame QPs and picture types) and does worse with any wrong one: it has learnt to use its conditioning.
    An untrained enhancer (random tail) changes its output with the conditioning too, but gains nothing."""
    held_out = synthetic_crf42["held_out"]
    t = held_out[0].decoded.shape[0]
    wrong = {"qp 22": {"q": 22, "qps": torch.full((t,), 22.0)},
             "unknown qp": {"q": -1, "qps": torch.full((t,), -1.0)},
             "vvenc": {"codec": "vvenc"},
             "unknown type": {"types": torch.full((t,), -1, dtype=torch.long)}}
    moved, gains = {}, {}
    with torch.no_grad():
        true = [enhance_clip(trained, c) for c in held_out]
        gain = float(np.mean([r["dpsnr"] for r in evaluate_dpsnr(trained, held_out)]))
        for name, change in wrong.items():
            clips = [dataclasses.replace(c, **change) for c in held_out]
            moved[name] = float(np.mean([float((enhance_clip(trained, c) - o).abs().mean())
                                         for c, o in zip(clips, true, strict=True)]))
            gains[name] = float(np.mean([r["dpsnr"] for r in evaluate_dpsnr(trained, clips)]))
    assert gain > 0.3, (gain, gains)
    assert all(m > 1e-4 for m in moved.values()), moved  # every conditioning input reaches the output
    # and the true conditioning is the best (measured: +0.558 dB; QP 22 +0.538, unknown QP +0.388,
    # vvenc +0.300, unknown picture type +0.435; the fixture is deterministic at one thread)
    assert all(g < gain - 0.01 for g in gains.values()), (gain, gains)


def _trainer(steps: int, tmp_path) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     num_sanity_val_steps=0)


def _loader(batches: list[VOSBatch]) -> DataLoader:
    return DataLoader(batches, batch_size=None, collate_fn=lambda b: b, shuffle=False)


@pytest.mark.codec
@pytest.mark.slow
def test_lightning_stage1_steps_validation_and_weights(x265_clips, tmp_path) -> None:
    """A few real Lightning steps: the enhancer leaves the identity, training logs its losses and ΔPSNR,
    validation logs ΔPSNR per operating point, and the weights round-trip through a checkpoint file."""
    torch.manual_seed(0)
    enhancer = CompressionAwareEnhancer("tiny")
    module = EnhancerModule(enhancer, lr=2e-3, warmup_steps=1)
    batch = _train_batches(x265_clips["train"], 1, batch=4)[0]
    trainer = _trainer(8, tmp_path)
    trainer.fit(module, _loader([batch] * 8))
    assert trainer.global_step == 8
    assert set(trainer.callback_metrics) >= {"train/pixel", "train/loss", "train/dpsnr",
                                             "train/dpsnr/x265_q42"}
    assert enhancer.tail.weight.abs().sum() > 0
    metrics = trainer.validate(module, _loader([_whole(c) for c in x265_clips["held_out"]]), verbose=False)[0]
    assert set(metrics) >= {"val/psnr_in", "val/psnr_out", "val/dpsnr", "val/dpsnr/x265_q42",
                            "val/dpsnr/x265_q32"}
    assert metrics["val/psnr_in"] == pytest.approx(
        float(np.mean([float(clip_psnr(c[1][None], c[0][None])) for c in x265_clips["held_out"]])), abs=1e-3)
    path = save_enhancer_weights(module.enhancer, tmp_path / "enh.ckpt")
    fresh = load_enhancer_weights(CompressionAwareEnhancer("tiny"), path)
    for (k, a), b in zip(module.enhancer.state_dict().items(), fresh.state_dict().values(), strict=False):
        assert torch.equal(a, b), k
    with pytest.raises(KeyError, match="no 'enhancer"):
        torch.save({"state_dict": {"x.w": torch.zeros(1)}}, tmp_path / "bad.ckpt")
        load_enhancer_weights(CompressionAwareEnhancer("tiny"), tmp_path / "bad.ckpt")


def test_pixel_loss_choice() -> None:
    """``pixel_loss="mse"`` trains on the squared error (what PSNR measures); an unknown name is refused."""
    torch.manual_seed(0)
    raw = torch.rand(1, 2, 3, 16, 16)
    dec = (raw + 0.1 * torch.randn_like(raw)).clamp(0, 1)
    b = VOSBatch(frames=imagenet_normalize(dec), masks=torch.zeros(1, 2, 1, 16, 16, dtype=torch.long),
                 num_objects=torch.ones(1, dtype=torch.long), codec=["x265"], q=torch.tensor([42]),
                 bits=torch.zeros(1, dtype=torch.long), sequences=["seqA"], raw_frames=raw)
    mse = EnhancerModule(CompressionAwareEnhancer("tiny"), pixel_loss="mse")._losses(b)[0]["pixel"]
    charb = EnhancerModule(CompressionAwareEnhancer("tiny"))._losses(b)[0]["pixel"]
    assert float(mse) == pytest.approx(float(((dec - raw) ** 2).mean()), rel=1e-4)
    assert float(charb) == pytest.approx(float((((dec - raw) ** 2) + 1e-6).sqrt().mean()), rel=1e-3)
    with pytest.raises(ValueError, match="pixel_loss must be 'charbonnier' or 'mse', got 'l1'"):
        EnhancerModule(CompressionAwareEnhancer("tiny"), pixel_loss="l1")


def test_missing_raw_frames_is_a_specific_error() -> None:
    module = EnhancerModule(CompressionAwareEnhancer("tiny"))
    b = VOSBatch(frames=torch.zeros(1, 2, 3, 16, 16), masks=torch.zeros(1, 2, 1, 16, 16, dtype=torch.long),
                 num_objects=torch.ones(1, dtype=torch.long), codec=["x265"], q=torch.tensor([42]),
                 bits=torch.zeros(1, dtype=torch.long), sequences=["seqA"])
    with pytest.raises(ValueError, match="seqA.*raw_frames"):
        module.training_step(b, 0)


@pytest.mark.codec
@pytest.mark.slow
def test_stage2_task_loss_updates_only_the_enhancer(x265_clips, tmp_path) -> None:
    from vosc.models.variants import build_model

    torch.manual_seed(0)
    vos = build_model("aott", pretrained=False)
    before = copy.deepcopy(vos.state_dict())
    enhancer = CompressionAwareEnhancer("tiny")
    enh_before = copy.deepcopy(enhancer.state_dict())
    module = EnhancerModule(enhancer, vos_model=vos, task_weight=0.1, feature_weight=0.1, warmup_steps=1)
    batches = _train_batches(x265_clips["train"], 2)
    # the task loss alone back-propagates into the enhancer (tail layer: the only non-zero path at init)
    losses, _ = module._losses(batches[0])
    grad = torch.autograd.grad(losses["task"], enhancer.tail.weight, retain_graph=True)[0]
    assert grad.abs().sum() > 0
    grad_f = torch.autograd.grad(losses["feature"], enhancer.tail.weight, allow_unused=True)[0]
    assert grad_f is not None and grad_f.abs().sum() > 0
    trainer = _trainer(2, tmp_path)
    trainer.fit(module, _loader(batches))
    assert trainer.global_step == 2
    assert all(not p.requires_grad for p in vos.parameters())
    assert not vos.training
    for k, v in vos.state_dict().items():
        assert torch.equal(v, before[k]), f"VOS tensor {k} changed"
    assert any(not torch.equal(v, enh_before[k]) for k, v in enhancer.state_dict().items())
    opt_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in enhancer.parameters()}
