"""``vosc-segment`` never gives a silent wrong result (issue 26 items 4, 5, 8, 9): bad arguments are usage
errors, an output folder of an earlier run is refused or replaced, masks are never silently changed, and the
process defaults to one torch thread with passive OpenMP waiting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.data.palette import read_mask, write_mask
from vosc.data.synthetic_video import write_synthetic_mp4
from vosc.segment import SegmentError, build_parser, main, parse_masks, run

FRAMES, W, H = 6, 64, 48
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame 64x48 mp4 with one object."""
    out = tmp_path_factory.mktemp("vid")
    (path,) = write_synthetic_mp4(out, videos=1, frames=FRAMES, size=(W, H), objects=1)
    return path


@pytest.fixture(scope="module")
def first_mask(video: Path) -> Path:
    return video.parent / video.stem / "masks" / "00000.png"


def _args(video: Path, out: Path, *extra: str) -> list[str]:
    return [str(video), "--model", "aost_tiny", "--out", str(out), "--device", "cpu", "--no-progress",
            "--no-overlay", *extra]


# ------------------------------------------------------------------ item 9: argument errors are usage errors
@pytest.mark.parametrize(("extra", "message"), [
    (("--codec", "x265"), "--codec x265 needs --q"),
    (("--q", "42"), "--q 42 needs --codec"),
    (("--codec", "x265", "--q", "99"), r"--q 99 is out of range for x265: valid \[0, 51\]"),
])
def test_codec_and_q_mistakes_are_usage_errors(video: Path, first_mask: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], extra: tuple[str, ...],
                                               message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_args(video, tmp_path / "o", "--mask", str(first_mask), *extra))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: vosc-segment" in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ item 5: earlier outputs
def test_out_folder_of_an_earlier_run_is_refused_then_replaced(
        video: Path, first_mask: Path, tmp_path: Path, one_torch_thread: None) -> None:
    out = tmp_path / "o"
    assert main(_args(video, out, "--mask", str(first_mask))) == 0
    stale = out / "masks" / "99999.png"
    write_mask(stale, np.zeros((H, W), np.uint8))
    (out / "overlay.mp4").write_bytes(b"old overlay")
    with pytest.raises(SegmentError, match=r"o: holds the outputs of an earlier run .*--overwrite"):
        run(build_parser().parse_args(_args(video, out, "--mask", str(first_mask))))
    assert stale.is_file()  # refused: nothing touched
    assert main(_args(video, out, "--mask", str(first_mask), "--overwrite")) == 0
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == [f"{t:05d}" for t in range(FRAMES)]
    assert not (out / "overlay.mp4").exists()  # --no-overlay: the old overlay is not left beside new masks


def test_out_folder_with_foreign_files_is_refused_even_with_overwrite(video: Path, first_mask: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(SegmentError, match=r"thesis\.tex.*not a vosc-segment output"):
        run(build_parser().parse_args(_args(video, out, "--mask", str(first_mask), "--overwrite")))
    assert (out / "thesis.tex").read_text() == "precious"


def test_default_out_folder_differs_for_same_stem_in_different_folders(tmp_path: Path) -> None:
    from vosc.segment import default_out

    a, b = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    assert default_out(a) != default_out(b)
    assert default_out(a) == a.parent / "clip.mp4_vosc"
    # same stem, same folder (today both wrote into clip_vosc/)
    assert default_out(a) != default_out(a.with_suffix(".mkv"))
    assert default_out(tmp_path / "frames") == tmp_path / "frames_vosc"


# ------------------------------------------------------------------ item 8: threads
def test_cli_defaults_to_one_torch_thread_and_passive_omp(video: Path, first_mask: Path,
                                                          tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_") and k != "VOSC_TEST_THREADS"}
    out = tmp_path / "o"
    code = ("import sys, torch; torch.set_num_threads(2); from vosc.segment import main; "
            "sys.exit(main(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, *_args(video, out, "--mask", str(first_mask))], env=env,
                   cwd=REPO, check=True, timeout=300)
    result = json.loads((out / "result.json").read_text())
    assert result["torch_threads"] == 1
    assert result["omp_wait_policy"] == "PASSIVE"
    probe = ("import os, vosc.segment; print(os.environ.get('OMP_WAIT_POLICY'))")
    shown = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, check=True, capture_output=True,
                           text=True, timeout=120).stdout.strip()
    assert shown == "PASSIVE"


# ------------------------------------------------------------------ item 4: input masks
def test_a_mask_whose_object_is_255_is_an_error_that_says_how_to_fix_it(tmp_path: Path) -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 10:30] = 255
    path = tmp_path / "m.png"
    write_mask(path, mask)  # a palette PNG: 255 is an id, not the binary 0/255 convention
    with pytest.raises(SegmentError, match=r"m\.png: object id 255 .*is void.*renumber"):
        parse_masks([str(path)], (H, W))


def test_an_antialiased_grey_mask_is_thresholded_with_a_warning(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    soft = np.clip((14.0 - np.hypot(yy - 24, xx - 32)) * 40 + 128, 0, 255).astype(np.uint8)
    assert len(np.unique(soft)) > 8 and (soft == 255).any()
    path = tmp_path / "soft.png"
    Image.fromarray(soft, mode="L").save(path)
    with caplog.at_level("WARNING"):
        masks = parse_masks([str(path)], (H, W))
    assert set(np.unique(masks[0])) == {0, 1}  # one object, not one per edge value
    assert np.array_equal(masks[0], (soft >= 128).astype(np.uint8))
    assert any("soft.png" in r.getMessage() and "threshold" in r.getMessage() for r in caplog.records)


def test_a_grey_id_mask_with_few_values_is_read_as_ids(tmp_path: Path) -> None:
    ids = np.zeros((H, W), np.uint8)
    ids[5:15, 5:15], ids[20:30, 20:40] = 1, 2
    path = tmp_path / "ids.png"
    Image.fromarray(ids, mode="L").save(path)
    assert np.array_equal(parse_masks([str(path)], (H, W))[0], ids)
    assert np.array_equal(read_mask(path), ids)
