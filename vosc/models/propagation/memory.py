"""Memory record of one LSTT layer (the per-video bookkeeping lives in ``vosc.inference.propagator``)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class LayerMemory(NamedTuple):
    """Memories of one layer, all ``(B, L*, C)``: long-term keys/values (any number of frames) and the
    short-term keys/values (one frame, ``L = h*w``)."""

    long_k: Tensor
    long_v: Tensor
    short_k: Tensor
    short_v: Tensor
