"""Training throughput of a VOS model: steps/s and clips/s of the real training step (sequential clip,
scalable supervision over all depths, backward, AdamW with the reference's groups, gradient clipping).

Inputs are random frames with two moving square objects (no data loading, no codec), so the number is
the model's cost. Runs on CPU, and on CUDA when available (``--device auto``).

    python bench/train_speed.py --model aost --batch 2 --frames 5 --size 465 --steps 5 --json out.json

``--fixture DIR`` times instead the step of a train-parity fixture (``shared/fixtures/train-parity/aost``:
the official checkpoint, batch, identity permutation and step that ``verify-train`` checks) on CPU, per
depth setting (``--depth-settings``, default each single depth and scalable supervision over all), and
lists the official engine's forward+backward time that the fixture's ``meta.json`` recorded. That time
comes from the fixture generator's machine and thread count: it is context, not a ratio.

``--fixture DIR --reference EXPORT`` measures the ratio: vosc's step and the official engine's step
(``yoxu515/aot-benchmark`` branch ``paot``, exported with ``git archive`` outside the repository;
``bench/official_aost.py`` builds it) on the same batch, checkpoint, ``step`` and thread count (default 1),
in one process on CPU, interleaved (vosc, official, official, vosc, ...: ``--repeats`` pairs, each side's
median) so that load on the machine affects both alike. Per depth setting it reports both medians (wall and
CPU time), the ratio official / vosc, and the two losses of the first step (the same computation: they
agree to float rounding). ``--crop S`` takes the top-left ``S x S`` of the batch (a quick run)::

    python bench/train_speed.py --fixture ../shared/fixtures/train-parity/aost \
        --reference /path/to/aot-official --repeats 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

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
    """Time vosc's training step (:class:`VoscStep`: forward, backward, clipping, AdamW) on a train-parity
    fixture, CPU, per depth setting."""
    from vosc.checkpoints.train_parity import _load

    fdir = Path(args.fixture)
    expected, meta = _load(fdir / "expected.pt"), _load(fdir / "meta.json")
    step = int(expected["cases"][args.case]["step"])
    all_depths = [int(d) for d in expected["depths"]]
    settings = args.depth_settings or [[d] for d in all_depths] + [all_depths]
    per_setting: dict[str, dict[str, object]] = {}
    out: dict[str, object] = {"fixture": str(fdir), "case": args.case, "step": step, "crop": args.crop,
                              "per_depth_setting": per_setting}
    for depths in settings:
        vosc = VoscStep(fdir, step, depths, args.crop)
        times = [_timed(vosc)[0] for _ in range(args.warmup + args.steps)][args.warmup:]
        key = ",".join(str(d) for d in sorted(depths))
        per_setting[key] = {"median_s": _median(times), "times_s": times}
        log.info("depths %s: median %.3f s per step", key, _median(times))
    out["official_forward_backward_s_from_meta"] = {
        "cases_s": meta.get("timings", {}).get("cases_s"),
        "threads": meta.get("environment", {}).get("torch_threads"),
        "note": "seconds per case recorded by the fixture generator (official engine, scalable supervision, "
                "with its read-only taps, no optimiser step) on its machine: context, not comparable "
                "(--reference measures the ratio)",
    }
    return out


def _crop_batch(batch: VOSBatch, crop: int | None) -> VOSBatch:
    """The top-left ``crop x crop`` of every frame and mask ``(B, T, C, S, S)`` (``None``: unchanged)."""
    if crop is None:
        return batch
    return VOSBatch(frames=batch.frames[..., :crop, :crop].contiguous(),
                    masks=batch.masks[..., :crop, :crop].contiguous(), num_objects=batch.num_objects,
                    codec=batch.codec, q=batch.q, bits=batch.bits, sequences=batch.sequences)


class VoscStep:
    """vosc's training step on a train-parity fixture: :meth:`VOSModule.training_loss` (what
    ``training_step`` back-propagates), ``backward``, the trainer's gradient clipping (norm 5) and AdamW
    with :meth:`VOSModule.configure_optimizers`' groups.

    Args:
        fixture: The fixture folder.
        step: The training step (schedules).
        depths: Supervised depths.
        crop: Optional top-left crop of the batch.
    """

    def __init__(self, fixture: Path, step: int, depths: list[int], crop: int | None = None) -> None:
        from vosc.checkpoints.train_parity import _load, build_module, fixture_batch

        self.module = build_module(_load(fixture / "expected.pt"), _load(fixture / "meta.json"),
                                   fixture / "checkpoint.pth")
        self.module.depths = sorted(depths)
        self.state = {k: v.clone() for k, v in self.module.state_dict().items()}
        batch, self.perm = fixture_batch(_load(fixture / "batch.pt"))
        self.batch = _crop_batch(batch, crop)
        self.step = int(step)
        self.opt = torch.optim.AdamW(param_groups(self.module.model, 0.07), lr=2e-4)

    def reset_weights(self) -> None:
        """Back to the fixture's checkpoint, with a fresh optimiser state."""
        self.module.load_state_dict(self.state)
        self.opt.state.clear()

    def __call__(self) -> float:
        """One step; returns the loss."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.module.training_loss(self.batch, self.step, self.perm).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 5.0)
        self.opt.step()
        return float(loss.detach())


def _timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """``(wall seconds, CPU seconds, loss)`` of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    loss = fn()
    return time.perf_counter() - t0, time.process_time() - c0, loss


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def compare_setting(vosc: VoscStep, official: Callable[[], float], repeats: int, warmup: int
                    ) -> dict[str, Any]:
    """Interleave ``repeats`` pairs of steps (vosc first in even pairs, official first in odd ones) after
    ``warmup`` untimed pairs; the first pair starts from the checkpoint on both sides (its losses are
    compared).

    Returns:
        ``{"vosc": {...}, "official": {...}, "ratio_wall", "ratio_cpu", "loss_vosc", "loss_official"}``;
        ratio = official median / vosc median (> 1: vosc is faster).
    """
    vosc.reset_weights()
    getattr(official, "reset_weights", lambda: None)()
    times: dict[str, dict[str, list[float]]] = {k: {"wall_s": [], "cpu_s": []} for k in ("vosc", "official")}
    first: dict[str, float] = {}
    sides: dict[str, Callable[[], float]] = {"vosc": vosc, "official": official}
    for i in range(warmup + repeats):
        order = ("vosc", "official") if i % 2 == 0 else ("official", "vosc")
        for side in order:
            wall, cpu, loss = _timed(sides[side])
            first.setdefault(side, loss)
            if i >= warmup:
                times[side]["wall_s"].append(wall)
                times[side]["cpu_s"].append(cpu)
    out: dict[str, Any] = {}
    for side, t in times.items():
        out[side] = t | {"median_wall_s": _median(t["wall_s"]), "median_cpu_s": _median(t["cpu_s"])}
    out["ratio_wall"] = out["official"]["median_wall_s"] / out["vosc"]["median_wall_s"]
    out["ratio_cpu"] = out["official"]["median_cpu_s"] / out["vosc"]["median_cpu_s"]
    out["loss_vosc"], out["loss_official"] = first["vosc"], first["official"]
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_reference(args: argparse.Namespace) -> dict[str, Any]:
    """vosc's step against the official engine's, per depth setting, interleaved in this process (CPU)."""
    from official_aost import OfficialStep

    from vosc.checkpoints.train_parity import _load

    fdir = Path(args.fixture)
    expected = _load(fdir / "expected.pt")
    step = int(expected["cases"][args.case]["step"])
    all_depths = [int(d) for d in expected["depths"]]
    settings = args.depth_settings or [[d] for d in all_depths] + [all_depths]
    load_before = list(os.getloadavg())
    rows: dict[str, Any] = {}
    for depths in settings:
        depths = sorted(depths)
        key = "scalable " + ",".join(map(str, depths)) if depths == all_depths else f"d{depths[0]}"
        vosc = VoscStep(fdir, step, depths, args.crop)
        official = OfficialStep(args.reference, fdir, step, None if depths == all_depths else depths,
                                args.crop)
        rows[key] = compare_setting(vosc, official, args.repeats, args.warmup) | {"depths": depths}
        r = rows[key]
        log.info("%s: vosc %.3f s, official %.3f s (wall medians), official/vosc %.2fx (CPU time %.2fx); "
                 "first-step loss %.7f vs %.7f; load %.2f", key, r["vosc"]["median_wall_s"],
                 r["official"]["median_wall_s"], r["ratio_wall"], r["ratio_cpu"], r["loss_vosc"],
                 r["loss_official"], os.getloadavg()[0])
    return {"fixture": str(fdir), "reference": str(args.reference), "case": args.case, "step": step,
            "crop": args.crop, "repeats": args.repeats, "warmup": args.warmup, "per_depth_setting": rows,
            "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": list(os.getloadavg())}


def format_reference(res: dict[str, Any]) -> str:
    """Markdown table of :func:`run_reference`."""
    lines = ["| depth setting | vosc (s) | official (s) | official / vosc | CPU-time ratio | loss vosc | "
             "loss official |", "|---|---|---|---|---|---|---|"]
    for key, r in res["per_depth_setting"].items():
        lines.append(f"| {key} | {r['vosc']['median_wall_s']:.3f} | {r['official']['median_wall_s']:.3f} | "
                     f"{r['ratio_wall']:.2f}x | {r['ratio_cpu']:.2f}x | {r['loss_vosc']:.7f} | "
                     f"{r['loss_official']:.7f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
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
    p.add_argument("--reference", type=Path, default=None,
                   help="--fixture: an export of the official code (yoxu515/aot-benchmark, branch paot): "
                        "time its step against vosc's, interleaved in one process (CPU, --threads: 1)")
    p.add_argument("--repeats", type=int, default=5, help="--reference: timed pairs of steps per setting")
    p.add_argument("--crop", type=int, default=None,
                   help="--fixture: top-left S x S of the batch (S = 16k + 1), a quicker run")
    return p


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, torch version and torch threads (now) of the timing machine."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def run_devices(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run` on the CPU (``--device auto|cpu``) and on CUDA (``auto|cuda``, when available); the
    results with the configuration and the machine."""
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    results = []
    for dev in devices:
        r = run(args, dev)
        log.info("%s: %.3f steps/s, %.3f clips/s", r["device"], r["steps_per_s"], r["clips_per_s"])
        results.append(r)
    return {"config": vars(args) | {"json": str(args.json) if args.json else None},
            "machine": machine_info(), "results": results}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run on the requested devices, print and optionally write JSON."""
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.reference is not None and args.fixture is None:
        p.error("--reference needs --fixture (the batch and checkpoint both sides run)")
    if args.reference is not None and not args.threads:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    res: dict[str, Any]
    if args.reference is not None:
        res = run_reference(args)
        res["machine"] = {"cpu": cpu_model()} | machine_info()
        print(format_reference(res))
    elif args.fixture is not None:
        res = run_fixture(args)
        res["machine"] = machine_info()
        print(json.dumps(res, indent=2))
    else:
        res = run_devices(args)
        print(json.dumps(res, indent=2))
    if args.json:
        atomic_write_json(args.json, res, indent=2, trailing_newline=False)


if __name__ == "__main__":
    main()
