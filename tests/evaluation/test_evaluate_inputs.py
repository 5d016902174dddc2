"""``evaluate.py`` input checks through the real Hydra config (compose API): every bad input fails before
any work starts, with an error naming the file or key."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from vosc.checkpoints.loading import file_sha256

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def evaluate_module():
    spec = importlib.util.spec_from_file_location("vosc_evaluate_script", REPO / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _reset_hydra_config():
    yield
    HydraConfig.instance().cfg = None  # do not leak this module's config into other tests


def _cfg(tmp_path: Path, *overrides: str):
    base = ["model=aost_tiny", f"out_dir={tmp_path / 'eval'}", f"cache_dir={tmp_path / 'cache'}",
            "paths.output_dir=."]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[*base, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # group choices (model names) as under @hydra.main
    return cfg


def _davis(davis_mini: Path) -> list[str]:
    return ["dataset=folder", f"data_root={davis_mini}"]


def test_missing_checkpoint(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    cfg = _cfg(tmp_path, *_davis(davis_mini), f"ckpt={tmp_path / 'nope.ckpt'}")
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope\.ckpt"):
        evaluate_module.build_sweep(cfg)


def test_unreadable_checkpoint(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(evaluate_module.ConfigError, match="garbage.ckpt: not a readable"):
        evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), f"ckpt={bad}"))


def test_unknown_codec(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    cfg = _cfg(tmp_path, *_davis(davis_mini), "ladder.points=[x265:32,av1:30]")
    with pytest.raises(
        ValueError,
        match=r"ladder\[1\]: unknown codec 'av1'; configured codecs: \['none', 'vvenc', "
        r"'x265'\]",
    ):
        evaluate_module.build_sweep(cfg)


def test_q_out_of_range(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    cfg = _cfg(tmp_path, *_davis(davis_mini), "ladder.points=[x265:32,x265:60]")
    with pytest.raises(
        ValueError, match=r"ladder\[1\]: codec 'x265': quality parameter q=60 out of range \[0, 51\]"
    ):
        evaluate_module.build_sweep(cfg)


def test_dataset_root_missing(evaluate_module, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "dataset=folder", f"data_root={tmp_path / 'no-davis'}")
    with pytest.raises(FileNotFoundError, match=r"dataset root not found: .*no-davis"):
        evaluate_module.build_sweep(cfg)


def test_bad_depth(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    cfg = _cfg(tmp_path, *_davis(davis_mini), "depths=[1,4]")
    with pytest.raises(evaluate_module.ConfigError, match=r"\[4\] outside 1..3"):
        evaluate_module.build_sweep(cfg)


def test_aot_depths_fail_before_any_work(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    """AOT (non-scalable decoder, n_l = 3): a depth above n_l, or below it, stops the run before any
    encode, segmentation or output."""
    for depths, match in (("[4]", r"\[4\] outside 1..3"),
                          ("[2,3]", r"\[2\] not decodable.*valid choices: \[3\]")):
        cfg = _cfg(tmp_path, *_davis(davis_mini), "model=aotb", f"depths={depths}")
        with pytest.raises(evaluate_module.ConfigError, match=match):
            evaluate_module.evaluate(cfg)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "cache").exists()


def test_bad_enhancer_mode_and_missing_enhancer_ckpt(
    evaluate_module, tmp_path: Path, davis_mini: Path
) -> None:
    with pytest.raises(evaluate_module.ConfigError, match="enhancer='sometimes'"):
        evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), "enhancer=sometimes"))
    cfg = _cfg(tmp_path, *_davis(davis_mini), "enhancer=on", f"enhancer_ckpt={tmp_path / 'enh.ckpt'}")
    with pytest.raises(FileNotFoundError, match=r"enhancer checkpoint not found: .*enh\.ckpt"):
        evaluate_module.build_sweep(cfg)


def test_vosc_lightning_checkpoint_roundtrip(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    """A checkpoint in the VOSModule layout (hyper_parameters.model_config + model.* EMA weights) rebuilds
    the same network regardless of the model= group."""
    from vosc.models.vos_model import VOSModel

    torch.manual_seed(3)
    config = {
        "_target_": "vosc.models.vos_model.VOSModel",
        "d_model": 32,
        "ffn_dim": 64,
        "num_heads": 2,
        "num_layers": 2,
        "droppath": 0.0,
    }
    net = VOSModel(**{k: v for k, v in config.items() if k != "_target_"})
    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "hyper_parameters": {"model_config": config},
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "pytorch-lightning_version": "2.6.6",
        },
        ckpt,
    )
    sweep, _ = evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), f"ckpt={ckpt}", "model=aost"))
    assert sweep.model.num_layers == 2 and sweep.depths == [2]
    assert sweep.model_name == "vosc-last" and sweep.checkpoint_hash
    assert all(
        torch.equal(a, b)
        for a, b in zip(sweep.model.state_dict().values(), net.state_dict().values(), strict=False)
    )
    bad = tmp_path / "bad.ckpt"
    torch.save(
        {
            "hyper_parameters": {"model_config": {**config, "num_layers": 3}},
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        },
        bad,
    )
    with pytest.raises(evaluate_module.ConfigError, match="bad.ckpt: weights do not match"):
        evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), f"ckpt={bad}"))


def test_data_root_replaces_the_synthetic_default(evaluate_module, tmp_path: Path, davis_mini: Path) -> None:
    sweep, ds = evaluate_module.build_sweep(_cfg(tmp_path, f"data_root={davis_mini}", "depths=[1,3]"))
    assert type(sweep.source).__name__ == "DavisSource" and ds.name == "davis2016-val-mini"
    assert [v.name for v in sweep.source.videos] == ["blackswan", "car-shadow"]
    assert sweep.depths == [1, 3] and [p.tag for p in sweep.ladder] == ["none", "x265_q32", "x265_q42"]
    assert sweep.folder(sweep.variants[1]) == tmp_path / "eval" / "davis2016-val-mini" / "none" / "raw" / "d3"


def test_official_checkpoint(evaluate_module, tmp_path: Path, davis_mini: Path, aot_parity: Path) -> None:
    """An official AOT checkpoint (``{'state_dict': ...}`` in the reference layout) loads strictly into
    model=aott; the wrong architecture fails naming the file."""
    ckpt = aot_parity / "aott" / "checkpoint.pth"
    sweep, _ = evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), f"ckpt={ckpt}", "model=aott"))
    assert sweep.model_name == "aott" and sweep.checkpoint == str(ckpt.resolve()) and sweep.depths == [1]
    assert sweep.checkpoint_hash == file_sha256(ckpt)[:16]
    with pytest.raises(KeyError, match="checkpoint"):
        evaluate_module.build_sweep(_cfg(tmp_path, *_davis(davis_mini), f"ckpt={ckpt}", "model=aost_tiny"))
