"""Each kind of bad input raises its specific exception naming the file; skipping is logged."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.data import errors as E
from vosc.data.palette import read_frame, read_mask, write_mask
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.youtube_vos import YouTubeVOSSource


@pytest.fixture()
def davis_copy(synthetic_davis: Path, tmp_path: Path) -> Path:
    """A writable copy of the synthetic DAVIS set."""
    dst = tmp_path / "davis"
    shutil.copytree(synthetic_davis, dst)
    return dst


def _seq(root: Path, kind: str, name: str = "synth-000") -> Path:
    return root / kind / "480p" / name


def test_missing_frame_for_mask(davis_copy: Path) -> None:
    bad = _seq(davis_copy, "JPEGImages") / "00003.jpg"
    bad.unlink()
    with pytest.raises(E.MissingFrameError, match="00003.png") as exc:
        DavisSource(davis_copy, split="train")
    assert "no frame" in str(exc.value)


def test_missing_sequence_folder(davis_copy: Path) -> None:
    shutil.rmtree(_seq(davis_copy, "JPEGImages", "synth-001"))
    with pytest.raises(E.MissingFrameError, match="synth-001"):
        DavisSource(davis_copy, split="train")


def test_missing_mask_when_loading(davis_copy: Path) -> None:
    (_seq(davis_copy, "Annotations") / "00002.png").unlink()
    src = DavisSource(davis_copy, split="train")
    with pytest.raises(E.MissingMaskError, match=r"synth-000/00002\.png"):
        src.load_masks(src.videos[0], [0, 2])


def test_mask_size_mismatch(davis_copy: Path) -> None:
    write_mask(_seq(davis_copy, "Annotations") / "00004.png", np.zeros((50, 80), np.uint8))
    with pytest.raises(E.MaskSizeError, match=r"00004\.png.*80x50"):
        DavisSource(davis_copy, split="train")
    with pytest.raises(E.MaskSizeError, match="00004.png"):
        read_mask(_seq(davis_copy, "Annotations") / "00004.png", expected_size=(96, 160))


def test_rgb_mask_instead_of_palette(davis_copy: Path) -> None:
    path = _seq(davis_copy, "Annotations") / "00001.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(E.NotPaletteMaskError, match=r"00001\.png.*RGB"):
        DavisSource(davis_copy, split="train")
    with pytest.raises(E.NotPaletteMaskError, match="00001.png"):
        read_mask(path)


def test_corrupt_jpeg(davis_copy: Path) -> None:
    path = _seq(davis_copy, "JPEGImages") / "00005.jpg"
    path.write_bytes(path.read_bytes()[:300])
    src = DavisSource(davis_copy, split="train")  # headers are fine; pixels are not
    with pytest.raises(E.CorruptImageError, match=r"00005\.jpg"):
        src.load_frames(src.videos[0], [4, 5])
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(E.CorruptImageError, match="00005.jpg"):
        read_frame(path)


def test_empty_reference_mask(davis_copy: Path) -> None:
    write_mask(_seq(davis_copy, "Annotations") / "00000.png", np.zeros((96, 160), np.uint8))
    with pytest.raises(E.EmptyReferenceMaskError, match=r"synth-000/00000\.png"):
        DavisSource(davis_copy, split="train")


def test_video_without_annotation(davis_copy: Path) -> None:
    shutil.rmtree(_seq(davis_copy, "Annotations", "synth-002"))
    with pytest.raises(E.NoAnnotatedFrameError, match="synth-002"):
        DavisSource(davis_copy, split="train")


def test_skip_is_logged_with_reason(davis_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.rmtree(_seq(davis_copy, "Annotations", "synth-002"))
    with caplog.at_level(logging.WARNING):
        src = DavisSource(davis_copy, split="train", on_error="skip")
    assert [v.name for v in src.videos] == ["synth-000", "synth-001"]
    assert "synth-002" in src.skipped and "no annotated frame" in src.skipped["synth-002"]
    assert any("skipping video 'synth-002'" in r.getMessage() for r in caplog.records)


def test_odd_frame_size_when_even_required(tmp_path: Path) -> None:
    from vosc.data.synthetic import generate_synthetic

    root = generate_synthetic(tmp_path / "odd", videos=2, frames=2, size=(63, 47))
    src = DavisSource(root, split="train")  # odd sizes are accepted by default (codecs pad)
    assert src.load_frames(src.videos[0], [0]).shape == (1, 47, 63, 3)
    with pytest.raises(E.OddFrameSizeError, match=r"00000\.jpg.*63x47"):
        DavisSource(root, split="train", require_even=True)


def test_inconsistent_frame_sizes(davis_copy: Path) -> None:
    path = _seq(davis_copy, "JPEGImages") / "00006.jpg"
    Image.open(path).resize((80, 48)).save(path)
    src = DavisSource(davis_copy, split="train")
    with pytest.raises(E.InconsistentFrameSizeError, match="00006.jpg"):
        src.load_frames(src.videos[0], [0, 6])


def test_layout_errors(tmp_path: Path, synthetic_ytvos: Path) -> None:
    with pytest.raises(E.DatasetLayoutError, match="JPEGImages"):
        DavisSource(tmp_path, split="train")
    with pytest.raises(E.DatasetLayoutError, match="ImageSets"):
        root = tmp_path / "d"
        (root / "JPEGImages" / "480p").mkdir(parents=True)
        (root / "Annotations" / "480p").mkdir(parents=True)
        DavisSource(root, split="train")
    ytvos = tmp_path / "y"
    shutil.copytree(synthetic_ytvos, ytvos)
    (ytvos / "valid" / "meta.json").write_text("{broken")
    with pytest.raises(E.DatasetLayoutError, match="meta.json"):
        YouTubeVOSSource(ytvos, split="valid")
