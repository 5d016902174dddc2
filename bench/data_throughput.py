"""Training-clip throughput of the data pipeline per worker (one process, one core) for each codec and
compression mode, at the reference clip size (5 frames, 465x465).

    python bench/data_throughput.py --root ../shared/data/davis2016-val-mini --codecs none x265 vvenc \
        --modes clip sequence --clips 20 --q 42 --json bench_data.json

Sequence mode is measured with a warm cache in two ways: ``warm_disk`` (bitstreams on disk, a fresh
worker: includes one decode per sequence) and ``warm_memory`` (the worker's decoded-sequence LRU is warm:
the steady state of a long epoch), plus ``warm_disk_no_lru`` (no decoded-sequence memory: every clip
decodes from the last random-access point before its first frame to its last frame; the regime of a
dataset much larger than the LRU, e.g. YouTube-VOS) and ``warm_disk_no_lru_full`` (the same, decoding
the whole sequence per clip). ``--no-lru`` measures only the last two, with ``--clips`` clips each. The
cache is filled first (``fill_seconds``, not counted). CPU seconds include child processes (FFmpeg).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from vosc.data.compressed_dataset import CompressedClipDataset, CompressionSpec, TrainEntry
from vosc.data.sampling import ClipSampler
from vosc.data.sources.davis import DavisSource
from vosc.data.transforms import ClipAugment
from vosc.utils.io import atomic_write_json


def _dataset(source: DavisSource, spec: CompressionSpec, crop: int, seed: int) -> CompressedClipDataset:
    return CompressedClipDataset([TrainEntry(source, repeat=1, max_gap=12)], ClipSampler(num_frames=5),
                                 ClipAugment(crop_size=(crop, crop)), spec, seed=seed, keep_raw=False)


def _cpu() -> float:
    """CPU seconds of this process plus its finished children (the FFmpeg/VVenC subprocesses)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _rate(ds: CompressedClipDataset, n: int, offset: int = 0) -> dict[str, float]:
    t0, c0 = time.perf_counter(), _cpu()
    bits = 0
    for i in range(n):
        bits += ds[offset + i].bits
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"clips": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "clips_per_s": round(n / wall, 3),
            "clips_per_cpu_s": round(n / max(cpu, 1e-9), 3), "mean_bits": bits / n}


def run(args: argparse.Namespace) -> dict[str, object]:
    """Measure every (codec, mode) pair."""
    source = DavisSource(args.root, split=None)
    results: dict[str, object] = {"machine": f"{platform.node()} "
                                             f"{platform.processor() or platform.machine()}, "
                                             f"{os.cpu_count()} logical CPUs", "root": str(args.root),
                                  "crop": args.crop, "frames": 5, "q": args.q, "runs": []}
    cache_root = Path(args.cache_dir or tempfile.mkdtemp(prefix="vosc-bench-cache-"))
    for codec in args.codecs:
        for mode in args.modes:
            if codec == "none" and mode == "sequence":
                continue
            q = None if codec == "none" else args.q
            row: dict[str, object] = {"codec": codec, "mode": mode}
            spec = CompressionSpec(codec, q=q, mode=mode, cache_dir=cache_root / codec)
            ds = _dataset(source, spec, args.crop, args.seed)
            if mode == "clip":
                _rate(ds, 1, offset=10_000)  # warm-up: imports, encoder start
                row.update(_rate(ds, args.clips))
            else:
                t0 = time.perf_counter()
                for v in range(len(source)):  # one clip per sequence encodes every sequence once
                    ds[v]
                row["fill_seconds"] = round(time.perf_counter() - t0, 2)
                fresh = _dataset(source, CompressionSpec(codec, q=q, mode=mode, cache_dir=cache_root / codec),
                                 args.crop, args.seed)
                if not args.no_lru:
                    row["warm_disk"] = _rate(fresh, args.clips, offset=len(source))
                    row["warm_memory"] = _rate(fresh, args.clips, offset=len(source) + args.clips)
                n_no_lru = args.clips if args.no_lru else max(2, args.clips // 4)
                for name, policy in (("warm_disk_no_lru", "auto"), ("warm_disk_no_lru_full", "full")):
                    no_lru = CompressionSpec(codec, q=q, mode=mode, cache_dir=cache_root / codec,
                                             max_decoded_bytes=0)
                    no_lru.cache.decode_policy = policy  # auto + no LRU = keyframe-aware partial decode
                    row[name] = _rate(_dataset(source, no_lru, args.crop, args.seed), n_no_lru,
                                      offset=len(source) + 2 * args.clips)
            results["runs"].append(row)  # type: ignore[union-attr]
            print(json.dumps(row))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="../shared/data/davis2016-val-mini")
    p.add_argument("--codecs", nargs="+", default=["none", "x265", "vvenc"])
    p.add_argument("--modes", nargs="+", default=["clip", "sequence"])
    p.add_argument("--q", type=int, default=42)
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--crop", type=int, default=465)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-lru", action="store_true",
                   help="sequence mode: measure only without the decoded LRU "
                        "(partial vs whole-sequence decode)")
    p.add_argument("--cache-dir", default=None, help="bitstream cache (default: a new temp folder)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    results = run(args)
    if args.json:
        atomic_write_json(args.json, results, indent=1, trailing_newline=False)


if __name__ == "__main__":
    main()
