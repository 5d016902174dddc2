"""Inference part of ``bench/gpu_check.py``: frames per second of the per-video loop.

Protocol of ``bench/model_speed.py`` (whose input maker, runners and summary are reused): 480p-size frames
(481x849 network input), 2 objects, long-term memory every 5 frames; each timed frame is one full
propagation step (encode, (S-)LSTT against the memory, decode, upsample, argmax, memory update). One item
per model (AOST at n' = 1/2/3, R50-AOST, AOT-L, R50-AOT-L) x precision (fp32; fp16 = the network's
stages under autocast float16) x ``torch.compile`` (off / on: each stage of the network compiled with
``--compile-backend``). Compiled runs go last so that a slow compilation only costs the compiled
items. With ``--reference PATH`` the official pure-torch AOST path is timed in the same run (fp32).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch
from gpu_check_lib import Box, autocast_stages

# (label, vosc variant, depth, official name)
MODELS = [
    ("aost n'=1", "aost", 1, None),
    ("aost n'=2", "aost", 2, None),
    ("aost n'=3", "aost", 3, None),
    ("r50_aost", "r50_aost", 3, None),
    ("aotl", "aotl", 3, "AOTL"),
    ("r50_aotl", "r50_aotl", 3, "R50-AOTL"),
]
TINY_MODELS = ("aost n'=1", "aost n'=2", "aost n'=3", "aotl")
MODEL_ZOO = (
    "https://github.com/yoxu515/aot-benchmark/blob/0055837deeef473f73de8716fb05078d07d6c44e/MODEL_ZOO.md"
)
# Facts from the official MODEL_ZOO.md (DAVIS-2017 val, multi-object FPS, one V100, fp32 evaluation, no TTA).
PUBLISHED_FPS = [
    {"model": "AOTT", "fps": 51.4},
    {"model": "AOTS", "fps": 40.0},
    {"model": "AOTB", "fps": 29.6},
    {"model": "AOTL", "fps": 18.7},
    {"model": "R50-AOTL", "fps": 18.0},
    {"model": "SwinB-AOTL", "fps": 9.3},
]
PUBLISHED_NOTE = (
    "yoxu515/aot-benchmark MODEL_ZOO.md, table 'DAVIS-2017 val' (PRE_YTB_DAV models); settings: "
    "NVIDIA V100, AMP disabled in evaluation, no test-time augmentation, 480p, multi-object FPS. "
    "AOST (branch paot) has no FPS in that file."
)


def _fps(summary: dict[str, Any]) -> float:
    return 1.0 / summary["median_s"]


def _compile(model: torch.nn.Module, backend: str) -> None:
    for child in model.children():
        if any(True for _ in child.parameters()):
            child.compile(backend=backend, dynamic=None)


def _time(
    runner: Any,
    depth: int,
    clip: torch.Tensor,
    mask0: torch.Tensor,
    warmup: int,
    device: torch.device,
    dtype: torch.dtype | None,
) -> dict[str, Any]:
    from model_speed import _summary

    with autocast_stages(runner.model, device, dtype):
        times = runner.time_frames(depth, clip, mask0, 2, warmup)
    s = _summary(times)
    return {"fps": _fps(s), "median_s": s["median_s"], "min_s": s["min_s"], "timed_frames": s["n"]}


def inference(
    box: Box,
    device: torch.device,
    tiny: bool,
    size: tuple[int, int],
    frames: int,
    warmup: int,
    compile_backend: str,
    reference: Path | None,
) -> dict[str, Any]:
    """FPS items (see the module docstring); returns the published table and the comparison."""
    from model_speed import OursRunner, make_inputs

    clip, mask0 = make_inputs(size, 2, 1 + warmup + frames, device)
    runners: dict[str, Any] = {}
    fps: dict[str, float] = {}

    def run_ours(variant: str, depth: int, dtype: torch.dtype | None, compiled: bool) -> dict[str, Any]:
        key = f"{variant}/{compiled}"
        if key not in runners:
            torch.manual_seed(0)
            runners[key] = OursRunner(variant, device)
            if compiled:
                _compile(runners[key].model, compile_backend)
        out = _time(runners[key], depth, clip, mask0, warmup, device, dtype)
        return out | {"compile_backend": compile_backend if compiled else None}

    for compiled in (False, True):
        for label, variant, depth, _official in MODELS:
            for prec, dtype in (("fp32", None), ("fp16", torch.float16)):
                name = f"{label} {prec} {'compiled' if compiled else 'eager'}"
                entry = box.item(
                    name,
                    lambda v=variant, d=depth, t=dtype, c=compiled: run_ours(v, d, t, c),
                    min_left_s=30.0 if compiled and not tiny else 3.0,
                    skip=_infer_skip(tiny, label, dtype, compiled),
                )
                if entry["status"] == "ok":
                    fps[name] = entry["fps"]
        runners.clear()
        if not compiled and reference is not None:  # before the compiled items, which may use up the box
            _reference_items(box, reference, device, clip, mask0, warmup, fps)
    comparison = []
    for label, _variant, _depth, official in MODELS:
        pub = next((p["fps"] for p in PUBLISHED_FPS if p["model"] == official), None)
        ours = fps.get(f"{label} fp32 eager")
        if pub is not None:
            comparison.append(
                {
                    "model": label,
                    "published_fps_v100": pub,
                    "vosc_fps_fp32_eager": ours,
                    "ratio": None if ours is None else ours / pub,
                }
            )
    return {
        "size_hw": list(size),
        "objects": 2,
        "long_term_gap": 5,
        "timed_frames": frames,
        "warmup": warmup,
        "published_fps": {"source": MODEL_ZOO, "note": PUBLISHED_NOTE, "rows": PUBLISHED_FPS},
        "comparison": comparison,
    }


def _infer_skip(tiny: bool, label: str, dtype: torch.dtype | None, compiled: bool) -> str | None:
    if tiny and label not in TINY_MODELS:
        return "tiny mode: not run"
    if tiny and label != "aost n'=1" and (compiled or dtype is not None):
        return "tiny mode: fp16 and compile only for aost n'=1"
    if tiny and compiled and dtype is not None:
        return "tiny mode: compile only in fp32"
    return None


def _reference_items(
    box: Box,
    path: Path,
    device: torch.device,
    clip: torch.Tensor,
    mask0: torch.Tensor,
    warmup: int,
    fps: dict[str, float],
) -> None:
    """The official AOST (pure-torch path, ``bench/model_speed.py``'s runner) at n' = 1/2/3, fp32 eager."""
    from model_speed import ReferenceRunner

    runner: list[Any] = []

    def fn(depth: int) -> dict[str, Any]:
        if not runner:
            runner.append(ReferenceRunner(path, "aost", device))
        return _reference(runner[0], depth, clip, mask0, warmup, fps.get(f"aost n'={depth} fp32 eager"))

    for depth in (1, 2, 3):
        box.item(f"official aost n'={depth} fp32 eager (reference)", lambda d=depth: fn(d), min_left_s=5.0)


def _reference(
    ref: Any, depth: int, clip: torch.Tensor, mask0: torch.Tensor, warmup: int, ours_fps: float | None
) -> dict[str, Any]:
    times = ref.time_frames(depth, clip, mask0, 2, warmup)
    med = statistics.median(t for t, _ in times)
    out: dict[str, Any] = {"fps": 1.0 / med, "median_s": med, "timed_frames": len(times)}
    if ours_fps is not None:
        out["vosc_speedup"] = ours_fps * med
    return out
