"""The ``rich`` synthetic style: deterministic per (seed, video), varied content, distractors, late objects,
held-out split by video index, and manifests of older sets still accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vosc.data.sources import render_synthetic_videos
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.synthetic import generate_synthetic
from vosc.data.sources.synthetic_scenes import render_rich_video
from vosc.data.sources.youtube_vos import YouTubeVOSSource


def test_rich_videos_are_deterministic_and_differ_by_seed() -> None:
    a = list(render_synthetic_videos(2, 6, (96, 64), seed=3, objects=2, style="rich", distractors=1))
    b = list(render_synthetic_videos(2, 6, (96, 64), seed=3, objects=2, style="rich", distractors=1))
    c = list(render_synthetic_videos(2, 6, (96, 64), seed=4, objects=2, style="rich", distractors=1))
    for (fa, ma), (fb, mb) in zip(a, b, strict=False):
        assert np.array_equal(fa, fb) and np.array_equal(ma, mb)
    assert not np.array_equal(a[0][0], c[0][0])
    assert not np.array_equal(a[0][0], a[1][0])  # video i depends on (seed, i)
    frames, masks = a[0]
    assert frames.shape == (6, 64, 96, 3) and frames.dtype == np.uint8
    assert masks.shape == (6, 64, 96) and set(np.unique(masks)) <= {0, 1, 2}


def test_rich_objects_move_deform_and_are_visible() -> None:
    frames, masks = render_rich_video(np.random.default_rng([0, 1]), 12, 160, 96, objects=2, distractors=0)
    for oid in (1, 2):
        areas = (masks == oid).reshape(12, -1).sum(1)
        assert areas[0] > 50, "every object is visible in the first frame"
        centres = [np.argwhere(masks[t] == oid).mean(0) for t in range(12) if areas[t]]
        assert np.abs(np.diff(centres, axis=0)).sum() > 5, "objects move"
    # the camera moves: the background changes where no object is
    bg = (masks[0] == 0) & (masks[-1] == 0)
    assert np.abs(frames[0][bg].astype(int) - frames[-1][bg].astype(int)).mean() > 5


def test_rich_distractors_are_background_and_late_objects_enter_late() -> None:
    rng = np.random.default_rng([7, 0])
    frames, masks = render_rich_video(rng, 10, 128, 96, objects=2, distractors=3, last_start=5)
    assert not (masks[:5] == 2).any() and (masks[5:] == 2).any()
    plain_f, plain_m = render_rich_video(np.random.default_rng([7, 0]), 10, 128, 96, objects=2, distractors=0)
    # distractors add unannotated content: pixels that differ from the distractor-free render, labelled 0
    assert ((frames != plain_f).any(-1) & (masks == 0)).sum() > 0


def test_rich_set_layouts_and_held_out_split(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path / "rich", videos=8, frames=4, size=(96, 64), seed=0, objects=2,
                              style="rich", distractors=1)
    train, val = DavisSource(root, split="train"), DavisSource(root, split="val")
    assert [v.name for v in val.videos] == ["synth-006", "synth-007"]
    assert not {v.name for v in train.videos} & {v.name for v in val.videos}
    manifest = json.loads((root / "synthetic.json").read_text())
    assert manifest["style"] == "rich" and manifest["distractors"] == 1
    yt = generate_synthetic(tmp_path / "yt", videos=4, frames=4, size=(96, 64), seed=0, objects=2,
                            layout="ytvos", style="rich")
    valid = YouTubeVOSSource(yt, split="valid")
    assert int(valid.videos[0].first_appearance[2]) > 0  # the last object starts late
    with pytest.raises(ValueError, match="style"):
        generate_synthetic(tmp_path / "bad", videos=2, frames=2, style="fancy")  # type: ignore[arg-type]


def test_manifest_without_new_keys_is_the_classic_style(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path / "old", videos=2, frames=2, size=(64, 48), seed=1)
    manifest = root / "synthetic.json"
    data = json.loads(manifest.read_text())
    data.pop("style"), data.pop("distractors")
    manifest.write_text(json.dumps(data))  # a set written before the style option existed
    assert generate_synthetic(root, videos=2, frames=2, size=(64, 48), seed=1) == root
    with pytest.raises(Exception, match="other parameters"):
        generate_synthetic(root, videos=2, frames=2, size=(64, 48), seed=1, style="rich")


def test_copy_first_mask_baseline(synthetic_davis: Path) -> None:
    from vosc.evaluation.baselines import copy_first_mask, copy_first_mask_jf

    gts = np.zeros((4, 8, 8), np.uint8)
    gts[:, 2:5, 2:5] = 1
    assert np.array_equal(copy_first_mask(gts), gts)  # a static object is copied exactly
    src = DavisSource(synthetic_davis, split="val")
    res = copy_first_mask_jf(src)
    # moving objects: copying the first mask is far from perfect, but not zero
    assert 0.05 < res.global_["J&F-Mean"] < 0.9
