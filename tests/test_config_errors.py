"""Configuration errors on the command line: one line with the fix, no traceback (``HYDRA_FULL_ERROR=1``:
Hydra's full report); unknown keys and options name the closest valid ones; an official checkpoint loaded
with the wrong model names the matching variant first."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vosc.config import ConfigError, check_composition, closest, first_job, one_line
from vosc.segment import main as segment_main

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def _cli(script: str, *args: str, full: bool = False, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    if full:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_unknown_key_names_the_closest_keys() -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.max_step is not a key of the config; did you mean "
                                          r"trainer\.max_steps or .*\(a new key is added with "
                                          r"\+trainer\.max_step=5\)$"):
        check_composition(CONF, "train", ["trainer.max_step=5"])
    with pytest.raises(ConfigError, match=r"did you mean lit\.alpha"):
        check_composition(CONF, "train", ["lit.alpa=1,2"])  # a sweep: its first job
    with pytest.raises(ConfigError, match=r"did you mean ladder\.points"):
        check_composition(CONF, "evaluate", ["ladder.point=[none]"])


def test_unknown_option_names_the_closest_options() -> None:
    with pytest.raises(ConfigError, match=r"^model=aostt: no such option of 'model'; did you mean "
                                          r"model=aott or aost.*options: aost, aost_cpu"):
        check_composition(CONF, "train", ["model=aostt"])
    with pytest.raises(ConfigError, match=r"experiment=quickstrt.*did you mean experiment=quickstart"):
        check_composition(CONF, "train", ["experiment=quickstrt"])


def test_valid_commands_compose_and_bad_syntax_is_one_line() -> None:
    check_composition(CONF, "train", ["trainer.max_steps=5", "+foo=1", "lit.alpha=1,2,4"])
    assert first_job(["lit.alpha=1,2,4", "model.num_layers=range(1,4)", "x=5"]) == [
        "lit.alpha=1", "model.num_layers=1", "x=5"]
    with pytest.raises(ConfigError, match=r"^cannot parse the override 'codec\.q=\[1,'"):
        first_job(["codec.q=[1,"])
    assert closest("trainer.max_step", ["trainer.max_steps", "trainer.max_time", "model.max_step"])[0] == \
        "trainer.max_steps"
    assert closest("zzz", ["trainer.max_steps"]) == []
    assert one_line(ConfigError("a: the fix\n  key 1\n  key 2")) == "error: a: the fix (2 more lines with " \
                                                                     "HYDRA_FULL_ERROR=1)"


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_cli_unknown_key_is_one_line(script: str, tmp_path: Path) -> None:
    key = "trainer.max_step=5" if script == "train.py" else "ladder.point=[none]"
    proc = _cli(script, key, f"paths.root_dir={tmp_path}")
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), proc.stderr
    assert ("trainer.max_steps" if script == "train.py" else "ladder.points") in err[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    full = _cli(script, key, f"paths.root_dir={tmp_path}", full=True)  # Hydra's own, complete report
    assert full.returncode != 0 and "Traceback" in full.stderr and "not in struct" in full.stderr


def test_cli_config_error_inside_the_job_is_one_line(tmp_path: Path) -> None:
    """A ConfigError raised while the job runs (a depth the model does not have): one line, no traceback."""
    proc = _cli("evaluate.py", "depths=[7]", f"paths.root_dir={tmp_path}", f"out_dir={tmp_path}/eval")
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert err == ["error: depths=[7]: [7] outside 1..3 (VOSModel has 3 depth(s))"], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    full = _cli("evaluate.py", "depths=[7]", f"paths.root_dir={tmp_path}", f"out_dir={tmp_path}/eval",
                full=True)
    assert "Traceback" in full.stderr and "ConfigError" in full.stderr


def test_official_checkpoint_with_the_wrong_model_hints_the_variant_first(aot_parity: Path, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture
                                                                           ) -> None:
    ckpt = aot_parity / "aott" / "checkpoint.pth"
    proc = _cli("evaluate.py", f"ckpt={ckpt}", "model=aost", f"paths.root_dir={tmp_path}",
                f"out_dir={tmp_path}/eval")
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(err) == 1, proc.stderr
    assert "checkpoint does not fit this model; its keys match model=aott" in err[0]
    assert "missing:" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    # vosc-segment: the same hint in its own spelling (--model), before (and instead of) the key lists
    frames = tmp_path / "frames"
    frames.mkdir()
    import numpy as np
    from PIL import Image

    from vosc.data.palette import write_mask

    for i in range(2):
        Image.new("RGB", (64, 48)).save(frames / f"{i}.jpg")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 1
    write_mask(tmp_path / "mask.png", mask)
    with caplog.at_level(logging.INFO, logger="vosc.segment"):
        assert segment_main([str(frames), "--mask", str(tmp_path / "mask.png"), "--ckpt", str(ckpt),
                             "--model", "aost", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "its keys match --model aott" in line and "more lines with -v" in line and "\n" not in line
