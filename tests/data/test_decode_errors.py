"""Issue 13 item 7 (training part): a file that fails at decode time (a truncated JPEG found mid-training)
drops that video with a logged reason under ``on_error: skip`` and training data keeps flowing; with the
default ``on_error: raise`` it raises naming the file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from vosc.data.compressed_dataset import CompressedClipDataset, CompressionSpec, TrainEntry
from vosc.data.errors import CorruptImageError
from vosc.data.sampling import ClipSampler
from vosc.data.sources.davis import DavisSource
from vosc.data.transforms import ClipAugment


def _dataset(root: Path, on_error: str) -> CompressedClipDataset:
    src = DavisSource(root, split="train", on_error=on_error)  # type: ignore[arg-type]
    return CompressedClipDataset([TrainEntry(src, repeat=1, max_gap=3)],
                                 ClipSampler(num_frames=3, min_ref_pixels=50),
                                 ClipAugment(crop_size=(48, 64), short_edge=96), CompressionSpec("none"),
                                 seed=3)


def test_truncated_frame_mid_training(tmp_path: Path, synthetic_davis: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    root = Path(shutil.copytree(synthetic_davis, tmp_path / "davis"))
    frames = sorted((root / "JPEGImages" / "480p" / "synth-001").glob("*.jpg"))
    for frame in frames[1:]:  # the header of the first frame stays valid: the source's checks pass
        data = frame.read_bytes()
        frame.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match="synth-001"):
        [_dataset(root, "raise")[i] for i in range(3)]
    ds = _dataset(root, "skip")
    with caplog.at_level(logging.WARNING):
        clips = [ds[e * len(ds) + i] for e in range(2) for i in range(len(ds))]
    assert {c.sequence for c in clips} == {"synth-000", "synth-002"}
    assert list(ds.dropped) == ["davis/synth-001"] and "synth-001" in ds.dropped["davis/synth-001"]
    assert sum("dropped (on_error=skip)" in r.message for r in caplog.records) == 1
    again = _dataset(root, "skip")
    assert [again[i].frames.tobytes() for i in range(len(ds))] == [c.frames.tobytes() for c in clips[:3]]
