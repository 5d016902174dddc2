"""Unit tests of :mod:`vosc.evaluation.sweep`: ladder parsing, output layout, chunked enhancement, and the
resume fingerprint on a real (tiny) sweep over the synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vosc.codecs import IdentityCodec, VVenCCodec, X265Codec
from vosc.evaluation.ladder import parse_ladder
from vosc.evaluation.sweep import (
    EnhancerSpec,
    StaleResultError,
    Sweep,
    Variant,
    enhance_frames,
    variant_dir,
)
from vosc.inference.segmenter import VideoSegmenter
from vosc.models.enhancer import CompressionAwareEnhancer
from vosc.types import OperatingPoint

CODECS = {"none": IdentityCodec(), "x265": X265Codec(), "vvenc": VVenCCodec()}


def test_parse_ladder_forms() -> None:
    points = parse_ladder(["none", "x265:32", {"codec": "vvenc", "q": 37}, ["x265", 42]], CODECS)
    assert points == [
        OperatingPoint("none"),
        OperatingPoint("x265", 32),
        OperatingPoint("vvenc", 37),
        OperatingPoint("x265", 42),
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "ladder is empty"),
        (["h264:30"], r"ladder\[0\]: unknown codec 'h264'"),
        (["x265"], r"ladder\[0\]: codec 'x265' needs an integer q"),
        (["x265:abc"], "needs an integer q, got 'abc'"),
        (["vvenc:64"], r"q=64 out of range \[0, 63\]"),
        (["none:3"], "codec 'none' takes no quality parameter"),
        (["x265:32", "x265:32"], r"ladder\[1\]: duplicate operating point x265_q32"),
    ],
)
def test_parse_ladder_errors(entries: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ladder(entries, CODECS)


@pytest.mark.parametrize(
    ("spelling", "values"),
    [(37, [37]), ("37", [37]), ("30-32", [30, 31, 32]), ([22, "30-31"], [22, 30, 31]),
     ({"low": 40, "high": 41}, [40, 41]), (None, []), ("", [])],
)
def test_one_q_parser_for_training_and_ladders(spelling: object, values: list[int]) -> None:
    """``codec.q=...`` of training and ``x265:<q>`` of ladders go through the same parser."""
    assert OperatingPoint.parse_q(spelling) == values
    if len(values) == 1:
        assert parse_ladder([f"x265:{spelling}"], CODECS) == [OperatingPoint("x265", values[0])]
    with pytest.raises(ValueError, match="cannot parse q='3x'"):
        OperatingPoint.parse_q("3x")


def test_variant_dir_layout(tmp_path: Path) -> None:
    assert (
        variant_dir(tmp_path, "davis", Variant(OperatingPoint("x265", 42), 2))
        == tmp_path / "davis/x265/q42/d2"
    )
    assert (
        variant_dir(tmp_path, "davis", Variant(OperatingPoint("x265", 42), 2, True))
        == tmp_path / "davis/x265/q42/d2/enh"
    )
    assert (
        variant_dir(tmp_path, "davis", Variant(OperatingPoint("none"), 3)) == tmp_path / "davis/none/raw/d3"
    )


def test_enhance_frames_chunked_equals_whole_clip() -> None:
    torch.manual_seed(0)
    net = CompressionAwareEnhancer("tiny").eval()
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 1e-2)
    frames = np.random.default_rng(0).integers(0, 256, (7, 24, 40, 3), dtype=np.uint8)
    op, qps, types = (
        OperatingPoint("x265", 42),
        [40.0, 43, 44, 43, 44, 43, 44],
        ["I", "P", "P", "P", "P", "P", "P"],
    )
    chunked = enhance_frames(
        EnhancerSpec(net, "t", "f", chunk=3), frames, op, qps, types, torch.device("cpu")
    )
    whole = enhance_frames(
        EnhancerSpec(net, "t", "f", chunk=100), frames, op, qps, types, torch.device("cpu")
    )
    assert chunked.dtype == np.uint8 and chunked.shape == frames.shape
    assert (
        np.abs(chunked.astype(int) - whole.astype(int)).max() <= 1
    )  # float reassociation may flip a rounding
    assert np.mean(chunked != frames) > 0.1  # the perturbed enhancer does change the frames
    identity = enhance_frames(
        EnhancerSpec(CompressionAwareEnhancer("tiny").eval(), "t", "f"),
        frames,
        op,
        None,
        None,
        torch.device("cpu"),
    )
    assert np.array_equal(identity, frames)  # zero-initialised: exact identity after rounding


def _sweep(root: Path, data: Path, model: torch.nn.Module, **kwargs) -> Sweep:
    from vosc.data.sources.davis import DavisSource

    return Sweep(
        source=DavisSource(data, split="val"),
        dataset="synth",
        model=model,
        make_segmenter=lambda m, d: VideoSegmenter(m, depth=d, max_long_edge=96),
        codecs=CODECS,
        ladder=[OperatingPoint("none")],
        depths=[1, 2],
        out_root=root / "eval",
        cache_root=root / "cache",
        model_fingerprint=kwargs.pop("fp", "m1"),
        max_frames=4,
        **kwargs,
    )


def test_sweep_resume_and_stale_results(tmp_path: Path, synthetic_davis: Path) -> None:
    from vosc.models.vos_model import VOSModel

    torch.manual_seed(0)
    model = VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=2, droppath=0.0).eval()
    first = _sweep(tmp_path, synthetic_davis, model)
    first.run()
    assert (first.computed, first.resumed) == (2, 0)
    curves = first.curves()
    assert set(curves) == {("none", 1, False), ("none", 2, False)}
    point = curves[("none", 2, False)].points[0]
    assert point.bpp == 0 and 0 <= point.jf <= 1 and point.runtimes.frames == 4 and point.num_sequences == 1
    marker = first.marker_path(Variant(OperatingPoint("none"), 2), "synth-003")
    stamp = json.loads(marker.read_text())["computed_at"]
    again = _sweep(tmp_path, synthetic_davis, model)
    again.run()
    assert (again.computed, again.resumed) == (0, 2)
    assert json.loads(marker.read_text())["computed_at"] == stamp
    with pytest.raises(StaleResultError, match="synth-003.json was computed with different inputs"):
        _sweep(tmp_path, synthetic_davis, model, fp="m2").run()
    redo = _sweep(tmp_path, synthetic_davis, model, fp="m2", overwrite=True)
    redo.run()
    assert redo.computed == 2 and json.loads(marker.read_text())["computed_at"] != stamp


def test_sweep_argument_checks(tmp_path: Path, synthetic_davis: Path) -> None:
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="max_frames must be >= 3"):
        Sweep(**{**_kw(tmp_path, synthetic_davis, model), "max_frames": 2})
    with pytest.raises(ValueError, match="enhancer=both needs an enhancer network"):
        Sweep(**{**_kw(tmp_path, synthetic_davis, model), "enhancer_mode": "both"})


def _kw(root: Path, data: Path, model: torch.nn.Module) -> dict:
    from vosc.data.sources.davis import DavisSource

    return {
        "source": DavisSource(data, split="val"),
        "dataset": "synth",
        "model": model,
        "make_segmenter": lambda m, d: None,
        "codecs": CODECS,
        "ladder": [OperatingPoint("none")],
        "depths": [1],
        "out_root": root,
        "cache_root": root,
    }
