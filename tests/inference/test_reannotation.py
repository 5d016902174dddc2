"""A later mask that re-annotates an object already present replaces that object's mask from that frame on
(issue 26 item 4): before, the new pixels were pasted over the prediction and the object's old predicted
pixels elsewhere were kept (a union of two masks)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import vosc

H, W, T = 48, 64, 5


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(T)]


def test_a_re_annotated_object_is_replaced_not_merged(one_torch_thread: None,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    seg = vosc.load_model(None, model="aost_tiny", depth=1)
    first = np.zeros((H, W), np.uint8)
    first[4:40, 4:60] = 1  # a large object: the random network predicts it over much of frame 2
    first[30:44, 40:60] = 2
    again = np.zeros((H, W), np.uint8)
    again[5:12, 5:15] = 1  # object 1 re-annotated, small, at frame 2; object 2 not mentioned
    frames = _frames()
    plain = [r.mask for r in seg.run(frames, {0: first})]
    assert ((plain[2] == 1) & (again == 0)).sum() > 50  # without re-annotation object 1 is elsewhere too
    with caplog.at_level(logging.INFO, logger="vosc.inference.segmenter"):
        redone = [r.mask for r in seg.run(frames, {0: first, 2: again})]
    assert np.array_equal(redone[2] == 1, again == 1)  # replaced: exactly the new annotation
    assert np.array_equal(redone[2] == 2, (plain[2] == 2) & (again == 0))  # other objects as predicted
    assert any("frame 2" in r.getMessage() and "re-annotat" in r.getMessage() and "[1]" in r.getMessage()
               for r in caplog.records)
