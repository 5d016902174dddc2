"""Shared pytest fixtures: paths to ``../shared`` (skipped with a reason where absent; a failure in CI, where
``CI=true`` and the folder must be there) and a small generated synthetic dataset."""

from __future__ import annotations

import os

# Threads of the test session (README "Threads"): idle OpenMP threads sleep, and subprocesses (train.py,
# evaluate.py) get one intra-op thread unless the caller set OMP_NUM_THREADS; in-process tests run on one
# torch thread (VOSC_TEST_THREADS=<n> to change it). Tests that need a fixed count set it themselves.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test downloads weights: an ImageNet-weights request (model.pretrained=true) fails at once with
# vosc's PretrainedWeightsError instead of after the hub client's network retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("VOSC_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOSC_SHARED", REPO_ROOT.parent / "shared"))


def in_ci() -> bool:
    """``CI=true`` (or ``1``), as CI services set it: missing shared data is then an error, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        reason = f"{what} not found at {path} (set VOSC_SHARED to the shared/ folder)"
        if in_ci():
            pytest.fail(f"CI=true and {reason}: CI runs the parity, golden-J&F and end-to-end tests",
                        pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test, restored after it: the CI machine has 2 shared cores, and
    spinning threads slow small convolutions and ops by up to 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture(scope="session")
def train_parity() -> Path:
    """``shared/fixtures/train-parity``: official AOT/AOST training steps (losses and gradients)."""
    return _need(SHARED / "fixtures" / "train-parity", "train-parity fixture")


@pytest.fixture(scope="session")
def stcn_parity() -> Path:
    """``shared/fixtures/stcn-parity/stcn``: official STCN outputs for given weights and inputs."""
    return _need(SHARED / "fixtures" / "stcn-parity" / "stcn", "stcn-parity fixture")


@pytest.fixture(scope="session")
def synthetic_davis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated synthetic set in DAVIS-2017 layout: 4 videos x 8 frames, 160x96, 2 objects
    (train: synth-000..002, val: synth-003). Built with :func:`vosc.data.synthetic.generate_synthetic`."""
    from vosc.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "davis", videos=4, frames=8,
                              size=(160, 96), seed=0, objects=2, layout="davis")


@pytest.fixture(scope="session")
def synthetic_ytvos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated synthetic set in YouTube-VOS layout: 4 videos x 6 annotated frames (26 frames at
    "30 fps"), 160x96, 3 objects, the last one starting late in ``valid/`` (train: 3 videos, valid: 1)."""
    from vosc.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "ytvos", videos=4, frames=6,
                              size=(160, 96), seed=1, objects=3, layout="ytvos")


@pytest.fixture(scope="module")
def synthetic_roots(tmp_path_factory: pytest.TempPathFactory, synthetic_davis: Path,
                    synthetic_ytvos: Path) -> list[str]:
    """Hydra overrides pointing the DAVIS / YouTube-VOS / static-image roots at the generated synthetic sets
    (two first frames and masks as static images) and ``paths.data_dir`` at one folder per module, so that
    every experiment of a module shares the synthetic sets it generates."""
    import shutil

    static = tmp_path_factory.mktemp("static")
    (static / "images").mkdir()
    (static / "masks").mkdir()
    for seq in sorted((synthetic_davis / "Annotations" / "480p").iterdir())[:2]:
        shutil.copy(min((synthetic_davis / "JPEGImages" / "480p" / seq.name).glob("*.jpg")),
                    static / "images" / f"{seq.name}.jpg")
        shutil.copy(min(seq.glob("*.png")), static / "masks" / f"{seq.name}.png")
    data = tmp_path_factory.mktemp("data")
    return [f"paths.davis_root={synthetic_davis}", f"paths.ytvos_root={synthetic_ytvos}",
            f"paths.static_root={static}", f"paths.data_dir={data}"]


#: the longest test files (minutes each), started first and in this order: under ``-n 2 --dist loadfile``
#: xdist deals the files to the two processes in turn, so these two run side by side from the start
LONGEST_FIRST = ("tests/lit/test_enhancer_module.py", "tests/test_learning.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files so that ``pytest -n 2 --dist loadfile`` (README "Test") does not end with a
    minutes-long file alone on one core: :data:`LONGEST_FIRST`, then the other files with ``slow`` tests,
    then the rest; each file's tests stay together and in their order."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    first = {REPO_ROOT / name: i for i, name in enumerate(LONGEST_FIRST)}

    def rank(item: pytest.Item) -> tuple[int, int]:
        if item.path in first:
            return 0, first[item.path]
        return (1 if item.path in slow_files else 2), 0

    items[:] = sorted(items, key=rank)  # stable: collection order within each rank
