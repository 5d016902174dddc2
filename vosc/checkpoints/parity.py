"""Reproduce an ``aot-parity`` fixture (official outputs for given weights and inputs) and compare.

Protocol (``shared/fixtures/aot-parity/README.md``): frame 0 is the reference with ``mask0``; frames 1..3
are propagated; the short-term memory is the previous frame with its *predicted* mask; the long-term gap
is 2; depth ``n'`` runs the first ``n'`` layers (memory kept for those layers only, as a model built with
``n'`` layers would). Compared: raw 1/4 logits (max abs diff ≤ ``tolerance``) and the predicted masks at
every pixel whose ``near_tie`` flag is 0.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

import torch

from vosc.checkpoints.official import load_official
from vosc.inference.propagator import Propagator, run_clip
from vosc.models.variants import build_model
from vosc.models.vos_model import VOSModel

log = logging.getLogger(__name__)

TOLERANCE = 1e-4


def _load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"fixture file missing: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


@torch.no_grad()
def run_depth(model: Any, inputs: dict, expected: dict, depth: int) -> dict[str, Any]:
    """Run the protocol at one depth and compare with ``expected['outputs'][depth]``."""
    obj_num = int(expected["obj_num"])
    frames = inputs["frames"].float()
    mask0 = inputs["mask0"].long()[None, None]
    exp = expected["outputs"][depth]
    order = [0] + [int(t) for t in expected["propagated_frames"]]
    prop = Propagator(model, long_term_gap=2, memory_depth=depth, mask_unused=False)
    diffs, mism, compared = [], [], []

    def compare(t: int, logits: dict[int, torch.Tensor]) -> torch.Tensor:
        i = t - 1
        raw = prop.last_logits_4x[depth]
        diffs.append(float((raw - exp["logits_4x"][i].float()).abs().max()))
        masked = raw.clone()
        masked[:, obj_num + 1 :] = -1e10
        pred = model.upsample(masked, tuple(frames.shape[-2:])).argmax(dim=1)  # (1, H, W)
        ok = exp["near_tie"][i] == 0
        mism.append(int(((pred[0].to(torch.uint8) != exp["masks"][i]) & ok).sum()))
        compared.append(int(ok.sum()))
        return pred[:, None]

    start = time.perf_counter()
    run_clip(prop, frames[order][None], mask0, obj_num, depth, feedback=compare, write_last=True)
    seconds = time.perf_counter() - start
    return {"max_abs_logit_diff": max(diffs), "per_frame_max_abs_logit_diff": diffs,
            "masks_equal": all(m == 0 for m in mism), "mask_mismatched_pixels": mism,
            "compared_pixels": compared, "seconds": round(seconds, 3),
            "long_term_frames_after": prop.long_term_frames}


def verify_fixture(fixture_dir: Path, depths: list[int] | None = None,
                   tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Verify one fixture folder (``checkpoint.pth``, ``inputs.pt``, ``expected.pt``).

    Returns:
        ``{"model", "max_abs_logit_diff", "masks_equal", "per_depth": {depth: {...}}, "tolerance",
        "passed"}``.
    """
    fixture_dir = Path(fixture_dir)
    expected = _load(fixture_dir / "expected.pt")
    inputs = _load(fixture_dir / "inputs.pt")
    name = str(expected.get("model", ""))
    for key in ("obj_num", "propagated_frames", "depths", "outputs"):
        if key not in expected:
            raise ValueError(f"{fixture_dir / 'expected.pt'}: missing entry {key!r}")
    model = cast(VOSModel, build_model(name, pretrained=False))
    report = load_official(model, fixture_dir / "checkpoint.pth", strict=True)
    log.info("loaded %s (%d reference keys ignored)", name, len(report.ignored))
    model.eval()
    all_depths = [int(d) for d in expected["depths"]]
    wanted = all_depths if not depths else [d for d in all_depths if d in depths]
    if not wanted:
        raise ValueError(f"{fixture_dir}: none of the depths {depths} is in the fixture's {all_depths}")
    per_depth = {}
    for d in wanted:
        per_depth[str(d)] = run_depth(model, inputs, expected, d)
        log.info("depth %d: %s", d, per_depth[str(d)])
    max_diff = max(r["max_abs_logit_diff"] for r in per_depth.values())
    masks_equal = all(r["masks_equal"] for r in per_depth.values())
    return {"model": name, "max_abs_logit_diff": max_diff, "masks_equal": masks_equal,
            "per_depth": per_depth, "tolerance": tolerance, "ignored_reference_keys": report.ignored,
            "passed": bool(max_diff <= tolerance and masks_equal)}
