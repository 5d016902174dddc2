"""Inference speed options (all off by default): channels-last weights, ``torch.compile``, mixed precision.

* :func:`apply_speed_options` converts a network in place: ``channels_last`` stores 4-D weights (and thus
  convolution outputs) NHWC, which oneDNN and cuDNN often run faster; ``compile`` compiles the ``forward`` of
  every direct submodule with ``nn.Module.compile`` (weights and state-dict keys unchanged; the first frames
  pay the compilation, and new input sizes recompile).
* :func:`autocast` returns the ``torch.autocast`` context of an ``amp`` choice: ``"off"``, ``"fp16"`` (CUDA)
  or ``"bf16"`` (CUDA, or CPU). Predictions are computed in float32 after the network (softmax, resizing).

``bench/model_speed.py --channels-last --compile --amp`` measures them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["AMP_CHOICES", "apply_speed_options", "autocast"]

AMP_CHOICES = ("off", "fp16", "bf16")


def apply_speed_options(model: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Apply the options to ``model`` in place and return it."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for child in model.children():
            child.compile(dynamic=None)
    return model


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """``torch.autocast`` for ``amp`` (``"off"``: no-op).

    Raises:
        ValueError: Unknown choice, or ``fp16`` on a CPU.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp == "off":
        yield
        return
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device (use 'bf16' on the CPU)")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
