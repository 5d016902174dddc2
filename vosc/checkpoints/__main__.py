"""Checkpoint CLI: ``python -m vosc.checkpoints verify FIXTURE_DIR [--json OUT] [--depths ...]`` and
``python -m vosc.checkpoints verify-train FIXTURE_DIR [--json OUT] [--mode official|vosc] [--cases ...]``.

``verify`` reproduces an ``aot-parity`` fixture (format of ``shared/fixtures/aot-parity/README.md``) with
:func:`vosc.checkpoints.parity.verify_fixture`, or an ``stcn-parity`` fixture
(``shared/fixtures/stcn-parity/README.md``) with :func:`vosc.checkpoints.stcn_parity.verify_stcn_fixture`,
prints the result JSON and optionally writes it atomically; the exit status is 0 only within tolerance.

``verify-train`` reproduces a ``train-parity`` fixture (``shared/fixtures/train-parity/README.md``: one
official training step, losses and gradients) with vosc's training computation
(:func:`vosc.checkpoints.train_parity.verify_train_fixture`); ``FIXTURE_DIR`` is one fixture or the folder of
them. It prints a table (one row per fixture and case), optionally writes the full result JSON, and exits 1
when any case is outside the fixture's tolerances.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from vosc.checkpoints.parity import verify_fixture
from vosc.checkpoints.stcn_parity import is_stcn_fixture, verify_stcn_fixture
from vosc.checkpoints.train_parity import MODES, fixture_dirs, format_table, verify_train_fixture
from vosc.utils.io import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    """``verify`` / ``verify-train`` (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m vosc.checkpoints", description="vosc checkpoint tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ver = sub.add_parser("verify", help="reproduce an aot-parity or stcn-parity fixture and compare")
    ver.add_argument("fixture_dir", type=Path)
    ver.add_argument("--json", type=Path, default=None, help="write the result JSON here (atomically)")
    ver.add_argument("--depths", type=int, nargs="*", default=None, help="subset of the fixture's depths")
    ver.add_argument("--stcn-modes", nargs="+", default=["forced", "free"], choices=["forced", "free"],
                     help="stcn-parity runs: the official top-k selection forced and/or our own")
    tr = sub.add_parser("verify-train", help="reproduce a train-parity fixture (loss and gradients of one "
                        "official training step) with vosc's training computation and compare")
    tr.add_argument("fixture_dir", type=Path, help="a train-parity fixture, or the folder of them")
    tr.add_argument("--json", type=Path, default=None, help="write the result JSON here (atomically)")
    tr.add_argument("--mode", choices=list(MODES), default="official",
                    help="official: gradients as the official fp32 engine leaves them (its clipping before "
                    "backward is a no-op); vosc: with vosc's clipping after backward")
    tr.add_argument("--cases", nargs="*", default=None, help="subset of the fixture's cases")
    tr.add_argument("--clip-norm", type=float, default=5.0, help="vosc mode: the trainer's gradient_clip_val")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "verify-train":
        return _verify_train(args)
    if is_stcn_fixture(args.fixture_dir):
        result = verify_stcn_fixture(args.fixture_dir, modes=tuple(args.stcn_modes))
    else:
        result = verify_fixture(args.fixture_dir, depths=args.depths)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if args.json is not None:
        atomic_write_json(args.json, result, trailing_newline=False, indent=2)
    return 0 if result["passed"] else 1


def _verify_train(args: argparse.Namespace) -> int:
    results = [verify_train_fixture(d, mode=args.mode, cases=args.cases, clip_norm=args.clip_norm)
               for d in fixture_dirs(args.fixture_dir)]
    sys.stdout.write(format_table(results) + "\n")
    for r in results:
        for msg in r["split_failures"]:
            sys.stdout.write(f"FAIL {r['fixture']}: {msg}\n")
        for name, c in r["cases"].items():
            for msg in c["failures"]:
                sys.stdout.write(f"FAIL {r['fixture']} {name}: {msg}\n")
    passed = all(r["passed"] for r in results)
    if args.json is not None:
        atomic_write_json(args.json, {"fixtures": results, "passed": passed}, trailing_newline=False,
                          indent=2)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
