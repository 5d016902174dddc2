"""Command line of the synthetic generator: ``python -m vosc.data.synthetic --out DIR --videos N``.

``--format frames`` (default) writes a dataset (DAVIS or YouTube-VOS layout); ``--format mp4`` writes one mp4
per video plus first-appearance and ground-truth masks (:mod:`vosc.data.synthetic_video`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from vosc.data.errors import DatasetLayoutError
from vosc.data.sources.synthetic import MANIFEST, generate_synthetic

log = logging.getLogger("vosc.data.synthetic")

__all__ = ["generate_synthetic", "main"]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and generate the set."""
    p = argparse.ArgumentParser(description="Generate synthetic VOS videos (skimage photo cut-outs).")
    p.add_argument(
        "--out",
        required=True,
        help="output folder (absent, empty, or a synthetic set: kept if it has the same parameters)",
    )
    p.add_argument("--force", action="store_true", help="regenerate a synthetic set that is already in --out")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", default="160x96", help="WxH")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--layout", choices=("davis", "ytvos"), default="davis")
    p.add_argument("--style", choices=("classic", "rich"), default="classic",
                   help="classic: photo cut-outs, linear motion; rich: varied silhouettes, non-rigid motion, "
                        "distractors")
    p.add_argument("--distractors", type=int, default=0, help="unannotated sprites per video (rich)")
    p.add_argument("--format", choices=("frames", "mp4"), default="frames",
                   help="frames: a dataset folder; mp4: <out>/synthNNN.mp4 + synthNNN/masks (first "
                        "appearances) + synthNNN/gt (with --layout ytvos the last object enters late)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of --format mp4")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    logging.basicConfig(level=logging.INFO)
    if args.format == "mp4":
        from vosc.data.synthetic_video import write_synthetic_mp4

        write_synthetic_mp4(args.out, args.videos, args.frames, (w, h), args.seed, args.objects, args.layout,
                            args.style, args.distractors, args.fps)
        return
    out = Path(args.out)
    kwargs = {"style": args.style, "distractors": args.distractors}
    params = (args.videos, args.frames, (w, h), args.seed, args.objects, args.layout)
    if (out / MANIFEST).is_file():
        if not args.force:
            try:
                generate_synthetic(out, *params, **kwargs)  # same parameters: nothing to do
            except DatasetLayoutError as exc:
                raise SystemExit(f"{exc}; --force regenerates it with the given parameters") from None
            log.info("%s already holds this synthetic set: kept the existing data (--force regenerates it)",
                     out)
            return
        log.info("--force: removing the synthetic set in %s to regenerate it", out)
        shutil.rmtree(out)
    generate_synthetic(out, *params, **kwargs)


if __name__ == "__main__":
    main()
