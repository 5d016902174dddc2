"""Issue 13 item 6 (part): ``data=synthetic_ytvos`` trains and validates (its validation set used to be
YouTube-VOS ``valid/``, which has no ground truth beyond first appearances, and crashed the first
validation)."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train  # noqa: E402

SMALL = ["model=aost_tiny", "model.num_layers=1", "threads=1", "logger=none", "callbacks=none",
         "data.num_workers=0", "data.batch_size=1", "data.sampler.num_frames=3",
         "data.augment.crop_size=[64,64]", "data.augment.short_edge=64", "data.augment.min_object_pixels=10",
         "data.sampler.min_ref_pixels=20",
         "data.eval_max_frames=4", "data.train.synthetic_ytvos.source.width=96", "data.train.synthetic_ytvos.source.height=64",
         "data.val.synthetic_ytvos.width=96", "data.val.synthetic_ytvos.height=64", "data.val.synthetic_ytvos.videos=2", "codec=none"]


def test_synthetic_ytvos_debug_fdr_trains_and_validates(tmp_path: Path) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True,
                      overrides=[f"paths.root_dir={tmp_path}", "data=synthetic_ytvos", "debug=fdr", *SMALL])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "out")
        del cfg["hydra"]
    jf = train.run(cfg)
    assert jf is not None and 0.0 <= jf <= 1.0
