"""The official STCN inference (``hkchengrex/STCN``, pure torch) driven on CPU, for ``model_speed.py``.

Only the path of an export of the official repository is added to ``sys.path``; nothing of it is copied.
Run-time patches: the encoders are built without ImageNet weights (``torchvision.models.resnet50`` with
``weights=None``; ``mod_resnet.resnet18(pretrained=False)``), because nothing can be downloaded and the
weights are loaded afterwards anyway. The per-frame loop is ``InferenceCore.do_pass`` of
``inference_core.py`` without its ``.cuda()`` calls: ``encode_key`` → ``segment_with_query`` (top-k
``MemoryBank``) → ``aggregate(keep_bg=True)`` → on memory frames (``t % mem_every == 0``)
``encode_value`` + ``add_memory``. Frames are padded to multiples of 16 once per video, untimed, as
``InferenceCore`` does.

Weights: an official state dict (``--weights``, e.g. the parity fixture's ``checkpoint.pth``) or, without
one, the official network's seeded initialisation with ``key_proj`` scaled by 1/16: at the init scale the
official top-k softmax (``exp`` without subtracting the maximum) overflows to NaN (see the stcn-parity
fixture's README). vosc gets the same weights through :func:`vosc.checkpoints.stcn.load_stcn_official`.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

__all__ = ["STCNReferenceRunner", "import_stcn_reference"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def import_stcn_reference(path: Path) -> dict[str, Any]:
    """Import the official STCN evaluation network and memory bank from an export at ``path``."""
    needed = (path / "model" / "eval_network.py", path / "inference_memory_bank.py")
    if not all(f.is_file() for f in needed):
        raise FileNotFoundError(f"{path} is not an export of hkchengrex/STCN "
                                "(model/eval_network.py or inference_memory_bank.py missing)")
    sys.path.insert(0, str(path))
    import torchvision
    from model import mod_resnet, modules  # type: ignore[import-not-found]

    resnet18 = mod_resnet.resnet18
    if not getattr(resnet18, "_vosc_patched", False):
        def _resnet18(pretrained: bool = True, extra_chan: int = 0) -> Any:
            return resnet18(pretrained=False, extra_chan=extra_chan)

        _resnet18._vosc_patched = True  # type: ignore[attr-defined]
        mod_resnet.resnet18 = _resnet18
        modules.models = types.SimpleNamespace(
            resnet50=lambda pretrained=False: torchvision.models.resnet50(weights=None))
    from inference_memory_bank import MemoryBank  # type: ignore[import-not-found]
    from model.aggregate import aggregate  # type: ignore[import-not-found]
    from model.eval_network import STCN  # type: ignore[import-not-found]
    from util.tensor_util import pad_divide_by  # type: ignore[import-not-found]

    return {"STCN": STCN, "MemoryBank": MemoryBank, "aggregate": aggregate, "pad": pad_divide_by}


class STCNReferenceRunner:
    """Times the official STCN inference loop on the same frames and weights as vosc.

    Args:
        path: Export of ``hkchengrex/STCN``.
        weights: Official state dict file, or ``None`` (seeded init, ``key_proj`` × 1/16).
        device: Where to run.
        mem_every: Memory gap (5).
        top_k: Top-k of the readout (20).
    """

    def __init__(self, path: Path, weights: Path | None, device: torch.device, mem_every: int = 5,
                 top_k: int = 20) -> None:
        self.api = import_stcn_reference(path)
        torch.manual_seed(0)
        net = self.api["STCN"]()
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict({k: v.contiguous() for k, v in state.items()})
        else:
            with torch.no_grad():
                net.key_proj.key_proj.weight.mul_(1 / 16)
        self.net = net.to(device).eval()
        self.device = device
        self.mem_every = mem_every
        self.top_k = top_k
        self.last_probs: list[torch.Tensor] = []

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The official state dict of the timed network (for loading into vosc)."""
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    @torch.inference_mode()
    def time_frames(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int,
                    warmup: int) -> list[tuple[float, float]]:
        """``(wall, process CPU)`` seconds per timed frame; the aggregated probabilities of every propagated
        frame, unpadded ``(1 + K, H, W)``, are kept in :attr:`last_probs`.

        Args:
            depth: Ignored (STCN has one depth).
            clip: ``(T, 1, 3, H, W)`` normalised frames.
            mask0: ``(1, 1, H, W)`` int64 ids ``0..objects`` of frame 0.
            objects: ``K``.
            warmup: Untimed frames after the reference.
        """
        api, net = self.api, self.net
        images, pad = api["pad"](clip[:, 0], 16)  # (T, 3, nh, nw), once per video as InferenceCore
        one_hot = torch.stack([(mask0[0] == i + 1).float() for i in range(objects)])  # (K, 1, H, W)
        one_hot, _ = api["pad"](one_hot, 16)
        prob0 = api["aggregate"](one_hot, keep_bg=True)
        bank = api["MemoryBank"](k=objects, top_k=self.top_k)
        key, _, qf16, _, _ = net.encode_key(images[0:1])
        bank.add_memory(key.unsqueeze(2), net.encode_value(images[0:1], qf16, prob0[1:]))
        times, self.last_probs = [], []
        left, right, top, bottom = pad
        for t in range(1, images.shape[0]):
            _sync(self.device)
            t0, c0 = time.perf_counter(), time.process_time()
            k16, qv16, qf16, qf8, qf4 = net.encode_key(images[t: t + 1])
            out = api["aggregate"](net.segment_with_query(bank, qf8, qf4, k16, qv16), keep_bg=True)
            if t % self.mem_every == 0:
                bank.add_memory(k16.unsqueeze(2), net.encode_value(images[t: t + 1], qf16, out[1:]))
            _sync(self.device)
            if t > warmup:
                times.append((time.perf_counter() - t0, time.process_time() - c0))
            h, w = out.shape[-2:]
            self.last_probs.append(out[:, 0, top: h - bottom, left: w - right].float().cpu())
        return times

    @torch.inference_mode()
    def flops(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int) -> int:
        """FLOPs of the propagation of frame 1 (no memory write, as vosc's step of frame 1)."""
        from torch.utils.flop_counter import FlopCounterMode

        api, net = self.api, self.net
        images, _ = api["pad"](clip[:2, 0], 16)
        one_hot, _ = api["pad"](torch.stack([(mask0[0] == i + 1).float() for i in range(objects)]), 16)
        bank = api["MemoryBank"](k=objects, top_k=self.top_k)
        key, _, qf16, _, _ = net.encode_key(images[0:1])
        bank.add_memory(key.unsqueeze(2),
                        net.encode_value(images[0:1], qf16, api["aggregate"](one_hot, keep_bg=True)[1:]))
        with FlopCounterMode(display=False) as counter:
            k16, qv16, qf16, qf8, qf4 = net.encode_key(images[1:2])
            api["aggregate"](net.segment_with_query(bank, qf8, qf4, k16, qv16), keep_bg=True)
        return int(counter.get_total_flops())
