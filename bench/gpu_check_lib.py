"""Shared pieces of ``bench/gpu_check.py``: time-boxed parts, the result schema, autocast of a network's
stages, device moves and the machine description.

Every part and every item inside a part is a dictionary with at least ``status`` (``ok`` | ``failed`` |
``skipped``), ``seconds`` and, when not ok, ``error`` or ``reason``. The JSON schema is described in the
README ("GPU check").
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("bench.gpu_check")

SCHEMA = "vosc-gpu-check/1"
STATUSES = ("ok", "failed", "skipped")
PARTS = ("correctness", "training", "data_wait", "ddp", "inference")
ITEM_KEYS = ("name", "status", "seconds")
PART_KEYS = ("status", "seconds", "budget_s", "items")


class PartTimeout(Exception):
    """A part ran past its time box (raised by the SIGALRM handler in the main thread)."""


@contextlib.contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`PartTimeout` in the main thread after ``seconds`` (POSIX SIGALRM; no-op elsewhere)."""
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def _raise(_sig: int, _frame: Any) -> None:
        raise PartTimeout(f"time box of {seconds:.0f} s exhausted")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Box:
    """The time box of one part: a monotonic deadline and the items run inside it."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = float(budget_s)
        self.start = time.monotonic()
        self.deadline = self.start + self.budget_s
        self.items: list[dict[str, Any]] = []

    def left(self) -> float:
        """Seconds left in the box."""
        return self.deadline - time.monotonic()

    def item(
        self, name: str, fn: Callable[[], dict[str, Any]], min_left_s: float = 1.0, skip: str | None = None
    ) -> dict[str, Any]:
        """Run ``fn`` as item ``name``; a failure is recorded (with its traceback tail) and not raised.

        ``fn`` returns the item's measurements; it may set ``status`` itself (``failed`` when a check does
        not hold). The item is skipped when ``skip`` gives a reason or fewer than ``min_left_s`` are left.
        """
        entry: dict[str, Any] = {"name": name, "status": "skipped", "seconds": 0.0}
        if skip is not None:
            entry["reason"] = skip
        elif self.left() < min_left_s:
            entry["reason"] = f"time box exhausted ({self.left():.0f} s left, {min_left_s:.0f} s needed)"
        else:
            t0 = time.monotonic()
            try:
                result = fn()
                entry.update({"status": "ok"} | result)
            except PartTimeout:
                entry.update(status="failed", error="time box exhausted during the item")
                entry["seconds"] = round(time.monotonic() - t0, 3)
                self.items.append(entry)
                raise
            except Exception as exc:  # noqa: BLE001 - recorded, the script moves on
                entry.update(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc()[-2000:],
                )
                log.warning("%s failed: %s", name, entry["error"])
            entry["seconds"] = round(time.monotonic() - t0, 3)
        log.info("  %-40s %s (%.1f s)", name, entry["status"], entry["seconds"])
        self.items.append(entry)
        return entry


def run_part(name: str, fn: Callable[[Box], dict[str, Any] | None], budget_s: float) -> dict[str, Any]:
    """Run one part inside its time box; never raises.

    The part is ``failed`` when ``fn`` raised or one of its items failed, ``skipped`` when every item was
    skipped (or the budget is 0), otherwise ``ok``.
    """
    box = Box(budget_s)
    cpu0 = time.process_time()
    part: dict[str, Any] = {
        "status": "ok",
        "seconds": 0.0,
        "budget_s": round(budget_s, 1),
        "items": box.items,
    }
    log.info("part %s (budget %.0f s)", name, budget_s)
    if budget_s <= 0:
        part.update(status="skipped", reason="no time left in the whole-script budget")
        return part
    try:
        with hard_deadline(budget_s + 5.0):
            extra = fn(box)
        if extra:
            part.update(extra)
    except Exception as exc:  # noqa: BLE001 - PartTimeout included: recorded, the script moves on
        part.update(
            status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:]
        )
    part["seconds"] = round(time.monotonic() - box.start, 3)
    part["cpu_s"] = round(time.process_time() - cpu0, 2)  # this process only (not workers / DDP ranks)
    statuses = {i["status"] for i in box.items}
    if part["status"] != "failed":
        if "failed" in statuses:
            part["status"] = "failed"
        elif box.items and statuses == {"skipped"}:
            part["status"] = "skipped"
            part.setdefault("reason", "every item was skipped")
    return part


def validate_result(result: dict[str, Any]) -> list[str]:
    """Problems of a result dictionary against the schema (empty list: valid)."""
    problems = []
    for key in ("schema", "tiny", "device", "machine", "parts", "seconds", "passed"):
        if key not in result:
            problems.append(f"missing top-level key {key!r}")
    if result.get("schema") != SCHEMA:
        problems.append(f"schema is {result.get('schema')!r}, expected {SCHEMA!r}")
    for name in PARTS:
        part = result.get("parts", {}).get(name)
        if part is None:
            problems.append(f"missing part {name!r}")
            continue
        for key in PART_KEYS:
            if key not in part:
                problems.append(f"part {name}: missing {key!r}")
        if part.get("status") not in STATUSES:
            problems.append(f"part {name}: status {part.get('status')!r} not in {STATUSES}")
        for item in part.get("items", []):
            for key in ITEM_KEYS:
                if key not in item:
                    problems.append(f"part {name}, item {item.get('name')}: missing {key!r}")
            if item.get("status") not in STATUSES:
                problems.append(f"part {name}, item {item.get('name')}: status {item.get('status')!r}")
    return problems


# ---------------------------------------------------------------------------------------------- tensors
def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor inside dicts / lists / tuples moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _to_float(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _to_float(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to_float(v) for v in obj)
    return obj


@contextlib.contextmanager
def autocast_stages(model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Run every direct child module of ``model`` (the network's stages: encoder, propagation, decoder,
    ID bank, ...) under ``torch.autocast(dtype)`` and give its floating outputs back as float32.

    The per-video loop (memory bookkeeping, masking of unused identities, upsampling, argmax) stays in
    float32, as in the reference evaluation with AMP. ``dtype=None`` changes nothing.
    """
    if dtype is None:
        yield
        return
    patched: list[nn.Module] = []

    def wrap(child: nn.Module) -> Callable[..., Any]:
        forward = child.forward

        def run(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device.type, dtype=dtype):
                out = forward(*args, **kwargs)
            return _to_float(out)

        return run

    for child in model.children():
        if any(p.is_floating_point() for p in child.parameters()):
            child.forward = wrap(child)  # type: ignore[method-assign]
            patched.append(child)
    try:
        yield
    finally:
        for child in patched:
            del child.forward


def sync(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- machine
def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


#: the most by which a CPU run stretches its default time boxes (a busier machine may still run out of time)
MAX_LOAD_SCALE = 6.0


def load_scale(sample_s: float = 0.25) -> dict[str, float]:
    """How many times slower than on an idle machine this process runs now, for the CPU time boxes.

    Two estimates, the larger kept, within ``[1, MAX_LOAD_SCALE]``: the wall time of a busy loop of
    ``sample_s`` over the CPU time it got (the share of a core this process gets now, whatever the other
    processes' priorities), and the 1-minute load average over the CPU count (the share it gets on average,
    which a short lull does not hide).

    Returns:
        ``{"scale", "wall_over_cpu", "load_per_cpu"}``.
    """
    wall0, cpu0 = time.monotonic(), time.thread_time()
    n = 0
    while time.monotonic() - wall0 < sample_s:
        n += 1
    wall, cpu = time.monotonic() - wall0, time.thread_time() - cpu0
    share = wall / max(cpu, 1e-3)
    per_cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    scale = min(MAX_LOAD_SCALE, max(1.0, share, per_cpu))
    return {"scale": round(scale, 2), "wall_over_cpu": round(share, 2), "load_per_cpu": round(per_cpu, 2)}


def machine_info(repo: Path) -> dict[str, Any]:
    """Platform, torch / CUDA / cuDNN versions, GPUs and the CPU load."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cpu_count": os.cpu_count(),
        "loadavg_1_5_15": list(os.getloadavg()),
        "vosc_commit": _git_commit(repo),
        "gpus": [],
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            info["gpus"].append(
                {
                    "name": prop.name,
                    "capability": f"{prop.major}.{prop.minor}",
                    "memory_gb": round(prop.total_memory / 2**30, 1),
                }
            )
        info["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    return info
