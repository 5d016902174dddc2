"""A tiny AOST overfits one synthetic clip: J&F > 0.9 at every depth within a bounded number of steps.

Uses the real training step (scalable supervision, bootstrapped CE + soft Jaccard, per-depth decoders) and
the real validation path (memory from its own predictions at each depth). Identity shuffling is off:
with it, a randomly initialised network needs far more steps to learn identity-agnostic matching.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vosc.data.sources.synthetic import SyntheticSource
from vosc.lit.vos_module import VOSModule
from vosc.metrics.jf import aggregate, evaluate_sequence
from vosc.models.variants import build_model
from vosc.types import IMAGENET_MEAN, IMAGENET_STD, VOSBatch

MAX_STEPS = 250
CHECK_EVERY = 25


def _clip(root: str, frames: int = 3) -> tuple[VOSBatch, np.ndarray]:
    # 16k+1 sides: the size at which predict_clip (like evaluate.py) runs an align_corners model
    src = SyntheticSource(root, "train", videos=4, frames=8, width=161, height=97, seed=0, objects=2)
    rec = src.videos[0]
    idx = list(range(frames))
    fr, ms = src.load_frames(rec, idx), src.load_masks(rec, idx)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    x = (torch.from_numpy(fr).permute(0, 3, 1, 2).float().div(255).unsqueeze(0) - mean) / std
    m = torch.from_numpy(ms.astype(np.int64)).view(1, frames, 1, *ms.shape[1:])
    batch = VOSBatch(frames=x, masks=m, num_objects=torch.tensor([int(ms[0].max())]), codec=["none"],
                     q=torch.tensor([-1]), bits=torch.tensor([0]), sequences=[rec.name])
    return batch, ms


def _jf(mod: VOSModule, batch: VOSBatch, gt: np.ndarray) -> dict[int, float]:
    mod.eval()
    out = {}
    for d in (1, 2, 3):
        pred = mod.predict_clip(batch.frames, batch.masks[:, 0], batch.num_objects, d)[0].numpy()
        seq = evaluate_sequence(gt, pred, num_objects=int(batch.num_objects[0]), exclude_first_last=False)
        out[d] = aggregate([seq]).global_["J&F-Mean"]
    mod.train()
    return out


@pytest.mark.slow
def test_tiny_aost_overfits_one_clip_at_every_depth(tmp_path: pytest.TempPathFactory) -> None:
    torch.manual_seed(0)
    batch, gt = _clip(str(tmp_path / "synthetic"))
    model = build_model("aost", d_model=32, ffn_dim=64, num_heads=2, droppath=0.0)
    mod = VOSModule(model=model, total_steps=MAX_STEPS, seq_switch_ratio=1.0, shuffle_ids=False,
                    aux_weight=0.0, alpha=2.0)
    opt = torch.optim.AdamW([p for p in mod.parameters() if p.requires_grad], lr=1e-3)
    before = _jf(mod, batch, gt)
    scores = before
    for step in range(1, MAX_STEPS + 1):
        loss = mod.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mod.parameters(), 5.0)
        opt.step()
        if step % CHECK_EVERY == 0:
            scores = _jf(mod, batch, gt)
            if min(scores.values()) > 0.9:
                break
    assert min(scores.values()) > 0.9, f"J&F per depth after {step} steps: {scores} (before: {before})"
    assert max(before.values()) < 0.9
