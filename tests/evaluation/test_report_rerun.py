"""Reports of partial re-runs into one ``out_dir`` (every result present, old and new), BD anchors per depth,
warnings that name their metric, and the RD plot of a small ladder (q labels, styles, y span, error bars).

The sweeps are real: a tiny random AOT-style model, real x265 / VVenC encodes of 4-frame synthetic clips."""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from omegaconf import OmegaConf

from vosc.codecs import IdentityCodec, VVenCCodec, X265Codec
from vosc.evaluation.outputs import bd_tables, pick_anchor, write_reports
from vosc.evaluation.report import MIN_Y_SPAN, bd_rows, rd_figure
from vosc.evaluation.sweep import Sweep
from vosc.inference.segmenter import VideoSegmenter
from vosc.metrics.rd import NonMonotonicWarning, Provenance, RDCurve, RDPoint, bd_rate
from vosc.types import OperatingPoint

CODECS = {"none": IdentityCodec(), "x265": X265Codec(), "vvenc": VVenCCodec()}


def _sweep(
    root: Path,
    data: Path,
    model: torch.nn.Module,
    ladder: list[OperatingPoint],
    depths: list[int],
    fp: str = "m1",
) -> Sweep:
    from vosc.data.sources.davis import DavisSource

    return Sweep(
        source=DavisSource(data, split="train"),
        dataset="synth",
        model=model,
        make_segmenter=lambda m, d: VideoSegmenter(m, depth=d, max_long_edge=96),
        codecs=CODECS,
        ladder=ladder,
        depths=depths,
        out_root=root / "eval",
        cache_root=root / "cache",
        model_name="tiny",
        model_fingerprint=fp,
        max_frames=4,
    )


def _report(sweep: Sweep, root: Path) -> dict:
    sweep.run()
    ds = OmegaConf.create({"name": "synth", "submission": None})
    return write_reports(sweep, ds, root / "eval", None, {"enabled": False}, {}, 0.0)


def _summary(root: Path) -> set[tuple[str, str, str]]:
    rows = csv.DictReader((root / "eval" / "synth" / "summary.csv").open())
    return {(r["codec"], r["q"], r["depth"]) for r in rows}


@pytest.mark.codec
def test_partial_reruns_report_every_result_in_out_dir(
    tmp_path: Path, synthetic_davis: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vosc.models.vos_model import VOSModel

    torch.manual_seed(0)
    model = VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=2, droppath=0.0).eval()
    x = OperatingPoint
    _report(
        _sweep(tmp_path, synthetic_davis, model, [x("none"), x("x265", 32), x("x265", 42)], [1, 2]), tmp_path
    )
    first = _summary(tmp_path)
    assert first == {
        ("none", "", "1"),
        ("none", "", "2"),
        ("x265", "32", "1"),
        ("x265", "42", "1"),
        ("x265", "32", "2"),
        ("x265", "42", "2"),
    }
    # part 2: another codec at depth 2 only; part 3: one more x265 point at depth 1 only
    _report(_sweep(tmp_path, synthetic_davis, model, [x("vvenc", 37), x("vvenc", 42)], [2]), tmp_path)
    index = _report(_sweep(tmp_path, synthetic_davis, model, [x("x265", 37)], [1]), tmp_path)
    assert _summary(tmp_path) == first | {("vvenc", "37", "2"), ("vvenc", "42", "2"), ("x265", "37", "1")}
    out = tmp_path / "eval" / "synth"
    d1 = json.loads((out / "x265" / "rd_d1.json").read_text())
    assert [p["q"] for p in d1["points"]] == [32, 37, 42]  # the RD JSON itself is complete again
    assert set(index["curves"]) == {"none d1", "none d2", "x265 d1", "x265 d2", "vvenc d2"}
    # BD anchors per depth: vvenc d2 against x265 d2 only; nothing at depth 1 (one codec); never itself
    bd = list(csv.DictReader((out / "bd_psnr.csv").open()))
    assert [(r["curve"], r["anchor"]) for r in bd] == [("vvenc d2", "x265 d2")]
    assert bd[0]["BD-rate %"] != ""  # PSNR curves of both codecs overlap on these clips
    assert (out / "rd_jf.png").stat().st_size > 0 and (out / "rd_psnr.png").stat().st_size > 0
    # results of another model in the same out_dir stay on disk but out of this model's report, with a warning
    other = VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=2, droppath=0.0).eval()
    with caplog.at_level(logging.WARNING, logger="vosc.evaluate"):
        _report(_sweep(tmp_path, synthetic_davis, other, [x("x265", 22)], [2], fp="m2"), tmp_path)
    assert _summary(tmp_path) == {("x265", "22", "2")}
    assert "x265/rd_d1.json not in the report: computed with another model" in caplog.text


def _curve(codec: str, depth: int, jf: list[float], rates: list[float], per_seq: bool = False) -> RDCurve:
    points = []
    for i, (r, v) in enumerate(zip(rates, jf, strict=True)):
        extra = (
            {
                "per_sequence": {
                    s: {"J&F": v + d, "PSNR": 30.0 + i + d}
                    for s, d in (("a", -0.01), ("b", 0.0), ("c", 0.01))
                }
            }
            if per_seq
            else {}
        )
        points.append(
            RDPoint(q=27 + 5 * i, bpp=r, jf=v, psnr=30.0 + 10 * math.log10(r / rates[0]), extra=extra)
        )
    return RDCurve(Provenance(codec=codec, model="m", dataset="d", depth=depth), points)


def test_default_bd_anchor_is_per_depth_and_never_the_curve_itself() -> None:
    rates = [0.01, 0.02, 0.04]
    curves = [
        _curve(c, d, [0.5 + 0.05 * i + 0.01 * d for i in range(3)], [r * s for r in rates])
        for c, s in (("x265", 1.0), ("vvenc", 0.8))
        for d in (1, 2, 3)
    ]
    anchors = pick_anchor(None, curves)
    assert {d: a.label for d, a in anchors.items()} == {1: "x265 d1", 2: "x265 d2", 3: "x265 d3"}
    rows = bd_tables(curves, anchors)["bd_jf"]
    assert [(r["curve"], r["anchor"]) for r in rows] == [
        ("vvenc d1", "x265 d1"),
        ("vvenc d2", "x265 d2"),
        ("vvenc d3", "x265 d3"),
    ]
    assert all(r["BD-rate %"] == pytest.approx(-20.0) for r in rows)
    assert [r["curve"] for r in bd_tables(curves, pick_anchor("vvenc", curves))["bd_jf"]] == [
        "x265 d1",
        "x265 d2",
        "x265 d3",
    ]
    only = [c for c in curves if c.provenance.codec == "x265"]
    assert bd_tables(only, pick_anchor(None, only)) == {"bd_jf": [], "bd_psnr": []}  # no self-comparison


def test_bd_warnings_name_the_metric(caplog: pytest.LogCaptureFixture) -> None:
    flat = _curve("x265", 3, [0.5, 0.5, 0.5], [0.01, 0.02, 0.04])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"x265 d3 \[J&F\]: 1 usable point"):
            bd_rate(flat, flat, "jf")
    assert any(
        issubclass(w.category, NonMonotonicWarning) and "x265 d3 [J&F]" in str(w.message) for w in caught
    )
    with caplog.at_level(logging.WARNING):
        rows = bd_rows([flat], _curve("vvenc", 3, [0.5, 0.6, 0.7], [0.01, 0.02, 0.04]), "jf")
    assert rows[0]["note"] and "BD-rate / BD-J&F (J&F) of x265 d3 vs vvenc d3 skipped" in caplog.text


def test_rd_plot_of_a_small_ladder() -> None:
    rates = [0.01, 0.02]
    curves = [
        _curve(c, d, [0.50 + 0.002 * i + 0.001 * d for i in range(2)], rates, per_seq=True)
        for c in ("x265", "vvenc")
        for d in (1, 2, 3)
    ]
    figure = rd_figure(curves, "jf")
    try:
        axis = figure.axes[0]
        by_label = {c.get_label(): c.lines[0] for c in axis.containers}  # errorbar: (data line, caps, bars)
        assert set(by_label) == {c.label for c in curves}
        colours = {d: by_label[f"x265 d{d}"].get_color() for d in (1, 2, 3)}
        assert len(set(map(str, colours.values()))) == 3  # a colour per depth ...
        assert all(by_label[f"vvenc d{d}"].get_color() == colours[d] for d in (1, 2, 3))
        assert (
            by_label["x265 d1"].get_linestyle() != by_label["vvenc d1"].get_linestyle()
        )  # ... a style per codec
        texts = [t.get_text() for t in axis.texts]
        assert texts.count("q27") == 6 and texts.count("q32") == 6  # every point labelled with its q
        low, high = axis.get_ylim()
        assert high - low >= MIN_Y_SPAN["jf"]  # 0.6 points of J&F differences are not blown up to full height
        assert len(axis.containers) == 6 and all(c.has_yerr for c in axis.containers)  # error bars
    finally:
        plt.close(figure)
