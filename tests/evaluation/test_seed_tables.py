"""``bench/seed_tables.py`` end to end on the DAVIS pair at a tiny size (random ``aost_small``): every table
and the RD comparison are written, with one row per method, the paper's rows beside them, and the encoder-mode
numbers built from real bits."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from vosc.evaluation.seed_tables import ModelSpec, equal_jf_rate, jf_at_rate, parse_model
from vosc.metrics.rd import Provenance, RDCurve, RDPoint

REPO = Path(__file__).resolve().parents[2]


def _bench():  # noqa: ANN202 - the script module
    path = REPO / "bench" / "seed_tables.py"
    spec = importlib.util.spec_from_file_location("vosc_seed_tables_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.codec
@pytest.mark.slow
def test_seed_tables_end_to_end(tmp_path: Path, davis_mini: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from vosc.lit.enhancer_module import save_enhancer_weights
    from vosc.models.enhancer import CompressionAwareEnhancer

    torch.manual_seed(0)
    net = CompressionAwareEnhancer("tiny")
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 1e-3)  # not the identity: the enhancer changes the frames
    enhancer = save_enhancer_weights(net, tmp_path / "enhancer.ckpt")
    out = tmp_path / "tables"
    status = _bench().main(["--root", str(davis_mini), "--out", str(out), "--max-frames", "3",
                            "--resize-long-edge", "64", "--rd-crfs", "42", "47", "--vvenc", "47",
                            "--eval-arg", "segmenter.max_long_edge=64", "--lossy-mask-factors", "4",
                            "--enhancer-ckpt", str(enhancer)])
    assert status == 0
    assert "RANDOMLY INITIALISED aost_small" in caplog.text
    for name in ("table1", "table2", "table3", "side_info", "rd_compare", "object_aware"):
        assert (out / f"{name}.csv").stat().st_size > 0 and (out / f"{name}.md").read_text().startswith("# ")
    assert (out / "rd_compare_aost_small-random_d3.png").stat().st_size > 1000
    t1 = _rows(out / "table1.csv")
    measured = {r["method"]: r for r in t1 if r["source"] == "measured"}
    methods = {"x265", "vvenc", "x265+enc", "vvenc+enc", "x265+enc+roi", "x265+enc+blur", "vvenc+enc+blur",
               "x265+enc+m4"}
    assert set(measured) == {"original"} | methods | {f"{m} +cae_tiny" for m in methods}
    assert {r["model"] for r in measured.values()} == {"aost_small-random"}
    paper = {(r["method"], r["model"]) for r in t1 if r["source"] == "paper"}
    assert paper >= {("Ours", "AOT"), ("x265", "STCN")}
    assert "published numbers" in (out / "table1.md").read_text()
    jf = {m: float(r["J&F"]) for m, r in measured.items()}
    assert jf["x265+enc"] == pytest.approx(jf["original"]) == pytest.approx(jf["x265+enc+roi"])
    assert jf["x265+enc +cae_tiny"] == pytest.approx(jf["original"])  # the enhancer does not touch the masks
    side = {r["method"]: r for r in _rows(out / "side_info.csv")}
    enc, dec = side["x265+enc"], side["x265"]
    assert float(enc["video_bpp"]) == pytest.approx(float(dec["bpp"]))  # same x265 bitstream (cached)
    assert float(enc["bpp"]) == pytest.approx(float(enc["video_bpp"]) + float(enc["mask_bpp"]))
    assert float(enc["mask_bpp"]) > 0 and enc["mask coder"] == "x265-lossless"
    lossy = side["x265+enc+m4"]
    assert lossy["mask coder"] == "x265-lossless/4" and lossy["mask_bpp"] != enc["mask_bpp"]
    assert float(lossy["video_bpp"]) == pytest.approx(float(enc["video_bpp"]))
    t2 = {r["method"]: r for r in _rows(out / "table2.csv") if r["source"] == "measured"}
    assert float(t2["x265+enc"]["t_d"]) < float(t2["x265"]["t_d"])  # no VOS network at the decoder
    t3 = [r for r in _rows(out / "table3.csv") if r["source"] == "measured"]
    assert len(t3) == 17 and all(r["J-Recall"] != "" and r["F-Decay"] != "" for r in t3)
    compare = _rows(out / "rd_compare.csv")
    def both(labels: set[str]) -> set[str]:
        return labels | {f"{label} +cae_tiny" for label in labels}

    encoder = {"x265+enc d3", "vvenc+enc d3", "x265+enc+roi d3", "x265+enc+blur d3", "vvenc+enc+blur d3",
               "x265+enc+m4 d3"}
    assert {r["encoder mode"] for r in compare} == both(encoder)
    assert {r["decoder mode"] for r in compare} == both({"x265 d3", "vvenc d3"})
    aware = _rows(out / "object_aware.csv")
    assert {r["method"] for r in aware} == both({"x265+enc+roi d3", "x265+enc+blur d3", "vvenc+enc+blur d3"})
    assert all(float(r["PSNR-Y inside"]) > 0 and float(r["PSNR-Y outside"]) > 0 for r in aware)


def test_model_arguments_and_interpolation(tmp_path: Path) -> None:
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    assert parse_model(f"aot={ckpt}@aotl") == ModelSpec("aot", str(ckpt), "aotl")
    assert parse_model(f"a={ckpt}") == ModelSpec("a", str(ckpt), None)
    with pytest.raises(ValueError, match="expected NAME=CHECKPOINT"):
        parse_model("aot")
    with pytest.raises(ValueError, match="checkpoint /nonexistent.ckpt does not exist"):
        parse_model("aot=/nonexistent.ckpt")
    curve = RDCurve(Provenance(codec="x265", model="m", dataset="d"),
                    [RDPoint(q=47, bpp=0.01, jf=0.5), RDPoint(q=37, bpp=0.1, jf=0.7)])
    assert equal_jf_rate(curve, 0.6) == pytest.approx(10 ** -1.5)
    assert equal_jf_rate(curve, 0.8) is None and jf_at_rate(curve, 0.2) is None
    assert jf_at_rate(curve, 10 ** -1.5) == pytest.approx(0.6)
    assert _bench().main(["--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
