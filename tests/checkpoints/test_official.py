"""Official checkpoint import: formats, strict key reports, warm start, and the parity fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vosc.checkpoints.official import (
    CheckpointMismatchError,
    convert_key,
    load_official,
    read_state_dict,
    warm_start_aost_from_aot,
)
from vosc.checkpoints.parity import verify_fixture
from vosc.models.variants import build_model


def test_mobilenet_key_mapping() -> None:
    assert convert_key("encoder.features.0.0.weight", "mobilenetv2") == "encoder.net.conv_stem.weight"
    assert convert_key("encoder.features.1.conv.1.weight", "mobilenetv2") == \
        "encoder.net.blocks.0.0.conv_pw.weight"
    assert convert_key("encoder.features.7.conv.1.1.running_var", "mobilenetv2") == \
        "encoder.net.blocks.3.0.bn2.running_var"
    assert convert_key("encoder.features.17.conv.2.weight", "mobilenetv2") == \
        "encoder.net.blocks.6.0.conv_pwl.weight"
    assert convert_key("encoder.features.18.1.bias", "mobilenetv2") == "encoder.net.bn2.bias"
    assert convert_key("LSTT.layers.2.linear_QV.weight", "mobilenetv2") == "lstt.layers.2.linear_QV.weight"
    assert convert_key("patch_wise_id_bank.weight", "resnet50") == "id_bank.conv.weight"
    assert convert_key("encoder.layer3.5.bn3.weight", "resnet50") == "encoder.net.layer3.5.bn3.weight"
    assert convert_key("encoder.layers.0.downsample.reduction.weight", "swin_base") == \
        "encoder.net.layers_1.downsample.reduction.weight"
    assert convert_key("encoder.norm2.weight", "swin_base") == "encoder.norms.2.weight"
    assert convert_key("encoder.layers.3.blocks.0.attn.qkv.weight", "swin_base") is None


def test_every_converted_fixture_key_exists(aot_parity: Path) -> None:
    state = read_state_dict(aot_parity / "aost" / "checkpoint.pth")
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model = build_model("aost")
    report = load_official(model, state)
    assert report.ok and report.ignored == []


def test_formats_prefix_and_dtype(aot_parity: Path, tmp_path: Path) -> None:
    state = torch.load(aot_parity / "aott" / "checkpoint.pth", weights_only=False)["state_dict"]
    ref = build_model("aott")
    load_official(ref, {"state_dict": state})
    for wrap in ("model", None):
        sd = {"module." + k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
        path = tmp_path / f"{wrap}.pth"
        torch.save({wrap: sd} if wrap else sd, path)
        model = build_model("aott")
        load_official(model, path)
        w = model.state_dict()["lstt.layers.0.linear_Q.weight"]
        assert w.dtype == torch.float32
        torch.testing.assert_close(w, ref.state_dict()["lstt.layers.0.linear_Q.weight"], atol=1e-2, rtol=1e-2)


def test_strict_loading_names_missing_and_unexpected_keys(aot_parity: Path) -> None:
    state = read_state_dict(aot_parity / "aott" / "checkpoint.pth")
    del state["LSTT.layers.0.linear_V.bias"]
    state["decoder.extra_head.weight"] = torch.zeros(3)
    state["decoder.conv_out.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointMismatchError) as err:
        load_official(build_model("aott"), state)
    msg = str(err.value)
    assert "missing: lstt.layers.0.linear_V.bias" in msg
    assert "unexpected: decoder.extra_head.weight" in msg
    assert "decoder.conv_out.bias: checkpoint (5,) vs model (11,)" in msg
    report = load_official(build_model("aott"), state, strict=False)
    assert (report.missing == ["lstt.layers.0.linear_V.bias"]
            and report.unexpected == ["decoder.extra_head.weight"])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_state_dict(aot_parity / "nope.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        read_state_dict({"optimizer": {"lr": 1.0}})


@torch.no_grad()
def test_warm_start_aost_from_aot_keeps_exact_parts(aot_parity: Path) -> None:
    aot = build_model("aott").eval()
    load_official(aot, aot_parity / "aott" / "checkpoint.pth")
    aost = build_model("aost", num_layers=1).eval()
    warm_start_aost_from_aot(aost, aot_parity / "aott" / "checkpoint.pth")
    x = torch.randn(1, 20, 256)
    id_emb = torch.randn(1, 20, 256)
    q_aot, v_aot = aot.lstt.layers[0].query_value(x)
    kv_aot = aot.fuse(0, (q_aot, v_aot), id_emb)
    kv_aost = aost.fuse(0, aost.lstt.layers[0].query_value(x), id_emb)
    torch.testing.assert_close(kv_aost[0], kv_aot[0])
    torch.testing.assert_close(kv_aost[1], kv_aot[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(aost.decoder.conv_in[0].conv.weight, aot.decoder.conv_in.conv.weight)
    with pytest.raises(ValueError, match="AOST"):
        warm_start_aost_from_aot(build_model("aost_share"), aot_parity / "aott" / "checkpoint.pth")


def test_verify_cli_aott(aot_parity: Path, tmp_path: Path) -> None:
    out = tmp_path / "aott.json"
    proc = subprocess.run([sys.executable, "-m", "vosc.checkpoints", "verify", str(aot_parity / "aott"),
                           "--json", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    assert result["model"] == "aott" and result["passed"] and result["masks_equal"]
    assert result["max_abs_logit_diff"] <= 1e-4 and list(result["per_depth"]) == ["1"]
    old = subprocess.run(
        [sys.executable, "-m", "vosc.checkpoints.official", "verify", str(aot_parity / "aott")],
        capture_output=True, text=True, timeout=600, check=False)
    assert old.returncode != 0 and "python -m vosc.checkpoints verify" in old.stderr  # names the new spelling


def test_verify_aost_every_depth(aot_parity: Path) -> None:
    result = verify_fixture(aot_parity / "aost")
    assert result["passed"], result
    assert sorted(result["per_depth"]) == ["1", "2", "3"]
    for depth in result["per_depth"].values():
        assert depth["max_abs_logit_diff"] <= 1e-4 and depth["mask_mismatched_pixels"] == [0, 0, 0]
        assert depth["long_term_frames_after"] == 2


def test_verify_fails_on_perturbed_weights(aot_parity: Path, tmp_path: Path) -> None:
    fixture = tmp_path / "aott"
    fixture.mkdir()
    (fixture / "inputs.pt").symlink_to(aot_parity / "aott" / "inputs.pt")
    expected = torch.load(aot_parity / "aott" / "expected.pt", weights_only=False)
    expected["propagated_frames"] = [1]  # one frame is enough to see the failure
    expected["outputs"] = {d: {k: v[:1] for k, v in o.items()} for d, o in expected["outputs"].items()}
    torch.save(expected, fixture / "expected.pt")
    ckpt = torch.load(aot_parity / "aott" / "checkpoint.pth", weights_only=False)
    ckpt["state_dict"]["decoder.conv_out.bias"] = ckpt["state_dict"]["decoder.conv_out.bias"] + 1e-2
    torch.save(ckpt, fixture / "checkpoint.pth")
    result = verify_fixture(fixture)
    assert not result["passed"] and result["max_abs_logit_diff"] > 1e-4
