"""Submissions: YouTube-VOS zip (every listed frame, late objects, original size) and DAVIS folders."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.data.errors import DatasetLayoutError
from vosc.data.palette import read_mask, write_mask
from vosc.evaluation.submission import LateObjectError, write_davis_submission, write_youtube_vos_submission
from vosc.metrics.errors import MissingPredictionError, SizeMismatchError, UnknownObjectError

FRAMES = ["00000", "00005", "00010", "00015"]
SIZES = {"vid_a": (36, 50), "vid_b": (30, 44)}  # (H, W), different per video


def _mask(size: tuple[int, int], ids: list[int]) -> np.ndarray:
    mask = np.zeros(size, dtype=np.uint8)
    for k, obj in enumerate(ids):
        mask[4 + 8 * k : 10 + 8 * k, 5:20] = obj
    return mask


@pytest.fixture()
def youtube(tmp_path: Path) -> tuple[Path, Path]:
    """``valid/`` with a late object (id 2 of vid_a first annotated at 00010) and matching predictions."""
    valid, preds = tmp_path / "valid", tmp_path / "preds"
    for video, (h, w) in SIZES.items():
        for frame in FRAMES:
            path = valid / "JPEGImages" / video / f"{frame}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (w, h), (90, 120, 30)).save(path)
        write_mask(valid / "Annotations" / video / "00000.png", _mask((h, w), [1]))
    write_mask(valid / "Annotations" / "vid_a" / "00010.png", _mask(SIZES["vid_a"], [0, 2]))
    for video, size in SIZES.items():
        for i, frame in enumerate(FRAMES):
            ids = [1, 2] if video == "vid_a" and i >= 2 else [1]
            write_mask(preds / video / f"{frame}.png", _mask(size, ids))
    write_mask(preds / "vid_b" / "00003.png", _mask(SIZES["vid_b"], [1]))  # unlisted frame: not submitted
    return valid, preds


def test_youtube_zip_has_every_listed_frame_at_original_size(
    youtube: tuple[Path, Path], tmp_path: Path
) -> None:
    valid, preds = youtube
    summary = write_youtube_vos_submission(preds, valid, tmp_path / "out" / "submission.zip")
    assert (summary.videos, summary.frames) == (2, 8)
    with zipfile.ZipFile(summary.path) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"Annotations/{v}/{f}.png" for v in SIZES for f in FRAMES)
        archive.extractall(tmp_path / "unzipped")
    mask = read_mask(tmp_path / "unzipped" / "Annotations" / "vid_a" / "00015.png")
    assert mask.shape == SIZES["vid_a"] and set(np.unique(mask)) == {0, 1, 2}
    with Image.open(tmp_path / "unzipped" / "Annotations" / "vid_b" / "00000.png") as image:
        assert image.mode == "P" and image.size == (44, 30)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["submission.zip"]


def test_youtube_errors_write_nothing(youtube: tuple[Path, Path], tmp_path: Path) -> None:
    valid, preds = youtube
    out = tmp_path / "bad.zip"
    write_mask(preds / "vid_a" / "00005.png", _mask(SIZES["vid_a"], [1, 2]))  # object 2 before 00010
    with pytest.raises(LateObjectError, match=r"vid_a/00005\.png.*first annotated frame 00010"):
        write_youtube_vos_submission(preds, valid, out)
    write_mask(preds / "vid_a" / "00005.png", _mask(SIZES["vid_a"], [1, 3]))
    with pytest.raises(UnknownObjectError, match="object id 3"):
        write_youtube_vos_submission(preds, valid, out, check_late_objects=False)
    write_mask(preds / "vid_a" / "00005.png", _mask((36, 51), [1]))
    with pytest.raises(SizeMismatchError, match=r"vid_a/00005\.png"):
        write_youtube_vos_submission(preds, valid, out)
    (preds / "vid_a" / "00005.png").unlink()
    with pytest.raises(MissingPredictionError, match=r"vid_a/00005\.png"):
        write_youtube_vos_submission(preds, valid, out)
    assert not out.exists() and not list(tmp_path.glob(".bad.zip*"))
    with pytest.raises(DatasetLayoutError, match="JPEGImages"):
        write_youtube_vos_submission(preds, tmp_path / "nowhere", out)


def _davis(root: Path, preds: Path) -> None:
    for seq in ("s1", "s2"):
        for frame in FRAMES[:3]:
            path = root / "JPEGImages" / "480p" / seq / f"{frame}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (50, 36)).save(path)
            write_mask(preds / seq / f"{frame}.png", _mask((36, 50), [1, 2]))
        write_mask(root / "Annotations" / "480p" / seq / "00000.png", _mask((36, 50), [1, 2]))
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "test-dev.txt").write_text("s1\ns2\n")


def test_davis_folders_and_zip(tmp_path: Path) -> None:
    root, preds = tmp_path / "davis", tmp_path / "preds"
    _davis(root, preds)
    summary = write_davis_submission(preds, root, tmp_path / "sub", zip_path=tmp_path / "sub.zip")
    assert (summary.videos, summary.frames) == (2, 6)
    assert sorted(p.relative_to(summary.path).as_posix() for p in summary.path.rglob("*.png"))[:2] == [
        "s1/00000.png",
        "s1/00005.png",
    ]
    with zipfile.ZipFile(tmp_path / "sub.zip") as archive:
        assert "s2/00010.png" in archive.namelist()
    with pytest.raises(FileExistsError):
        write_davis_submission(preds, root, tmp_path / "sub")
    write_mask(preds / "s2" / "00010.png", _mask((36, 50), [1, 2, 3]))
    with pytest.raises(UnknownObjectError, match=r"s2/00010\.png"):
        write_davis_submission(preds, root, tmp_path / "sub", overwrite=True)
    assert (tmp_path / "sub" / "s2" / "00010.png").is_file()  # the old submission is untouched
