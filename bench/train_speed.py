"""Training throughput of a VOS model: steps/s and clips/s of the real training step (sequential clip,
scalable supervision over all depths, backward, AdamW with the reference's groups, gradient clipping).

Inputs are random frames with two moving square objects (no data loading, no codec), so the number is
the model's cost. Runs on CPU, and on CUDA when available (``--device auto``).

    python bench/train_speed.py --model aost --batch 2 --frames 5 --size 465 --steps 5 --json out.json

``--fixture DIR`` times instead the step of a train-parity fixture (``shared/fixtures/train-parity/aost``:
the official checkpoint, batch, identity permutation and step that ``verify-train`` checks) on CPU, per
depth setting (``--depth-settings``, default each single depth and scalable supervision over all), and
lists the official engine's forward+backward time that the fixture's ``meta.json`` recorded. That time
comes from the fixture generator's machine and thread count: it is context, not a ratio. The official
code is not installed here; to measure the ratio, time the official engine's step (``networks/engines``
``forward`` + ``backward`` + its optimiser step) on the same batch in the same process and thread count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from vosc.lit.vos_module import VOSModule
from vosc.models.variants import build_model
from vosc.types import VOSBatch
from vosc.utils.io import atomic_write_json
from vosc.utils.optim import param_groups

log = logging.getLogger("bench.train_speed")


def make_batch(batch: int, frames: int, size: int, device: torch.device) -> VOSBatch:
    """Random frames ``(B, T, 3, S, S)`` with two moving squares as objects 1 and 2."""
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(batch, frames, 1, size, size, dtype=torch.long)
    s = max(size // 5, 4)
    for t in range(frames):
        o = t * max(size // 50, 1)
        masks[:, t, :, s + o : 2 * s + o, s : 2 * s] = 1
        masks[:, t, :, 3 * s : 4 * s, 2 * s + o : 3 * s + o] = 2
    x = torch.randn(batch, frames, 3, size, size, generator=g) * 0.3 + masks.float() * 0.5
    return VOSBatch(frames=x, masks=masks, num_objects=torch.full((batch,), 2), codec=["x265"] * batch,
                    q=torch.full((batch,), 42), bits=torch.full((batch,), 10_000),
                    sequences=[f"bench{i}" for i in range(batch)]).to(device)


def run(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """Time ``args.steps`` training steps after ``args.warmup`` untimed ones on ``device``."""
    torch.manual_seed(0)
    model = build_model(args.model).to(device)
    mod = VOSModule(model=model, total_steps=1000, alpha=2.0).to(device)
    mod.log_dict = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
    mod.log = lambda *a, **k: None  # type: ignore[method-assign]
    opt = torch.optim.AdamW(param_groups(model, 0.07), lr=2e-4)
    batch = make_batch(args.batch, args.frames, args.size, device)
    use_amp = device.type == "cuda" and args.precision != "32"
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)

    def step() -> None:
        ctx = torch.autocast("cuda", dtype=dtype) if use_amp else nullcontext()
        with ctx:
            loss = mod.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(mod.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "device": device.type if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": "32" if not use_amp else args.precision, "steps": args.steps,
        "steps_per_s": args.steps / wall, "clips_per_s": args.steps * args.batch / wall,
        "cpu_seconds_per_step": cpu / args.steps,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def run_fixture(args: argparse.Namespace) -> dict[str, object]:
    """Time vosc's training step (forward, backward, clipping, AdamW) on a train-parity fixture, CPU."""
    from vosc.checkpoints.train_parity import _load, build_module, fixture_batch

    fdir = Path(args.fixture)
    expected, meta = _load(fdir / "expected.pt"), _load(fdir / "meta.json")
    module = build_module(expected, meta, fdir / "checkpoint.pth")
    batch, perm = fixture_batch(_load(fdir / "batch.pt"))
    step = int(expected["cases"][args.case]["step"])
    opt = torch.optim.AdamW(param_groups(module.model, 0.07), lr=2e-4)
    settings = args.depth_settings or [[d] for d in module.depths] + [list(module.depths)]
    per_setting: dict[str, dict[str, object]] = {}
    out: dict[str, object] = {"fixture": str(fdir), "case": args.case, "step": step,
                              "per_depth_setting": per_setting}
    for depths in settings:
        module.depths = sorted(depths)
        times = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            module.training_loss(batch, step, perm).loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
            opt.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        key = ",".join(str(d) for d in module.depths)
        median = sorted(times)[len(times) // 2]
        per_setting[key] = {"median_s": median, "times_s": times}
        log.info("depths %s: median %.3f s per step", key, median)
    out["official_forward_backward_s_from_meta"] = {
        "cases_s": meta.get("timings", {}).get("cases_s"),
        "threads": meta.get("environment", {}).get("torch_threads"),
        "note": "seconds per case recorded by the fixture generator (official engine, scalable supervision, "
                "with its read-only taps, no optimiser step) on its machine: context, not comparable",
    }
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run on the requested devices, print and optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="aost",
                   help="variant (conf/model/<name>.yaml) for vosc.models.variants.build_model")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--size", type=int, default=465, help="square crop size")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, plus CUDA when available")
    p.add_argument("--precision", choices=("32", "16", "bf16"), default="16", help="CUDA autocast precision")
    p.add_argument("--json", type=Path, default=None, help="write results here")
    p.add_argument("--fixture", type=Path, default=None, help="a train-parity fixture folder (CPU timing)")
    p.add_argument("--case", default="step25000", help="--fixture: the case whose step is timed")
    p.add_argument("--depth-settings", type=lambda s: [int(x) for x in s.split(",")], nargs="*", default=None,
                   help="--fixture: supervised depth sets, e.g. 1 2 3 1,2,3 (default: each depth and all)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fixture is not None:
        res = run_fixture(args)
        res["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}
        print(json.dumps(res, indent=2))
        if args.json:
            atomic_write_json(args.json, res, indent=2, trailing_newline=False)
        return
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    results = []
    for dev in devices:
        r = run(args, dev)
        log.info("%s: %.3f steps/s, %.3f clips/s", r["device"], r["steps_per_s"], r["clips_per_s"])
        results.append(r)
    out = {"config": vars(args) | {"json": str(args.json) if args.json else None},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()}, "results": results}
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out, indent=2, trailing_newline=False)


if __name__ == "__main__":
    main()
