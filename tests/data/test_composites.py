"""Real objects on real photos (DAVIS training split only) and per-source augmentation in a mixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vosc.config import ConfigError
from vosc.data.compressed_dataset import CompressedClipDataset, CompressionSpec, TrainEntry
from vosc.data.palette import read_mask
from vosc.data.sampling import ClipSampler
from vosc.data.sources.composites import MANIFEST, DavisCompositeSource
from vosc.data.sources.davis import DavisSource
from vosc.data.transforms import ClipAugment


def test_composites_from_the_training_split_only(davis_mini: Path, tmp_path: Path) -> None:
    root = tmp_path / "comp"
    src = DavisCompositeSource(root, davis_mini, pastes=12, short_edge=96)
    train = DavisSource(davis_mini, split="train", year=2017)
    frames = [p.stem for p in (root / "images").glob("frame_*.jpg")]
    assert len(frames) == sum(len(range(0, len(r), 4)) for r in train.videos)
    assert {f.split("_")[1] for f in frames} == {"bmx-trees", "motocross-jump"}
    assert not any("blackswan" in p.name or "car-shadow" in p.name for p in root.rglob("*"))
    pastes = sorted((root / "masks").glob("paste_*.png"))
    assert 6 <= len(pastes) <= 12 and len(src) == len(frames) + len(pastes)
    for path in pastes:
        ids = np.unique(read_mask(path))
        assert ids[0] == 0 and list(ids[1:]) == list(range(1, len(ids)))  # contiguous ids 1..k
    assert min(read_mask(pastes[0]).shape) == 96
    stamp = (root / MANIFEST).stat().st_mtime_ns
    DavisCompositeSource(root, davis_mini, pastes=12, short_edge=96)  # same parameters: kept
    assert (root / MANIFEST).stat().st_mtime_ns == stamp
    DavisCompositeSource(root, davis_mini, pastes=12, short_edge=96, seed=1)  # other parameters: regenerated
    assert json.loads((root / MANIFEST).read_text())["seed"] == 1


def test_per_source_augment_and_crop_check(davis_mini: Path, tmp_path: Path) -> None:
    davis = DavisSource(davis_mini, split="train", year=2017)
    static = DavisCompositeSource(tmp_path / "comp", davis_mini, pastes=4, short_edge=96)
    # 854x480 DAVIS frames at a 48-pixel short edge are 85x48: the (48, 85) crop is the whole frame
    own = ClipAugment((48, 85), short_edge=48, scale_range=(1.0, 1.0), flip_prob=0.0)
    ds = CompressedClipDataset([TrainEntry(davis, repeat=1, augment=own), TrainEntry(static)],
                               ClipSampler(num_frames=3, min_ref_pixels=50),
                               ClipAugment((48, 85), short_edge=96), CompressionSpec("none"), seed=0)
    clips = [ds[i] for i in range(len(ds))]
    assert all(c.frames.shape == (3, 48, 85, 3) for c in clips)
    for clip in clips[:len(davis)]:  # the DAVIS entry: whole frames, so the object keeps its share of pixels
        rec = next(r for r in davis.videos if r.name == clip.sequence)
        native = davis.load_masks(rec, [rec.frame_ids.index(clip.frame_ids[0])])[0]
        assert abs(float((clip.masks[0] > 0).mean()) - float((native > 0).mean())) < 0.02
    with pytest.raises(ConfigError,
                       match=r"augment.crop_size \[32, 32\] differs from data.augment.crop_size"):
        CompressedClipDataset([TrainEntry(davis, augment=ClipAugment((32, 32)))], ClipSampler(num_frames=3),
                              ClipAugment((48, 64)), CompressionSpec("none"))
