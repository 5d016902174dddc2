"""Issue 26 item 3: frames are read in natural numeric order everywhere. A folder written by FFmpeg's
``%d.jpg`` (``0.jpg … 11.jpg``) was tracked in the order 0, 1, 10, 11, 2, … by ``vosc.iter_frames`` and
``sources.base.list_images`` (plain ``sorted()``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vosc
from vosc.data.errors import FrameOrderError
from vosc.data.frame_order import numeric_order
from vosc.data.palette import write_mask
from vosc.data.sources.base import list_images, scan_video
from vosc.inference.video_io import VideoReadError, probe_video

N = 12  # 0..11: a string sort puts 10 and 11 before 2


def _level(t: int) -> int:
    return 10 + 20 * t  # one flat grey level per frame, far apart (JPEG keeps them within a few levels)


def _ffmpeg_folder(root: Path) -> Path:
    """``JPEGImages/v/%d.jpg`` (flat grey, level by frame) and ``Annotations/v/%d.png`` (object id t+1)."""
    frames, anns = root / "JPEGImages" / "v", root / "Annotations" / "v"
    frames.mkdir(parents=True)
    for t in range(N):
        Image.fromarray(np.full((16, 24, 3), _level(t), np.uint8)).save(frames / f"{t}.jpg", quality=95)
        write_mask(anns / f"{t}.png", np.full((16, 24), t + 1, np.uint8))
    return frames


def test_iter_frames_reads_a_percent_d_folder_frame_by_frame_in_numeric_order(tmp_path: Path) -> None:
    folder = _ffmpeg_folder(tmp_path)
    levels = [float(f.mean()) for f in vosc.iter_frames(folder)]
    assert len(levels) == N
    for t, level in enumerate(levels):
        assert abs(level - _level(t)) < 3, f"frame {t}: level {level}, expected {_level(t)} ({levels})"


def test_sources_list_a_percent_d_folder_in_numeric_order_with_each_frames_own_mask(tmp_path: Path) -> None:
    folder = _ffmpeg_folder(tmp_path)
    assert [p.name for p in list_images(folder)] == [f"{t}.jpg" for t in range(N)]
    rec = scan_video(tmp_path / "JPEGImages", tmp_path / "Annotations", "v", binary_masks=False)
    assert rec.frame_ids == [str(t) for t in range(N)]
    for t, (fid, path) in enumerate(zip(rec.frame_ids, rec.frame_paths, strict=True)):
        assert abs(np.asarray(Image.open(path)).mean() - _level(t)) < 3
        ids = np.unique(np.asarray(Image.open(rec.mask_paths[fid])))
        assert ids.tolist() == [t + 1], f"frame {t} ({path.name}) got mask {rec.mask_paths[fid].name}"


@pytest.mark.parametrize(("names", "message"), [
    (["0.jpg", "1.jpg", "2.jpg", "cover.jpg"], "'cover.jpg' has no frame number"),
    (["a1.jpg", "a2.jpg", "b_3.jpg"], "different patterns"),
    (["1.jpg", "01.jpg", "2.jpg"], "carry the same frame number 1"),
    (["3.jpg", "3.png", "4.jpg"], "carry the same frame number 3"),
    (["first.jpg", "second.jpg"], "no number in the names"),
])
def test_names_that_cannot_be_ordered_fail_naming_the_folder_and_the_files(
        tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    with pytest.raises(FrameOrderError, match=message) as exc:
        list_images(tmp_path)
    assert str(tmp_path) in str(exc.value)
    with pytest.raises(VideoReadError, match=message):
        probe_video(tmp_path)
    with pytest.raises(VideoReadError, match=message):
        next(iter(vosc.iter_frames(tmp_path)))


def test_numeric_order_sorts_by_every_number_in_the_name() -> None:
    names = ["cam2_f10.png", "cam2_f9.png", "cam10_f1.png", "cam2_f100.png"]
    ordered = numeric_order([Path(n) for n in names], Path("x"))
    assert [p.name for p in ordered] == ["cam2_f9.png", "cam2_f10.png", "cam2_f100.png", "cam10_f1.png"]
    assert numeric_order([Path("only.jpg")], Path("x")) == [Path("only.jpg")]
