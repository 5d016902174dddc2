"""J&F: golden values of the official toolkit, exactness of the building blocks, and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.morphology import disk as sk_disk

from vosc.data.errors import NotPaletteMaskError
from vosc.metrics import jf
from vosc.metrics.errors import (
    MissingGroundTruthError,
    MissingPredictionError,
    SizeMismatchError,
    UnknownObjectError,
)

VARIANTS = [(v, p) for v in ("one", "two") for p in ("copy_first", "erode5")]


def _assert_matches_official(ours: dict, official: dict) -> None:
    assert list(ours) == ["global", "per_object"]
    assert set(ours["global"]) == set(official["global"])
    for key, value in official["global"].items():
        assert ours["global"][key] == pytest.approx(value, abs=1e-6), key
    assert set(ours["per_object"]) == set(official["per_object"])
    for key, values in official["per_object"].items():
        for name in ("J", "F"):
            assert ours["per_object"][key][name] == pytest.approx(values[name], abs=1e-6), (key, name)


@pytest.mark.parametrize(("variant", "preds"), VARIANTS)
def test_cli_reproduces_official_golden(jf_golden: Path, tmp_path: Path, variant: str, preds: str) -> None:
    out = tmp_path / "jf.json"
    argv = [
        "--gt",
        str(jf_golden / variant / "gt"),
        "--pred",
        str(jf_golden / variant / "preds" / preds),
        "--json",
        str(out),
        "--workers",
        "0",
    ]
    assert jf.main(argv) == 0
    official = json.loads((jf_golden / "official.json").read_text())[f"{variant}/{preds}"]
    _assert_matches_official(json.loads(out.read_text()), official)


def test_cli_module_entry_point_with_workers(jf_golden: Path, tmp_path: Path) -> None:
    out = tmp_path / "jf.json"
    cmd = [
        sys.executable,
        "-m",
        "vosc.metrics.jf",
        "--gt",
        str(jf_golden / "two" / "gt"),
        "--pred",
        str(jf_golden / "two" / "preds" / "erode5"),
        "--set",
        "val",
        "--year",
        "2017",
        "--workers",
        "2",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "J&F-Mean" in proc.stderr + proc.stdout
    official = json.loads((jf_golden / "official.json").read_text())["two/erode5"]
    _assert_matches_official(json.loads(out.read_text()), official)


def _naive_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Literal per-pixel reading of the seg2bmap definition (neighbours outside the image are 0)."""
    h, w = seg.shape
    pad = np.zeros((h + 1, w + 1), dtype=bool)
    pad[:h, :w] = seg
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            c = pad[y, x]
            if y == h - 1 and x == w - 1:
                out[y, x] = False
            elif y == h - 1:
                out[y, x] = c ^ pad[y, x + 1]
            elif x == w - 1:
                out[y, x] = c ^ pad[y + 1, x]
            else:
                out[y, x] = (c ^ pad[y, x + 1]) | (c ^ pad[y + 1, x]) | (c ^ pad[y + 1, x + 1])
    return out


def test_seg2bmap_matches_definition_including_borders() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        seg = rng.random((9, 13)) > 0.5
        np.testing.assert_array_equal(jf.seg2bmap(seg), _naive_seg2bmap(seg))
    batch = rng.random((3, 7, 8)) > 0.4
    np.testing.assert_array_equal(jf.seg2bmap(batch)[1], _naive_seg2bmap(batch[1]))


@pytest.mark.parametrize("radius", [1, 4, 8, 11])
def test_disk_equals_skimage(radius: int) -> None:
    np.testing.assert_array_equal(jf.disk(radius), sk_disk(radius).astype(np.uint8))


def test_tolerance_is_eight_pixels_at_480p() -> None:
    assert jf.boundary_tolerance(480, 854) == 8
    assert jf.boundary_tolerance(480, 854, bound_th=3) == 3


def test_windowed_f_equals_full_frame_f() -> None:
    """The per-frame foreground window must not change F (masks touching borders included)."""
    rng = np.random.default_rng(1)
    gt = np.zeros((4, 60, 90), dtype=np.uint8)
    gt[:, 10:40, 20:70] = 1
    gt[:, 40:60, 70:90] = 2  # touches bottom-right corner
    pred = gt.copy()
    pred[rng.random(pred.shape) > 0.97] = 1
    pred[:, 0:3, :] = 2  # touches the top border
    seq = jf.evaluate_sequence(gt, pred, "s", exclude_first_last=False)
    for obj in (1, 2):
        full = jf.boundary_f(gt == obj, pred == obj)
        np.testing.assert_allclose(seq.f[obj - 1], full, rtol=0, atol=1e-15)
        np.testing.assert_allclose(seq.j[obj - 1], jf.jaccard(gt == obj, pred == obj), rtol=0, atol=1e-15)


def test_j_and_f_edge_cases() -> None:
    empty = np.zeros((1, 20, 20), dtype=bool)
    full = np.zeros((1, 20, 20), dtype=bool)
    full[0, 5:15, 5:15] = True
    assert jf.jaccard(empty, empty)[0] == 1.0
    assert jf.boundary_f(empty, empty)[0] == 1.0
    assert jf.boundary_f(full, empty)[0] == 0.0
    assert jf.jaccard(full, full)[0] == 1.0 and jf.boundary_f(full, full)[0] == 1.0


def test_frame_statistics_known_values() -> None:
    values = np.array([1.0, 0.9, 0.8, 0.4, 0.3, 0.2, 0.1, 0.0])
    mean, recall, decay = jf.frame_statistics(values)
    assert mean == pytest.approx(values.mean())
    assert recall == pytest.approx(3 / 8)
    # 8 frames: round(linspace(1, 8, 5)) - 1 = [0, 2, 3, 5, 7] (4.5 rounds to even) -> bins [0:3] and [5:8]
    assert decay == pytest.approx(values[0:3].mean() - values[5:8].mean())


def test_workers_equal_in_process(tiny_davis: tuple[Path, Path]) -> None:
    gt, pred = tiny_davis
    serial, _ = jf.evaluate_davis(gt, pred, workers=0)
    parallel, _ = jf.evaluate_davis(gt, pred, workers=2)
    assert serial.global_ == parallel.global_
    assert set(serial.per_object) == {"alpha_1", "alpha_2", "beta_1"}
    assert 0 < serial.global_["J&F-Mean"] < 1
    assert serial.per_sequence["alpha"]["J"] == pytest.approx(
        (serial.per_object["alpha_1"]["J"] + serial.per_object["alpha_2"]["J"]) / 2
    )


def test_missing_prediction_frame_raises(tiny_davis: tuple[Path, Path]) -> None:
    gt, pred = tiny_davis
    (pred / "alpha" / "00002.png").unlink()
    with pytest.raises(MissingPredictionError, match=r"alpha/00002\.png"):
        jf.evaluate_davis(gt, pred)


def test_unknown_object_id_raises(tiny_davis: tuple[Path, Path], davis_factory) -> None:
    gt, pred = tiny_davis
    bad = davis_factory.moving_squares(frames=5, objects=2)  # beta has one object only
    davis_factory.write_preds(pred, {"beta": bad})
    with pytest.raises(UnknownObjectError, match=r"beta/00001\.png.*object id 2"):
        jf.evaluate_davis(gt, pred)


def test_size_mismatch_raises(tiny_davis: tuple[Path, Path], davis_factory) -> None:
    gt, pred = tiny_davis
    davis_factory.write_preds(pred, {"beta": np.zeros((5, 40, 61), dtype=np.uint8)})
    with pytest.raises(SizeMismatchError, match=r"beta/00001\.png"):
        jf.evaluate_davis(gt, pred)


def test_rgb_prediction_and_missing_index_raise(tiny_davis: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    gt, pred = tiny_davis
    with pytest.raises(MissingGroundTruthError, match=r"ImageSets/2017/test\.txt"):
        jf.evaluate_davis(gt, pred, subset="test")
    Image.new("RGB", (60, 40)).save(pred / "alpha" / "00003.png")
    with pytest.raises(NotPaletteMaskError, match=r"alpha/00003\.png"):
        jf.evaluate_davis(gt, pred)
