"""Issue 13 item 5: ImageNet encoders in the full-scale experiments. ``model.pretrained=true`` loads timm's
weights from the Hugging Face cache (tested with a cache written here: no download); without them the
error names the weights, the cache and how to supply them offline; a checkpoint never needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from vosc.checkpoints.loading import load_vos_model
from vosc.lit.callbacks import AtomicCheckpointIO
from vosc.models.encoder.pretrained import PretrainedWeightsError, hub_id
from vosc.models.encoder.timm_backbone import TimmBackbone

REPO = Path(__file__).resolve().parents[2]
# the smallest encoder with ImageNet weights in timm (a 2 MB state dict)
SMALL = {"_target_": "vosc.models.vos_model.VOSModel", "encoder": "mobilenetv2_050", "d_model": 32,
         "ffn_dim": 64, "num_heads": 2, "num_layers": 1, "droppath": 0.0}


def _write_cache(hub: Path, timm_name: str) -> dict[str, torch.Tensor]:
    """A Hugging Face hub cache holding ``timm_name``'s weights (random + 0.5, so that they differ from an
    initialisation), laid out as ``huggingface_hub`` writes it."""
    state = {k: (v.float() + 0.5).contiguous() for k, v in timm.create_model(timm_name).state_dict().items()}
    repo = hub / ("models--" + hub_id(timm_name).replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    (repo / "snapshots" / "0123abc").mkdir(parents=True)
    save_file(state, str(repo / "snapshots" / "0123abc" / "model.safetensors"))
    return state


def _offline_env(hf_home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_weights_come_from_the_hugging_face_cache_offline(tmp_path: Path) -> None:
    state = _write_cache(tmp_path / "hf" / "hub", "mobilenetv2_050")
    torch.save(state["conv_stem.weight"], tmp_path / "expected.pt")
    code = ("import torch; from vosc.models.encoder.timm_backbone import TimmBackbone; "
            "b = TimmBackbone('mobilenetv2_050', pretrained=True); "
            f"assert torch.equal(b.net.conv_stem.weight, torch.load({str(tmp_path / 'expected.pt')!r}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_offline_env(tmp_path / "hf"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_missing_weights_raise_a_clear_error_offline(tmp_path: Path) -> None:
    code = "from vosc.models.encoder.timm_backbone import TimmBackbone; TimmBackbone('mobilenetv2_050', True)"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_offline_env(tmp_path / "empty"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("vosc.models.encoder.pretrained.PretrainedWeightsError")
    for part in ("'timm/mobilenetv2_050.lamb_in1k'", "HF_HUB_OFFLINE is set", str(tmp_path / "empty" / "hub"),
                 "python -m vosc.models.encoder.pretrained mobilenetv2_050",
                 "model.pretrained=<weights file>", "model.pretrained=false"):
        assert part in last, part


def test_download_command_fails_with_the_same_error_offline(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "vosc.models.encoder.pretrained", "mobilenetv2_050"],
                         cwd=REPO, env=_offline_env(tmp_path / "empty"), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0 and "PretrainedWeightsError" in run.stderr
    run = subprocess.run([sys.executable, "-m", "vosc.models.encoder.pretrained", "vgg16"], cwd=REPO,
                         env=_offline_env(tmp_path / "empty"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "unknown encoder(s) ['vgg16']" in run.stderr


def test_stcn_value_encoder_asks_for_weights_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vosc.models.stcn.modules import ValueEncoder

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsError, match=r"'timm/resnet18\.a1_in1k'"):
        ValueEncoder("resnet18", key_dim=64, value_dim=32, pretrained=True)


def test_a_checkpoint_never_needs_the_imagenet_weights(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """A network config with ``pretrained: true`` (as stored by a full-scale run) loads from its checkpoint
    offline, with the checkpoint's weights: vosc checkpoints, and through ``VOSModule`` as Lightning does."""
    from vosc.lit.vos_module import VOSModule

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsError):
        load_vos_model(None, {**SMALL, "pretrained": True})  # a fresh network does ask for them
    torch.manual_seed(0)
    net = load_vos_model(None, SMALL).model
    path = tmp_path / "run.ckpt"
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    AtomicCheckpointIO().save_checkpoint(
        {"state_dict": state, "hyper_parameters": {"model_config": {**SMALL, "pretrained": True}}}, path)
    loaded = load_vos_model(path, {**SMALL, "pretrained": True})
    assert loaded.kind == "vosc" and loaded.model_config["pretrained"] is True  # provenance kept
    for name, value in net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    module = VOSModule(model_config={**SMALL, "pretrained": True})
    assert isinstance(module.model, type(net))


def test_timm_backbone_without_weights_needs_no_cache(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert TimmBackbone("mobilenetv2_050", pretrained=False).dims == (16, 16, 48, 1280)
