"""Official STCN checkpoints: key conversion, strict-load errors, stage-0 input padding, the parity
fixture and the verify CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from vosc.checkpoints.loading import CheckpointError, load_vos_model
from vosc.checkpoints.official import CheckpointMismatchError
from vosc.checkpoints.stcn import convert_stcn_key, is_stcn_state_dict, load_stcn_official
from vosc.checkpoints.stcn_parity import verify_stcn_fixture
from vosc.models.stcn import STCN

SMALL = {"key_encoder": "resnet18", "key_dim": 16, "value_dim": 32, "key_comp_dim": 32,
         "decoder_dims": (32, 16, 16)}
INVERSE = {"key_encoder.net.layer1.": "key_encoder.res2.", "key_encoder.net.": "key_encoder.",
           "value_encoder.net.": "value_encoder.", "key_proj.": "key_proj.key_proj.",
           "attention.channel_mlp.0.": "attention.ChannelGate.mlp.1.",
           "attention.channel_mlp.2.": "attention.ChannelGate.mlp.3.",
           "attention.spatial.": "attention.SpatialGate.spatial.conv."}


def official_state(model: STCN) -> OrderedDict[str, torch.Tensor]:
    """The model's weights under the official names (float16, as the released file)."""
    out = OrderedDict()
    for k, v in model.state_dict().items():
        for new, old in INVERSE.items():
            if new in k:
                k = k.replace(new, old, 1)
                break
        out[k] = v.half() if v.is_floating_point() else v
    return out


@pytest.fixture(scope="module")
def stcn_fixture(stcn_parity: Path) -> Path:
    return stcn_parity


def test_key_conversion() -> None:
    assert convert_stcn_key("key_encoder.res2.0.conv1.weight") == "key_encoder.net.layer1.0.conv1.weight"
    assert convert_stcn_key("key_encoder.layer3.5.bn3.running_var") == \
        "key_encoder.net.layer3.5.bn3.running_var"
    assert convert_stcn_key("value_encoder.layer2.0.downsample.0.bias") == \
        "value_encoder.net.layer2.0.downsample.0.bias"
    assert convert_stcn_key("value_encoder.fuser.block1.downsample.weight") == \
        "value_encoder.fuser.block1.downsample.weight"
    assert convert_stcn_key("value_encoder.fuser.attention.ChannelGate.mlp.3.bias") == \
        "value_encoder.fuser.attention.channel_mlp.2.bias"
    assert convert_stcn_key("value_encoder.fuser.attention.SpatialGate.spatial.conv.weight") == \
        "value_encoder.fuser.attention.spatial.weight"
    assert convert_stcn_key("key_proj.key_proj.bias") == "key_proj.bias"
    assert convert_stcn_key("decoder.up_16_8.skip_conv.weight") == "decoder.up_16_8.skip_conv.weight"


def test_round_trip_float16_raw_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = STCN(**SMALL)
    path = tmp_path / "stcn.pth"
    state = official_state(src)
    assert is_stcn_state_dict(state)
    torch.save(state, path)
    dst = STCN(**SMALL)
    report = load_stcn_official(dst, path)
    assert report.ok
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=False):
        assert b.dtype == a.dtype, k
        torch.testing.assert_close(b, a.half().to(a.dtype) if a.is_floating_point() else a)


def test_strict_errors_name_every_bad_key_and_the_file(tmp_path: Path) -> None:
    state = official_state(STCN(**SMALL))
    dropped = [k for k in state if k.startswith("decoder.up_8_4.")]
    assert len(dropped) > 5
    for k in dropped:
        del state[k]
    state["decoder.extra.weight"] = torch.zeros(2)
    state["key_proj.key_proj.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_stcn_official(STCN(**SMALL), path)
    msg = str(err.value)
    assert str(path) in msg
    for k in dropped:
        assert f"missing: {k}" in msg
    assert "unexpected: decoder.extra.weight" in msg
    assert "key_proj.bias: checkpoint (7,) vs model (16,)" in msg
    # the full network against a small checkpoint: every mis-shaped key is listed, none elided
    with pytest.raises(CheckpointMismatchError) as err:
        load_stcn_official(STCN(), official_state(STCN(**SMALL)))
    assert "more" not in str(err.value) and str(err.value).count("shape mismatch:") > 40
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_stcn_official(STCN(**SMALL), tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="not an STCN state dict"):
        load_stcn_official(STCN(**SMALL), {"optimizer": {"lr": 1.0}})


def test_stage0_four_channel_value_encoder_is_padded() -> None:
    torch.manual_seed(0)
    src = STCN(**SMALL)
    state = official_state(src)
    state["value_encoder.conv1.weight"] = state["value_encoder.conv1.weight"][:, :4].clone()
    dst = STCN(**SMALL)
    load_stcn_official(dst, state)
    w = dst.value_encoder.net.conv1.weight
    assert torch.all(w[:, 4] == 0)
    torch.testing.assert_close(w[:, :4], src.value_encoder.net.conv1.weight[:, :4].half().float())


def test_load_vos_model_dispatches_to_stcn(tmp_path: Path) -> None:
    path = tmp_path / "stcn.pth"
    torch.save(official_state(STCN(**SMALL)), path)
    loaded = load_vos_model(path, {"_target_": "vosc.models.stcn.STCN", **SMALL})
    assert loaded.kind == "official" and isinstance(loaded.model, STCN) and not loaded.model.training


def test_fixture_checkpoint_loads_strictly(stcn_fixture: Path) -> None:
    model = STCN()
    report = load_stcn_official(model, stcn_fixture / "checkpoint.pth")
    assert report.ok and report.ignored == []
    assert sum(p.numel() for p in model.parameters()) == 54_434_180


def test_parity_with_official_outputs(stcn_fixture: Path, one_torch_thread: None) -> None:
    result = verify_stcn_fixture(stcn_fixture)
    forced, free = result["runs"]["forced"], result["runs"]["free"]
    for run in (forced, free):
        assert run["mask_mismatched_pixels"] == [0, 0, 0]
        assert run["memory_frames_after"] == 1  # T = 4: only frame 0 is ever memorised
    for name in ("keys", "logits", "logits_4x", "prob_agg"):
        assert forced[f"max_abs_{name}_diff"] <= 1e-4, name
    assert free["passed"] and forced["passed"] and result["passed"]


def test_verify_cli_on_stcn_fixture(stcn_fixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "stcn.json"
    proc = subprocess.run([sys.executable, "-m", "vosc.checkpoints", "verify", str(stcn_fixture),
                           "--stcn-modes", "forced", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["passed"] and list(result["runs"]) == ["forced"]
    assert result["runs"]["forced"]["max_abs_logits_diff"] <= 1e-4


def test_verify_fails_on_perturbed_weights(stcn_fixture: Path, tmp_path: Path) -> None:
    fixture = tmp_path / "perturbed"
    fixture.mkdir()
    for name in ("inputs.pt", "expected.pt"):
        (fixture / name).symlink_to(stcn_fixture / name)
    state = torch.load(stcn_fixture / "checkpoint.pth", weights_only=True)
    state["decoder.pred.bias"] = state["decoder.pred.bias"] + 0.01
    torch.save(state, fixture / "checkpoint.pth")
    result = verify_stcn_fixture(fixture, modes=("forced",))
    assert not result["passed"]
    assert result["runs"]["forced"]["max_abs_logits_diff"] > 5e-3
