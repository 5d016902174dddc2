"""Inference speed options: channels-last gives the same masks, bf16 autocast nearly the same; bad choices
fail clearly. (``torch.compile`` is measured by ``bench/model_speed.py --compile``; compiling is too slow
for a unit test on the shared CI CPUs.)"""

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


def _results(**kwargs: object) -> tuple[list, torch.nn.Module]:
    frames, masks = _video()
    seg = vosc.load_model(None, "aost_tiny", **kwargs)  # type: ignore[arg-type]
    return list(seg.run(frames, masks, return_probs=True)), seg.model


def test_channels_last_is_bit_exact_and_bf16_keeps_predictions(one_torch_thread: None) -> None:
    ref, net = _results()
    cl, cl_net = _results(channels_last=True)
    def layouts(model: torch.nn.Module) -> set[bool]:  # channels-last or not, per 3x3+ convolution weight
        return {m.weight.is_contiguous(memory_format=torch.channels_last) for m in model.modules()
                if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.weight.shape[-1] > 1}

    assert layouts(cl_net) == {True} and layouts(net) == {False}  # the option really converts the network
    # a memory layout, not a precision: the same masks, probabilities equal up to float32 summation order
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(ref, cl, strict=True))
    assert max(float(np.abs(a.probs - b.probs).max()) for a, b in zip(ref, cl, strict=True)) < 1e-5
    bf16, _ = _results(amp="bf16")
    agree = np.mean([np.mean(a.mask == b.mask) for a, b in zip(ref, bf16, strict=True)])
    assert agree > 0.97, agree  # bf16 rounds: nearly the same masks


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

    args = model_speed.parse_args(["--model", "stcn_small", "--depths", "1", "--size", "40x56",
                                   "--objects", "2", "--threads", "1", "--warmup", "1", "--frames", "1",
                                   "--rounds", "1",
                                   "--no-flops", "--winograd-tile", str(tile)])
    model = model_speed._make_runners(args, torch.device("cpu"))["vosc"].model
    tiles = {m.tile for m in model.modules() if isinstance(m, WinogradConv2d)}
    assert tiles == {tile or None}
    result = model_speed.run(args)
    assert result["winograd_tile"] == tile and result["per_depth"]["1"]["vosc"]["median_s"] > 0
