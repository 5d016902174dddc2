"""Peak memory of VideoSegmenter against video length, with and without a long-term memory cap.

Each measurement runs in a fresh process (``--child``): a procedural video (a textured background that
pans, one moving ellipse; frames generated one at a time, never held together) is streamed through
:class:`~vosc.inference.segmenter.VideoSegmenter` on the CPU, and the process's peak resident set
(``VmHWM`` of ``/proc/self/status``) is read at the end. ``base_rss_mb`` is the resident set after the
model is built and before the first frame (Python, torch, the weights); ``peak_rss_mb - base_rss_mb`` is
the working memory of the run (memory, activations, allocator caches).

What grows without a cap is the long-term memory: one entry every ``long_term_gap`` frames (AOT/AOST:
per-layer keys and values of every token, stored once per entry plus once in the concatenated copy that
the attention reads). The compute also grows with it (each frame attends to every entry), so an uncapped
run's time per frame grows with its length and the whole run with frames².

Each child logs a progress line every ``--every`` frames to stderr (frame, resident set, seconds); the
parent rewrites ``--json`` after every finished measurement, so a long session keeps what it measured.

Example (the table of docs/models.md, "Long videos: memory limits")::

    python bench/memory_long_video.py --lengths 100 1000 5000 --caps 4 --size 432x240 \\
        --model aost --json memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's vosc, whatever is installed


def _vm_kb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def synthetic_stream(frames: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``frames`` RGB frames ``(H, W, 3)`` uint8, generated one at a time (a panning texture + a moving
    ellipse)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, size=(height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    tex = np.kron(tex, np.ones((8, 8, 1), dtype=np.uint8))
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(frames):
        frame = np.roll(tex, t % 8, axis=1)[:height, :width].copy()
        cx = width * (0.5 + 0.3 * np.sin(t / 25.0))
        inside = ((xx - cx) / (0.12 * width)) ** 2 + ((yy - height / 2) / (0.2 * height)) ** 2 < 1
        frame[inside] = (220, 40, 40)
        yield frame


def first_mask(width: int, height: int) -> np.ndarray:
    """The ellipse of frame 0 as object 1, ``(H, W)`` uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    return (((xx - width / 2) / (0.12 * width)) ** 2 + ((yy - height / 2) / (0.2 * height)) ** 2 < 1).astype(
        np.uint8)


def _nbytes(obj: Any) -> int:
    """Bytes of the distinct tensors inside a nested list/tuple/dict."""
    import torch

    seen: dict[int, int] = {}

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            seen[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(obj)
    return sum(seen.values())


def child(frames: int, width: int, height: int, model: str, cap: int | None, offload: bool,
          threads: int, every: int = 0) -> dict[str, Any]:
    """One measurement in this process (see the module docstring)."""
    import torch

    import vosc

    torch.set_num_threads(threads)
    seg = vosc.load_model(None, model=model, max_long_term=cap, offload=offload, depth=None)
    props: list[Any] = []  # the propagators the segmenter builds, to size their memory at the end
    new_propagator = seg._new_propagator
    seg._new_propagator = lambda: props.append(new_propagator()) or props[-1]  # type: ignore[method-assign]
    base = _vm_kb("VmRSS") / 1024
    t0 = time.perf_counter()
    n = 0
    for _ in seg.run(synthetic_stream(frames, width, height), {0: first_mask(width, height)}):
        n += 1
        if every and n % every == 0:
            sys.stderr.write(f"frame {n}/{frames} rss {_vm_kb('VmRSS') / 1024:.0f} MB "
                             f"peak {_vm_kb('VmHWM') / 1024:.0f} MB {time.perf_counter() - t0:.0f} s "
                             f"load {os.getloadavg()[0]:.1f}\n")
            sys.stderr.flush()
    seconds = time.perf_counter() - t0
    entries = sum(len(p.memory.long) for p in props)
    held = sum(_nbytes(p.memory.long) + _nbytes(p.memory.cache) + _nbytes(p.memory.short) for p in props)
    return {"long_term_entries": entries, "memory_mb": round(held / 2**20, 2), "frames": n,
            "size": f"{width}x{height}", "model": model, "max_long_term": cap, "offload": offload,
            "threads": threads, "base_rss_mb": round(base, 1),
            "peak_rss_mb": round(_vm_kb("VmHWM") / 1024, 1),
            "seconds": round(seconds, 1), "s_per_frame": round(seconds / max(n, 1), 4),
            "load_1min": os.getloadavg()[0]}


def measure(frames: int, size: str, model: str, cap: int | None, offload: bool = False,
            threads: int = 1, timeout: float | None = None, every: int = 0) -> dict[str, Any]:
    """Run :func:`child` in a fresh Python process and return its result (its progress lines, with
    ``every`` > 0, go to this process's stderr)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--lengths", str(frames), "--size", size,
           "--model", model, "--caps", "none" if cap is None else str(cap), "--threads", str(threads),
           "--every", str(every)]
    if offload:
        cmd.append("--offload")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if every else subprocess.PIPE, text=True,
                          timeout=timeout, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed ({' '.join(cmd)}):\n{(proc.stderr or '')[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 5000])
    p.add_argument("--caps", nargs="+", default=["none", "8"], help="max_long_term values ('none': no cap)")
    p.add_argument("--size", default="854x480", help="WxH")
    p.add_argument("--model", default="aost", help="conf/model name (random weights: memory does not care)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--offload", action="store_true")
    p.add_argument("--every", type=int, default=0, help="a progress line every N frames (0: none)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    caps = [None if c == "none" else int(c) for c in args.caps]
    if args.child:
        sys.stdout.write(json.dumps(child(args.lengths[0], width, height, args.model, caps[0], args.offload,
                                          args.threads, args.every)) + "\n")
        return
    rows = []
    for cap in caps:
        for n in args.lengths:
            row = measure(n, args.size, args.model, cap, args.offload, args.threads, every=args.every)
            sys.stderr.write(json.dumps(row) + "\n")
            rows.append(row)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    sys.stdout.write(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
