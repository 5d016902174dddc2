"""GPU readiness check: does vosc work on this CUDA machine, and how fast is it? One run, <= 8 minutes.

Parts (each in its own time box, ``--budget-s``; a failure is recorded and the script moves on):

1. ``correctness``: the parity fixtures on the device in fp32 (within their tolerance) and under autocast
   fp16 / bf16 (masks agree on >= 99.9 % of pixels); a short inference whose J&F equals the CPU J&F
   (``bench/gpu_check_correct.py``).
2. ``training``: steps/s, clips/s and peak memory at the shapes of ``experiment=main_x265`` (465x465,
   5 frames, batch 4) for AOST and R50-AOST in 16-mixed and bf16-mixed (``bench/gpu_check_train.py``).
3. ``data_wait``: share of step time waiting for data with N workers coding x265 on the fly, clip and
   sequence mode.
4. ``ddp``: a 2-process DDP run (one GPU shared, or all GPUs when there are several).
5. ``inference``: FPS at 480p, 2 objects, memory every 5 frames, for AOST n'=1/2/3, R50-AOST, AOT-L,
   R50-AOT-L in fp32 / fp16, eager / ``torch.compile``, with the official published FPS
   (``bench/gpu_check_infer.py``); ``--reference PATH`` times the official pure-torch AOST too.

Writes one JSON file (schema ``vosc-gpu-check/1``, docs/gpu-check.md) and prints a table.

On a GPU the default boxes add up to the 8-minute total. On the CPU (``--device cpu``) each default box, and
the total, is stretched by how loaded the machine is when the part starts (``load_scale`` in
``gpu_check_lib``: 1 on an idle machine, about 2 at load 4 on 2 cores, at most 6), so that the dry mode
passes on a busy CI machine; ``--budget-s`` / ``--total-s`` given on the command line are used as given.

    python bench/gpu_check.py --json gpu_check.json                    # on the GPU machine
    python bench/gpu_check.py --device cpu --tiny --json dry.json      # CPU dry run (CI, < 1 minute)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's vosc, whatever the editable install points at
sys.path.insert(1, str(REPO / "bench"))

import torch  # noqa: E402
from gpu_check_correct import correctness  # noqa: E402
from gpu_check_infer import inference  # noqa: E402
from gpu_check_lib import PARTS, SCHEMA, load_scale, machine_info, run_part, validate_result  # noqa: E402
from gpu_check_train import data_wait, ddp, training  # noqa: E402

from vosc.utils.io import atomic_write_json  # noqa: E402

log = logging.getLogger("bench.gpu_check")
# default time boxes (s); their sum plus start-up stays under the 8-minute total (CPU: scaled by the load)
BUDGETS = {"correctness": 60.0, "training": 150.0, "data_wait": 70.0, "ddp": 50.0, "inference": 110.0}
TINY_BUDGETS = {"correctness": 25.0, "training": 25.0, "data_wait": 25.0, "ddp": 40.0, "inference": 20.0}


def parse_budgets(values: list[str], tiny: bool) -> dict[str, float]:
    """``--budget-s`` values: ``S`` (every part) and/or ``part=S``."""
    budgets = dict(TINY_BUDGETS if tiny else BUDGETS)
    for v in values:
        name, _, sec = v.rpartition("=")
        if name and name not in budgets:
            raise SystemExit(f"--budget-s {v}: unknown part {name!r}; parts: {', '.join(PARTS)}")
        try:
            seconds = float(sec)
        except ValueError:
            raise SystemExit(f"--budget-s {v}: {sec!r} is not a number of seconds") from None
        for key in [name] if name else list(budgets):
            budgets[key] = seconds
    return budgets


def explicit_parts(values: list[str]) -> set[str]:
    """The parts whose time box ``--budget-s`` sets (every part for a bare ``S``)."""
    names = {v.rpartition("=")[0] for v in values}
    return set(PARTS) if "" in names else names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults that depend on ``--tiny`` are filled in by :func:`resolve_defaults`)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _add_run_args(p)
    _add_part_args(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The whole run's arguments: device, sizes, files, time boxes and the parts to run."""
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="dry-run sizes (tiny models and crops, a few steps)")
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="result file, written atomically (default: <work-dir>/gpu_check.json)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="generated data, caches and run folders (default: outputs/gpu_check)",
    )
    p.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("VOSC_SHARED", REPO.parent / "shared")),
        help="the shared/ folder with fixtures/ and data/ (env VOSC_SHARED)",
    )
    p.add_argument(
        "--budget-s",
        nargs="*",
        default=[],
        metavar="[PART=]S",
        help=f"time box per part in seconds, all parts or PART=S; defaults {BUDGETS}",
    )
    p.add_argument(
        "--total-s",
        type=float,
        default=None,
        help="whole-script time box, parts are cut to fit (default 470; tiny 150)",
    )
    p.add_argument(
        "--parts", nargs="+", default=list(PARTS), choices=PARTS, help="parts to run (others skipped)"
    )


def _add_part_args(p: argparse.ArgumentParser) -> None:
    """The parts' own arguments: steps, DDP launch, data workers, models, FPS frames, reference."""
    p.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 100; tiny 1)")
    p.add_argument(
        "--data-steps", type=int, default=None, help="timed steps per data-wait run (default 30; tiny 2)"
    )
    p.add_argument(
        "--ddp-launch",
        default="auto",
        choices=("auto", "fork", "subprocess"),
        help="DDP processes: forked (CPU only) or worker subprocesses (auto: fork on CPU, else subprocess)",
    )
    p.add_argument("--ddp-steps", type=int, default=None, help="timed DDP steps (default 20; tiny 2)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="data-loader workers coding x265 (default: min(8, CPUs - 2); tiny 1)",
    )
    p.add_argument("--models", nargs="+", default=["aost", "r50_aost"], help="training models")
    p.add_argument("--precisions", nargs="+", default=["16-mixed", "bf16-mixed"], help="training precisions")
    p.add_argument(
        "--fps-frames", type=int, default=None, help="timed frames per FPS item (default 20; tiny 2)"
    )
    p.add_argument(
        "--compile-backend", default=None, help="torch.compile backend (default inductor; tiny eager)"
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="export of yoxu515/aot-benchmark branch paot: time its pure-torch AOST path too",
    )


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the defaults that depend on ``--tiny`` and the parsed time boxes (``args``, updated)."""
    tiny = args.tiny
    args.train_steps = args.train_steps or (1 if tiny else 100)
    args.data_steps = args.data_steps or (2 if tiny else 30)
    args.ddp_steps = args.ddp_steps or (2 if tiny else 20)
    args.workers = (
        args.workers
        if args.workers is not None
        else (1 if tiny else max(1, min(8, (os.cpu_count() or 4) - 2)))
    )
    args.fps_frames = args.fps_frames or (2 if tiny else 20)
    args.compile_backend = args.compile_backend or ("eager" if tiny else "inductor")
    args.work_dir = (args.work_dir or REPO / "outputs" / "gpu_check").resolve()
    args.budgets = parse_budgets(args.budget_s, tiny)
    args.explicit_budgets = sorted(explicit_parts(args.budget_s))
    args.json = args.json or args.work_dir / "gpu_check.json"
    args.explicit_total = args.total_s is not None
    args.total_s = args.total_s or (150.0 if tiny else 470.0)
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments, with every default resolved."""
    return resolve_defaults(build_parser().parse_args(argv))


def _part_fn(name: str, args: argparse.Namespace, device: torch.device) -> Any:
    work = args.work_dir
    if name == "correctness":
        return lambda box: correctness(box, args.shared, device, args.tiny)
    if name == "training":
        return lambda box: training(
            box, work, device, args.tiny, args.train_steps, args.models, args.precisions
        )
    if name == "data_wait":
        return lambda box: data_wait(box, work, device, args.tiny, args.data_steps, args.workers)
    if name == "ddp":
        return lambda box: ddp(box, work, device, args.tiny, args.ddp_steps, args.ddp_launch)
    size = (65, 113) if args.tiny else (481, 849)
    return lambda box: inference(
        box,
        device,
        args.tiny,
        size,
        args.fps_frames,
        1 if args.tiny else 5,
        args.compile_backend,
        args.reference,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the parts in order, each in its time box, within ``--total-s``."""
    start = time.monotonic()
    device = torch.device(args.device)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "tiny": bool(args.tiny),
        "device": args.device,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(REPO),
        "parts": {},
    }
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda: torch.cuda.is_available() is False (no GPU, or a CPU-only torch build; "
            "see README 'Install'); use --device cpu --tiny for the dry run"
        )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    scale_max = 1.0
    for name in PARTS:
        if name not in args.parts:
            result["parts"][name] = {
                "status": "skipped",
                "seconds": 0.0,
                "budget_s": 0.0,
                "items": [],
                "reason": "not in --parts",
            }
            continue
        load = load_scale() if device.type == "cpu" else None  # the CPU boxes stretch with the load
        scale = load["scale"] if load else 1.0
        scale_max = max(scale_max, scale)
        total = args.total_s * (1.0 if args.explicit_total else scale_max)
        left = total - (time.monotonic() - start)
        box = args.budgets[name] * (1.0 if name in args.explicit_budgets else scale)
        result["parts"][name] = run_part(name, _part_fn(name, args, device), min(box, max(left - 5.0, 0.0)))
        if load:
            result["parts"][name]["load_scale"] = load
    result["seconds"] = round(time.monotonic() - start, 1)
    result["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"]["loadavg_1_5_15_after"] = list(os.getloadavg())
    result["passed"] = all(p["status"] != "failed" for p in result["parts"].values())
    return result


def _fmt(item: dict[str, Any]) -> str:
    keys = (
        "passed",
        "mask_agreement",
        "max_abs_logit_diff",
        "jf_cpu",
        "jf_device",
        "steps_per_s",
        "clips_per_s",
        "peak_mem_allocated_gb",
        "data_wait_share",
        "world_size",
        "fps",
        "vosc_speedup",
    )
    parts = []
    for k in keys:
        if k in item:
            v = item[k]
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts) or item.get("reason", "") or item.get("error", "")[:100]


def table(result: dict[str, Any]) -> str:
    """The printed summary: one line per part and per item."""
    lines = [
        f"vosc GPU check ({result['device']}{', tiny' if result['tiny'] else ''}): "
        f"{'PASSED' if result['passed'] else 'FAILED'} in {result['seconds']} s"
    ]
    for name, part in result["parts"].items():
        scaled = f"(x{part['load_scale']['scale']:g} load) " if "load_scale" in part else ""
        lines.append(
            f"{name:<12} {part['status']:<8} {part['seconds']:7.1f}/{part['budget_s']:.0f} s {scaled}"
            f"{part.get('error', part.get('reason', ''))[:100]}"
        )
        for item in part["items"]:
            lines.append(f"    {item['name']:<42} {item['status']:<8} {item['seconds']:6.1f} s  {_fmt(item)}")
    for row in result["parts"].get("inference", {}).get("comparison", []):
        ours = row["vosc_fps_fp32_eager"]
        lines.append(
            f"    published {row['model']}: {row['published_fps_v100']} FPS (V100) | vosc fp32 eager "
            f"{'n/a' if ours is None else f'{ours:.1f}'} FPS"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit status 0 when no part failed, 1 otherwise, 2 when the JSON is not schema-valid."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import lightning.pytorch  # noqa: F401 - it sets its loggers to INFO on import; quieten them after

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    problems = validate_result(result)
    if problems:
        result["schema_problems"] = problems
    atomic_write_json(args.json, result, indent=1, trailing_newline=True)
    print(table(result))
    print(f"written: {args.json}")
    if problems:
        print("schema problems: " + "; ".join(problems))
        return 2
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
