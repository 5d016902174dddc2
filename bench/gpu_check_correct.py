"""Correctness part of ``bench/gpu_check.py``: the parity fixtures and a short J&F run on the device.

The fixtures (``shared/fixtures/aot-parity/{aott,aost}``, ``shared/fixtures/stcn-parity/stcn``) are run
through the verify code of :mod:`vosc.checkpoints.parity` / :mod:`vosc.checkpoints.stcn_parity` with the
model and every fixture tensor moved to the device:

* float32: the fixture's own criterion (``passed``: logits within its tolerance, masks exact outside
  near-ties);
* autocast float16 / bfloat16 (network stages under autocast, see
  :func:`gpu_check_lib.autocast_stages`): the masks must agree with the official ones on at least
  ``MASK_AGREEMENT`` of the compared pixels (near-ties excluded, as in float32).

The J&F item segments the ``aost`` fixture's frames with its weights through
:class:`vosc.inference.segmenter.VideoSegmenter` on the CPU and on the device, scores both against the
official masks with :func:`vosc.metrics.jf.evaluate_sequence` and requires equal J&F (within
``JF_TOLERANCE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_check_lib import Box, autocast_stages, to_device

MASK_AGREEMENT = 0.999
JF_TOLERANCE = 1e-3
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _aot_fixture(
    folder: Path, device: torch.device, dtype: torch.dtype | None, depths: list[int] | None, tolerance: float
) -> dict[str, Any]:
    from vosc.checkpoints.official import load_official
    from vosc.checkpoints.parity import _load, run_depth
    from vosc.models.variants import build_model

    expected, inputs = _load(folder / "expected.pt"), _load(folder / "inputs.pt")
    model = build_model(str(expected["model"]), pretrained=False)
    load_official(model, folder / "checkpoint.pth", strict=True)
    model = model.to(device).eval()
    inputs_d, expected_d = to_device(inputs, device), to_device(expected, device)
    wanted = [int(d) for d in expected["depths"] if depths is None or int(d) in depths]
    per_depth, mism, compared = {}, 0, 0
    with autocast_stages(model, device, dtype):
        for d in wanted:
            r = run_depth(model, inputs_d, expected_d, d)
            per_depth[str(d)] = {k: r[k] for k in ("max_abs_logit_diff", "mask_mismatched_pixels", "seconds")}
            mism += sum(r["mask_mismatched_pixels"])
            compared += sum(r["compared_pixels"])
    max_diff = max(r["max_abs_logit_diff"] for r in per_depth.values())
    return _verdict(str(expected["model"]), dtype, max_diff, mism, compared, tolerance, per_depth)


def _stcn_fixture(
    folder: Path, device: torch.device, dtype: torch.dtype | None, tolerance: float
) -> dict[str, Any]:
    from vosc.checkpoints.stcn import load_stcn_official
    from vosc.checkpoints.stcn_parity import _load, run_protocol
    from vosc.models.stcn import STCN

    expected, inputs = _load(folder / "expected.pt"), _load(folder / "inputs.pt")
    model = STCN()
    load_stcn_official(model, folder / "checkpoint.pth", strict=True)
    model = model.to(device).eval()
    inputs_d, expected_d = to_device(inputs, device), to_device(expected, device)
    runs, mism, compared, fp32_ok = {}, 0, 0, True
    with autocast_stages(model, device, dtype):
        for mode in ("forced", "free"):
            r = run_protocol(model, inputs_d, expected_d, forced=mode == "forced")
            runs[mode] = {
                k: v for k, v in r.items() if k.startswith(("max_abs", "mask_mis", "passed", "seconds"))
            }
            mism += sum(r["mask_mismatched_pixels"])
            compared += sum(r["compared_pixels"])
            fp32_ok &= bool(r["passed"])
    max_diff = max(r["max_abs_logits_diff"] for r in runs.values())
    out = _verdict("stcn", dtype, max_diff, mism, compared, tolerance, runs)
    if dtype is None:  # the fixture's own criteria (forced: 1e-4 everywhere; free: flip-tolerant)
        out["passed"] = fp32_ok
        out["status"] = "ok" if fp32_ok else "failed"
    return out


def _verdict(
    model: str,
    dtype: torch.dtype | None,
    max_diff: float,
    mism: int,
    compared: int,
    tolerance: float,
    detail: dict[str, Any],
) -> dict[str, Any]:
    agreement = 1.0 - mism / max(compared, 1)
    if dtype is None:
        passed = max_diff <= tolerance and mism == 0
        criterion = f"max |logit diff| <= {tolerance:g} and masks exact outside near-ties"
    else:
        passed = agreement >= MASK_AGREEMENT
        criterion = f"mask agreement >= {MASK_AGREEMENT} outside near-ties"
    return {
        "model": model,
        "max_abs_logit_diff": max_diff,
        "mask_mismatched_pixels": mism,
        "compared_pixels": compared,
        "mask_agreement": agreement,
        "criterion": criterion,
        "passed": bool(passed),
        "status": "ok" if passed else "failed",
        "detail": detail,
    }


def fixture_items(box: Box, fixtures: Path, device: torch.device, tiny: bool) -> None:
    """One item per fixture and precision (fp32, fp16, bf16)."""
    from vosc.checkpoints.parity import TOLERANCE

    folders = [
        ("aot-parity/aost", fixtures / "aot-parity" / "aost"),
        ("aot-parity/aott", fixtures / "aot-parity" / "aott"),
        ("stcn-parity/stcn", fixtures / "stcn-parity" / "stcn"),
    ]
    for label, folder in folders:
        for prec, dtype in DTYPES.items():
            skip = None
            if not (folder / "expected.pt").is_file():
                skip = f"fixture not found at {folder} (pass --shared)"
            elif tiny and (label != "aot-parity/aost" or dtype is not None):
                skip = "tiny mode: only aot-parity/aost at depth 1 in fp32 (CPU fp16/bf16 autocast: ~80 s)"
            elif dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                skip = "bf16 not supported by this GPU"

            def fn(folder: Path = folder, dtype: torch.dtype | None = dtype) -> dict[str, Any]:
                if "stcn" in folder.parts[-2]:
                    return _stcn_fixture(folder, device, dtype, TOLERANCE)
                return _aot_fixture(folder, device, dtype, [1] if tiny else None, TOLERANCE)

            box.item(f"{label} {prec}", fn, min_left_s=3.0, skip=skip)


def _segment(model: Any, frames: np.ndarray, mask0: np.ndarray, device: torch.device) -> np.ndarray:
    from vosc.inference.segmenter import VideoSegmenter

    seg = VideoSegmenter(model.to(device).eval(), long_term_gap=2, max_long_edge=None)
    return np.stack([r.mask for r in seg.segment(list(frames), {0: mask0})])


def jf_item(box: Box, fixtures: Path, device: torch.device) -> None:
    """CPU vs device J&F of a whole-video run (``VideoSegmenter``, all 3 layers, long-term gap 2) of the
    ``aot-parity/aost`` weights on its frames (``raw_frames``), scored against the official masks
    (``mask0`` + ``outputs[3].masks``) as ground truth: J&F near 1 on the CPU, and equal on the device."""
    folder = fixtures / "aot-parity" / "aost"
    skip = None if (folder / "checkpoint.pth").is_file() else f"fixture not found at {folder}"

    def fn() -> dict[str, Any]:
        from vosc.checkpoints.official import load_official
        from vosc.checkpoints.parity import _load
        from vosc.metrics.jf import aggregate, evaluate_sequence
        from vosc.models.variants import build_model

        inputs, expected = _load(folder / "inputs.pt"), _load(folder / "expected.pt")
        frames = inputs["raw_frames"].numpy()
        depth = max(int(d) for d in expected["depths"])
        gt = np.concatenate([inputs["mask0"].numpy()[None], expected["outputs"][depth]["masks"].numpy()])
        model = build_model(str(expected["model"]), pretrained=False)
        load_official(model, folder / "checkpoint.pth", strict=True)
        scores, preds = {}, {}
        for name, dev in (("cpu", torch.device("cpu")), ("device", device)):
            preds[name] = _segment(model, frames, gt[0], dev)
            seq_jf = evaluate_sequence(gt, preds[name], sequence="aost-fixture")
            scores[name] = aggregate([seq_jf]).global_["J&F-Mean"]
        diff = abs(scores["cpu"] - scores["device"])
        passed = diff <= JF_TOLERANCE
        return {
            "sequence": "aot-parity/aost (blackswan 0-3, 241x433, 2 objects)",
            "frames": int(frames.shape[0]),
            "jf_cpu": scores["cpu"],
            "jf_device": scores["device"],
            "abs_diff": diff,
            "pixel_agreement": float((preds["cpu"] == preds["device"]).mean()),
            "criterion": f"|J&F cpu - J&F device| <= {JF_TOLERANCE:g}",
            "passed": passed,
            "status": "ok" if passed else "failed",
        }

    box.item("jf cpu-vs-device (aost fixture)", fn, min_left_s=5.0, skip=skip)


def correctness(box: Box, shared: Path, device: torch.device, tiny: bool) -> dict[str, Any]:
    """The correctness part (see the module docstring)."""
    fixtures = shared / "fixtures"
    fixture_items(box, fixtures, device, tiny)
    jf_item(box, fixtures, device)
    return {"mask_agreement_threshold": MASK_AGREEMENT, "jf_tolerance": JF_TOLERANCE}
