"""ΔPSNR of a briefly trained enhancer on DAVIS: train on crops of 3 sequences, test on the 4th.

For each codec, the first ``--frames`` frames of every sequence are compressed (whole-sequence encode)
at every ``--q``; one enhancer (conditioned on codec/QP/frame type) is trained with the stage-1
Charbonnier loss on random ``--crop`` crops of 3-frame windows ``(t-2, t-1, t)`` of the training
sequences at all ``q`` together (loss on frame ``t``), then evaluated on all frames of the held-out sequence at full resolution.
Reports PSNR of the decoded and the enhanced frames (RGB, over the clip) and ΔPSNR per operating point.

Example (davis2016-val-mini, CPU)::

    python bench/enhancer_delta_psnr.py --root ../shared/data/davis2016-val-mini --codec x265 --q 32 42 \
        --size tiny --steps 600 --json /tmp/dpsnr_x265.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vosc.codecs import build_codec
from vosc.lit.enhancer_module import clip_psnr
from vosc.losses.enhancement import charbonnier
from vosc.models.enhancer import CODECS, CompressionAwareEnhancer
from vosc.utils.io import atomic_write_json

log = logging.getLogger("enhancer_delta_psnr")
TYPE_IDS = {"I": 0, "P": 1, "B": 2}


def load_sequence(root: Path, seq: str, frames: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 of the first ``frames`` JPEGs of ``JPEGImages/480p/<seq>``."""
    files = sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))[:frames]
    if not files:
        raise FileNotFoundError(f"no frames in {root / 'JPEGImages' / '480p' / seq}")
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def to01(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 → ``(T, 3, H, W)`` float in ``[0, 1]``."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def compress_all(raws: dict[str, np.ndarray], codec_name: str, qs: list[int]) -> list[dict]:
    """Every sequence at every q: ``{seq, q, raw, dec, qps (T,), types (T,)}``."""
    codec = build_codec(codec_name)
    items = []
    for seq, raw in raws.items():
        for q in qs:
            t0 = time.perf_counter()
            enc = codec.compress(raw, q)
            t = raw.shape[0]
            qps = torch.tensor(enc.frame_qps if enc.frame_qps else [float(q)] * t, dtype=torch.float32)
            types = torch.tensor([TYPE_IDS.get(x, -1) for x in enc.frame_types] if enc.frame_types else [-1] * t)
            log.info("%s %s q=%d: %.4f bpp, %.1fs", codec_name, seq, q, enc.bpp, time.perf_counter() - t0)
            items.append({"seq": seq, "q": q, "raw": to01(raw), "dec": to01(enc.frames), "qps": qps,
                          "types": types, "bpp": enc.bpp})
    return items


def sample_windows(items: list[dict], batch: int, crop: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random training windows: decoded ``(N, 3, 3, crop, crop)`` frames ``(t-2, t-1, t)``, raw frame ``t``
    ``(N, 3, crop, crop)``, its QP ``(N,)`` and picture-type index ``(N,)`` (unknown = 3)."""
    wins, targets, qps, types = [], [], [], []
    for i in torch.randint(len(items), (batch,), generator=g).tolist():
        it = items[i]
        t_len, _, h, w = it["raw"].shape
        t = int(torch.randint(0, t_len, (1,), generator=g))
        y, x = (int(torch.randint(0, n - crop + 1, (1,), generator=g)) for n in (h, w))
        idx = [max(t - 2, 0), max(t - 1, 0), t]
        wins.append(it["dec"][idx, :, y:y + crop, x:x + crop])
        targets.append(it["raw"][t, :, y:y + crop, x:x + crop])
        qps.append(it["qps"][t])
        types.append(int(it["types"][t]) if int(it["types"][t]) >= 0 else 3)
    return torch.stack(wins), torch.stack(targets), torch.stack(qps), torch.tensor(types)


def train(model: CompressionAwareEnhancer, items: list[dict], codec: str, steps: int, batch: int, crop: int,
          lr: float, seed: int) -> None:
    """Stage-1 training on random crops of 3-frame windows (residual of the last frame only, a third of the
    compute of a whole-clip forward): Charbonnier loss, AdamW, 20-step warm-up, cosine decay."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(1.0, s / steps)))))
    codec_idx = torch.full((batch,), CODECS.index(codec), dtype=torch.long)
    model.train()
    t_start = time.perf_counter()
    for step in range(steps):
        win, target, qps, types = sample_windows(items, batch, crop, g)
        loss = charbonnier(win[:, -1] + model.enhance_window(win, codec_idx, qps, types), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log.info("step %d loss %.5f (%.1fs)", step, loss.item(), time.perf_counter() - t_start)


@torch.no_grad()
def evaluate(model: CompressionAwareEnhancer, items: list[dict], codec: str, chunk: int = 4) -> dict[str, dict]:
    """PSNR in/out per held-out ``(seq, q)``, enhancing ``chunk`` frames at a time (with their history)."""
    model.eval()
    res = {}
    for it in items:
        dec, t = it["dec"], it["dec"].shape[0]
        outs = []
        for s in range(0, t, chunk):
            lo = max(0, s - 2)
            o = model(dec[None, lo:s + chunk], [codec], None, it["qps"][None, lo:s + chunk],
                      it["types"][None, lo:s + chunk])
            outs.append(o[0, s - lo:])
        out = torch.cat(outs)
        p_in = float(clip_psnr(dec[None], it["raw"][None]))
        p_out = float(clip_psnr(out[None], it["raw"][None]))
        res[f"{codec}_q{it['q']}"] = {"sequence": it["seq"], "bpp": it["bpp"], "psnr_in": p_in,
                                      "psnr_out": p_out, "dpsnr": p_out - p_in}
    return res


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="DAVIS root (JPEGImages/480p/<seq>)")
    p.add_argument("--codec", default="x265", choices=["x265", "vvenc"])
    p.add_argument("--q", type=int, nargs="+", default=[32, 42])
    p.add_argument("--size", default="tiny", choices=["tiny", "base"])
    p.add_argument("--test-seq", default=None, help="held-out sequence (default: the last in sorted order)")
    p.add_argument("--frames", type=int, default=16, help="first frames of each sequence")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
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
    items = compress_all({s: load_sequence(args.root, s, args.frames) for s in seqs}, args.codec, args.q)
    model = CompressionAwareEnhancer(args.size)
    t0 = time.perf_counter()
    train(model, [i for i in items if i["seq"] != test_seq], args.codec, args.steps, args.batch, args.crop,
          args.lr, args.seed)
    train_s = time.perf_counter() - t0
    results = {"codec": args.codec, "size": args.size, "steps": args.steps, "batch": args.batch,
               "crop": args.crop, "frames": args.frames, "train_sequences": [s for s in seqs if s != test_seq],
               "test_sequence": test_seq, "train_seconds": train_s, "threads": args.threads,
               "points": evaluate(model, [i for i in items if i["seq"] == test_seq], args.codec)}
    for tag, r in results["points"].items():
        print(f"{args.size} {tag} {r['sequence']}: {r['bpp']:.4f} bpp  PSNR {r['psnr_in']:.3f} -> "
              f"{r['psnr_out']:.3f} dB  (ΔPSNR {r['dpsnr']:+.3f} dB)")
    if args.json:
        atomic_write_json(args.json, results, indent=2, trailing_newline=False)


if __name__ == "__main__":
    main()
