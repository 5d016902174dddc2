"""Training parts of ``bench/gpu_check.py``: throughput, data wait and a 2-process DDP run.

Everything is composed the way ``train.py`` composes it: Hydra's ``conf/train.yaml`` with
``experiment=main_x265`` (465x465 crops, 5-frame clips, batch 4 per GPU) and ``data=synthetic`` (the
built-in set, generated on first use), then :mod:`vosc.lit.builders` builds the ``VOSModule`` and the
Lightning trainer; only the loggers, callbacks, checkpointing and validation are switched off and a
timing callback (:class:`StepTimer`) is added. ``--tiny`` composes ``experiment=tiny`` instead (64x64,
3 frames, batch 2, d_model 32) on the CPU.

* ``throughput``: a fixed in-memory batch of the real shapes (no data loading, no codec): the model's
  steps/s, clips/s and peak GPU memory per model and precision.
* ``data_wait``: the real datamodule with x265 coding on the fly in ``N`` workers, in clip and in
  sequence mode: the share of step time spent waiting for the next batch.
* ``ddp``: this module run as 2 worker processes (``--ddp-worker``) that join one process group: on one
  GPU both use it (gloo backend, NCCL refuses two ranks on one device), with several GPUs Lightning's
  own ``ddp`` launcher uses all of them; on the CPU two gloo processes.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_lib import Box, sync

log = logging.getLogger("bench.gpu_check")
REPO = Path(__file__).resolve().parents[1]
TINY_MODELS = {"aost": "aost_tiny", "r50_aost": "r50_aost"}
# data-wait and DDP runs on the CPU (dry run): float32, CPU bf16 autocast costs ~5x per step
CPU_PRECISION = "32-true"
QUIET = [
    "logger=none",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "++trainer.enable_checkpointing=false",
    "++trainer.enable_model_summary=false",
    "trainer.limit_val_batches=0",
    "trainer.num_sanity_val_steps=0",
]


def compose(work: Path, tiny: bool, model: str, overrides: list[str]) -> Any:
    """``conf/train.yaml`` composed as ``train.py`` would, for the check's shapes."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    base = ["experiment=tiny"] if tiny else ["experiment=main_x265", "data=synthetic"]
    model_opt = TINY_MODELS.get(model, model) if tiny else model
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            return_hydra_config=True,
            overrides=[
                f"paths.root_dir={work}",
                f"paths.data_dir={work / 'data'}",
                *base,
                f"model={model_opt}",
                *QUIET,
                *overrides,
            ],
        )
    cfg.paths.output_dir = str(work / "run")
    if tiny and model == "r50_aost":
        cfg.model.d_model, cfg.model.ffn_dim, cfg.model.num_heads = 32, 64, 2
    return cfg


class StepTimer:
    """Lightning callback: per step, the wait for the batch (end of the previous step to the start of this
    one: fetch + transfer) and the compute (start to end, device synchronised); stops the fit when the
    part's deadline comes."""

    def __init__(self, device: torch.device, deadline: float) -> None:
        self.device, self.deadline = device, deadline
        self.waits: list[float] = []
        self.computes: list[float] = []
        self.stopped_early = False
        self._start = 0.0
        self._end: float | None = None
        self.out: Path | None = None
        self.meta: dict[str, Any] = {}

    def on_train_batch_start(self, trainer: Any, _module: Any, _batch: Any, batch_idx: int) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.waits.append(now - self._end if self._end is not None else float("nan"))
        self._start = now

    def on_train_batch_end(self, trainer: Any, _module: Any, _out: Any, _batch: Any, _idx: int) -> None:
        sync(self.device)
        self._end = time.perf_counter()
        self.computes.append(self._end - self._start)
        if time.monotonic() > self.deadline:
            trainer.should_stop = True
            self.stopped_early = True

    def on_train_end(self, trainer: Any, _module: Any) -> None:
        if self.out is not None and trainer.global_rank == 0:
            summary = self.summary(int(self.meta["warmup"]), int(self.meta["batch"]))
            result = {
                "world_size": trainer.world_size,
                **self.meta,
                **summary,
                "clips_per_s_all_ranks": summary["clips_per_s"] * trainer.world_size,
            }
            self.out.write_text(json.dumps(result))

    def summary(self, warmup: int, batch: int) -> dict[str, Any]:
        """Rates over the steps after ``warmup``."""
        waits, comps = self.waits[warmup:], self.computes[warmup:]
        if not comps:
            raise RuntimeError(f"only {len(self.computes)} steps ran, none after the {warmup} warm-up steps")
        total = sum(waits) + sum(comps)
        return {
            "timed_steps": len(comps),
            "steps_per_s": len(comps) / total,
            "clips_per_s": len(comps) * batch / total,
            "step_s_median": sorted(w + c for w, c in zip(waits, comps, strict=True))[len(comps) // 2],
            "data_wait_share": sum(waits) / total,
            "data_wait_s_mean": sum(waits) / len(waits),
            "compute_s_mean": sum(comps) / len(comps),
            "stopped_by_time_box": self.stopped_early,
        }


def _callback(timer: StepTimer) -> Any:
    from lightning.pytorch.callbacks import Callback

    class _CB(Callback):
        def on_train_batch_start(self, *a: Any) -> None:
            timer.on_train_batch_start(*a)

        def on_train_batch_end(self, *a: Any) -> None:
            timer.on_train_batch_end(*a)

        def on_train_end(self, *a: Any) -> None:
            timer.on_train_end(*a)

    return _CB()


class FixedBatches(torch.utils.data.Dataset):
    """``n`` copies of one synthetic :class:`~vosc.types.VOSBatch` (the loader's batch_size is None)."""

    def __init__(self, n: int, batch: int, frames: int, size: int) -> None:
        from train_speed import make_batch

        self.n, self.batch = n, make_batch(batch, frames, size, torch.device("cpu"))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.batch


def _first(batch: Any) -> Any:
    return batch


def _trainer(cfg: Any, timer: StepTimer, max_steps: int, strategy: Any = None) -> Any:
    from vosc.lit import builders
    from vosc.lit.callbacks import AtomicCheckpointIO

    cfg.trainer.max_steps = max_steps
    kwargs: dict[str, Any] = {
        "callbacks": [_callback(timer)],
        "logger": False,
        "plugins": [AtomicCheckpointIO()],
    }
    if strategy is not None:
        kwargs["strategy"] = strategy
    return builders.instantiate(cfg.trainer, **kwargs)


def _module(cfg: Any) -> Any:
    from vosc.lit import builders

    return builders.build_module(cfg.lit, cfg.model, None, None, None, int(cfg.seed))


def _shape(cfg: Any) -> dict[str, int]:
    return {
        "batch": int(cfg.data.batch_size),
        "frames": int(cfg.data.sampler.num_frames),
        "size": int(cfg.data.augment.crop_size[0]),
    }


def throughput_run(
    work: Path,
    tiny: bool,
    model: str,
    precision: str,
    steps: int,
    warmup: int,
    device: torch.device,
    deadline: float,
) -> dict[str, Any]:
    """Steps/s, clips/s and peak memory of ``model`` at ``precision`` on fixed batches."""
    accel = ["trainer=gpu", "trainer.devices=1"] if device.type == "cuda" else ["trainer=cpu"]
    cfg = compose(work, tiny, model, [*accel, f"trainer.precision={precision}"])
    shape = _shape(cfg)
    timer = StepTimer(device, deadline)
    trainer = _trainer(cfg, timer, steps + warmup)
    loader = torch.utils.data.DataLoader(
        FixedBatches(steps + warmup, shape["batch"], shape["frames"], shape["size"]),
        batch_size=None,
        collate_fn=_first,
    )
    module = _module(cfg)
    if device.type == "cuda":  # the previous items' models and optimiser state must not count
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    trainer.fit(module, train_dataloaders=loader)
    out = {
        "model": model,
        "precision": precision,
        **shape,
        "steps": len(timer.computes),
        "warmup": warmup,
        **timer.summary(warmup, shape["batch"]),
    }
    if device.type == "cuda":
        out["peak_mem_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["peak_mem_reserved_gb"] = torch.cuda.max_memory_reserved(device) / 2**30
        out["mem_allocated_before_fit_gb"] = before / 2**30
    return out


def data_wait_run(
    work: Path,
    tiny: bool,
    mode: str,
    workers: int,
    precision: str,
    steps: int,
    warmup: int,
    device: torch.device,
    deadline: float,
) -> dict[str, Any]:
    """Share of step time waiting for batches of the real datamodule with x265 coded on the fly."""
    from vosc.lit import builders

    accel = ["trainer=gpu", "trainer.devices=1"] if device.type == "cuda" else ["trainer=cpu"]
    cfg = compose(
        work,
        tiny,
        "aost",
        [
            *accel,
            f"trainer.precision={precision}",
            "codec=x265",
            f"codec.mode={mode}",
            f"data.num_workers={workers}",
            f"data.pin_memory={device.type == 'cuda'}",
        ],
    )
    shape = _shape(cfg)
    timer = StepTimer(device, deadline)
    trainer = _trainer(cfg, timer, steps + warmup)
    datamodule = builders.instantiate(cfg.data)
    trainer.fit(_module(cfg), datamodule=datamodule)
    return {
        "mode": mode,
        "workers": workers,
        "codec": "x265",
        "q": cfg.codec.q,
        "precision": precision,
        **shape,
        "steps": len(timer.computes),
        "warmup": warmup,
        **timer.summary(warmup, shape["batch"]),
    }


def _share(box: Box, items_left: int) -> float:
    """Monotonic deadline of the next item: an equal share of what is left of the box."""
    return time.monotonic() + max(box.left() - 2.0, 0.0) / max(items_left, 1)


def _train_skip(device: torch.device, tiny: bool, model: str, prec: str) -> str | None:
    if device.type == "cpu" and prec == "16-mixed":
        return "16-mixed needs CUDA (Lightning's CPU autocast is bf16 only)"
    if tiny and model != "aost":
        return "tiny mode: only aost"
    if device.type == "cuda" and prec == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        return "bf16 not supported by this GPU"
    return None


def training(
    box: Box,
    work: Path,
    device: torch.device,
    tiny: bool,
    steps: int,
    models: list[str],
    precisions: list[str],
) -> dict[str, Any]:
    """The throughput items: every model x precision; each gets a fair share of what is left of the box
    (its fit stops at the end of that share, with the steps done so far)."""
    warmup = 1 if tiny else 5
    plan = [(m, p, _train_skip(device, tiny, m, p)) for m in models for p in precisions]
    left = sum(skip is None for *_, skip in plan)
    for model, prec, skip in plan:

        def fn(m: str = model, p: str = prec, k: int = left) -> dict[str, Any]:
            return throughput_run(work, tiny, m, p, steps, warmup, device, _share(box, k))

        box.item(f"{model} {prec}", fn, min_left_s=3.0 if tiny else 10.0, skip=skip)
        left -= skip is None
    return {"steps_requested": steps}


def data_wait(
    box: Box, work: Path, device: torch.device, tiny: bool, steps: int, workers: int
) -> dict[str, Any]:
    """The data-wait items: x265 clip and sequence mode."""
    prec = "16-mixed" if device.type == "cuda" else CPU_PRECISION
    for n, mode in enumerate(("clip", "sequence")):
        box.item(
            f"x265 {mode} mode, {workers} workers",
            lambda m=mode, k=2 - n: data_wait_run(
                work, tiny, m, workers, prec, steps, 1 if tiny else 3, device, _share(box, k)
            ),
            min_left_s=3.0 if tiny else 10.0,
        )
    return {"workers": workers}


# ------------------------------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_workers(
    box: Box, work: Path, device: torch.device, tiny: bool, steps: int, gpus: int
) -> dict[str, Any]:
    out = work / "ddp.json"
    out.unlink(missing_ok=True)
    base = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--ddp-worker",
        "--work",
        str(work),
        "--device",
        device.type,
        "--steps",
        str(steps),
        "--out",
        str(out),
    ] + (["--tiny"] if tiny else [])
    env = os.environ | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    if gpus >= 2:  # Lightning's ddp launcher starts the other ranks itself
        cmds = [(base + ["--devices", str(gpus)], env)]
    else:  # two "nodes" of one process each, both on the same device
        cmds = [
            (
                base + ["--devices", "1", "--num-nodes", "2"],
                env | {"WORLD_SIZE": "2", "NODE_RANK": str(r), "LOCAL_RANK": "0"},
            )
            for r in range(2)
        ]
    logs = [work / f"ddp_worker{i}.log" for i in range(len(cmds))]
    procs = []
    for (cmd, e), path in zip(cmds, logs, strict=True):
        with path.open("w") as fh:
            procs.append(subprocess.Popen(cmd, env=e, stdout=fh, stderr=subprocess.STDOUT))
    try:
        for p in procs:
            p.wait(timeout=max(box.left() - 2.0, 1.0))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait()
        raise TimeoutError(f"DDP workers ran past the time box; logs: {[str(x) for x in logs]}") from None
    codes = [p.returncode for p in procs]
    if any(codes) or not out.is_file():
        tail = logs[0].read_text()[-800:]
        raise RuntimeError(f"DDP workers exited with {codes}; {logs[0]} ends with: {tail}")
    return json.loads(out.read_text()) | {"launch": "subprocess", "worker_logs": [str(x) for x in logs]}


def _fork_ddp(work: Path, tiny: bool, steps: int) -> dict[str, Any]:
    """CPU only: Lightning's ``ddp_fork`` (2 forked processes, gloo): no new interpreter to start."""
    from lightning.pytorch.strategies import DDPStrategy

    out = work / "ddp.json"
    out.unlink(missing_ok=True)
    # find_unused_parameters: the ID bank gets no gradient once the memory comes from predictions
    strategy = DDPStrategy(start_method="fork", process_group_backend="gloo", find_unused_parameters=True)
    run_ddp(work, tiny, "cpu", 2, 1, steps, out, strategy)
    if not out.is_file():
        raise RuntimeError(f"the ddp_fork run wrote no result to {out}")
    return json.loads(out.read_text()) | {"launch": "fork"}


def ddp(
    box: Box, work: Path, device: torch.device, tiny: bool, steps: int, launch: str = "auto"
) -> dict[str, Any]:
    """A 2-process DDP run (all GPUs when there are several), killed at the deadline.

    ``launch``: ``subprocess`` (this module as worker processes; what CUDA needs, since a process that has
    used CUDA cannot fork), ``fork`` (CPU only) or ``auto`` (fork on the CPU, subprocess on CUDA).
    """
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    mode = launch if launch != "auto" else ("fork" if device.type == "cpu" else "subprocess")
    if mode == "fork" and device.type == "cuda":
        raise ValueError("--ddp-launch fork works on the CPU only (CUDA cannot be used in a forked process)")

    def fn() -> dict[str, Any]:
        if mode == "fork":
            return _fork_ddp(work, tiny, steps)
        return _launch_workers(box, work, device, tiny, steps, gpus)

    box.item(f"ddp {max(gpus, 2)} processes ({mode})", fn, min_left_s=15.0 if not tiny else 3.0)
    return {"launch": mode}


def run_ddp(
    work: Path,
    tiny: bool,
    device_type: str,
    devices: int,
    num_nodes: int,
    steps: int,
    out: Path,
    strategy: Any,
) -> None:
    """Fit ``aost`` on fixed batches under ``strategy``; rank 0 writes its summary to ``out``."""
    device = torch.device("cuda", 0) if device_type == "cuda" else torch.device("cpu")
    accel = (
        ["trainer=gpu", f"trainer.devices={devices}"]
        if device_type == "cuda"
        else ["trainer=cpu", f"trainer.devices={devices}"]
    )
    prec = "16-mixed" if device_type == "cuda" else CPU_PRECISION
    cfg = compose(work, tiny, "aost", [*accel, f"trainer.num_nodes={num_nodes}", f"trainer.precision={prec}"])
    shape = _shape(cfg)
    warmup = 1 if tiny else 3
    timer = StepTimer(device, time.monotonic() + 3600)
    timer.out = out
    timer.meta = {
        "backend": strategy.process_group_backend,
        "precision": prec,
        **shape,
        "gpus_used": devices if device_type == "cuda" else 0,
        "warmup": warmup,
    }
    trainer = _trainer(cfg, timer, steps + warmup, strategy=strategy)
    world = devices * num_nodes
    loader = torch.utils.data.DataLoader(
        FixedBatches(world * (steps + warmup), shape["batch"], shape["frames"], shape["size"]),
        batch_size=None,
        collate_fn=_first,
    )
    trainer.fit(_module(cfg), train_dataloaders=loader)


def ddp_worker(args: argparse.Namespace) -> int:
    """One DDP rank started by :func:`_launch_workers` (``--ddp-worker``)."""
    from lightning.pytorch.strategies import DDPStrategy

    backend = "nccl" if args.device == "cuda" and args.devices >= 2 else "gloo"
    run_ddp(
        args.work,
        args.tiny,
        args.device,
        args.devices,
        args.num_nodes,
        args.steps,
        args.out,
        DDPStrategy(process_group_backend=backend, find_unused_parameters=True),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of a DDP worker process."""
    p = argparse.ArgumentParser(description="gpu_check DDP worker (started by bench/gpu_check.py)")
    p.add_argument("--ddp-worker", action="store_true", required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--device", choices=("cpu", "cuda"), required=True)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    logging.basicConfig(level=logging.WARNING)
    return ddp_worker(p.parse_args(argv))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.path.insert(1, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
