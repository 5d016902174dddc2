"""Benchmark: DAVIS J&F time of vosc, optionally against the official davis2017-evaluation toolkit.

    python bench/eval_speed.py --gt GT_ROOT --pred PRED_DIR [--set val] [--workers 0 2] \
        [--official /tmp/davis2017-evaluation] [--official-python PY] [--repeat 3] [--json OUT]

vosc is timed in this process (``vosc.metrics.jf.evaluate_davis``, once per ``--workers`` value).
With ``--official`` (a checkout of ``davisvideochallenge/davis2017-evaluation``; it is only imported,
never copied), the official ``DAVISEvaluation(..., task="semi-supervised").evaluate`` is timed in a
subprocess of ``--official-python`` in the same run, on the same data, and every global and per-object
value is compared. Times exclude interpreter start-up and imports on both sides; the best of
``--repeat`` runs is reported, as wall seconds and as CPU seconds (all threads and worker processes;
steadier than wall time on a shared machine). ``codalab=True`` is passed to the official reader when the
ground-truth root has no ``JPEGImages`` (as in the jf-golden fixture).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vosc.metrics.jf import GLOBAL_KEYS, evaluate_davis
from vosc.utils.io import atomic_write_text

# Runs in the official toolkit's interpreter: time DAVISEvaluation.evaluate, aggregate as its
# evaluation_method.py does (means over objects), print JSON.
_DRIVER = r"""
import json, sys, time, os
import numpy as np
toolkit, gt, pred, subset, repeat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
sys.path.insert(0, toolkit)
from davis2017.evaluation import DAVISEvaluation
codalab = not os.path.isdir(os.path.join(gt, "JPEGImages"))
times, cpu = [], []
for _ in range(repeat):
    start, start_cpu = time.perf_counter(), time.process_time()
    res = DAVISEvaluation(gt, "semi-supervised", subset, codalab=codalab).evaluate(pred)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
J, F = res["J"], res["F"]
glob = {"J&F-Mean": (np.mean(J["M"]) + np.mean(F["M"])) / 2.0, "J-Mean": np.mean(J["M"]),
        "J-Recall": np.mean(J["R"]), "J-Decay": np.mean(J["D"]), "F-Mean": np.mean(F["M"]),
        "F-Recall": np.mean(F["R"]), "F-Decay": np.mean(F["D"])}
per = {k: {"J": float(J["M_per_object"][k]), "F": float(F["M_per_object"][k])} for k in J["M_per_object"]}
print("@@RESULT@@" + json.dumps({"seconds": min(times), "all_seconds": times, "cpu_seconds": min(cpu),
                                 "global": {k: float(v) for k, v in glob.items()}, "per_object": per}))
"""


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_vosc(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """Best-of-``repeat`` wall and CPU seconds and the result of vosc with ``workers`` processes."""
    times, cpu, result = [], [], None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        result, _ = evaluate_davis(
            args.gt, args.pred, args.subset, args.year, args.resolution, workers=workers
        )
        times.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - start_cpu)
    assert result is not None
    return {
        "workers": workers,
        "seconds": min(times),
        "all_seconds": times,
        "cpu_seconds": min(cpu),
        **result.to_json_dict(),
    }


def time_official(args: argparse.Namespace) -> dict[str, Any]:
    """Run the official toolkit in a subprocess and parse its timing and values."""
    with tempfile.NamedTemporaryFile("w", suffix="_davis_driver.py", delete=False) as handle:
        handle.write(_DRIVER)
    try:
        cmd = [
            args.official_python,
            handle.name,
            str(args.official),
            str(args.gt),
            str(args.pred),
            args.subset,
            str(args.repeat),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    finally:
        os.unlink(handle.name)
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        raise RuntimeError(
            f"official toolkit failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.split("@@RESULT@@", 1)[1].strip().splitlines()[0])


def max_difference(ours: dict[str, Any], official: dict[str, Any]) -> float:
    """Largest absolute difference over every global and per-object value (inf if keys differ)."""
    if set(ours["per_object"]) != set(official["per_object"]):
        return float("inf")
    diffs = [abs(ours["global"][k] - official["global"][k]) for k in GLOBAL_KEYS]
    diffs += [
        abs(ours["per_object"][k][m] - v[m]) for k, v in official["per_object"].items() for m in ("J", "F")
    ]
    return max(diffs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--set", dest="subset", default="val")
    parser.add_argument("--year", default="2017")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--official", type=Path, default=None, help="davis2017-evaluation checkout (outside the repo)"
    )
    parser.add_argument("--official-python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "gt": str(args.gt),
        "pred": str(args.pred),
        "set": args.subset,
        "repeat": args.repeat,
        "vosc": [],
    }
    official = time_official(args) if args.official is not None else None
    for workers in args.workers:
        run = time_vosc(args, workers)
        entry = {
            "workers": workers,
            "seconds": run["seconds"],
            "all_seconds": run["all_seconds"],
            "cpu_seconds": run["cpu_seconds"],
            "J&F-Mean": run["global"]["J&F-Mean"],
        }
        if official is not None:
            entry["max_abs_diff_vs_official"] = max_difference(run, official)
            entry["speedup_vs_official"] = official["seconds"] / run["seconds"]
            entry["cpu_ratio_vs_official"] = official["cpu_seconds"] / run["cpu_seconds"]
        report["vosc"].append(entry)
    if official is not None:
        report["official"] = {
            "seconds": official["seconds"],
            "all_seconds": official["all_seconds"],
            "cpu_seconds": official["cpu_seconds"],
            "J&F-Mean": official["global"]["J&F-Mean"],
        }
    text = json.dumps(report, indent=1)
    sys.stdout.write(text + "\n")
    if args.json is not None:
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
