"""Issue 13 item 1: evaluation never silently changes J&F. A ground-truth mask missing mid-sequence or on
the first frame raises (naming the file) unless ``missing_gt=skip``; then the sequence is reported and J&F
and bpp sequences are counted separately."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from vosc.codecs import IdentityCodec
from vosc.data.sources.davis import DavisSource
from vosc.evaluation.report import summary_rows
from vosc.evaluation.sweep import Sweep
from vosc.inference.segmenter import VideoSegmenter
from vosc.metrics.errors import MissingGroundTruthError
from vosc.models.vos_model import VOSModel
from vosc.types import OperatingPoint


@pytest.fixture
def data(tmp_path: Path, synthetic_davis: Path) -> Path:
    """A private copy of the synthetic set (masks are deleted in it)."""
    return Path(shutil.copytree(synthetic_davis, tmp_path / "davis"))


def _sweep(root: Path, data: Path, **kwargs: object) -> Sweep:
    torch.manual_seed(0)
    model = VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=1, droppath=0.0).eval()
    return Sweep(source=DavisSource(data, split="train"), dataset="synth", model=model,
                 make_segmenter=lambda m, d: VideoSegmenter(m, depth=d, max_long_edge=96),
                 codecs={"none": IdentityCodec()}, ladder=[OperatingPoint("none")], depths=[1],
                 out_root=root / "eval", cache_root=root / "cache", max_frames=4, **kwargs)  # type: ignore[arg-type]


def _mask(data: Path, seq: str, k: int) -> Path:
    return sorted((data / "Annotations" / "480p" / seq).glob("*.png"))[k]


@pytest.mark.parametrize("k", [2, 0], ids=["mid-sequence", "first-frame"])
def test_missing_mask_raises_naming_the_file(tmp_path: Path, data: Path, k: int) -> None:
    gone = _mask(data, "synth-001", k)
    gone.unlink()
    with pytest.raises(MissingGroundTruthError, match=rf"{gone.name}.*synth-001.*missing_gt=skip"):
        _sweep(tmp_path, data).run()


def test_missing_gt_skip_reports_the_sequence_and_counts_separately(tmp_path: Path, data: Path) -> None:
    full = _sweep(tmp_path / "full", data)
    full.run()
    before = full.curves()[("none", 1, False)].points[0]
    assert before.extra["jf_sequences"] == before.extra["bpp_sequences"] == 3
    gone = _mask(data, "synth-001", 2)
    gone.unlink()
    part = _sweep(tmp_path / "part", data, missing_gt="skip")
    part.run()
    point = part.curves()[("none", 1, False)].points[0]
    assert point.extra["jf_sequences"] == 2 and point.extra["bpp_sequences"] == 3 == point.num_sequences
    assert list(point.extra["gt_skipped"]) == ["synth-001"]
    assert gone.name in point.extra["gt_skipped"]["synth-001"]
    assert "J&F" not in point.extra["per_sequence"]["synth-001"]
    row = summary_rows([part.curves()[("none", 1, False)]])[0]
    assert (row["jf_seqs"], row["bpp_seqs"]) == (2, 3)
    with pytest.raises(ValueError, match="missing_gt must be one of"):
        _sweep(tmp_path / "bad", data, missing_gt="ignore").run()


@pytest.mark.parametrize("damage", ["truncated", "resized"])
def test_bad_frame_in_the_last_sequence_fails_before_any_work(tmp_path: Path, data: Path,
                                                              damage: str) -> None:
    """Issue 13 item 7: every frame header and size is checked before the first sequence runs."""
    from PIL import Image

    from vosc.data.errors import CorruptImageError, InconsistentFrameSizeError

    frame = sorted((data / "JPEGImages" / "480p" / "synth-002").glob("*.jpg"))[3]
    if damage == "truncated":
        frame.write_bytes(frame.read_bytes()[:20])
        error: type[Exception] = CorruptImageError
    else:
        Image.open(frame).resize((80, 48)).save(frame)
        error = InconsistentFrameSizeError
    sweep = _sweep(tmp_path, data)
    with pytest.raises(error, match=frame.name):
        sweep.run()
    assert sweep.computed == 0 and not list((tmp_path / "eval").rglob("*.json"))
