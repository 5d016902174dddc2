"""Inference speed options: channels-last and bf16 autocast keep the predictions; bad choices fail clearly.
(``torch.compile`` is measured by ``bench/model_speed.py --compile``; compiling is too slow for a unit test
on the shared CI CPUs.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vosc
from vosc.inference.speed import autocast


def _video() -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    frames = [np.random.default_rng(t).integers(0, 255, (48, 64, 3), dtype=np.uint8) for t in range(6)]
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 1
    return frames, {0: mask}


def _masks(**kwargs: object) -> list[np.ndarray]:
    frames, masks = _video()
    return [r.mask for r in vosc.load_model(None, "aost_tiny", **kwargs).run(frames, masks)]  # type: ignore[arg-type]


def test_channels_last_and_bf16_keep_predictions(one_torch_thread: None) -> None:
    ref = _masks()
    for kwargs in ({"channels_last": True}, {"amp": "bf16"}):
        got = _masks(**kwargs)
        agree = np.mean([np.mean(a == b) for a, b in zip(ref, got, strict=True)])
        assert agree > 0.97, (kwargs, agree)


def test_bad_amp_choices() -> None:
    with pytest.raises(ValueError, match="amp must be one of"):
        vosc.load_model(None, "aost_tiny", amp="fp8")
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"), autocast(torch.device("cpu"), "fp16"):
        pass


@pytest.mark.parametrize("tile", [0, 6])
def test_model_speed_winograd_tile_option(tile: int, one_torch_thread: None) -> None:
    """``bench/model_speed.py --winograd-tile`` sets the tile of every Winograd convolution of the vosc STCN
    (0: direct convolutions) and the run reports it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import model_speed  # type: ignore[import-not-found]

    from vosc.models.winograd import WinogradConv2d

    args = model_speed.parse_args(["--model", "stcn_small", "--depths", "1", "--size", "40x56", "--objects", "2",
                                   "--threads", "1", "--warmup", "1", "--frames", "1", "--rounds", "1",
                                   "--no-flops", "--winograd-tile", str(tile)])
    model = model_speed._make_runners(args, torch.device("cpu"))["vosc"].model
    tiles = {m.tile for m in model.modules() if isinstance(m, WinogradConv2d)}
    assert tiles == {tile or None}
    result = model_speed.run(args)
    assert result["winograd_tile"] == tile and result["per_depth"]["1"]["vosc"]["median_s"] > 0
