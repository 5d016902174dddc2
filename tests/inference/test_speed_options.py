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
