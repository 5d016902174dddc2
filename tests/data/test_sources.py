"""Sources on real DAVIS data (davis2016-val-mini) and on generated synthetic sets in both layouts."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.data.palette import read_mask, write_frame, write_mask
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.static_images import StaticImageSource
from vosc.data.sources.synthetic import SyntheticSource
from vosc.data.sources.youtube_vos import YouTubeVOSSource
from vosc.data.synthetic import generate_synthetic


def test_davis_mini_splits_frames_and_masks(davis_mini: Path) -> None:
    train = DavisSource(davis_mini, split="train")
    val = DavisSource(davis_mini, split="val")
    assert [v.name for v in train.videos] == ["bmx-trees", "motocross-jump"]
    assert [v.name for v in val.videos] == ["blackswan", "car-shadow"]
    rec = val.video("blackswan")
    assert len(rec) == 50 and rec.annotated_indices == list(range(50))
    frames = val.load_frames(rec, [0, 10, 49])
    masks = val.load_masks(rec, [0, 10, 49], size=frames.shape[1:3])
    assert frames.shape == (3, 480, 854, 3) and frames.dtype == np.uint8
    assert masks.shape == (3, 480, 854) and set(np.unique(masks)) == {0, 1}
    assert len(DavisSource(davis_mini, split=None)) == 4
    assert (len(val.content_key(rec)) == 32
            and val.content_key(rec) != val.content_key(val.video("car-shadow")))


def test_davis2016_binary_masks_and_index(davis_mini: Path, tmp_path: Path) -> None:
    """A DAVIS-2016 release: 0/255 single-channel masks and ImageSets/480p/<split>.txt."""
    seq = "car-shadow"
    for sub in ("JPEGImages", "Annotations"):
        (tmp_path / sub / "480p" / seq).mkdir(parents=True)
    lines = []
    for i in range(3):
        name = f"{i:05d}"
        (tmp_path / "JPEGImages" / "480p" / seq / f"{name}.jpg").write_bytes(
            (davis_mini / "JPEGImages" / "480p" / seq / f"{name}.jpg").read_bytes())
        m = read_mask(davis_mini / "Annotations" / "480p" / seq / f"{name}.png")
        Image.fromarray((m > 0).astype(np.uint8) * 255, mode="L").save(
            tmp_path / "Annotations" / "480p" / seq / f"{name}.png")
        lines.append(f"/JPEGImages/480p/{seq}/{name}.jpg /Annotations/480p/{seq}/{name}.png")
    (tmp_path / "ImageSets" / "480p").mkdir(parents=True)
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    src = DavisSource(tmp_path, split="val", year=2016)
    masks = src.load_masks(src.videos[0], [0, 1, 2])
    assert set(np.unique(masks)) == {0, 1}
    ref = read_mask(davis_mini / "Annotations" / "480p" / seq / "00001.png")
    np.testing.assert_array_equal(masks[1], ref)
    # auto-detection reads the same 0/255 file as object 1 as well
    np.testing.assert_array_equal(read_mask(tmp_path / "Annotations" / "480p" / seq / "00001.png"), ref)


def test_synthetic_davis_layout(synthetic_davis: Path) -> None:
    train = DavisSource(synthetic_davis, split="train")
    val = DavisSource(synthetic_davis, split="val")
    assert [v.name for v in train.videos] == ["synth-000", "synth-001", "synth-002"]
    assert [v.name for v in val.videos] == ["synth-003"]
    rec = train.videos[0]
    frames = train.load_frames(rec, range(8))
    masks = train.load_masks(rec, range(8))
    assert frames.shape == (8, 96, 160, 3) and masks.shape == (8, 96, 160)
    assert set(np.unique(masks[0])) == {0, 1, 2}
    # the objects move: masks differ between first and last frame, and the frames are photos (not flat)
    assert (masks[0] != masks[-1]).mean() > 0.01
    assert frames.std() > 20


def test_synthetic_is_deterministic_and_cli_matches(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", videos=2, frames=3, size=(64, 48), seed=5)
    b = generate_synthetic(tmp_path / "b", videos=2, frames=3, size=(64, 48), seed=5)
    c = generate_synthetic(tmp_path / "c", videos=2, frames=3, size=(64, 48), seed=6)
    cmd = [sys.executable, "-m", "vosc.data.synthetic", "--out", str(tmp_path / "d"), "--videos", "2",
           "--frames", "3", "--size", "64x48", "--seed", "5"]
    subprocess.run(cmd, check=True, capture_output=True)
    rel = "JPEGImages/480p/synth-001/00002.jpg"
    assert filecmp.cmp(a / rel, b / rel, shallow=False)
    assert filecmp.cmp(a / rel, tmp_path / "d" / rel, shallow=False)
    assert not filecmp.cmp(a / rel, c / rel, shallow=False)
    assert json.loads((a / "synthetic.json").read_text())["seed"] == 5
    # regenerating with the same parameters is a no-op; with others it is refused
    generate_synthetic(a, videos=2, frames=3, size=(64, 48), seed=5)
    with pytest.raises(Exception, match="other parameters"):
        generate_synthetic(a, videos=3, frames=3, size=(64, 48), seed=5)


def test_synthetic_source_generates_on_first_use(tmp_path: Path) -> None:
    src = SyntheticSource(tmp_path / "syn", split="val", videos=2, frames=4, width=64, height=48)
    assert len(src) == 1 and (tmp_path / "syn" / "synthetic.json").is_file()
    assert src.load_frames(src.videos[0], [0, 3]).shape == (2, 48, 64, 3)


def test_ytvos_train_valid_and_all_frames(synthetic_ytvos: Path) -> None:
    train = YouTubeVOSSource(synthetic_ytvos, split="train")
    assert len(train) == 3
    rec = train.videos[0]
    assert rec.frame_ids == [f"{5 * i:05d}" for i in range(6)]
    assert rec.annotated_indices == list(range(6))
    valid = YouTubeVOSSource(synthetic_ytvos, split="valid")
    vrec = valid.videos[0]
    assert vrec.name == "synth-003"
    # object 3 starts late; only first-appearance frames are annotated
    assert vrec.first_appearance[1] == "00000" and vrec.first_appearance[3] > "00000"
    assert sorted(vrec.mask_paths) == sorted(set(vrec.first_appearance.values()))
    late = vrec.frame_ids.index(vrec.first_appearance[3])
    masks, has = valid.load_masks_or_empty(vrec, range(len(vrec)), (96, 160))
    assert has[0] and has[late] and has.sum() == 2
    assert set(np.unique(masks[late])) == {0, 3}
    # the same answer without meta.json (scanning the masks)
    assert YouTubeVOSSource(synthetic_ytvos, split="valid", use_meta=False).videos[0].first_appearance == \
        vrec.first_appearance
    allf = YouTubeVOSSource(synthetic_ytvos, split="valid", all_frames=True)
    assert len(allf.videos[0]) == 26 and allf.videos[0].annotated_indices == [0, late * 5]


def test_static_images(synthetic_davis: Path, tmp_path: Path) -> None:
    src_v = DavisSource(synthetic_davis, split="train")
    for k, rec in enumerate(src_v.videos):
        write_frame(tmp_path / "images" / f"img{k}.jpg", src_v.load_frames(rec, [0])[0])
        write_mask(tmp_path / "masks" / f"img{k}.png", src_v.load_masks(rec, [0])[0])
    src = StaticImageSource(tmp_path)
    assert src.is_static and len(src) == 3
    rec = src.videos[1]
    assert src.load_frames(rec, [0]).shape == (1, 96, 160, 3)
    assert set(np.unique(src.load_masks(rec, [0]))) == {0, 1, 2}
