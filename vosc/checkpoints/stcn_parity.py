"""Reproduce an ``stcn-parity`` fixture (official STCN outputs for given weights and inputs) and compare.

Protocol and comparison rules: ``shared/fixtures/stcn-parity/README.md``. The fixture's ``checkpoint.pth``
is loaded strictly into ``STCN()``; frames and the frame-0 one-hot masks are zero-padded (centred) to
multiples of 16 by the network and run through the shared per-video loop
(:class:`~vosc.inference.propagator.Propagator`, ``long_term_gap = mem_every``; the last frame is not
memorised) with the fixture's ``top_k`` / ``include_last``. Two runs:

* ``forced``: the official top-k selection (``topk_indices``) replaces ``torch.topk`` (criterion (a)):
  keys, per-object logits (full and 1/4 resolution) and aggregated probabilities within ``tolerance``;
* ``free``: our own top-k (criterion (b), tolerant of selection flips between near-equal affinities):
  at most 10% of the values off by more than ``tolerance``, none by more than 5e-2 (logits) / 1e-2
  (probabilities).

Masks (unpad → bilinear resize to the input size → argmax) must equal the official ones wherever
``near_tie`` is False, in both runs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vosc.checkpoints.stcn import load_stcn_official
from vosc.inference.propagator import Propagator
from vosc.models.stcn import STCN
from vosc.models.stcn.network import pad_to_multiple, unpad
from vosc.models.stcn.readout import affinity

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
FLIP_SHARE = 0.10
FLIP_MAX = {"logits": 5e-2, "logits_4x": 5e-2, "prob_agg": 1e-2}
FORMAT = "vosc-stcn-parity"


def _load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"fixture file missing: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def is_stcn_fixture(fixture_dir: Path) -> bool:
    """Whether ``fixture_dir/expected.pt`` is an ``stcn-parity`` fixture."""
    path = Path(fixture_dir) / "expected.pt"
    return path.is_file() and str(_load(path).get("format", "")).startswith(FORMAT)


def _diff(a: Tensor, b: Tensor) -> tuple[float, float]:
    d = (a.float() - b.float()).abs()
    return float(d.max()), float((d > TOLERANCE).float().mean())


@torch.no_grad()
def run_protocol(model: STCN, inputs: dict, expected: dict, forced: bool) -> dict[str, Any]:
    """Run the fixture protocol once and compare every output (see the module docstring)."""
    out = expected["outputs"]
    frames = inputs["frames"].float()
    h, w = frames.shape[-2:]
    _, pad = pad_to_multiple(frames[:1], model.stride)
    if list(pad) != list(expected["pad"]):
        raise ValueError(f"padding {pad} differs from the fixture's {expected['pad']}")
    model.top_k, model.include_last = int(expected["top_k"]), bool(expected["include_last"])
    keys: list[Tensor] = []
    decoded: list[tuple[Tensor, Tensor]] = []
    hooks = [model.key_proj.register_forward_hook(lambda _m, _i, o: keys.append(o)),
             model.decoder.register_forward_hook(lambda _m, _i, o: decoded.append(o))]
    prop = Propagator(model, long_term_gap=int(expected["mem_every"]))
    stats: dict[str, list[tuple[float, float]]] = {k: [] for k in ("logits", "logits_4x", "prob_agg")}
    mism, compared, topk_same = [], [], []
    start = time.perf_counter()
    try:
        prop.add_reference(frames[0:1], inputs["mask0"].long()[None, None], int(expected["num_objects"]))
        for i, t in enumerate(expected["propagated_frames"]):
            official_idx = out["topk_indices"][i].long().flatten(1)[None]  # (1, k, h*w)
            model.forced_topk = [official_idx] if forced else None
            decoded.clear()
            try:
                prob = torch.softmax(prop.step(frames[t: t + 1])[1], dim=1)
            finally:
                model.forced_topk = None
            logits, logits_4x = (torch.cat(x, 0)[:, 0] for x in zip(*decoded, strict=False))
            stats["logits"].append(_diff(logits, out["logits"][i][:, 0]))
            stats["logits_4x"].append(_diff(logits_4x, out["logits_4x"][i][:, 0]))
            stats["prob_agg"].append(_diff(prob[0], unpad(out["prob_agg"][i][:, 0], pad)))
            if not forced:
                aff = affinity(keys[0].flatten(2), keys[-1].flatten(2))
                same = (torch.topk(aff, official_idx.shape[1], dim=1).indices.sort(1).values
                        == official_idx.sort(1).values).all(1)
                topk_same.append(float(same.float().mean()))
            pred = model.upsample(prob, (h, w)).argmax(dim=1)[0].to(torch.uint8)
            ok = ~out["near_tie"][i]
            mism.append(int(((pred != out["masks"][i]) & ok).sum()))
            compared.append(int(ok.sum()))
            if t != frames.shape[0] - 1:  # the official loop never memorises the last frame
                prop.update_memory(prob)
    finally:
        for hk in hooks:
            hk.remove()
    stats["keys"] = [_diff(k[0], e) for k, e in zip(keys, out["keys"], strict=False)]
    result: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 3),
                              "mask_mismatched_pixels": mism, "compared_pixels": compared,
                              "memory_frames_after": prop.long_term_frames}
    for name, vals in stats.items():
        result[f"max_abs_{name}_diff"] = max(v[0] for v in vals)
        result[f"share_{name}_over_tol"] = max(v[1] for v in vals)
    if topk_same:
        result["query_cells_same_topk_set"] = topk_same
    passed = all(m == 0 for m in mism) and len(keys) == len(out["keys"])
    if forced:
        passed &= all(result[f"max_abs_{n}_diff"] <= TOLERANCE for n in stats)
    else:
        passed &= result["max_abs_keys_diff"] <= TOLERANCE
        passed &= all(result[f"share_{n}_over_tol"] <= FLIP_SHARE and result[f"max_abs_{n}_diff"] <= lim
                      for n, lim in FLIP_MAX.items())
    result["passed"] = bool(passed)
    return result


def verify_stcn_fixture(fixture_dir: Path, modes: tuple[str, ...] = ("forced", "free")) -> dict[str, Any]:
    """Verify one ``stcn-parity`` fixture folder (``checkpoint.pth``, ``inputs.pt``, ``expected.pt``).

    Returns:
        ``{"model": "stcn", "parameter_count", "runs": {mode: {...}}, "tolerance", "passed"}``; passed
        when every requested run passes.
    """
    fixture_dir = Path(fixture_dir)
    expected = _load(fixture_dir / "expected.pt")
    inputs = _load(fixture_dir / "inputs.pt")
    for key in ("num_objects", "propagated_frames", "pad", "top_k", "mem_every", "include_last", "outputs"):
        if key not in expected:
            raise ValueError(f"{fixture_dir / 'expected.pt'}: missing entry {key!r}")
    model = STCN()
    load_stcn_official(model, fixture_dir / "checkpoint.pth", strict=True)
    model.eval()
    count = sum(p.numel() for p in model.parameters())
    runs = {}
    for mode in modes:
        if mode not in ("forced", "free"):
            raise ValueError(f"unknown parity mode {mode!r}; expected 'forced' or 'free'")
        runs[mode] = run_protocol(model, inputs, expected, forced=mode == "forced")
        log.info("%s: %s", mode, runs[mode])
    want = int(expected.get("parameter_count", count))
    return {"model": "stcn", "parameter_count": count, "expected_parameter_count": want, "runs": runs,
            "tolerance": TOLERANCE, "passed": bool(count == want and all(r["passed"] for r in runs.values()))}
