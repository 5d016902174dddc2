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
    assert bd_rate(list(zip(RATES, JF, strict=False)), list(zip(RATES * 1.1, JF, strict=False))) == \
        pytest.approx(10.0, abs=1e-9)


def test_bd_quality_of_shifted_curve_is_exact() -> None:
    anchor = make_curve()
    shifted = make_curve(jf=JF + 0.03, psnr_offset=1.5)
    assert bd_jf(anchor, shifted) == pytest.approx(0.03, abs=1e-12)
    assert bd_quality(anchor, shifted, "psnr") == pytest.approx(1.5, abs=1e-9)
    # PSNR linear in log-rate with slope 10 dB/decade: a 1.5 dB offset is 10^(-0.15) - 1 in rate.
    assert bd_rate(anchor, shifted, "psnr") == pytest.approx((10**-0.15 - 1) * 100, abs=1e-9)


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson PCHIP derivatives with the shape-preserving three-point end rule (Moler, "Numerical
    Computing with MATLAB" 3.4; the interpolation of the JVET / VCEG-AL22 Bjøntegaard "pchip" variant)."""
    h, delta = np.diff(x), np.diff(y) / np.diff(x)
    if len(x) == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0: float, h1: float, d0: float, d1: float) -> float:
        v = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(v) != np.sign(d0):
            return 0.0
        if np.sign(d0) != np.sign(d1) and abs(v) > abs(3 * d0):
            return 3 * d0
        return v

    d[0], d[-1] = end(h[0], h[1], delta[0], delta[1]), end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Exact integral over ``[low, high]`` of the PCHIP interpolant, one Hermite cubic per interval."""
    d, total = _pchip_slopes(x, y), 0.0
    for k in range(len(x) - 1):
        a, b = max(low, x[k]), min(high, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        slope = (y[k + 1] - y[k]) / h
        c = (y[k], d[k], (3 * slope - 2 * d[k] - d[k + 1]) / h, (d[k] + d[k + 1] - 2 * slope) / h**2)

        def antiderivative(t: float, c: tuple = c) -> float:
            return c[0] * t + c[1] * t**2 / 2 + c[2] * t**3 / 3 + c[3] * t**4 / 4

        total += antiderivative(b - x[k]) - antiderivative(a - x[k])
    return total


def _reference_bd(anchor: list, test: list) -> tuple[float, float]:
    """(BD-rate %, BD-quality) from the published definitions, written out independently of vosc."""
    (ar, aq), (br, bq) = (np.array(sorted(c), dtype=np.float64).T for c in (anchor, test))
    ar, br = np.log10(ar), np.log10(br)
    low, high = max(aq.min(), bq.min()), min(aq.max(), bq.max())
    mean_log_rate = (_pchip_integral(bq, br, low, high) - _pchip_integral(aq, ar, low, high)) / (high - low)
    low, high = max(ar.min(), br.min()), min(ar.max(), br.max())
    mean_quality = (_pchip_integral(br, bq, low, high) - _pchip_integral(ar, aq, low, high)) / (high - low)
    return (10**mean_log_rate - 1) * 100, mean_quality


#: curves of different shapes and lengths (not scaled or shifted copies of each other): there the
#: interpolation matters (a cubic fit, a spline or linear interpolation give other values)
SHAPED = {
    "steeper, 5 points": list(zip([0.008, 0.02, 0.05, 0.09, 0.3], [0.52, 0.66, 0.71, 0.77, 0.79],
                                  strict=True)),
    "saturating, 4 points": list(zip([0.012, 0.03, 0.06, 0.25], [0.6, 0.72, 0.745, 0.75], strict=True)),
    "kinked, 6 points": list(zip([0.009, 0.015, 0.04, 0.07, 0.12, 0.18],
                                 [0.50, 0.61, 0.64, 0.73, 0.755, 0.80], strict=True)),
}


@pytest.mark.parametrize("name", list(SHAPED))
def test_bd_of_curves_of_different_shape_match_an_independent_pchip_computation(name: str) -> None:
    anchor, test = list(zip(RATES, JF, strict=True)), SHAPED[name]
    want_rate, want_quality = _reference_bd(anchor, test)
    assert bd_rate(anchor, test) == pytest.approx(want_rate, rel=1e-9, abs=1e-9)
    assert bd_jf(anchor, test) == pytest.approx(want_quality, rel=1e-9, abs=1e-12)
    back_rate, back_quality = _reference_bd(test, anchor)
    assert bd_rate(test, anchor) == pytest.approx(back_rate, rel=1e-9, abs=1e-9)
    assert bd_jf(test, anchor) == pytest.approx(back_quality, rel=1e-9, abs=1e-12)
    # the reference is sensitive to the interpolation: the original cubic fit (VCEG-M33) differs
    (ar, aq), (br, bq) = (np.array(c).T for c in (anchor, test))
    low, high = max(aq.min(), bq.min()), min(aq.max(), bq.max())
    fit = [np.polyint(np.polyfit(q, np.log10(r), 3)) for r, q in ((ar, aq), (br, bq))]
    cubic = (10 ** ((np.diff(np.polyval(fit[1], [low, high])) - np.diff(np.polyval(fit[0], [low, high])))[0]
                    / (high - low)) - 1) * 100
    assert abs(cubic - want_rate) > 1e-3, (cubic, want_rate)


def test_non_monotone_points_are_dropped_with_warning() -> None:
    jf = JF.copy()
    jf[2] = 0.60  # below the previous point: dominated
    with pytest.warns(NonMonotonicWarning, match="dropped point"):
        value = bd_rate(list(zip(RATES, jf, strict=False)), list(zip(RATES * 0.8, jf, strict=False)))
    assert value == pytest.approx(-20.0, abs=1e-9)


def test_bd_errors() -> None:
    low = list(zip(RATES, JF - 0.5, strict=False))
    with pytest.raises(NoOverlapError, match="do not overlap"):
        bd_rate(list(zip(RATES, JF, strict=False)), low)
    with pytest.raises(NoOverlapError, match="log10 bpp range"):
        bd_quality(list(zip(RATES, JF, strict=False)), list(zip(RATES * 100, JF, strict=False)))
    with pytest.raises(InsufficientPointsError, match="at least 2"):
        bd_rate([(0.1, 0.5)], list(zip(RATES, JF, strict=False)))
    with pytest.raises(ValueError, match="positive"):
        bd_rate([(0.0, 0.5), (0.1, 0.6)], list(zip(RATES, JF, strict=False)))
    with pytest.raises(KeyError, match="unknown quality"):
        bd_quality(make_curve(), make_curve(), "ssim")
