"""Issue 13 items 5 and 6 (parts): one documented key, ``vos_ckpt``, initialises the network in every
experiment (the main experiments used to reject it and named a non-existent ``lit.init_checkpoint``), and
``data=davis_mini`` honours ``VOSC_SHARED`` like evaluation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
TINY = {"_target_": "vosc.models.vos_model.VOSModel", "d_model": 32, "ffn_dim": 64, "num_heads": 2,
        "num_layers": 1, "droppath": 0.0}


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_vos_ckpt_is_accepted_by_every_experiment(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", "vos_ckpt=/ckpts/stage1/last.ckpt"])
    assert cfg.vos_ckpt == "/ckpts/stage1/last.ckpt"
    text = (REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text()
    assert "init_checkpoint" not in text


@pytest.mark.parametrize("experiment", ["tiny", "main"])
def test_vos_ckpt_initialises_the_network(experiment: str, tmp_path: Path,
                                          synthetic_roots: list[str]) -> None:
    """``main`` asks for ImageNet encoders (``model.pretrained: true``); with ``vos_ckpt`` they are not
    needed (this test runs offline, without them) and the network is the checkpoint's."""
    from train import build
    from vosc.checkpoints.loading import load_vos_model
    from vosc.lit.callbacks import AtomicCheckpointIO

    torch.manual_seed(1)
    net = load_vos_model(None, TINY).model
    path = tmp_path / "stage1.ckpt"
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    hparams = {"model_config": {**TINY, "pretrained": experiment == "main"}}
    AtomicCheckpointIO().save_checkpoint({"state_dict": state, "hyper_parameters": hparams}, path)
    cfg = _compose([f"experiment={experiment}", *synthetic_roots, f"paths.root_dir={tmp_path}",
                    f"vos_ckpt={path}", "logger=none", "trainer.accelerator=cpu", "trainer.precision=32-true",
                    "callbacks=none", "paths.output_dir=" + str(tmp_path / "out")])
    assert cfg.model.pretrained is (experiment == "main")
    _, module, _ = build(cfg)
    for name, value in net.state_dict().items():
        assert torch.equal(module.model.state_dict()[name], value), name


def test_davis_mini_training_data_honours_vosc_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOSC_SHARED", "/elsewhere/shared")
    cfg = _compose(["data=davis_mini"])
    roots = {str(cfg.data.train.davis_mini.source.root), str(cfg.data.val.davis_mini.root)}
    assert roots == {"/elsewhere/shared/data/davis2016-val-mini"}
