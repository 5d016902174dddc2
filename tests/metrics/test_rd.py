"""RD curves: JSON round trip, schema errors, and Bjøntegaard deltas with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vosc.metrics.rd import (
    InsufficientPointsError,
    NonMonotonicWarning,
    NoOverlapError,
    Provenance,
    RDCurve,
    RDPoint,
    RDSchemaError,
    Runtimes,
    bd_jf,
    bd_quality,
    bd_rate,
)

RATES = np.array([0.01, 0.021, 0.047, 0.1, 0.207])
JF = np.array([0.55, 0.63, 0.70, 0.75, 0.78])


def make_curve(
    rates=RATES, jf=JF, codec: str = "x265", depth: int | None = 3, psnr_offset: float = 0.0
) -> RDCurve:
    points = [
        RDPoint(
            q=22 + 5 * i,
            bpp=float(r),
            jf=float(q),
            j=float(q) - 0.02,
            f=float(q) + 0.02,
            psnr=30.0 + 10 * math.log10(r / rates[0]) + psnr_offset,
            runtimes=Runtimes(encode=1.5, decode=0.5, vos=4.0, total=6.5, frames=130),
            num_sequences=2,
            extra={"J-Recall": 0.8},
        )
        for i, (r, q) in enumerate(zip(rates, jf, strict=True))
    ]
    provenance = Provenance(
        codec=codec,
        model="aost",
        dataset="davis2016-val-mini",
        depth=depth,
        encoder_version="x265 3.5",
        ffmpeg_version="7.1",
        checkpoint="ckpt.pth",
        checkpoint_hash="ab12",
        extra={"preset": "veryfast"},
    )
    return RDCurve(provenance, points)


def test_round_trip_is_lossless_and_atomic(tmp_path: Path) -> None:
    curve = make_curve()
    path = curve.save(tmp_path / "sub" / "rd.json")
    assert [p.name for p in path.parent.iterdir()] == ["rd.json"]  # no temp file left behind
    loaded = RDCurve.load(path)
    assert loaded == curve
    data = json.loads(path.read_text())
    assert data["schema"] == "vosc.rd/1"
    point = data["points"][0]
    assert {"q", "bpp", "J&F", "J", "F", "PSNR", "runtimes"} <= set(point)
    assert point["runtimes"]["fps"] == pytest.approx(130 / 6.5)
    assert point["runtimes"]["vos_fps"] == pytest.approx(130 / 4.0)
    assert set(data["provenance"]) >= {
        "codec",
        "encoder_version",
        "ffmpeg_version",
        "model",
        "checkpoint_hash",
        "depth",
        "dataset",
    }
    assert loaded.label == "x265 d3"


def test_schema_errors_name_file_and_key(tmp_path: Path) -> None:
    data = make_curve().to_dict()
    del data["points"][1]["bpp"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(RDSchemaError, match=r"bad\.json: points\[1\]: missing key 'bpp'"):
        RDCurve.load(bad)
    data = make_curve().to_dict()
    data["points"][0]["J&F"] = "high"
    with pytest.raises(RDSchemaError, match="'J&F' must be"):
        RDCurve.from_dict(data)
    with pytest.raises(RDSchemaError, match="expected schema"):
        RDCurve.from_dict({"points": []})
    bad.write_text("{not json")
    with pytest.raises(RDSchemaError, match="invalid JSON"):
        RDCurve.load(bad)


def test_bd_rate_of_scaled_rate_is_exact() -> None:
    anchor = make_curve()
    test = make_curve(rates=RATES * 0.8)
    assert bd_rate(anchor, test) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(test, anchor) == pytest.approx(25.0, abs=1e-9)
    assert bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-12)
    assert bd_rate(list(zip(RATES, JF)), list(zip(RATES * 1.1, JF))) == pytest.approx(10.0, abs=1e-9)


def test_bd_quality_of_shifted_curve_is_exact() -> None:
    anchor = make_curve()
    shifted = make_curve(jf=JF + 0.03, psnr_offset=1.5)
    assert bd_jf(anchor, shifted) == pytest.approx(0.03, abs=1e-12)
    assert bd_quality(anchor, shifted, "psnr") == pytest.approx(1.5, abs=1e-9)
    # PSNR linear in log-rate with slope 10 dB/decade: a 1.5 dB offset is 10^(-0.15) - 1 in rate.
    assert bd_rate(anchor, shifted, "psnr") == pytest.approx((10**-0.15 - 1) * 100, abs=1e-9)


def test_non_monotone_points_are_dropped_with_warning() -> None:
    jf = JF.copy()
    jf[2] = 0.60  # below the previous point: dominated
    with pytest.warns(NonMonotonicWarning, match="dropped point"):
        value = bd_rate(list(zip(RATES, jf)), list(zip(RATES * 0.8, jf)))
    assert value == pytest.approx(-20.0, abs=1e-9)


def test_bd_errors() -> None:
    low = list(zip(RATES, JF - 0.5))
    with pytest.raises(NoOverlapError, match="do not overlap"):
        bd_rate(list(zip(RATES, JF)), low)
    with pytest.raises(NoOverlapError, match="log10 bpp range"):
        bd_quality(list(zip(RATES, JF)), list(zip(RATES * 100, JF)))
    with pytest.raises(InsufficientPointsError, match="at least 2"):
        bd_rate([(0.1, 0.5)], list(zip(RATES, JF)))
    with pytest.raises(ValueError, match="positive"):
        bd_rate([(0.0, 0.5), (0.1, 0.6)], list(zip(RATES, JF)))
    with pytest.raises(KeyError, match="unknown quality"):
        bd_quality(make_curve(), make_curve(), "ssim")
