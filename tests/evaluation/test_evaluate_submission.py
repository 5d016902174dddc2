"""``evaluate.py`` on a YouTube-VOS-layout set (the synthetic generator's ``ytvos`` layout: first-appearance
masks, a late-starting object): no J&F, every frame predicted, submission zip written and validated."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def evaluate_module():
    spec = importlib.util.spec_from_file_location("vosc_evaluate_script_sub", REPO / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_youtube_vos_submission(evaluate_module, tmp_path: Path) -> None:
    from vosc.data.synthetic import generate_synthetic

    root = generate_synthetic(tmp_path / "ytvos", videos=4, frames=4, size=(64, 48), objects=2,
                              layout="ytvos")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            "model=aost_tiny", "dataset=ytvos", f"paths.ytvos_root={root}", "ladder.points=[none]",
            f"out_dir={tmp_path / 'eval'}", f"cache_dir={tmp_path / 'cache'}", "paths.output_dir=.",
            "torch_threads=1", "depths=[2,3]"])
    index = evaluate_module.evaluate(cfg)
    assert index["computed"] == 2 and set(index["curves"]) == {"none d2", "none d3"}
    valid = root / "valid" / "JPEGImages"
    expected = {f"Annotations/{v.name}/{f.stem}.png" for v in valid.iterdir() for f in v.glob("*.jpg")}
    assert len(index["submissions"]) == 2
    for folder, zip_path in index["submissions"].items():
        assert Path(zip_path) == Path(folder) / "submission.zip"
        with zipfile.ZipFile(zip_path) as archive:
            assert set(archive.namelist()) == expected
    curve = json.loads((tmp_path / "eval" / "ytvos-valid" / "none" / "rd_d3.json").read_text())
    assert curve["points"][0]["J&F"] is None  # no full ground truth in valid/
