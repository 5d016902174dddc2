"""Issue 13 item 6 (part): ``data_root=`` is honoured by every folder-based evaluation dataset (it used to
be applied to the synthetic default only and silently ignored otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from vosc.evaluation.builders import build_source

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dataset", ["davis2017", "ytvos"])
def test_data_root_replaces_the_dataset_root(dataset: str, synthetic_davis: Path, synthetic_ytvos: Path,
                                            tmp_path: Path) -> None:
    root = synthetic_davis if dataset == "davis2017" else synthetic_ytvos
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"dataset={dataset}", f"data_root={root}",
                                             f"paths.root_dir={tmp_path}"])
    source, ds = build_source(cfg.dataset, cfg.data_root, str(cfg.split))
    assert Path(str(ds.source.root)) == root and len(source) >= 1
