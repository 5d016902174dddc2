"""Reports: Markdown/CSV tables, BD and enhancer tables, the J&F–bpp plot, and real offline W&B logging."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosc.evaluation.report import (
    bd_rows,
    enhancer_rows,
    load_curves,
    log_to_wandb,
    plot_rd,
    rows_to_csv,
    rows_to_markdown,
    summary_rows,
    write_table,
)
from vosc.metrics.rd import Provenance, RDCurve, RDPoint, Runtimes

RATES = [0.01, 0.021, 0.047, 0.1]
JF = [0.55, 0.63, 0.70, 0.75]


def curve(
    codec: str = "x265",
    depth: int = 3,
    scale: float = 1.0,
    jf_shift: float = 0.0,
    enhancer: str | None = None,
    psnr_shift: float = 0.0,
) -> RDCurve:
    points = [
        RDPoint(
            q=27 + 5 * i,
            bpp=r * scale,
            jf=q + jf_shift,
            j=q + jf_shift - 0.01,
            f=q + jf_shift + 0.01,
            psnr=32.0 + 10 * math.log10(r / RATES[0]) + psnr_shift,
            runtimes=Runtimes(1.0, 0.5, 2.0, 4.0, 80),
            num_sequences=2,
        )
        for i, (r, q) in enumerate(zip(RATES, JF, strict=True))
    ]
    return RDCurve(
        Provenance(codec=codec, model="aost", dataset="mini", depth=depth, enhancer=enhancer), points
    )


def test_summary_table_markdown_and_csv(tmp_path: Path) -> None:
    curves = [curve(), curve("vvenc", scale=0.7)]
    paths = [c.save(tmp_path / f"{i}.json") for i, c in enumerate(curves)]
    rows = summary_rows(load_curves(paths))
    assert len(rows) == 8 and rows[0]["curve"] == "x265 d3" and rows[4]["codec"] == "vvenc"
    assert rows[0]["fps"] == pytest.approx(20.0)
    write_table(rows, tmp_path / "summary.md", tmp_path / "summary.csv")
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.splitlines()[0].startswith("| curve | codec | q | depth |")
    assert "| 55.00 |" in markdown  # J&F in percent points
    parsed = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert float(parsed[0]["J&F"]) == pytest.approx(0.55) and float(parsed[5]["bpp"]) == pytest.approx(
        0.021 * 0.7
    )


def test_bd_rows_against_anchor_and_non_overlap_note() -> None:
    anchor = curve()
    far = curve("far", scale=1000.0, jf_shift=-0.5)
    rows = bd_rows([anchor, curve("vvenc", scale=0.8), far], anchor)
    assert rows[0]["BD-rate %"] == pytest.approx(0.0, abs=1e-9)
    assert rows[1]["BD-rate %"] == pytest.approx(-20.0, abs=1e-9)
    assert rows[1]["BD-J&F"] > 0
    assert rows[2]["BD-rate %"] is None and "do not overlap" in rows[2]["note"]
    assert "| -20.00 |" in rows_to_markdown(rows)


def test_enhancer_deltas_and_gap_recovered() -> None:
    base = curve()
    enhanced = curve(enhancer="unet", jf_shift=0.02, psnr_shift=0.5)
    rows = enhancer_rows(base, enhanced, uncompressed_jf=0.85)
    assert [r["q"] for r in rows] == [27, 32, 37, 42]
    assert rows[0]["ΔPSNR"] == pytest.approx(0.5) and rows[0]["ΔJ&F"] == pytest.approx(0.02)
    assert rows[0]["gap recovered"] == pytest.approx(0.02 / (0.85 - 0.55))
    assert "6.7%" in rows_to_markdown(rows)
    other = RDCurve(base.provenance, [RDPoint(q=99, bpp=0.5)])
    with pytest.raises(ValueError, match="share no operating point"):
        enhancer_rows(base, other)


def test_plot_writes_png_per_codec_and_depth(tmp_path: Path) -> None:
    reference = RDCurve(
        Provenance(codec="none", model="aost", dataset="mini", depth=3), [RDPoint(q=None, bpp=0.0, jf=0.85)]
    )
    curves = [
        curve(),
        curve(depth=1, jf_shift=-0.05),
        curve("vvenc", scale=0.7),
        curve(enhancer="unet", jf_shift=0.02),
        reference,
    ]
    path = plot_rd(curves, tmp_path / "plots" / "rd_jf.png", title="J&F vs bpp")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # something was drawn
    assert sorted(p.name for p in path.parent.iterdir()) == ["rd_jf.png"]
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_rd([RDCurve(reference.provenance, [RDPoint(q=None, bpp=0.1)])], tmp_path / "empty.png")


def test_log_to_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    plot = plot_rd([curve()], tmp_path / "rd.png")
    run = wandb.init(project="vosc-tests", dir=str(tmp_path), mode="offline")
    try:
        log_to_wandb(run, [curve()], images={"rd/jf": plot}, tables={"rd/bd": bd_rows([curve()], curve())})
        files_dir = Path(run.dir)
    finally:
        run.finish()
    media = sorted(p.relative_to(files_dir).as_posix() for p in files_dir.rglob("*") if p.is_file())
    assert any(m.startswith("media/images/rd/jf") and m.endswith(".png") for m in media), media
    assert any(m.startswith("media/table/rd/summary") for m in media), media
    assert any(m.startswith("media/table/rd/bd") for m in media), media
    assert list(Path(run.dir).parent.glob("run-*.wandb"))
    log_to_wandb(None, [curve()])  # disabled logging is a no-op


def test_csv_of_empty_rows_needs_columns() -> None:
    assert rows_to_csv([], ["a", "b"]) == "a,b\n"
    with pytest.raises(ValueError, match="no rows"):
        rows_to_markdown([])
