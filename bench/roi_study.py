"""Object-aware coding as a coding tool (issue 25): PSNR-Y inside / outside the objects at equal bpp.

::

    python bench/roi_study.py --root ../shared/data/davis2016-val-mini [--split val] \\
        [--resize-long-edge 432] [--crfs 32 37 42 47] [--max-frames N] --out OUT.md

Drives :class:`~vosc.codecs.roi.RoiX265Codec` (several offset / block settings) and
:class:`~vosc.codecs.roi.BackgroundBlur` + x265 with the ground-truth masks (an oracle for the encoder's
masks: the coding tool alone, apart from the VOS model's errors) over an x265 CRF ladder, and compares each
with plain x265 at equal video bpp (plain curve interpolated linearly in log bpp). Bits are the real bytes of
each bitstream; the mask side information is the same for all variants in ``analysis=encoder`` and is left out
here (see ``bench/mask_codecs.py``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vosc.codecs.roi import BackgroundBlur, RoiX265Codec  # noqa: E402
from vosc.codecs.x265 import X265Codec  # noqa: E402
from vosc.evaluation.report import rows_to_markdown  # noqa: E402
from vosc.metrics.rate import psnr_y_regions  # noqa: E402
from vosc.utils.io import atomic_write_text  # noqa: E402

log = logging.getLogger("roi_study")

VARIANTS = {
    "roi -0.2/+0.2 block16": RoiX265Codec(-0.2, 0.2, margin=8, block=16),
    "roi -0.4/+0.2 block16": RoiX265Codec(-0.4, 0.2, margin=8, block=16),
    "roi 0/+0.3 block16": RoiX265Codec(0.0, 0.3, margin=8, block=16),
    "roi -0.2/+0.2 boxes": RoiX265Codec(-0.2, 0.2, margin=8, block=None),
    "blur sigma3": BackgroundBlur(3.0, dilate=16, feather=8),
}


def load(root: Path, split: str, long_edge: int | None, max_frames: int | None) -> dict[str, tuple]:
    """``{sequence: (frames (T, H, W, 3), masks (T, H, W))}`` of a DAVIS-layout folder."""
    from vosc.data.sources.davis import DavisSource
    from vosc.evaluation.frames import _downscale

    src = DavisSource(root, split=split)
    out = {}
    for rec in src.videos:
        idx = list(range(len(rec) if max_frames is None else min(len(rec), max_frames)))
        frames = src.load_frames(rec, idx)
        masks, _ = src.load_masks_or_empty(rec, idx, frames.shape[1:3])
        out[rec.name] = _downscale(frames, masks, long_edge) if long_edge else (frames, masks)
    return out


def code(name: str, frames: np.ndarray, masks: np.ndarray, q: int) -> tuple[int, float | None, float | None]:
    """``(bits, PSNR-Y inside, PSNR-Y outside)`` of one sequence coded by variant ``name`` (or ``plain``)."""
    plain = X265Codec()
    tool = VARIANTS.get(name)
    if isinstance(tool, RoiX265Codec):
        data = tool.encode_with_masks(frames, q, masks).bitstream
    else:
        data = plain.encode(tool(frames, masks) if tool is not None else frames, q)
    decoded = plain.decode(data, *frames.shape[:3])
    return 8 * len(data), *psnr_y_regions(frames, decoded, masks)


def curve(name: str, data: dict[str, tuple], crfs: list[int]) -> list[dict[str, float]]:
    """Points ``{q, bpp, inside, outside}`` over all sequences (bits / pixels; region PSNR from the pooled
    MSE)."""
    points = []
    for q in crfs:
        bits = pixels = 0
        sums = {"inside": [0.0, 0], "outside": [0.0, 0]}
        for frames, masks in data.values():
            b, inside, outside = code(name, frames, masks, q)
            bits, pixels = bits + b, pixels + masks.size
            for key, value, n in (("inside", inside, int((masks > 0).sum())),
                                  ("outside", outside, int((masks == 0).sum()))):
                if value is not None:  # average the MSE, not the dB, over sequences
                    sums[key][0] += n * 255.0**2 / 10 ** (value / 10)
                    sums[key][1] += n
        point = {"q": q, "bpp": bits / pixels}
        point.update({k: 10 * math.log10(255.0**2 / (s / n)) for k, (s, n) in sums.items()})
        points.append(point)
        log.info("%s q%d: %.4f bpp, inside %.2f dB, outside %.2f dB", name, q, point["bpp"], point["inside"],
                 point["outside"])
    return points


def at_bpp(points: list[dict[str, float]], bpp: float, key: str) -> float | None:
    """``key`` of a curve at ``bpp`` (linear in log bpp; ``None`` outside the curve)."""
    pts = sorted((p["bpp"], p[key]) for p in points)
    for (r0, v0), (r1, v1) in zip(pts, pts[1:], strict=False):
        if r0 <= bpp <= r1:
            return v0 + (v1 - v0) * math.log(bpp / r0) / math.log(r1 / r0)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the study; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--resize-long-edge", type=int, default=None)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--crfs", type=int, nargs="+", default=[32, 37, 42, 47])
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    data = load(Path(args.root), args.split, args.resize_long_edge, args.max_frames)
    plain = curve("plain", data, args.crfs)
    rows = [{"variant": "plain x265", **pt} for pt in plain]
    for name in VARIANTS:
        for pt in curve(name, data, args.crfs):
            ref_in, ref_out = at_bpp(plain, pt["bpp"], "inside"), at_bpp(plain, pt["bpp"], "outside")
            rows.append({"variant": name, **pt, "Δ inside dB (same bpp)": None if ref_in is None
                         else pt["inside"] - ref_in, "Δ outside dB (same bpp)": None if ref_out is None
                         else pt["outside"] - ref_out})
    head = (f"# Object-aware coding at equal bpp\n\nSequences {sorted(data)} of {args.root} "
            f"(split {args.split}), long edge {args.resize_long_edge}, ground-truth masks as the encoder's "
            "masks.\n\n")
    atomic_write_text(args.out, head + rows_to_markdown([{k: r.get(k) for k in (
        "variant", "q", "bpp", "inside", "outside", "Δ inside dB (same bpp)", "Δ outside dB (same bpp)")}
        for r in rows]))
    log.info("written %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
