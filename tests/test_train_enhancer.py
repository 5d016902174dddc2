"""train.py for the enhancer stages (DESIGN §8): every enhancer / baseline experiment composes and builds the
right module; stage 1 runs from the CLI and writes a checkpoint; stage 2 freezes a VOS model loaded from a
vosc checkpoint (EMA weights) and starts from the stage-1 enhancer; bad inputs fail before training."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train  # noqa: E402

EXPERIMENTS = [f"{stage}_{codec}" for stage in ("enhancer_s1", "enhancer_s2", "enhancer_s3", "baseline_ft")
               for codec in ("x265", "vvenc")]
# tiny scale on the synthetic DAVIS-layout set (conftest.synthetic_davis): 3-frame 64x64 clips, 1 step
TINY = ["model=aost_tiny", "model/enhancer@enhancer=cae_tiny", "trainer.accelerator=cpu",
        "trainer.precision=32-true", "trainer.benchmark=false", "logger=csv", "threads=1", "codec.q=42",
        "data.batch_size=1", "data.num_workers=0", "data.sampler.num_frames=3", "data.sampler.max_gap=2",
        "data.sampler.min_ref_pixels=50",
        "data.augment.crop_size=[64,64]", "data.augment.short_edge=64", "data.augment.min_object_pixels=20",
        "data.eval_short_edge=64", "data.eval_max_frames=3", "callbacks.rich_progress_bar=null"]


def _codec(cfg: Any) -> str:
    """Registry name of the composed training codec (``conf/codec/coder/<name>.yaml``)."""
    names = {"vosc.codecs.IdentityCodec": "none", "vosc.codecs.X265Codec": "x265",
             "vosc.codecs.VVenCCodec": "vvenc"}
    return names[cfg.codec.codec._target_]


def _compose(overrides: list[str], root: Path, out: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={root}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        del cfg["hydra"]
    return cfg


@pytest.fixture(scope="module")
def davis(synthetic_davis: Path) -> str:
    return f"paths.davis_root={synthetic_davis}"


@pytest.fixture(scope="module")
def s1_ckpt(davis: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 through the real CLI (a subprocess), one step: the run folder's last.ckpt."""
    out = tmp_path_factory.mktemp("s1")
    cmd = [sys.executable, "train.py", "experiment=enhancer_s1_x265", *TINY, davis, "debug=fdr",
           "callbacks.model_checkpoint.save_last=true", f"paths.root_dir={out}", f"hydra.run.dir={out}/run"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = out / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), sorted(p.name for p in (out / "run").rglob("*"))
    return ckpt


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_enhancer_experiment_builds_its_stage(experiment: str, davis: str, tmp_path: Path) -> None:
    from vosc.lit.enhancer_module import EnhancerModule
    from vosc.lit.vos_module import VOSModule
    from vosc.models.enhancer import CompressionAwareEnhancer

    full = _compose([f"experiment={experiment}", davis, "trainer.accelerator=cpu", "logger=csv"], tmp_path,
                    tmp_path)
    assert _codec(full) == experiment.rsplit("_", 1)[1] and full.data.keep_raw
    assert full.trainer.max_steps > 0 and full.task_name == experiment
    if experiment.startswith(("enhancer_s3", "baseline_ft")):  # same steps and schedule, enhancer or not
        s3 = _compose([f"experiment=enhancer_s3_{_codec(full)}", davis], tmp_path, tmp_path)
        for key in ("max_steps", "val_check_interval"):
            assert full.trainer[key] == s3.trainer[key]
        for key in ("lr", "min_lr", "warmup_ratio", "seq_switch_ratio"):
            assert full.lit[key] == s3.lit[key]
    cfg = _compose([f"experiment={experiment}", davis, *TINY], tmp_path, tmp_path)
    if experiment.startswith("baseline_ft"):
        with open_dict(cfg):
            cfg.enhancer = None  # the tiny overrides select an enhancer: the baseline has none
    train.validate_config(cfg)
    _, module, trainer = train.build(cfg)
    assert any(type(c).__name__ == "EMA" for c in trainer.callbacks)
    if experiment.startswith("enhancer_s"):
        assert module.hparams["enhancer_config"]["_target_"].endswith("CompressionAwareEnhancer")
    if experiment.startswith(("enhancer_s1", "enhancer_s2")):
        assert isinstance(module, EnhancerModule) and isinstance(module.enhancer, CompressionAwareEnhancer)
        assert trainer.checkpoint_callback.monitor == "val/dpsnr"
        if experiment.startswith("enhancer_s1"):
            assert module.vos_model is None and module.feature_loss is None
        else:
            assert module.hparams.task_weight == 0.1 and module.feature_loss is not None
            assert not any(p.requires_grad for p in module.vos_model.parameters())
    else:
        assert isinstance(module, VOSModule) and module.depths == list(range(1, cfg.model.num_layers + 1))
        groups = [g.get("name") for g in module.configure_optimizers()["optimizer"].param_groups]
        if experiment.startswith("enhancer_s3"):
            assert isinstance(module.enhancer, CompressionAwareEnhancer) and "enhancer" in groups
        else:
            assert module.enhancer is None and "enhancer" not in groups


def _assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """The same names and every tensor equal (weights and buffers)."""
    assert sorted(got) == sorted(want)
    different = [name for name, t in want.items() if not torch.equal(got[name], t)]
    assert not different, f"{len(different)} of {len(want)} tensors differ: {different[:5]}"


def test_stage1_cli_writes_a_checkpoint_that_stage2_starts_from(s1_ckpt: Path, davis: str,
                                                                tmp_path: Path) -> None:
    from vosc.lit.enhancer_module import load_enhancer_weights
    from vosc.models.enhancer import CompressionAwareEnhancer

    state = torch.load(s1_ckpt, map_location="cpu", weights_only=True)
    s1_weights = {k[len("enhancer."):]: v for k, v in state["state_dict"].items()
                  if k.startswith("enhancer.")}
    assert s1_weights and state["hyper_parameters"]["enhancer_config"]["size"] == "tiny"
    load_enhancer_weights(CompressionAwareEnhancer(size="tiny"), s1_ckpt)
    # a vosc VOS checkpoint: stage 3 built (not trained) and saved as Lightning would (state_dict + hparams)
    cfg3 = _compose(["experiment=enhancer_s3_x265", davis, *TINY], tmp_path, tmp_path)
    _, joint, _ = train.build(cfg3)
    with torch.no_grad():
        for p in joint.model.parameters():
            p.add_(0.01)  # distinguishable from a fresh initialisation
    vos_ckpt = tmp_path / "vos.ckpt"
    torch.save({"state_dict": joint.state_dict(), "hyper_parameters": dict(joint.hparams)}, vos_ckpt)
    # model=aost is ignored: the VOS config comes from vos_ckpt
    cfg2 = _compose(["experiment=enhancer_s2_x265", davis, *TINY, "model=aost",
                     f"vos_ckpt={vos_ckpt}", f"enhancer_ckpt={s1_ckpt}"], tmp_path, tmp_path)
    train.validate_config(cfg2)
    _, module, _ = train.build(cfg2)
    vos_weights = joint.model.state_dict()
    _assert_same_tensors(module.vos_model.state_dict(), vos_weights)
    _assert_same_tensors(module.enhancer.state_dict(), s1_weights)
    # stage 3 from the VOS checkpoint and the stage-1 enhancer: both loaded, the VOS config taken from
    # vos_ckpt
    cfg3b = _compose(["experiment=enhancer_s3_x265", davis, *TINY, f"vos_ckpt={vos_ckpt}",
                      f"enhancer_ckpt={s1_ckpt}"], tmp_path, tmp_path)
    _, joint_b, _ = train.build(cfg3b)
    _assert_same_tensors(joint_b.model.state_dict(), vos_weights)
    _assert_same_tensors(joint_b.enhancer.state_dict(), s1_weights)
    assert joint_b.hparams["model_config"] == dict(joint.hparams)["model_config"]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["experiment=enhancer_s1_x265", "data.keep_raw=false"], r"set data.keep_raw=true"),
        (["experiment=enhancer_s1_x265", "~enhancer"],
         r"needs an enhancer.*\['cae_base', 'cae_tiny', 'identity'\]"),
        (["experiment=enhancer_s2_x265", "vos_ckpt=/nonexistent/vos.ckpt"],
         r"vos_ckpt=/nonexistent/vos.ckpt does not"),
        (["experiment=baseline_ft_x265", "enhancer_ckpt=/nonexistent/e.ckpt"],
         r"enhancer_ckpt=/nonexistent/e.ckpt"),
    ],
)
def test_bad_enhancer_configs_fail_before_training(overrides: list[str], match: str, davis: str,
                                                   tmp_path: Path) -> None:
    cfg = _compose([*overrides, davis], tmp_path, tmp_path)
    with pytest.raises(train.ConfigError, match=match):
        train.validate_config(cfg)


def test_stage3_joint_run_validates_with_the_enhancer_and_checkpoints_both(s1_ckpt: Path, davis: str,
                                                                           tmp_path: Path) -> None:
    cfg = _compose(["experiment=enhancer_s3_x265", davis, *TINY, "debug=fdr", f"enhancer_ckpt={s1_ckpt}",
                    "callbacks.model_checkpoint.save_last=true"],
                   tmp_path, tmp_path / "run")
    train.run(cfg)  # one joint step + validation (EMA weights) on enhanced frames
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    keys = state["state_dict"].keys()
    assert any(k.startswith("enhancer.") for k in keys) and any(k.startswith("model.") for k in keys)
    assert state["vosc"]["enhancer"]["init"] == str(s1_ckpt)
    assert state["hyper_parameters"]["enhancer_config"]["size"] == "tiny"
    with open(tmp_path / "run" / "csv" / "metrics.csv") as fh:
        assert "val/J&F" in fh.readline()


# the CPU reference recipes on a few small rich synthetic videos: one training step and one validation each
RICH_SMALL = ["data.train.rich.source.videos=6", "data.train.rich.source.frames=6", "data.val.rich.videos=2",
              "data.val.rich.frames=4", "debug=fdr", "logger=csv", "callbacks.rich_progress_bar=null",
              "threads=1"]


@pytest.mark.parametrize("experiment", ["quickstart", "cpu_reference", "cpu_reference_raw", "enhancer_s1_cpu",
                                        "enhancer_s2_cpu", "stcn_cpu"])
def test_cpu_recipes_train_and_validate(experiment: str, tmp_path: Path) -> None:
    cfg = _compose([f"experiment={experiment}", *RICH_SMALL], tmp_path, tmp_path / "run")
    assert cfg.data.train.rich.source.style == "rich" and cfg.data.val.rich.seed == 1000  # held out by seed
    if experiment == "enhancer_s1_cpu":  # pixel loss only: the VOS model is not used
        assert cfg.model.encoder == "mobilenetv2_050"
    elif experiment == "enhancer_s2_cpu":  # the task loss runs through cpu_reference's model at its 3x
        assert (cfg.model.encoder, cfg.model.decoder_readout, cfg.lit.vos_scale) == \
            ("efficientnet_lite0", True, 3.0)
    elif experiment == "stcn_cpu":  # STCN on the wheel's Lite0 (key encoder frozen), the same data as AOST's
        assert (cfg.model.key_encoder, cfg.model.value_encoder, cfg.model.pretrained) == (
            "efficientnet_lite0", "efficientnet_lite0", True)
        assert cfg.model.key_freeze_at == 5 and cfg.data.train.davis.source.split == "train"
        assert cfg.data.eval_short_edge == 288 and cfg.lit.memory_feedback == "soft"
    else:  # the VOS recipes: the frozen ImageNet Lite0 from the wheel, real DAVIS training video beside
        assert (cfg.model.encoder, cfg.model.pretrained, cfg.model.freeze_at) == \
            ("efficientnet_lite0", True, 5)
        assert cfg.model.lstt_init == "propagation" and cfg.data.train.davis.source.split == "train"
    assert _codec(cfg) == ("none" if experiment == "cpu_reference_raw" else "x265")
    metric = train.run(cfg)
    assert metric is not None and math.isfinite(metric), f"{cfg.optimized_metric} = {metric}"
