"""The compression study: J&F vs bpp of VOS models trained with vosc, per codec, q, depth and enhancer.

One command evaluates every model (and enhancer stage) over one codec ladder on every dataset with
``evaluate.py`` (whole sequences, sequence-mode coding, bitstreams cached and shared by all models), then
compares the curves::

    python bench/compression_study.py \\
        --model raw=outputs/cpu_reference_raw/runs/study/checkpoints/last.ckpt \\
        --model x265=outputs/cpu_reference/runs/study/checkpoints/last.ckpt \\
        --enhancer s1=outputs/enhancer_s1/.../last.ckpt --enhancer s2=outputs/enhancer_s2/.../last.ckpt \\
        --enhancer-model x265 --datasets synthetic_heldout davis_mini --out outputs/study

Outputs under ``--out``:

* ``runs/<run>/``: the ``evaluate.py`` folders (predictions, per-sequence JSON, RD JSON per curve);
* ``<dataset>/rd_jf_d<depth>.png``: J&F vs bpp at one depth, every model, codec and enhancer stage;
* ``<dataset>/study.md`` and ``study.json``: the runtime table (per codec, q, model and depth: codec,
  VOS and total milliseconds per frame, bpp, J&F), the BD tables (VVenC vs x265, compression-trained vs
  raw-trained, enhancer on vs off; BD-rate in % at equal J&F and BD-J&F in points at equal rate, always
  at the same depth) and the order checks (J&F falls as q rises, deeper is better).

``--enhancer NAME=CKPT`` runs the ``--enhancer-model`` model with that enhancer in front (compressed
points only). ``--davis-long-edge`` downscales real sequences before coding (models trained on small
synthetic frames); ``--max-frames`` shortens every sequence (smoke runs); ``--eval-arg DATASET:KEY=VALUE``
passes an extra override to that dataset's ``evaluate.py`` runs.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vosc.evaluation.report import rows_to_markdown  # noqa: E402
from vosc.metrics.rd import RDCurve, bd_quality, bd_rate  # noqa: E402
from vosc.utils.io import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402

log = logging.getLogger("compression_study")
REPO = Path(__file__).resolve().parents[1]
PAPER_LADDER = ["none", "x265:22", "x265:27", "x265:32", "x265:37", "x265:42", "x265:47",
                "vvenc:27", "vvenc:32", "vvenc:37", "vvenc:42", "vvenc:47"]
REAL_DATASETS = ("davis_mini", "davis2016", "davis2017", "folder")


def _pairs(items: Sequence[str], what: str) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{what} {item!r}: expected NAME=CHECKPOINT")
        p = Path(path).expanduser()
        if not p.is_file():
            raise SystemExit(f"{what} {name}: checkpoint not found: {p}")
        out[name] = p.resolve()
    return out


def evaluate_run(run: str, ckpt: Path, dataset: str, args: argparse.Namespace, points: Sequence[str],
                 enhancer: Path | None = None) -> Path:
    """One ``evaluate.py`` run; returns its ``out_dir``."""
    out = Path(args.out) / "runs" / run
    cmd = [sys.executable, str(REPO / "evaluate.py"), f"ckpt={ckpt}", f"dataset={dataset}",
           f"model_name={run}", f"ladder.points=[{','.join(points)}]",
           f"depths=[{','.join(map(str, args.depths))}]",
           f"out_dir={out}", f"cache_dir={Path(args.out) / 'cache'}", f"torch_threads={args.threads}",
           f"hydra.run.dir={out}/hydra/{dataset}"]
    if enhancer is not None:
        cmd += ["enhancer=on", f"enhancer_ckpt={enhancer}",
                f"model/enhancer@enhancer_net={args.enhancer_net}"]
    if args.max_frames:
        cmd.append(f"max_frames={args.max_frames}")
    if dataset in REAL_DATASETS and args.davis_long_edge:
        cmd.append(f"resize_long_edge={args.davis_long_edge}")
    for extra in args.eval_arg:
        target, sep, override = extra.partition(":")
        if sep and "=" in override and target == dataset:
            cmd.append(override)
        elif not sep or "=" not in override:
            raise SystemExit(f"--eval-arg {extra!r}: expected DATASET:KEY=VALUE")
    log.info("%s on %s: %s", run, dataset, " ".join(cmd[2:]))
    subprocess.run(cmd, check=True, cwd=REPO)
    return out


def load_run_curves(out: Path, dataset_name: str, run: str) -> list[RDCurve]:
    """The RD curves one run wrote for a dataset, named ``<run> <codec> d<depth>``."""
    curves = []
    for path in sorted((out / dataset_name).glob("*/rd_d*.json")):
        curve = RDCurve.load(path)
        curve.name = f"{run} {curve.provenance.codec} d{curve.provenance.depth}"
        curve.provenance.extra["run"] = run
        curves.append(curve)
    return curves


def runtime_rows(curves: Sequence[RDCurve]) -> list[dict[str, Any]]:
    """The paper-style runtime table: per codec, q, model and depth; milliseconds per frame."""
    rows = []
    for c in curves:
        for p in sorted(c.points, key=lambda x: -x.bpp):
            rt, n = p.runtimes, max(p.runtimes.frames, 1)
            rows.append({"model": c.provenance.extra["run"], "codec": c.provenance.codec, "q": p.q,
                         "depth": c.provenance.depth, "bpp": p.bpp, "J&F": p.jf,
                         "t_codec ms": 1000 * (rt.encode + rt.decode) / n, "t_vos ms": 1000 * rt.vos / n,
                         "t_total ms": 1000 * rt.total / n, "sequences": p.num_sequences})
    return rows


def _bd(anchor: RDCurve, test: RDCurve, what: str) -> dict[str, Any]:
    row: dict[str, Any] = {"comparison": what, "anchor": anchor.label, "test": test.label,
                           "depth": test.provenance.depth, "BD-rate % (J&F)": None, "BD-J&F (points)": None,
                           "note": ""}
    try:
        row["BD-rate % (J&F)"] = bd_rate(anchor, test, "jf")
    except ValueError as exc:
        row["note"] += f"BD-rate: {exc}. "
    try:
        row["BD-J&F (points)"] = 100 * bd_quality(anchor, test, "jf")
    except ValueError as exc:
        row["note"] += f"BD-J&F: {exc}. "
    return row


def bd_tables(curves: Sequence[RDCurve], raw_model: str | None,
              enh_model: str | None) -> list[dict[str, Any]]:
    """VVenC vs x265 (per run and depth), compression-trained vs raw (per codec and depth), enhancer vs
    off."""
    by = {(c.provenance.extra["run"], c.provenance.codec, c.provenance.depth): c for c in curves}
    runs = sorted({k[0] for k in by})
    depths = sorted({k[2] for k in by})
    rows = []
    for run in runs:
        for d in depths:
            if (run, "x265", d) in by and (run, "vvenc", d) in by:
                rows.append(_bd(by[(run, "x265", d)], by[(run, "vvenc", d)], "VVenC vs x265"))
    for run in runs:
        if raw_model is None or run == raw_model or "+" in run:
            continue
        for codec in ("x265", "vvenc"):
            for d in depths:
                if (raw_model, codec, d) in by and (run, codec, d) in by:
                    rows.append(_bd(by[(raw_model, codec, d)], by[(run, codec, d)],
                                    "compression-trained vs raw"))
    for run in runs:
        if enh_model is None or not run.startswith(enh_model + "+"):
            continue
        for codec in ("x265", "vvenc"):
            for d in depths:
                if (enh_model, codec, d) in by and (run, codec, d) in by:
                    rows.append(_bd(by[(enh_model, codec, d)], by[(run, codec, d)], "enhancer vs off"))
    return rows


def order_checks(curves: Sequence[RDCurve]) -> list[dict[str, Any]]:
    """Whether J&F falls as q rises (per curve) and whether deeper is better (per run, codec and q)."""
    rows = []
    for c in curves:
        pts = sorted((p for p in c.points if p.q is not None and p.jf is not None), key=lambda p: p.q)
        if len(pts) >= 2:
            steps = [b.jf - a.jf for a, b in zip(pts, pts[1:], strict=False)]
            rows.append({"check": "J&F falls as q rises", "curve": c.label,
                         "holds": all(s <= 0.005 for s in steps),
                         "detail": f"{sum(s <= 0 for s in steps)}/{len(steps)} steps down"})
    by: dict[tuple[str, str], dict[int, float]] = {}
    for c in curves:
        mean = [p.jf for p in c.points if p.jf is not None]
        if mean and c.provenance.depth is not None:
            by.setdefault((c.provenance.extra["run"], c.provenance.codec), {})[c.provenance.depth] = \
                sum(mean) / len(mean)
    for (run, codec), per_depth in sorted(by.items()):
        if len(per_depth) >= 2:
            ds = sorted(per_depth)
            rows.append({"check": "deeper is better", "curve": f"{run} {codec}",
                         "holds": all(per_depth[b] >= per_depth[a] - 0.005
                                      for a, b in zip(ds, ds[1:], strict=False)),
                         "detail": ", ".join(f"d{d} {100 * per_depth[d]:.1f}" for d in ds)})
    return rows


def plot_depth(curves: Sequence[RDCurve], depth: int, path: Path, title: str) -> Path | None:
    """J&F (%) vs bpp at one depth: colour per run, line style per codec, q labels; ``none`` as a level."""
    sel = [c for c in curves if c.provenance.depth == depth]
    if not sel:
        return None
    runs = sorted({c.provenance.extra["run"] for c in sel})
    colours = {r: plt.get_cmap("tab10")(i % 10) for i, r in enumerate(runs)}
    styles = {"x265": "-", "vvenc": "--"}
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    for c in sel:
        run, codec = c.provenance.extra["run"], c.provenance.codec
        pts = sorted((p.bpp, 100 * p.jf, p.q) for p in c.points if p.jf is not None)
        if codec == "none":
            for _, jf, _ in pts:
                ax.axhline(jf, color=colours[run], linestyle=":", linewidth=1, label=f"{run} uncompressed")
            continue
        ax.plot([b for b, _, _ in pts], [j for _, j, _ in pts], marker="o", color=colours[run],
                linestyle=styles.get(codec, "-."), label=f"{run} {codec}")
        for b, j, q in pts:
            ax.annotate(str(q), (b, j), textcoords="offset points", xytext=(3, 3), fontsize=6,
                        color=colours[run])
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("J&F (%)")
    lo, hi = ax.get_ylim()
    if hi - lo < 10:  # do not magnify noise
        mid = (hi + lo) / 2
        ax.set_ylim(mid - 5, mid + 5)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{title}, depth {depth}")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def report(dataset: str, curves: list[RDCurve], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write plots, tables and ``study.json`` of one dataset."""
    out.mkdir(parents=True, exist_ok=True)
    raw = args.raw_model if args.raw_model in {c.provenance.extra["run"] for c in curves} else None
    tables = {"runtime": runtime_rows(curves), "bd": bd_tables(curves, raw, args.enhancer_model),
              "checks": order_checks(curves)}
    plots = [str(p) for d in args.depths
             if (p := plot_depth(curves, d, out / f"rd_jf_d{d}.png", dataset)) is not None]
    md = [f"# Compression study: {dataset}", ""]
    for name, rows in tables.items():
        md += [f"## {name}", "", rows_to_markdown(rows) if rows else "(none)", ""]
    md += ["## plots", ""] + [f"![]({Path(p).name})" for p in plots] + [""]
    atomic_write_text(out / "study.md", "\n".join(md))
    result = {"dataset": dataset, "plots": plots, "tables": tables,
              "curves": {c.label: c.to_dict() for c in curves}}
    atomic_write_json(out / "study.json", result, indent=1, default=str)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run every evaluation, write the reports."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], required=True, help="NAME=CKPT (repeatable)")
    p.add_argument("--raw-model", default="raw", help="the model trained on raw frames (BD anchor)")
    p.add_argument("--enhancer", action="append", default=[], help="STAGE=CKPT enhancer (repeatable)")
    p.add_argument("--enhancer-model", default=None,
                   help="model the enhancers run with (default: first non-raw)")
    p.add_argument("--enhancer-net", default="cae_tiny", help="enhancer architecture (conf/model/enhancer/)")
    p.add_argument("--datasets", nargs="+", default=["synthetic_heldout", "davis_mini"])
    p.add_argument("--ladder", nargs="+", default=PAPER_LADDER)
    p.add_argument("--depths", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--davis-long-edge", type=int, default=320)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="outputs/study")
    p.add_argument("--eval-arg", action="append", default=[],
                   help="DATASET:KEY=VALUE, an extra evaluate.py override for one dataset (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    models, enhancers = _pairs(args.model, "--model"), _pairs(args.enhancer, "--enhancer")
    if args.enhancer_model is None:
        args.enhancer_model = next((m for m in models if m != args.raw_model), next(iter(models)))
    if enhancers and args.enhancer_model not in models:
        raise SystemExit(f"--enhancer-model {args.enhancer_model!r} is not one of --model {sorted(models)}")
    compressed = [q for q in args.ladder if q != "none"]
    t0 = time.perf_counter()
    index: dict[str, Any] = {"datasets": {}}
    for dataset in args.datasets:
        curves: list[RDCurve] = []
        name = None
        for run, ckpt in models.items():
            out = evaluate_run(run, ckpt, dataset, args, args.ladder)
            name = name or _dataset_folder(out)
            curves += load_run_curves(out, name, run)
        for stage, ckpt in enhancers.items():
            run = f"{args.enhancer_model}+{stage}"
            out = evaluate_run(run, models[args.enhancer_model], dataset, args, compressed, enhancer=ckpt)
            curves += [c for c in load_run_curves(out, name or _dataset_folder(out), run)
                       if c.provenance.enhancer]
        res = report(dataset, curves, Path(args.out) / dataset, args)
        index["datasets"][dataset] = {"study": str(Path(args.out) / dataset / "study.md"),
                                      "plots": res["plots"]}
    index["wall_s"] = time.perf_counter() - t0
    atomic_write_json(Path(args.out) / "index.json", index, indent=1)
    log.info("study done in %.0f s: %s", index["wall_s"], Path(args.out))
    return 0


def _dataset_folder(out: Path) -> str:
    """The dataset folder an ``evaluate.py`` run wrote (the newest ``evaluation.json``)."""
    found = sorted(out.glob("*/evaluation.json"), key=lambda f: f.stat().st_mtime)
    if not found:
        raise RuntimeError(f"evaluate.py wrote no evaluation.json under {out}")
    return found[-1].parent.name


if __name__ == "__main__":
    sys.exit(main())
