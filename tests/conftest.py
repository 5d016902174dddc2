"""Shared pytest fixtures: paths to ``../shared`` (skipped with a reason where absent) and a small
generated synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOSC_SHARED", REPO_ROOT.parent / "shared"))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set VOSC_SHARED to the shared/ folder; CI always has it)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared/`` folder beside the checkout."""
    return _need(SHARED, "shared/ folder")


@pytest.fixture(scope="session")
def davis_mini() -> Path:
    """``shared/data/davis2016-val-mini``: four real DAVIS sequences in DAVIS-2017 layout."""
    return _need(SHARED / "data" / "davis2016-val-mini", "davis2016-val-mini")


@pytest.fixture(scope="session")
def jf_golden() -> Path:
    """``shared/fixtures/jf-golden``: official davis2017-evaluation outputs."""
    return _need(SHARED / "fixtures" / "jf-golden", "jf-golden fixture")


@pytest.fixture(scope="session")
def aot_parity() -> Path:
    """``shared/fixtures/aot-parity``: official AOT/AOST outputs for given weights and inputs."""
    return _need(SHARED / "fixtures" / "aot-parity", "aot-parity fixture")
