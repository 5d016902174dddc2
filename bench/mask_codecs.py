"""Mask side-information coders compared on real id maps (issue 25): bytes, bpp, coding time, exactness.

::

    python bench/mask_codecs.py --masks ../shared/data/davis2016-val-mini/Annotations/480p \\
        [--masks outputs/seed_tables/<model>/<dataset>/none/raw/d3/pred] [--resize-long-edge 432] --out OUT.md

Every ``--masks`` folder holds one sub-folder of palette PNGs per sequence (DAVIS annotations, or the
``pred/`` folder of an evaluation). Each sequence is coded whole by every coder of
:mod:`vosc.codecs.mask_codec`; bits = 8 x bytes of the whole stream (header included); bpp = bits / (T*H*W).
The lossy subsampled coders report the IoU of their decoded maps instead of exactness.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vosc.codecs.mask_codec import (  # noqa: E402
    DeflateMaskCodec,
    DownsampledMaskCodec,
    FFV1MaskCodec,
    MaskCodec,
    X265LosslessMaskCodec,
)
from vosc.evaluation.report import rows_to_markdown  # noqa: E402
from vosc.utils.io import atomic_write_text  # noqa: E402

log = logging.getLogger("mask_codecs")

CODERS: list[MaskCodec] = [DeflateMaskCodec("zlib"), DeflateMaskCodec("lzma"),
                           DeflateMaskCodec("lzma", False), FFV1MaskCodec(), X265LosslessMaskCodec(),
                           DownsampledMaskCodec(X265LosslessMaskCodec(), 2),
                           DownsampledMaskCodec(X265LosslessMaskCodec(), 4)]


def load_maps(folder: Path, long_edge: int | None) -> np.ndarray:
    """``(T, H, W)`` uint8 ids of one sequence folder of palette PNGs (nearest-resized to ``long_edge``)."""
    import cv2

    files = sorted(folder.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"{folder}: no PNG masks")
    maps = [np.asarray(Image.open(f)) for f in files]
    if long_edge is not None:
        h, w = maps[0].shape
        s = long_edge / max(h, w)
        if s < 1:
            size = (max(2, round(w * s)), max(2, round(h * s)))
            maps = [cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in maps]
    return np.stack(maps).astype(np.uint8)


def measure(name: str, maps: np.ndarray) -> list[dict[str, object]]:
    """One row per coder for one sequence."""
    rows = []
    for coder in CODERS:
        t0 = time.perf_counter()
        data = coder.encode(maps)
        t1 = time.perf_counter()
        back = coder.decode(data)
        t2 = time.perf_counter()
        inter, union = ((back > 0) & (maps > 0)).sum(), ((back > 0) | (maps > 0)).sum()
        rows.append({"sequence": name, "coder": coder.label, "frames": maps.shape[0],
                     "size": f"{maps.shape[2]}x{maps.shape[1]}", "bytes": len(data),
                     "bpp": 8 * len(data) / maps.size, "exact": bool(np.array_equal(back, maps)),
                     "IoU": float(inter / union) if union else 1.0, "encode_s": t1 - t0, "decode_s": t2 - t1})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--masks", action="append", required=True, help="folder of <sequence>/<frame>.png")
    p.add_argument("--resize-long-edge", type=int, default=None)
    p.add_argument("--out", required=True, help="Markdown file")
    args = p.parse_args(argv)
    rows, totals = [], {}
    for root in map(Path, args.masks):
        for seq in sorted(d for d in root.iterdir() if d.is_dir()):
            for row in measure(f"{root.name}/{seq.name}", load_maps(seq, args.resize_long_edge)):
                rows.append(row)
                key = (str(root), str(row["coder"]))
                bits, pixels = totals.get(key, (0, 0))
                totals[key] = (bits + 8 * int(row["bytes"]), pixels + int(row["frames"]) * int(
                    np.prod([int(v) for v in str(row["size"]).split("x")])))
    summary = [{"masks": k[0], "coder": k[1], "bpp": b / max(n, 1)}
               for k, (b, n) in totals.items()]
    text = ("# Mask coders\n\nbpp over all sequences of each folder:\n\n" + rows_to_markdown(summary) + "\n"
            + rows_to_markdown(rows))
    atomic_write_text(args.out, text)
    log.info("%s", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
