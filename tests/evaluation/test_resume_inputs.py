"""Issue 26 item 2: a resumed evaluation never reuses a result whose inputs changed.

The resume fingerprint covered the frame files but not the annotations: after the masks of a sequence were
replaced (the first-frame mask the model takes as input included), the same command resumed the sequence
and reported the old J&F. Here a finished sweep is re-run after changing one ground-truth mask, and
separately the first-frame mask: the re-run fails naming the annotation that changed, and with
``overwrite=true`` it recomputes and gives what a fresh output folder gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vosc.codecs import IdentityCodec
from vosc.data.palette import read_mask, write_mask
from vosc.data.sources.davis import DavisSource
from vosc.evaluation.sweep import StaleResultError, Sweep, Variant
from vosc.inference.segmenter import VideoSegmenter
from vosc.models.vos_model import VOSModel
from vosc.types import OperatingPoint

SEQ = "synth-003"
VARIANT = Variant(OperatingPoint("none"), 2)


@pytest.fixture
def data(tmp_path: Path, synthetic_davis: Path) -> Path:
    """A private copy of the synthetic set (its masks are edited)."""
    return Path(shutil.copytree(synthetic_davis, tmp_path / "data"))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=2, droppath=0.0).eval()


def _sweep(data: Path, out: Path, model: torch.nn.Module, **kwargs: object) -> Sweep:
    return Sweep(source=DavisSource(data, split="val"), dataset="synth", model=model,
                 make_segmenter=lambda m, d: VideoSegmenter(m, depth=d, max_long_edge=96),
                 codecs={"none": IdentityCodec()}, ladder=[OperatingPoint("none")], depths=[2],
                 out_root=out / "eval", cache_root=out / "cache", model_fingerprint="m1", max_frames=5,
                 **kwargs)  # type: ignore[arg-type]


def _objects(sweep: Sweep) -> list[dict]:
    return json.loads(sweep.marker_path(VARIANT, SEQ).read_text())["objects"]


def _erase_object(path: Path, obj: int) -> None:
    mask = read_mask(path)
    assert (mask == obj).any()
    write_mask(path, np.where(mask == obj, 0, mask).astype(np.uint8))


@pytest.mark.parametrize(("frame", "what"), [("00002", "ground truth"), ("00000", "first-frame mask")])
def test_a_changed_annotation_is_never_resumed(data: Path, model: torch.nn.Module, tmp_path: Path, frame: str,
                                               what: str) -> None:
    out = tmp_path / "run"
    first = _sweep(data, out, model)
    first.run()
    before = _objects(first)
    _erase_object(data / "Annotations" / "480p" / SEQ / f"{frame}.png", 2)
    with pytest.raises(StaleResultError) as exc:
        _sweep(data, out, model).run()
    message = str(exc.value)
    assert f"{SEQ}.json" in message and "annotations" in message and f"{frame}.png" in message, message
    redo = _sweep(data, out, model, overwrite=True)
    redo.run()
    assert (redo.computed, redo.resumed) == (1, 0)
    fresh = _sweep(data, tmp_path / "fresh", model)
    fresh.run()
    assert _objects(redo) == _objects(fresh) != before  # the recomputed result is the fresh one


def test_unchanged_inputs_resume_and_each_input_is_named(data: Path, model: torch.nn.Module,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    _sweep(data, out, model, checkpoint_hash="aaaa").run()
    again = _sweep(data, out, model, checkpoint_hash="aaaa")
    again.run()
    assert (again.computed, again.resumed) == (0, 1)
    with pytest.raises(StaleResultError, match=r"checkpoint"):
        _sweep(data, out, model, checkpoint_hash="bbbb").run()
    with pytest.raises(StaleResultError, match=r"segmenter"):
        _sweep(data, out, model, checkpoint_hash="aaaa", segmenter_config={"long_term_gap": 3}).run()
