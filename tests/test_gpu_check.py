"""``bench/gpu_check.py``: the CPU dry mode (``--device cpu --tiny``) writes a schema-valid JSON with every
part, the fields the GPU run reports, and real measurements; the time boxes and the schema validator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from gpu_check_correct import MASK_AGREEMENT, _verdict  # noqa: E402
from gpu_check_lib import (  # noqa: E402
    MAX_LOAD_SCALE,
    PARTS,
    STATUSES,
    autocast_stages,
    load_scale,
    run_part,
    validate_result,
)

SHARED = Path(os.environ.get("VOSC_SHARED", REPO.parent / "shared"))  # as tests/conftest.py
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
# reasons for which an item may be skipped in the dry mode (anything else must have run and passed)
DRY_SKIPS = ("tiny mode", "16-mixed needs CUDA", "fixture not found")


def _run(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, time.monotonic() - t0


def _items(result: dict[str, Any], part: str) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in result["parts"][part]["items"]}


@pytest.mark.codec
def test_dry_mode_writes_every_part_with_the_gpu_fields(tmp_path: Path) -> None:
    out = tmp_path / "dry.json"
    # the default time boxes, which on the CPU stretch with the load of the (shared, 2-core) CI machine
    proc, seconds = _run(
        ["--device", "cpu", "--tiny", "--json", str(out), "--work-dir", str(tmp_path / "work"),
         "--shared", str(SHARED)],
        timeout=950,
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert validate_result(result) == []
    assert result["tiny"] is True and result["device"] == "cpu" and set(result["parts"]) == set(PARTS)
    for name, part in result["parts"].items():
        assert part["status"] in STATUSES and part["seconds"] <= part["budget_s"] + 10, (name, part)
        assert 1.0 <= part["load_scale"]["scale"] <= MAX_LOAD_SCALE
        for item in part["items"]:
            if item["status"] == "skipped":
                assert item["reason"].startswith(DRY_SKIPS), (name, item)
            else:
                assert item["status"] == "ok", (name, item)
    assert proc.returncode == 0 and result["passed"], proc.stdout[-3000:]
    assert "vosc GPU check (cpu, tiny): PASSED" in proc.stdout

    train = _items(result, "training")["aost bf16-mixed"]
    assert train["steps_per_s"] > 0 and train["clips_per_s"] == pytest.approx(
        train["steps_per_s"] * train["batch"]
    )
    assert train["timed_steps"] == 1 and train["frames"] == 3 and train["size"] == 64
    assert _items(result, "training")["aost 16-mixed"]["status"] == "skipped"
    for mode in ("clip", "sequence"):
        wait = _items(result, "data_wait")[f"x265 {mode} mode, 1 workers"]
        assert 0.0 <= wait["data_wait_share"] < 1.0 and wait["mode"] == mode and wait["codec"] == "x265"
    ddp = next(iter(_items(result, "ddp").values()))
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["steps_per_s"] > 0
    infer = result["parts"]["inference"]
    fps = _items(result, "inference")
    assert fps["aost n'=1 fp32 eager"]["fps"] > 0 and fps["aost n'=1 fp32 compiled"]["fps"] > 0
    assert "MODEL_ZOO.md" in infer["published_fps"]["source"]
    assert {r["model"] for r in infer["comparison"]} == {"aotl", "r50_aotl"}
    fixture = (SHARED / "fixtures" / "aot-parity" / "aost").is_dir()
    in_ci = os.environ.get("CI", "").strip().lower() in ("true", "1")
    assert fixture or not in_ci, f"CI=true: the aot-parity fixture is missing under {SHARED}"
    if fixture:
        parity = _items(result, "correctness")
        assert (
            parity["aot-parity/aost fp32"]["passed"]
            and parity["aot-parity/aost fp32"]["max_abs_logit_diff"] < 1e-4
        )
        jf = parity["jf cpu-vs-device (aost fixture)"]
        assert jf["jf_cpu"] == jf["jf_device"] == pytest.approx(1.0)  # our run reproduces the official masks
    print(f"dry mode: {seconds:.1f} s wall, load {os.getloadavg()}")  # noqa: T201


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_the_cpu_time_boxes_stretch_with_the_load() -> None:
    """A process sharing its core with a busy one measures a load scale of about 2 (the dry mode's CPU boxes
    are stretched by it); the GPU boxes keep the 8-minute total."""
    from gpu_check import BUDGETS, explicit_parts

    core = min(os.sched_getaffinity(0))
    measure = (f"import os, sys; sys.path.insert(0, {str(REPO / 'bench')!r}); "
               f"from gpu_check_lib import load_scale; os.sched_setaffinity(0, {{{core}}}); "
               "print(load_scale(0.5)['wall_over_cpu'])")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spinner.pid, {core})
        out = subprocess.run([sys.executable, "-c", measure], env=ENV, capture_output=True, text=True,
                             check=True, timeout=120)
    finally:
        spinner.kill()
        spinner.wait()
    assert float(out.stdout) > 1.6, out.stdout
    alone = load_scale(0.05)
    assert alone["scale"] == pytest.approx(
        min(MAX_LOAD_SCALE, max(1.0, alone["wall_over_cpu"], alone["load_per_cpu"])), abs=0.01)
    assert sum(BUDGETS.values()) <= 470.0  # GPU: unscaled, under 8 minutes with start-up
    assert explicit_parts(["ddp=5", "inference=3"]) == {"ddp", "inference"}
    assert explicit_parts(["9"]) == set(PARTS)


def test_a_failing_part_is_recorded_and_the_time_box_skips_the_rest() -> None:
    def part(box: Any) -> dict[str, Any]:
        box.item("raises", lambda: 1 / 0)
        box.item("runs", lambda: {"value": 1})
        time.sleep(0.3)
        box.item("too late", lambda: {"value": 2}, min_left_s=5.0)
        return {"extra": True}

    out = run_part("p", part, budget_s=2.0)
    items = {i["name"]: i for i in out["items"]}
    assert out["status"] == "failed" and out["extra"] is True
    assert items["raises"]["status"] == "failed" and "ZeroDivisionError" in items["raises"]["error"]
    assert items["runs"] == {"name": "runs", "status": "ok", "seconds": items["runs"]["seconds"], "value": 1}
    assert items["too late"]["status"] == "skipped" and "time box" in items["too late"]["reason"]


def test_the_hard_deadline_stops_a_stuck_part() -> None:
    t0 = time.monotonic()
    out = run_part("stuck", lambda box: time.sleep(30), budget_s=0.5)  # hard deadline = budget + 5 s
    assert out["status"] == "failed" and "PartTimeout" in out["error"] and time.monotonic() - t0 < 10


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stages_runs_the_network_in_low_precision_and_gives_float32_back(dtype: torch.dtype) -> None:
    from vosc.inference.propagator import Propagator
    from vosc.models.vos_model import VOSModel

    torch.manual_seed(0)
    model = VOSModel(
        encoder="mobilenetv2", block="slstt", num_layers=2, d_model=32, ffn_dim=64, num_heads=2, droppath=0.0
    ).eval()
    frames = torch.randn(2, 1, 3, 65, 65)
    mask = torch.zeros(1, 1, 65, 65, dtype=torch.long)
    mask[..., 10:40, 10:30], mask[..., 20:50, 35:60] = 1, 2
    seen: list[torch.dtype] = []
    hook = model.decoder.conv_out.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.no_grad():
        ref = Propagator(model, long_term_gap=2)
        ref.add_reference(frames[0], mask, 2)
        want = ref.step(frames[1])[2]
        with autocast_stages(model, torch.device("cpu"), dtype):
            prop = Propagator(model, long_term_gap=2)
            prop.add_reference(frames[0], mask, 2)
            got = prop.step(frames[1])[2]
    hook.remove()
    assert seen[0] == torch.float32 and seen[-1] == dtype  # inside the stage: low precision
    assert got.dtype == torch.float32 and "forward" not in vars(model.decoder)  # restored afterwards
    assert 0 < float((got - want).abs().max()) < 0.5
    agree = float((got.argmax(1) == want.argmax(1)).float().mean())
    assert agree > 0.95


def test_the_autocast_criterion_is_mask_agreement_and_fp32_is_the_fixture_tolerance() -> None:
    low = _verdict("m", torch.float16, 0.3, mism=2, compared=10_000, tolerance=1e-4, detail={})
    assert low["passed"] and low["mask_agreement"] == pytest.approx(0.9998)
    assert not _verdict("m", torch.bfloat16, 0.01, mism=11, compared=10_000, tolerance=1e-4, detail={})[
        "passed"
    ]
    assert MASK_AGREEMENT == 0.999
    assert _verdict("m", None, 5e-5, 0, 10, 1e-4, {})["passed"]
    assert not _verdict("m", None, 5e-5, 1, 10, 1e-4, {})["passed"]  # fp32: masks exact
    assert not _verdict("m", None, 2e-4, 0, 10, 1e-4, {})["status"] == "ok"


def test_the_validator_names_what_is_wrong() -> None:
    good = {
        "schema": "vosc-gpu-check/1",
        "tiny": True,
        "device": "cpu",
        "machine": {},
        "seconds": 1.0,
        "passed": True,
        "parts": {
            p: {
                "status": "ok",
                "seconds": 0.0,
                "budget_s": 1.0,
                "items": [{"name": "x", "status": "ok", "seconds": 0.0}],
            }
            for p in PARTS
        },
    }
    assert validate_result(good) == []
    bad = json.loads(json.dumps(good))
    del bad["parts"]["ddp"]
    bad["parts"]["inference"]["items"][0]["status"] = "done"
    del bad["parts"]["training"]["budget_s"]
    assert validate_result(bad) == [
        "part training: missing 'budget_s'",
        "missing part 'ddp'",
        "part inference, item x: status 'done'",
    ]


@pytest.mark.slow
def test_ddp_worker_subprocesses_join_one_group_on_the_cpu(tmp_path: Path) -> None:
    """The GPU run's launch (two worker interpreters, NODE_RANK 0/1 on one device), on gloo/CPU."""
    out = tmp_path / "ddp.json"
    proc, _ = _run(
        [
            "--device",
            "cpu",
            "--tiny",
            "--parts",
            "ddp",
            "--ddp-launch",
            "subprocess",
            "--budget-s",
            "ddp=500",
            "--total-s",
            "520",
            "--json",
            str(out),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        timeout=600,
    )
    result = json.loads(out.read_text())
    item = result["parts"]["ddp"]["items"][0]
    assert item["status"] == "ok", (item, proc.stdout[-2000:])
    assert item["world_size"] == 2 and item["launch"] == "subprocess"
    assert result["parts"]["training"]["status"] == "skipped"
