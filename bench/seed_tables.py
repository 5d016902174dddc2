"""The seeds' Tables 1–3 and the decoder/encoder-mode RD comparison in one command (issue 25, DESIGN §9).

::

    python bench/seed_tables.py --root ../shared/data/davis2016-val-mini \\
        --model aost=outputs/quickstart/runs/<time>/checkpoints/last.ckpt \\
        [--model aotl=save_step_100000.pth@aotl] [--enhancer-ckpt enh.ckpt --enhancer-net cae_tiny] \\
        [--depth 3] [--max-frames 20] [--resize-long-edge 432] --out outputs/seed_tables

Writes ``OUT/table1.{csv,md}`` (t_c, t_v, t_s, bpp, J&F), ``table2`` (t_e, t_d, t), ``table3`` (J/F recall
and decay), ``side_info`` (video / mask bpp, PSNR-Y inside and outside the objects), ``rd_compare`` and
``rd_compare_<model>_d<depth>.png`` (J&F vs total bpp, decoder and encoder mode, BD-rate), with the paper's
rows beside the measured ones; every evaluation folder under ``OUT/<model>/``. With no ``--model`` a randomly
initialised ``aost_small`` runs (loud warning; smoke runs only). See ``docs/encoder_side.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vosc.evaluation.seed_tables import SeedSettings, parse_model, run_seed_tables  # noqa: E402

log = logging.getLogger("seed_tables")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="DAVIS-layout folder (JPEGImages/480p, ...)")
    p.add_argument("--split", default="val", help="image set of --root (ImageSets/2017/<split>.txt)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT[@VARIANT]",
                   help="a vosc or official checkpoint (official: @<conf/model variant>); repeatable")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--x265", type=int, default=42, help="CRF of the seed's x265 row (DESIGN §5)")
    p.add_argument("--vvenc", type=int, default=38, help="QP of the VVenC row (-1: no VVenC row)")
    p.add_argument("--rd-crfs", type=int, nargs="+", default=[37, 42, 47], help="x265 ladder of the RD plot")
    p.add_argument("--lossy-mask-factors", type=int, nargs="*", default=[],
                   help="also encoder mode with masks subsampled by these factors (x265+enc+m<f>)")
    p.add_argument("--depth", type=int, default=None, help="inference depth (default: full depth)")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames of every sequence")
    p.add_argument("--resize-long-edge", type=int, default=None, help="downscale frames before coding")
    p.add_argument("--enhancer-ckpt", default=None, help="enhancer checkpoint: adds the +enh rows")
    p.add_argument("--enhancer-net", default="cae_tiny", help="conf/model/enhancer variant")
    p.add_argument("--eval-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra evaluate.py override for every run (e.g. side_info.roi.block=32)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (2: bad arguments)."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = _parser().parse_args(argv)
    try:
        models = [parse_model(m) for m in args.model]
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if not Path(args.root).is_dir():
        log.error("--root %s: no such folder", args.root)
        return 2
    settings = SeedSettings(root=args.root, out=args.out, split=args.split, x265=args.x265,
                            vvenc=None if args.vvenc < 0 else args.vvenc, rd_crfs=args.rd_crfs,
                            lossy_mask_factors=args.lossy_mask_factors,
                            depth=args.depth,
                            max_frames=args.max_frames, resize_long_edge=args.resize_long_edge,
                            enhancer_ckpt=args.enhancer_ckpt, enhancer_net=args.enhancer_net,
                            overrides=args.eval_arg)
    t0 = time.perf_counter()
    files = run_seed_tables(models, settings)
    log.info("done in %.1f s: %s", time.perf_counter() - t0, ", ".join(str(p) for p in files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
