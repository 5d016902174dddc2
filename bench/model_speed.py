"""Per-frame inference time and FLOPs of a vosc model, optionally against the official AOST.

Protocol (both implementations, same inputs): frame 0 is the reference (``--objects`` rectangles);
frames 1..W are warm-up, frames W+1..W+N are timed. Each timed frame is one full propagation step as in
evaluation: encode, run the (S-)LSTT against long/short-term memory, decode logits, upsample to the
input size, argmax, and update the memory with the predicted mask. The long-term memory gap is 5, so the
long-term memory holds 1-2 frames (reference, then frame 5) as in real use.

With ``--reference PATH`` (an export of ``yoxu515/aot-benchmark`` branch ``paot``, e.g. made with
``git archive paot | tar -x -C PATH``) the official AOST pure-torch path is timed in the same process,
interleaved with vosc depth by depth and round by round, so that load from other processes hits both
alike. Only ``PATH`` is added to ``sys.path``; the official code is patched at run time:
``spatial_correlation_sampler`` is not used (``MultiheadLocalAttentionV2`` with ``enable_corr=False``,
the pure-torch pad+unfold path) and stubs are provided for the names ``GAU``/``LocalGAU`` that its
``transformer.py`` imports but ``attention.py`` never defines. The official model for depth n' is built
with ``MODEL_LSTT_NUM = n'`` (what its evaluation of an n'-layer AOST does).

Timings on a shared machine: interleaving makes the ratio fair, but busy-waiting OpenMP threads make
multi-threaded wall times explode under contention; run with ``OMP_WAIT_POLICY=PASSIVE`` there and read
the per-frame process CPU seconds (``cpu_median_s``) too. ``--profile`` adds a per-module wall-time
breakdown of vosc (encoder, self/long/short-term attention, FFN, decoder, ID bank, other).

STCN (``--model stcn``, depth 1): ``--reference PATH`` is an export of ``hkchengrex/STCN`` instead, run by
``bench/stcn_reference.py`` (its ``InferenceCore`` loop on CPU); both implementations get the same weights
(``--weights``: an official state dict, e.g. the stcn-parity fixture's ``checkpoint.pth``) and frames, and
the run compares their outputs: the aggregated probabilities of every propagated frame (max abs
difference) and the argmax masks (pixels that differ). vosc writes what the family's ``memory_mask``
gives (STCN: the soft probabilities, as the official loop). ``--objects 1,2,5,10`` times every object
count in turn (the per-object scaling; ``per_objects`` in the JSON).

Example::

    python bench/model_speed.py --model aost --depths 1 2 3 --size 481x849 --objects 2 --threads 2 \
        --reference /tmp/aotref --json bench/results/aost_speed.json
    python bench/model_speed.py --model stcn --depths 1 --size 480x854 --objects 2 --threads 1 \
        --reference /tmp/stcnref --weights ../shared/fixtures/stcn-parity/stcn/checkpoint.pth
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vosc.utils.io import atomic_write_json

LONG_TERM_GAP = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="aost",
                   help="vosc variant: build_model's (aost, aott, r50_aost, ...) or stcn / stcn_small")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--size", default="481x849", help="network input HxW")
    p.add_argument("--objects", type=_object_counts, default=[2],
                   help="object count, or several comma-separated (per-object scaling): 1,2,5,10")
    p.add_argument("--weights", type=Path, default=None,
                   help="STCN: official state dict loaded into vosc (and the reference)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=2, help="warm-up frames per run")
    p.add_argument("--frames", type=int, default=5, help="timed frames per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (vosc, reference) per depth")
    p.add_argument("--reference", type=Path, default=None,
                   help="export of aot-benchmark branch paot (AOT/AOST) or of hkchengrex/STCN (stcn)")
    p.add_argument("--reference-config", default="aost", help="official config name (configs/models/*.py)")
    p.add_argument("--no-flops", action="store_true")
    p.add_argument("--profile", action="store_true",
                   help="per-module wall-time breakdown of vosc (1 frame per depth)")
    p.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    p.add_argument("--channels-last", action="store_true", help="vosc: channels-last weights")
    p.add_argument("--compile", action="store_true",
                   help="vosc: torch.compile the submodules (the warm-up frames compile)")
    p.add_argument("--amp", choices=("off", "fp16", "bf16"), default="off", help="vosc: autocast dtype")
    p.add_argument("--winograd-tile", type=int, choices=(0, 2, 4, 6), default=None,
                   help="vosc STCN: Winograd F(m,3) tile of its CPU convolutions (0: direct; default: the "
                        "model's, 4)")
    return p.parse_args(argv)


def _object_counts(text: str) -> list[int]:
    counts = [int(v) for v in str(text).split(",") if v.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--objects wants positive counts like 2 or 1,2,5,10, got {text!r}")
    return counts


STCN_VARIANTS: dict[str, dict[str, Any]] = {
    "stcn": {},
    "stcn_small": {"key_encoder": "resnet18", "key_dim": 32, "value_dim": 128, "key_comp_dim": 128,
                   "decoder_dims": (128, 64, 64)},
}


def build_bench_model(name: str) -> torch.nn.Module:
    """A vosc network by variant name: ``build_model``'s AOT/AOST variants or ``stcn`` / ``stcn_small``."""
    if name in STCN_VARIANTS:
        from vosc.models.stcn import STCN

        return STCN(**STCN_VARIANTS[name])
    from vosc.models.variants import build_model

    return build_model(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_inputs(size: tuple[int, int], objects: int, frames: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic inputs: ``(T, 1, 3, H, W)`` normalised frames and a ``(1, 1, H, W)`` int64 mask."""
    g = torch.Generator().manual_seed(0)
    h, w = size
    base = F.interpolate(torch.randn(1, 3, h // 8 + 1, w // 8 + 1, generator=g), size=(h, w), mode="bilinear")
    clip = torch.stack([base.roll(shifts=2 * t, dims=-1) + 0.1 * torch.randn(1, 3, h, w, generator=g)
                        for t in range(frames)])
    mask = torch.zeros(1, 1, h, w, dtype=torch.long)
    for i in range(objects):
        y0, x0 = (h // 4) + (i * h) // (4 * max(objects, 1)), (w // 8) + (i * w) // (2 * max(objects, 1))
        mask[..., y0: y0 + h // 4, x0: x0 + w // 6] = i + 1
    return clip.to(device), mask.to(device)


class OursRunner:
    """Times ``vosc.inference.propagator.Propagator`` on a vosc model built by ``build_model``."""

    def __init__(self, name: str, device: torch.device, state: dict[str, torch.Tensor] | None = None) -> None:
        from vosc.inference.propagator import Propagator

        self.model = build_bench_model(name)
        if state is not None:  # an official STCN state dict (the reference's weights)
            from vosc.checkpoints.stcn import load_stcn_official

            load_stcn_official(self.model, state, name="--weights / reference")
        self.model = self.model.to(device).eval()
        self.propagator_cls = Propagator
        self.device = device
        self.last_probs: list[torch.Tensor] = []

    def _run(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int,
             times: list[tuple[float, float]], warmup: int) -> None:
        prop = self.propagator_cls(self.model, long_term_gap=LONG_TERM_GAP, memory_depth=depth)
        prop.add_reference(clip[0], mask0, objects)
        self.last_probs = []
        for t in range(1, clip.shape[0]):
            _sync(self.device)
            t0, c0 = time.perf_counter(), time.process_time()
            logits = prop.step(clip[t], depths=[depth])[depth]
            pred = logits.argmax(dim=1, keepdim=True)
            # what enters the memory is the family's choice: AOT the ids, STCN its soft probabilities
            prop.update_memory(self.model.memory_mask(prop.last_logits_4x[depth], pred))
            _sync(self.device)
            if t > warmup:
                times.append((time.perf_counter() - t0, time.process_time() - c0))
            self.last_probs.append(torch.softmax(logits[0, : objects + 1].float(), dim=0).cpu())

    @torch.inference_mode()
    def time_frames(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int,
                    warmup: int) -> list[tuple[float, float]]:
        """``(wall, process CPU)`` seconds per timed frame."""
        times: list[tuple[float, float]] = []
        self._run(depth, clip, mask0, objects, times, warmup)
        return times

    @torch.inference_mode()
    def profile(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int) -> dict[str, float]:
        """Per-module wall seconds of one step + memory update (after one warm-up frame)."""
        prop = self.propagator_cls(self.model, long_term_gap=LONG_TERM_GAP, memory_depth=depth)
        prop.add_reference(clip[0], mask0, objects)

        def frame(t: int) -> None:
            logits = prop.step(clip[t], depths=[depth])[depth]
            pred = logits.argmax(dim=1, keepdim=True)
            prop.update_memory(self.model.memory_mask(prop.last_logits_4x[depth], pred))

        frame(1)
        return module_breakdown(self.model, lambda: frame(2), self.device)

    @torch.inference_mode()
    def flops(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int) -> int:
        """FLOPs of one propagation step (frame 1: 1 long-term memory frame) incl. the memory update."""
        prop = self.propagator_cls(self.model, long_term_gap=LONG_TERM_GAP, memory_depth=depth)
        prop.add_reference(clip[0], mask0, objects)
        with FlopCounterMode(display=False) as counter:
            logits = prop.step(clip[1], depths=[depth])[depth]  # frame 1: STCN writes nothing, AOT short-term
            pred = logits.argmax(dim=1, keepdim=True)
            prop.update_memory(self.model.memory_mask(prop.last_logits_4x[depth], pred))
        return int(counter.get_total_flops())


PROFILE_PARTS = ("encoder", "encoder_projector", "self_attn", "long_term_attn", "short_term_attn",
                 "linear1", "activation", "linear2", "decoder", "id_bank")


def module_breakdown(model: torch.nn.Module, fn: Callable[[], Any], device: torch.device) -> dict[str, float]:
    """Inclusive wall seconds per module kind (summed over layers) while running ``fn`` once."""
    spent: dict[str, float] = {}
    starts: dict[int, float] = {}
    handles = []

    def pre(mod: torch.nn.Module, _args: Any) -> None:
        _sync(device)
        starts[id(mod)] = time.perf_counter()

    def post(kind: str) -> Callable[..., None]:
        def hook(mod: torch.nn.Module, _args: Any, _out: Any) -> None:
            _sync(device)
            spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - starts.pop(id(mod))
        return hook

    for name, mod in model.named_modules():
        kind = name.rsplit(".", 1)[-1]
        top = kind in ("encoder", "encoder_projector", "decoder", "id_bank")
        if kind in PROFILE_PARTS and (name == kind if top else name.startswith("lstt.")):
            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post(kind))]
    try:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        total = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    spent["ffn"] = sum(spent.pop(k, 0.0) for k in ("linear1", "activation", "linear2"))
    spent["other"] = total - sum(spent.values())
    spent["total"] = total
    return {k: round(v, 4) for k, v in spent.items()}


def import_reference(path: Path) -> dict[str, Any]:
    """Import the official code from ``path`` with the run-time patches described in the module doc."""
    if not (path / "networks" / "layers" / "attention.py").is_file():
        raise FileNotFoundError(f"{path} is not an export of aot-benchmark "
                                "(networks/layers/attention.py missing)")
    sys.path.insert(0, str(path))
    import networks.layers.attention as att  # type: ignore[import-not-found]

    for stub in ("GAU", "LocalGAU"):
        if not hasattr(att, stub):
            setattr(att, stub, type(stub, (torch.nn.Module,), {}))
    v2_init = att.MultiheadLocalAttentionV2.__init__
    if not getattr(v2_init, "_vosc_patched", False):
        def _init(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs["enable_corr"] = False
            v2_init(self, *args, **kwargs)

        _init._vosc_patched = True  # type: ignore[attr-defined]
        att.MultiheadLocalAttentionV2.__init__ = _init
    from configs.default import DefaultEngineConfig  # type: ignore[import-not-found]
    from networks.engines import build_engine  # type: ignore[import-not-found]
    from networks.models import build_vos_model  # type: ignore[import-not-found]

    return {"cfg": DefaultEngineConfig, "engine": build_engine, "model": build_vos_model}


class ReferenceRunner:
    """Times the official AOST inference engine exactly as its evaluator drives it (pure-torch path)."""

    def __init__(self, path: Path, config: str, device: torch.device) -> None:
        self.api = import_reference(path)
        self.config = config
        self.device = device
        self.models: dict[int, torch.nn.Module] = {}

    def _model(self, depth: int) -> Any:
        if depth not in self.models:
            cfg = self.api["cfg"]("bench", self.config)
            cfg.MODEL_LSTT_NUM = depth
            torch.manual_seed(0)
            self.models[depth] = self.api["model"](cfg.MODEL_VOS, cfg).to(self.device).eval()
        return self.models[depth]

    def _engine(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int) -> Any:
        model = self._model(depth)
        engine = self.api["engine"](model.cfg.MODEL_ENGINE, phase="eval", aot_model=model,
                                    gpu_id=0, long_term_mem_gap=LONG_TERM_GAP, short_term_mem_skip=1)
        engine.eval()
        engine.restart_engine()
        engine.add_reference_frame(clip[0], mask0.float(), frame_step=0, obj_nums=[objects])
        return engine

    def _frame(self, engine: Any, img: torch.Tensor) -> None:
        engine.match_propogate_one_frame(img)
        logit = engine.decode_current_logits()
        logit = F.interpolate(logit, size=img.shape[-2:], mode="bilinear", align_corners=True)
        label = torch.argmax(torch.softmax(logit, dim=1), dim=1, keepdim=True).float()
        engine.update_memory(label)

    @torch.inference_mode()
    def time_frames(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int,
                    warmup: int) -> list[tuple[float, float]]:
        """``(wall, process CPU)`` seconds per timed frame."""
        engine = self._engine(depth, clip, mask0, objects)
        times: list[tuple[float, float]] = []
        for t in range(1, clip.shape[0]):
            _sync(self.device)
            t0, c0 = time.perf_counter(), time.process_time()
            self._frame(engine, clip[t])
            _sync(self.device)
            if t > warmup:
                times.append((time.perf_counter() - t0, time.process_time() - c0))
        return times

    @torch.inference_mode()
    def flops(self, depth: int, clip: torch.Tensor, mask0: torch.Tensor, objects: int) -> int:
        """FLOPs of one propagation step (frame 1) incl. the memory update."""
        engine = self._engine(depth, clip, mask0, objects)
        with FlopCounterMode(display=False) as counter:
            self._frame(engine, clip[1])
        return int(counter.get_total_flops())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _summary(times: list[tuple[float, float]]) -> dict[str, Any]:
    wall = [t for t, _ in times]
    cpu = [c for _, c in times]
    return {"median_s": statistics.median(wall), "min_s": min(wall), "max_s": max(wall),
            "cpu_median_s": statistics.median(cpu), "cpu_min_s": min(cpu), "n": len(wall),
            "cpu_total_s": sum(cpu), "wall_total_s": sum(wall),
            "all_s": [round(t, 4) for t in wall], "all_cpu_s": [round(c, 4) for c in cpu]}


def compare_outputs(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> dict[str, Any]:
    """Output check of one video: ``(1 + K, H, W)`` aggregated probabilities per propagated frame of vosc
    and the reference: max abs difference, and pixels whose argmax differs (all frames)."""
    if len(ours) != len(ref) or any(a.shape != b.shape for a, b in zip(ours, ref, strict=False)):
        raise RuntimeError(f"output check: vosc gave {[tuple(a.shape) for a in ours]}, the reference "
                           f"{[tuple(b.shape) for b in ref]}")
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, ref, strict=True))
    mismatch = sum(int((a.argmax(0) != b.argmax(0)).sum()) for a, b in zip(ours, ref, strict=True))
    return {"max_abs_prob_diff": diff, "mask_pixels_differing": mismatch,
            "pixels": sum(a[0].numel() for a in ours), "finite": all(bool(a.isfinite().all()) for a in ref)}


def _under(ctx: Any, fn: Callable[..., Any], *args: Any) -> Any:
    with ctx:
        return fn(*args)


def _with_speed_options(runner: OursRunner, args: argparse.Namespace, device: torch.device) -> OursRunner:
    """Apply ``--channels-last`` / ``--compile`` to the vosc model and time it under ``--amp``."""
    from vosc.inference.speed import apply_speed_options, autocast

    if args.winograd_tile is not None:
        from vosc.models.winograd import WinogradConv2d

        for mod in runner.model.modules():
            if isinstance(mod, WinogradConv2d):
                mod.tile = args.winograd_tile or None
    apply_speed_options(runner.model, channels_last=args.channels_last, compile=args.compile)
    timed = runner.time_frames
    runner.time_frames = lambda *a: _under(autocast(device, args.amp), timed, *a)  # type: ignore[method-assign]
    return runner


def _make_runners(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    runners = _make_runners_plain(args, device)
    runners["vosc"] = _with_speed_options(runners["vosc"], args, device)
    return runners


def _make_runners_plain(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    stcn = args.model in STCN_VARIANTS
    if args.reference is None:
        state = None
        if stcn and args.weights is not None:
            state = torch.load(args.weights, map_location="cpu", weights_only=True)
        return {"vosc": OursRunner(args.model, device, state)}
    if stcn:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from stcn_reference import STCNReferenceRunner  # type: ignore[import-not-found]

        ref = STCNReferenceRunner(args.reference, args.weights, device)
        return {"vosc": OursRunner(args.model, device, ref.state_dict()), "reference": ref}
    return {"vosc": OursRunner(args.model, device),
            "reference": ReferenceRunner(args.reference, args.reference_config, device)}


def run_objects(args: argparse.Namespace, runners: dict[str, Any], objects: int,
                device: torch.device) -> dict[str, Any]:
    """Time every depth at one object count (rounds interleaved); per-depth entries as in ``per_depth``."""
    h, w = (int(v) for v in args.size.lower().split("x"))
    clip, mask0 = make_inputs((h, w), objects, 1 + args.warmup + args.frames, device)
    times: dict[str, dict[int, list[tuple[float, float]]]] = {k: {d: [] for d in args.depths}
                                                             for k in runners}
    checks: dict[int, dict[str, Any]] = {}
    for rnd in range(args.rounds):
        for depth in args.depths:
            order = list(runners) if rnd % 2 == 0 else list(reversed(list(runners)))
            for key in order:
                times[key][depth] += runners[key].time_frames(depth, clip, mask0, objects, args.warmup)
            if "reference" in runners and hasattr(runners["reference"], "last_probs"):
                checks[depth] = compare_outputs(runners["vosc"].last_probs, runners["reference"].last_probs)
    per_depth: dict[str, Any] = {}
    for depth in args.depths:
        entry: dict[str, Any] = {k: _summary(times[k][depth]) for k in runners}
        if not args.no_flops:
            for k, r in runners.items():
                entry[k]["gflops"] = round(r.flops(depth, clip, mask0, objects) / 1e9, 2)
        if args.profile:
            entry["vosc"]["profile_s"] = runners["vosc"].profile(depth, clip, mask0, objects)
        if "reference" in runners:
            ref, ours = entry["reference"], entry["vosc"]
            entry["speedup"] = ref["median_s"] / ours["median_s"]
            entry["speedup_min"] = ref["min_s"] / ours["min_s"]
            entry["speedup_cpu"] = ref["cpu_median_s"] / ours["cpu_median_s"]
            # the whole timed video: with a growing memory (long --frames) later frames cost more
            entry["speedup_cpu_video"] = ref["cpu_total_s"] / ours["cpu_total_s"]
        if depth in checks:
            entry["outputs"] = checks[depth]
        per_depth[str(depth)] = entry
    return per_depth


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and return the result dictionary (``per_depth``: the first object count;
    ``per_objects``: every count)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = list(os.getloadavg())
    h, w = (int(v) for v in args.size.lower().split("x"))
    runners = _make_runners(args, device)
    per_objects = {str(n): run_objects(args, runners, n, device) for n in args.objects}
    result: dict[str, Any] = {
        "model": args.model, "size_hw": [h, w], "objects": args.objects[0], "object_counts": args.objects,
        "threads": args.threads, "weights": None if args.weights is None else str(args.weights),
        "device": str(device), "long_term_gap": LONG_TERM_GAP, "warmup": args.warmup,
        "frames_per_run": args.frames, "rounds": args.rounds, "torch": torch.__version__,
        "channels_last": args.channels_last, "compile": args.compile, "amp": args.amp,
        "winograd_tile": args.winograd_tile,
        "machine": {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                    "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": list(os.getloadavg()),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
        "per_depth": per_objects[str(args.objects[0])], "per_objects": per_objects,
    }
    if device.type == "cuda":
        result["machine"]["gpu"] = torch.cuda.get_device_name(device)
    return result


def write_json(result: dict[str, Any], path: Path) -> None:
    """Atomic JSON write."""
    atomic_write_json(path, result, indent=1, trailing_newline=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    result = run(args)
    for objects, per_depth in result["per_objects"].items():
        for depth, entry in per_depth.items():
            print(summary_line(objects, depth, entry))
    if args.json is not None:
        write_json(result, args.json)
    return 0


def summary_line(objects: str, depth: str, entry: dict[str, Any]) -> str:
    """One printed line per (object count, depth)."""
    line = f"{objects} objects, depth {depth}: vosc {entry['vosc']['median_s']:.3f} s/frame"
    if "gflops" in entry["vosc"]:
        line += f" ({entry['vosc']['gflops']} GFLOPs)"
    if "reference" in entry:
        line += (f" | reference {entry['reference']['median_s']:.3f} s/frame"
                 f" ({entry['reference'].get('gflops', '?')} GFLOPs)"
                 f" | speed-up median {entry['speedup']:.2f}x"
                 f" min {entry['speedup_min']:.2f}x cpu {entry['speedup_cpu']:.2f}x"
                 f" whole-video cpu {entry.get('speedup_cpu_video', float('nan')):.2f}x")
    if "outputs" in entry:
        out = entry["outputs"]
        line += (f" | outputs: max |prob diff| {out['max_abs_prob_diff']:.2e},"
                 f" {out['mask_pixels_differing']} of {out['pixels']} mask pixels differ")
    return line


if __name__ == "__main__":
    raise SystemExit(main())
