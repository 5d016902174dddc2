"""Checkpoint CLI: ``python -m vosc.checkpoints verify FIXTURE_DIR [--json OUT] [--depths ...]``.

``verify`` reproduces an ``aot-parity`` fixture (format of ``shared/fixtures/aot-parity/README.md``) with
:func:`vosc.checkpoints.parity.verify_fixture`, or an ``stcn-parity`` fixture
(``shared/fixtures/stcn-parity/README.md``) with :func:`vosc.checkpoints.stcn_parity.verify_stcn_fixture`,
prints the result JSON and optionally writes it atomically; the exit status is 0 only within tolerance.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from vosc.checkpoints.parity import verify_fixture
from vosc.checkpoints.stcn_parity import is_stcn_fixture, verify_stcn_fixture
from vosc.utils.io import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    """``verify FIXTURE_DIR [--json OUT] [--depths ...]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m vosc.checkpoints", description="vosc checkpoint tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ver = sub.add_parser("verify", help="reproduce an aot-parity or stcn-parity fixture and compare")
    ver.add_argument("fixture_dir", type=Path)
    ver.add_argument("--json", type=Path, default=None, help="write the result JSON here (atomically)")
    ver.add_argument("--depths", type=int, nargs="*", default=None, help="subset of the fixture's depths")
    ver.add_argument("--stcn-modes", nargs="+", default=["forced", "free"], choices=["forced", "free"],
                     help="stcn-parity runs: the official top-k selection forced and/or our own")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if is_stcn_fixture(args.fixture_dir):
        result = verify_stcn_fixture(args.fixture_dir, modes=tuple(args.stcn_modes))
    else:
        result = verify_fixture(args.fixture_dir, depths=args.depths)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if args.json is not None:
        atomic_write_json(args.json, result, trailing_newline=False, indent=2)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
