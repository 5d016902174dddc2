"""Rate ladder of a codec on a DAVIS-layout dataset: pooled bpp, PSNR-Y and CPU cost per frame.

Example::

    python bench/codec_ladder.py --root ../shared/data/davis2016-val-mini --set all \\
        --codec x265 --q 22 27 32 37 42 47 --mode sequence --check-direct --json x265.json

``--mode sequence`` encodes every sequence as one stream; ``--mode clip`` encodes consecutive
non-overlapping clips of ``--clip-len`` frames independently (a shorter last clip is kept).
bpp = total bits / (W * H * frames) pooled over all sequences; PSNR-Y is BT.601 luma PSNR averaged over
frames; CPU seconds include child processes (FFmpeg for VVenC).

``--check-direct`` (x265 only) re-encodes the same frames with PyAV directly, written here
independently of ``vosc.codecs``: RGB -> yuv420p by swscale and libx265 with the same parameters. It
reports the relative bpp difference to the codec layer (the issue asks for < 1% at CRF 42).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from vosc.codecs import build_codec
from vosc.codecs.base import Codec
from vosc.codecs.yuv import planes_to_i420, rgb_to_yuv420
from vosc.metrics.rate import psnr_y_frames
from vosc.utils.io import atomic_write_json


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (user + system)."""
    own = time.process_time()
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ch.ru_utime + ch.ru_stime


def list_sequences(root: Path, split: str) -> list[str]:
    """Sequence names of ``ImageSets/2017/<split>.txt``; ``all`` or ``a+b`` join several splits."""
    names: list[str] = []
    splits = ["train", "val"] if split == "all" else split.split("+")
    for s in splits:
        path = root / "ImageSets" / "2017" / f"{s}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"split file {path} not found")
        names += [n.strip() for n in path.read_text().splitlines() if n.strip()]
    return names


def load_sequence(root: Path, name: str) -> np.ndarray:
    """All frames ``(T, H, W, 3)`` uint8 of ``JPEGImages/480p/<name>``."""
    folder = root / "JPEGImages" / "480p" / name
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no JPEG frames in {folder}")
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def direct_pyav_x265_bits(frames: np.ndarray, crf: int, same_yuv: bool = False) -> int:
    """Bits of a direct PyAV libx265 encode with the paper's parameters.

    ``same_yuv=False``: RGB -> yuv420p by swscale (fully independent of vosc). ``same_yuv=True``: the
    yuv420p planes of ``vosc.codecs.yuv`` (isolates the codec wrapper from the colour conversion).
    """
    import av

    t, h, w = frames.shape[:3]
    planes = rgb_to_yuv420(frames[:, : h - h % 2, : w - w % 2]) if same_yuv else None
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 25), Fraction(25)
    params = f"crf={crf}:keyint=8:pools=none:frame-threads=1:info=0:log-level=error"
    enc.options = {"preset": "veryfast", "tune": "zerolatency", "x265-params": params}
    total = 0
    for i in range(t):
        if planes is not None:
            frame = av.VideoFrame.from_ndarray(planes_to_i420(*planes, i), format="yuv420p")
        else:
            rgb = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frames[i, : enc.height, : enc.width]), format="rgb24"
            )
            frame = rgb.reformat(format="yuv420p")
        frame.pts = i
        total += sum(p.size for p in enc.encode(frame))
    total += sum(p.size for p in enc.encode(None))
    return 8 * total


def chunks(t: int, mode: str, clip_len: int) -> list[slice]:
    """Frame ranges encoded as separate streams."""
    if mode == "sequence":
        return [slice(0, t)]
    return [slice(s, min(s + clip_len, t)) for s in range(0, t, clip_len)]


def run_point(
    codec: Codec, seqs: dict[str, np.ndarray], q: int, mode: str, clip_len: int, direct: bool
) -> dict:
    """Encode every sequence at ``q`` and pool the statistics of one operating point."""
    bits = pixels = frames_n = 0
    direct_bits = same_yuv_bits = 0
    psnrs: list[float] = []
    enc_cpu = dec_cpu = 0.0
    for frames in seqs.values():
        t, h, w = frames.shape[:3]
        for part in chunks(t, mode, clip_len):
            clip = np.ascontiguousarray(frames[part])
            c0 = cpu_seconds()
            stream = codec.encode(clip, q)
            c1 = cpu_seconds()
            decoded = codec.decode(stream, len(clip), h, w)
            c2 = cpu_seconds()
            enc_cpu += c1 - c0
            dec_cpu += c2 - c1
            bits += 8 * len(stream)
            pixels += len(clip) * h * w
            frames_n += len(clip)
            psnrs += [float(x) for x in psnr_y_frames(clip, decoded)]
            if direct:
                direct_bits += direct_pyav_x265_bits(clip, q)
                same_yuv_bits += direct_pyav_x265_bits(clip, q, same_yuv=True)
    out = {
        "q": q,
        "bpp": bits / pixels,
        "bits": bits,
        "psnr_y": float(np.mean(psnrs)),
        "encode_cpu_s_per_frame": enc_cpu / frames_n,
        "decode_cpu_s_per_frame": dec_cpu / frames_n,
        "frames": frames_n,
    }
    if direct:
        out["direct_pyav_bpp"] = direct_bits / pixels
        out["direct_rel_diff"] = bits / direct_bits - 1.0
        out["direct_same_yuv_bpp"] = same_yuv_bits / pixels
        out["direct_same_yuv_rel_diff"] = bits / same_yuv_bits - 1.0
    return out


def write_json(path: Path, payload: dict) -> None:
    """Atomic JSON write."""
    atomic_write_json(path, payload, indent=2, trailing_newline=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, required=True, help="DAVIS-layout root (JPEGImages/480p, ImageSets/2017)"
    )
    ap.add_argument("--set", default="val", help="train, val, train+val or all")
    ap.add_argument("--codec", choices=["x265", "vvenc"], required=True)
    ap.add_argument("--q", type=int, nargs="+", default=[22, 27, 32, 37, 42, 47])
    ap.add_argument("--mode", choices=["clip", "sequence"], default="sequence")
    ap.add_argument("--clip-len", type=int, default=5)
    ap.add_argument(
        "--max-frames", type=int, default=0, help="use only the first N frames per sequence (0: all)"
    )
    ap.add_argument(
        "--check-direct", action="store_true", help="x265 only: compare with a direct PyAV encode"
    )
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.check_direct and args.codec != "x265":
        ap.error("--check-direct is only implemented for x265")

    names = list_sequences(args.root, args.set)
    seqs = {n: load_sequence(args.root, n) for n in names}
    if args.max_frames:
        seqs = {n: f[: args.max_frames] for n, f in seqs.items()}
    codec = build_codec(args.codec)
    points = []
    for q in args.q:
        t0 = time.perf_counter()
        point = run_point(codec, seqs, q, args.mode, args.clip_len, args.check_direct)
        point["wall_s"] = time.perf_counter() - t0
        points.append(point)
        extra = (
            f"  direct(swscale) {point['direct_pyav_bpp']:.5f} ({100 * point['direct_rel_diff']:+.2f}%)"
            f"  direct(same yuv) {point['direct_same_yuv_bpp']:.5f} "
            f"({100 * point['direct_same_yuv_rel_diff']:+.2f}%)"
            if args.check_direct
            else ""
        )
        print(
            f"{args.codec} q={q:2d}  bpp {point['bpp']:.5f}  PSNR-Y {point['psnr_y']:.2f} dB  "
            f"enc {point['encode_cpu_s_per_frame']:.3f} s/f  dec {point['decode_cpu_s_per_frame']:.4f} s/f  "
            f"frames {point['frames']}{extra}",
            flush=True,
        )
    payload = {
        "codec": args.codec,
        "version": codec.version(),
        "params": codec.params(),
        "mode": args.mode,
        "clip_len": args.clip_len if args.mode == "clip" else None,
        "root": str(args.root),
        "set": args.set,
        "sequences": {n: list(f.shape) for n, f in seqs.items()},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "points": points,
    }
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
