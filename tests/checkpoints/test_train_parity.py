"""``python -m vosc.checkpoints verify-train`` on the shared train-parity fixture (official AOST training
steps: losses, masks and every gradient), and the failures it must name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vosc.checkpoints.__main__ import main
from vosc.checkpoints.train_parity import _load, _name_map, build_module, fixture_dirs, run_case


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """One torch thread (CI: two shared cores)."""


def test_verify_train_passes_every_case_of_the_shared_fixture(train_parity: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "train.json"
    assert main(["verify-train", str(train_parity), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["passed"]
    (aost,) = result["fixtures"]
    assert aost["model"] == "aost" and aost["mode"] == "official" and not aost["split_failures"]
    assert sorted(aost["cases"]) == ["step0", "step25000", "step80000"]
    for name, case in aost["cases"].items():
        assert case["passed"], (name, case["failures"])
        assert case["loss_diff"] <= 1e-5 and case["logits_diff"] <= 1e-4
        assert case["mask_mismatched_pixels"] == 0
        assert f"| aost | official | {name} |" in table
    assert aost["cases"]["step80000"]["memory"] == "predicted"
    assert aost["cases"]["step80000"]["grad"]["grad_none_vosc"] == [
        "id_norm.bias", "id_norm.weight", "patch_wise_id_bank.bias", "patch_wise_id_bank.weight"]
    assert aost["cases"]["step0"]["grad"]["grad_none_vosc"] == []


@pytest.fixture(scope="module")
def aost_fixture(train_parity: Path) -> Path:
    return fixture_dirs(train_parity)[0]


def test_vosc_mode_clips_like_the_official_amp_path(aost_fixture: Path) -> None:
    """``--mode vosc``: vosc's clipping after backward equals the official AMP path's coefficient."""
    from vosc.checkpoints.train_parity import fixture_batch

    expected = _load(aost_fixture / "expected.pt")
    module = build_module(expected, _load(aost_fixture / "meta.json"), aost_fixture / "checkpoint.pth")
    mapping, split = _name_map(module, expected)
    assert not split
    batch, perm = fixture_batch(_load(aost_fixture / "batch.pt"))
    res = run_case(module, batch, perm, expected, "step80000", mapping, mode="vosc")
    meta = json.loads((aost_fixture / "meta.json").read_text())
    coef = meta["cases"]["step80000"]["gradients"]["clip_coefficient_at_max_norm_5"]
    assert res["grad_scale"] == pytest.approx(coef, rel=1e-9) and res["grad_scale"] < 1
    assert res["passed"], res["failures"]
    # a parameter frozen on one side only is a failure that names it
    name = "decoder.conv_out.weight"
    dict(module.model.named_parameters())[name].requires_grad_(False)
    try:
        _, split = _name_map(module, expected)
    finally:
        dict(module.model.named_parameters())[name].requires_grad_(True)
    assert split == [f"{name} ({name}): official trains it, vosc freezes it"]
    assert torch.is_grad_enabled()


def test_verify_train_names_a_missing_fixture(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no train-parity fixture"):
        main(["verify-train", str(tmp_path)])
