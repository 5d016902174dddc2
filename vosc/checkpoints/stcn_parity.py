"""Reproduce an ``stcn-parity`` fixture (official STCN outputs for given weights and inputs) and compare.

Protocol and comparison rules: ``shared/fixtures/stcn-parity/README.md``. The fixture's ``checkpoint.pth``
is loaded strictly into ``STCN()``; frames and the frame-0 one-hot masks are zero-padded (centred) to
multiples of 16 and run through :class:`~vosc.inference.stcn.STCNPropagator` with the fixture's
``top_k`` / ``mem_every`` / ``include_last``. Two runs:

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
import torch.nn.functional as F
from torch import Tensor

from vosc.checkpoints.stcn import load_stcn_official
from vosc.inference.stcn import STCNPropagator, pad_to_multiple, unpad
from vosc.models.stcn import STCN

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
    frames, pad = pad_to_multiple(inputs["frames"].float(), 16)
    if list(pad) != list(expected["pad"]):
        raise ValueError(f"padding {pad} differs from the fixture's {expected['pad']}")
    masks0, _ = pad_to_multiple(inputs["mask0_onehot"].float()[:, 0][None], 16)
    h, w = inputs["frames"].shape[-2:]
    prop = STCNPropagator(model, mem_every=int(expected["mem_every"]),
                          include_last=bool(expected["include_last"]), top_k=int(expected["top_k"]))
    prop.add_objects(frames[0:1], masks0)
    stats: dict[str, list[tuple[float, float]]] = {k: [] for k in ("keys", "logits", "logits_4x", "prob_agg")}
    stats["keys"].append(_diff(prop.memory_keys[0].view_as(out["keys"][0][None]), out["keys"][0][None]))
    mism, compared, topk_same = [], [], []
    num_t = frames.shape[0]
    start = time.perf_counter()
    for i, t in enumerate(expected["propagated_frames"]):
        official_idx = out["topk_indices"][i].long().flatten(1)[None]  # (1, k, h*w)
        res = prop.step(frames[t: t + 1], [official_idx] if forced else None)
        stats["keys"].append(_diff(res["key"], out["keys"][t][None]))
        stats["logits"].append(_diff(res["object_logits"][0], out["logits"][i][:, 0]))
        stats["logits_4x"].append(_diff(res["object_logits_4x"][0], out["logits_4x"][i][:, 0]))
        stats["prob_agg"].append(_diff(res["prob"][0], out["prob_agg"][i][:, 0]))
        if not forced:
            aff_idx = torch.topk(_affinity_of(prop, res["key"]), official_idx.shape[1], dim=1).indices
            same = (aff_idx.sort(1).values == official_idx.sort(1).values).all(1)
            topk_same.append(float(same.float().mean()))
        prob = F.interpolate(unpad(res["prob"], pad), size=(h, w), mode="bilinear", align_corners=False)
        pred = prob.argmax(dim=1)[0].to(torch.uint8)
        ok = ~out["near_tie"][i]
        mism.append(int(((pred != out["masks"][i]) & ok).sum()))
        compared.append(int(ok.sum()))
        prop.update_memory(is_last=t == num_t - 1)
    result: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 3),
                              "mask_mismatched_pixels": mism, "compared_pixels": compared,
                              "memory_frames_after": prop.memory_frames}
    for name, vals in stats.items():
        result[f"max_abs_{name}_diff"] = max(v[0] for v in vals)
        result[f"share_{name}_over_tol"] = max(v[1] for v in vals)
    if topk_same:
        result["query_cells_same_topk_set"] = topk_same
    passed = all(m == 0 for m in mism)
    if forced:
        passed &= all(result[f"max_abs_{n}_diff"] <= TOLERANCE for n in stats)
    else:
        passed &= result["max_abs_keys_diff"] <= TOLERANCE
        passed &= all(result[f"share_{n}_over_tol"] <= FLIP_SHARE and result[f"max_abs_{n}_diff"] <= lim
                      for n, lim in FLIP_MAX.items())
    result["passed"] = bool(passed)
    return result


def _affinity_of(prop: STCNPropagator, key: Tensor) -> Tensor:
    from vosc.models.stcn.readout import affinity

    mk, _ = prop._group_memory(0)
    return affinity(mk, key.flatten(2))


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
