"""``python -m vosc.segment`` on a generated mp4 with a late object: outputs, overlay, equality with the
API, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vosc
from vosc.data.palette import read_mask, write_mask
from vosc.data.synthetic_video import write_synthetic_mp4
from vosc.inference.video_io import iter_frames, probe_video
from vosc.segment import SegmentError, build_parser, main, parse_masks, run

FRAMES, W, H = 16, 96, 64


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 16-frame 96x64 mp4 whose second object enters late (YouTube-VOS style)."""
    out = tmp_path_factory.mktemp("vid")
    (path,) = write_synthetic_mp4(out, videos=1, frames=FRAMES, size=(W, H), objects=2, layout="ytvos")
    return path


def test_synthetic_mp4_has_a_late_object(video: Path) -> None:
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height) == (FRAMES, W, H)
    starts = sorted(int(p.stem) for p in (video.parent / video.stem / "masks").glob("*.png"))
    assert starts[0] == 0 and len(starts) == 2 and starts[1] > 0


def test_cli_outputs_equal_video_segmenter(video: Path, tmp_path: Path, one_torch_thread: None) -> None:
    mask_dir = video.parent / video.stem / "masks"
    out = tmp_path / "out"
    assert main([str(video), "--mask", str(mask_dir), "--model", "aost_tiny", "--out", str(out),
                 "--device", "cpu", "--depth", "2", "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["frames"] == FRAMES and result["fps_segment"] > 0 and result["objects"] == [1, 2]
    assert result["mask_frames"] == [0, int(sorted(mask_dir.glob("*.png"))[1].stem)]
    cli = [read_mask(out / "masks" / f"{t:05d}.png", (H, W)) for t in range(FRAMES)]
    overlay = list(iter_frames(out / "overlay.mp4"))
    assert len(overlay) == FRAMES and overlay[0].shape == (H, W, 3)
    # the same model, settings and inputs through the Python API
    seg = vosc.load_model(None, model="aost_tiny", depth=2)
    masks = parse_masks([str(mask_dir)], (H, W))
    api = [r.mask for r in seg.run(vosc.iter_frames(video), masks)]
    assert all(np.array_equal(a, b) for a, b in zip(api, cli, strict=True))
    late = min(i for i in masks if i > 0)
    assert 2 not in np.unique(cli[late - 1]) and (cli[late] == 2).any()


def _args(video: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [str(video), "--model", "aost_tiny", "--out", str(tmp_path / "o"), "--device", "cpu",
            "--no-progress", *extra]


def test_bad_input_errors(video: Path, tmp_path: Path) -> None:
    first = video.parent / video.stem / "masks" / "00000.png"
    with pytest.raises(SegmentError, match="no first-frame mask"):
        run(build_parser().parse_args(_args(video, tmp_path)))
    small = tmp_path / "small.png"
    write_mask(small, np.ones((10, 12), np.uint8))
    with pytest.raises(SegmentError, match=r"small\.png.*differs from frame size 96x64"):
        run(build_parser().parse_args(_args(video, tmp_path, "--mask", str(small))))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SegmentError, match=r"broken\.mp4: not a readable video"):
        run(build_parser().parse_args(_args(broken, tmp_path, "--mask", str(first))))
    with pytest.raises(SegmentError, match="mask for frame 99"):
        run(build_parser().parse_args(_args(video, tmp_path, "--mask", f"99={first}")))
    assert main(_args(video, tmp_path, "--mask", str(small))) == 2


@pytest.mark.codec
def test_cli_compresses_first_and_reports_bpp(video: Path, tmp_path: Path, one_torch_thread: None) -> None:
    first = video.parent / video.stem / "masks" / "00000.png"
    args = _args(video, tmp_path, "--mask", str(first), "--codec", "x265", "--q", "42", "--no-overlay")
    assert main(args) == 0
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["codec"]["name"] == "x265" and result["codec"]["q"] == 42
    assert 0 < result["codec"]["bpp"] < 1 and result["frames"] == FRAMES
    assert not (tmp_path / "o" / "overlay.mp4").exists()


def test_a_percent_d_frame_folder_is_segmented_in_numeric_order_under_each_frames_stem(
        video: Path, tmp_path: Path, one_torch_thread: None) -> None:
    """Issue 26 item 3: FFmpeg's ``%d.jpg`` folder (``0.jpg … 15.jpg``) gives, frame by frame, the masks of
    the same frames named ``%05d.jpg`` (plain sorting used to track 0, 1, 10, 11, …, 2 and wrote the mask of
    ``10.jpg`` as ``00002.png``); each mask is named after its frame's own file."""
    frames = list(iter_frames(video))
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    for folder, name in ((plain, "{}.png"), (padded, "{:05d}.png")):
        folder.mkdir()
        for t, f in enumerate(frames):
            Image.fromarray(f).save(folder / name.format(t))
    mask = str(video.parent / video.stem / "masks" / "00000.png")
    outs = {}
    for folder in (plain, padded):
        outs[folder] = tmp_path / f"{folder.name}_out"
        assert main([str(folder), "--mask", mask, "--model", "aost_tiny", "--out", str(outs[folder]),
                     "--device", "cpu", "--depth", "2", "--no-progress", "--no-overlay"]) == 0
    result = json.loads((outs[plain] / "result.json").read_text())
    assert result["frames"] == FRAMES and result["mask_names"] == "frame file stem"
    names = sorted(p.name for p in (outs[plain] / "masks").iterdir())
    assert names == sorted(f"{t}.png" for t in range(FRAMES))
    for t in range(FRAMES):
        got = read_mask(outs[plain] / "masks" / f"{t}.png", (H, W))
        want = read_mask(outs[padded] / "masks" / f"{t:05d}.png", (H, W))
        assert np.array_equal(got, want), f"frame {t}: the mask of {t}.png differs from that of {t:05d}.png"
    seg = vosc.load_model(None, model="aost_tiny", depth=2)
    api = [r.mask for r in seg.run(vosc.iter_frames(plain), parse_masks([mask], (H, W)))]
    assert all(np.array_equal(a, read_mask(outs[padded] / "masks" / f"{t:05d}.png", (H, W)))
               for t, a in enumerate(api))


def test_progress_lines_when_stdout_is_not_a_terminal(video: Path, tmp_path: Path, one_torch_thread: None,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """pytest captures stdout (not a terminal): a line every --log-every frames instead of the Rich bar."""
    import logging

    with caplog.at_level(logging.INFO, logger="vosc.segment"):
        assert main([str(video), "--mask", str(video.parent / video.stem / "masks"), "--model", "aost_tiny",
                     "--out", str(tmp_path / "o"), "--device", "cpu", "--no-overlay",
                     "--log-every", "5"]) == 0
    lines = [r.getMessage() for r in caplog.records if ": frame " in r.getMessage()]
    assert [ln.split(" · ")[0] for ln in lines] == [f"{video.name}: frame {n}/{FRAMES}" for n in (5, 10, 15)]
    assert all(" frames/s · elapsed " in ln and " · ETA " in ln for ln in lines)
    with pytest.raises(SystemExit):
        build_parser().parse_args([str(video), "--log-every", "x"])
