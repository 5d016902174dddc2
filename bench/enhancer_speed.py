"""Time per 480p frame (854x480) of the compression-aware enhancer, tiny and base.

Runs ``Enhancer.enhance`` (ImageNet-normalised clip in and out, the way the VOS pipeline calls it) on a
clip of ``--frames`` frames and reports milliseconds per frame (median over ``--rounds``).

Example::

    python bench/enhancer_speed.py --sizes tiny base --device cpu --threads 1 --json /tmp/enh_speed.json
    python bench/enhancer_speed.py --device cuda --json /tmp/enh_speed_gpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from vosc.models.enhancer import CompressionAwareEnhancer
from vosc.utils.io import atomic_write_json


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_size(size: str, device: torch.device, frames: int, height: int, width: int, rounds: int,
               warmup: int, half: bool) -> dict[str, float]:
    """Median / min milliseconds per frame of one size."""
    model = CompressionAwareEnhancer(size).to(device).eval()
    torch.nn.init.normal_(model.tail.weight, std=1e-3)  # a non-trivial residual, as after training
    dtype = torch.float16 if half else torch.float32
    model = model.to(dtype)
    clip = torch.randn(1, frames, 3, height, width, device=device, dtype=dtype)
    q = torch.tensor([42], device=device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + rounds):
            _sync(device)
            t0 = time.perf_counter()
            model.enhance(clip, ["x265"], q)
            _sync(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0 / frames)
    return {"params": sum(p.numel() for p in model.parameters()),
            "ms_per_frame_median": statistics.median(times),
            "ms_per_frame_min": min(times), "fps_median": 1000.0 / statistics.median(times)}


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    p.add_argument("--frames", type=int, default=4, help="frames per timed clip")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--half", action="store_true", help="float16 (GPU)")
    p.add_argument("--json", type=Path, default=None, help="write results here (atomically)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or "cpu"),
        "threads": torch.get_num_threads(), "frame_size": [args.height, args.width], "frames": args.frames,
        "torch": torch.__version__, "half": args.half,
        "sizes": {s: bench_size(s, device, args.frames, args.height, args.width, args.rounds, args.warmup,
                                args.half) for s in args.sizes},
    }
    for size, r in results["sizes"].items():
        print(f"{size:5s} {r['params']:>8d} params  {r['ms_per_frame_median']:9.1f} ms/frame "
              f"(min {r['ms_per_frame_min']:.1f})  {r['fps_median']:.2f} fps  [{results['device']}, "
              f"{results['threads']} threads]")
    if args.json:
        atomic_write_json(args.json, results, indent=2, trailing_newline=False)


if __name__ == "__main__":
    main()
