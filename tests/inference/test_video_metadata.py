"""Video metadata is honoured (issue 26 item 7): a display rotation is applied when frames are read (as
players do), and the overlay keeps the source's timestamps (variable frame rate) and size (odd sizes too).
The videos are real encodes: FFmpeg (imageio-ffmpeg's binary) sets the rotation, PyAV writes the VFR /
odd-size file."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from vosc.data.palette import read_mask, write_mask
from vosc.inference.video_io import iter_frames, probe_video
from vosc.segment import SegmentError, build_parser, main, run

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H = 64, 48


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(plain.mp4, rotated.mp4)``: the same 64x48 H.264 stream, the second with display rotation 90."""
    root = tmp_path_factory.mktemp("rot")
    plain, turned = root / "plain.mp4", root / "rotated.mp4"
    subprocess.run([FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate=10",
                    "-frames:v", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    subprocess.run([FFMPEG, "-y", "-v", "error", "-display_rotation", "90", "-i", str(plain), "-c", "copy",
                    str(turned)], check=True)
    return plain, turned


def _player_frames(path: Path, width: int, height: int) -> np.ndarray:
    """What FFmpeg (with its default autorotation, as players) shows: ``(T, height, width, 3)``."""
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_rotation_is_applied_as_players_do(rotated: tuple[Path, Path]) -> None:
    plain, turned = rotated
    info = probe_video(turned)
    assert (info.width, info.height, info.rotation) == (H, W, 90)
    ours = np.stack(list(iter_frames(turned)))
    assert ours.shape == (4, W, H, 3)
    player = _player_frames(turned, H, W).astype(int)
    assert np.abs(ours.astype(int) - player).mean() < 3.0
    unrotated = np.stack(list(iter_frames(plain)))
    clockwise = np.rot90(unrotated, k=-1, axes=(1, 2)).astype(int)
    assert np.abs(clockwise - player).mean() > 20  # the direction matters


def test_a_mask_drawn_on_the_displayed_frame_fits(rotated: tuple[Path, Path], tmp_path: Path,
                                                  one_torch_thread: None) -> None:
    _, turned = rotated
    shown = np.zeros((W, H), np.uint8)  # displayed: 48 wide, 64 high
    shown[10:30, 8:30] = 1
    write_mask(tmp_path / "shown.png", shown)
    out = tmp_path / "out"
    assert main([str(turned), "--mask", str(tmp_path / "shown.png"), "--model", "aost_tiny", "--out",
                 str(out), "--device", "cpu", "--no-progress"]) == 0
    assert read_mask(out / "masks" / "00000.png").shape == (W, H)
    assert probe_video(out / "overlay.mp4").width == H
    coded = np.zeros((H, W), np.uint8)
    coded[5:20, 5:20] = 1
    write_mask(tmp_path / "coded.png", coded)
    args = build_parser().parse_args([str(turned), "--mask", str(tmp_path / "coded.png"), "--model",
                                      "aost_tiny", "--out", str(tmp_path / "o2"), "--device", "cpu",
                                      "--no-progress"])
    with pytest.raises(SegmentError, match=r"coded\.png.*differs from frame size 48x64.*rotation 90"):
        run(args)


def _vfr_odd(path: Path, times_ms: list[int], width: int, height: int) -> None:
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.time_base = stream.codec_context.time_base = tb
        rng = np.random.default_rng(0)
        for t in times_ms:
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, "rgb24")
            frame.pts, frame.time_base = t, tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(container.streams.video[0])]


def test_overlay_keeps_timestamps_and_odd_size(tmp_path: Path, one_torch_thread: None) -> None:
    width, height = 65, 47
    video = tmp_path / "vfr.mp4"
    _vfr_odd(video, [0, 40, 200, 230, 600, 640], width, height)
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 10:40] = 1
    write_mask(tmp_path / "m.png", mask)
    out = tmp_path / "out"
    assert main([str(video), "--mask", str(tmp_path / "m.png"), "--model", "aost_tiny", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    info = probe_video(out / "overlay.mp4")
    assert (info.width, info.height) == (width, height)
    assert _times(out / "overlay.mp4") == pytest.approx(_times(video), abs=1e-3)
    assert _times(video) == pytest.approx([0, 0.04, 0.2, 0.23, 0.6, 0.64])
