"""ΔPSNR of a briefly trained enhancer on DAVIS: train on crops of 3 sequences, test on the 4th.

For the chosen codec, the first ``--frames`` frames of every sequence are compressed (whole-sequence
encode) at every ``--q``; one enhancer (conditioned on codec/QP/frame type) is trained with
:func:`vosc.enhancer_fit.fit_enhancer` (stage 1, ``--loss`` MSE or Charbonnier) on random ``--crop``
crops of 3-frame windows ``(t-2, t-1, t)`` of the training sequences at all ``q`` together (plus
``--synthetic`` videos of the built-in generator coded the same way), then evaluated on all frames of the
held-out sequence at full resolution. Reports PSNR of the decoded and the enhanced frames (RGB, over the
clip) and ΔPSNR per operating point.

Example (davis2016-val-mini, CPU)::

    python bench/enhancer_delta_psnr.py --root ../shared/data/davis2016-val-mini --codec x265 --q 32 42 \
        --size tiny --steps 3000 --synthetic 240 --threads 2 --json /tmp/dpsnr_x265.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vosc.data.sources import render_synthetic_videos
from vosc.enhancer_fit import DecodedPair, code_clips, evaluate_dpsnr, fit_enhancer
from vosc.models.enhancer import CompressionAwareEnhancer
from vosc.utils.io import atomic_write_json

log = logging.getLogger("enhancer_delta_psnr")


def load_sequence(root: Path, seq: str, frames: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 of the first ``frames`` JPEGs of ``JPEGImages/480p/<seq>``."""
    files = sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))[:frames]
    if not files:
        raise FileNotFoundError(f"no frames in {root / 'JPEGImages' / '480p' / seq}")
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def evaluate(model: CompressionAwareEnhancer, clips: list[DecodedPair]) -> dict[str, dict]:
    """PSNR in/out per held-out operating point ``<codec>_q<q>``."""
    return {f"{r['codec']}_q{r['q']}": {"sequence": r["name"],
                                         **{k: r[k] for k in ("bpp", "psnr_in", "psnr_out", "dpsnr")}}
            for r in evaluate_dpsnr(model, clips)}


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="DAVIS root (JPEGImages/480p/<seq>)")
    p.add_argument("--codec", default="x265", choices=["x265", "vvenc"])
    p.add_argument("--q", type=int, nargs="+", default=[32, 42])
    p.add_argument("--size", default="tiny", choices=["tiny", "base"])
    p.add_argument("--test-seq", default=None, help="held-out sequence (default: the last in sorted order)")
    p.add_argument("--frames", type=int, default=16, help="first frames of each sequence")
    p.add_argument("--synthetic", type=int, default=0,
                   help="also train on this many synthetic 160x96 videos "
                        "(vosc.data.sources.render_synthetic_videos)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", default="mse", choices=["mse", "charbonnier"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    seqs = sorted(d.name for d in (args.root / "JPEGImages" / "480p").iterdir() if d.is_dir())
    test_seq = args.test_seq or seqs[-1]
    if test_seq not in seqs:
        raise SystemExit(f"--test-seq {test_seq!r} not in {args.root}: {seqs}")
    clips = code_clips(((s, load_sequence(args.root, s, args.frames)) for s in seqs), args.codec, args.q)
    train = [c for c in clips if c.name != test_seq]
    if args.synthetic:
        synth = ((f"synth-{i}", f)
                 for i, (f, _) in enumerate(render_synthetic_videos(args.synthetic, 8, seed=args.seed)))
        train += code_clips(synth, args.codec, args.q)
    model = CompressionAwareEnhancer(args.size)
    t0 = time.perf_counter()
    fit_enhancer(model, train, args.steps, args.batch, args.crop, args.lr, args.loss, seed=args.seed)
    train_s = time.perf_counter() - t0
    results = {"codec": args.codec, "size": args.size, "steps": args.steps, "batch": args.batch,
               "crop": args.crop, "loss": args.loss, "frames": args.frames,
               "synthetic_videos": args.synthetic,
               "train_sequences": [s for s in seqs if s != test_seq], "test_sequence": test_seq,
               "train_seconds": train_s, "threads": args.threads,
               "points": evaluate(model, [c for c in clips if c.name == test_seq])}
    for tag, r in results["points"].items():
        print(f"{args.size} {tag} {r['sequence']}: {r['bpp']:.4f} bpp  PSNR {r['psnr_in']:.3f} -> "
              f"{r['psnr_out']:.3f} dB  (ΔPSNR {r['dpsnr']:+.3f} dB)")
    if args.json:
        atomic_write_json(args.json, results, indent=2, trailing_newline=False)


if __name__ == "__main__":
    main()
