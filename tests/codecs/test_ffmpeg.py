"""FFmpeg argv builders (pure) and the checked runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from vosc.codecs.base import CodecError, EncoderNotFoundError
from vosc.codecs.ffmpeg import (
    decode_argv,
    find_ffmpeg,
    format_vvenc_params,
    parse_version,
    run_ffmpeg,
    vvenc_encode_argv,
)
from vosc.codecs.vvenc import LOWDELAY_FASTER, vvenc_params


def test_vvenc_encode_argv_is_exact() -> None:
    argv = vvenc_encode_argv("/opt/ffmpeg", 64, 48, 37, {"Threads": 0, "GOPSize": 8})
    assert argv == [
        "/opt/ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", "64x48", "-r", "25", "-i", "pipe:0",
        "-c:v", "libvvenc", "-qp", "37", "-qpa", "0", "-vvenc-params", "Threads=0:GOPSize=8",
        "-f", "vvc", "pipe:1",
    ]  # fmt: skip


def test_decode_argv_passthrough_one_thread() -> None:
    argv = decode_argv("ffmpeg", "vvc")
    assert argv[argv.index("-fps_mode") + 1] == "passthrough"
    assert argv[argv.index("-threads") + 1] == "1"
    assert argv[argv.index("-f") + 1] == "vvc" and argv[-3:] == ["-pix_fmt", "yuv420p10le", "pipe:1"]
    # input options come before -i
    assert argv.index("-threads") < argv.index("-i")


def test_vvenc_params_follow_design() -> None:
    params = vvenc_params()
    assert "QP" not in params and "BitstreamFile" not in params and "ReconFile" not in params
    assert params["Threads"] == "0" and params["AccessUnitDelimiter"] == "0" and params["ALFSpeed"] == "0"
    assert LOWDELAY_FASTER["ALFSpeed"] == "2"  # the cfg value, overridden
    assert params["GOPSize"] == "8" and params["IntraPeriod"] == "-1" and params["PicReordering"] == "0"
    assert params["Frame8"].startswith("B 8 1 ")
    text = format_vvenc_params(params)
    assert text.count("=") == len(params) and "Frame1=B 1 5 -6.5" in text
    with pytest.raises(ValueError, match="through q"):
        vvenc_params({"QP": 30})


def test_format_rejects_separators() -> None:
    with pytest.raises(ValueError, match="contains"):
        format_vvenc_params({"Key": "a:b"})


def test_find_ffmpeg_missing_binary(tmp_path: Path) -> None:
    missing = tmp_path / "no-ffmpeg"
    with pytest.raises(EncoderNotFoundError, match="pip install imageio-ffmpeg") as info:
        find_ffmpeg(missing)
    assert str(missing) in str(info.value)


def test_parse_version() -> None:
    assert parse_version("ffmpeg version n9.0.2-17 Copyright (c)") == "n9.0.2-17"
    with pytest.raises(CodecError):
        parse_version("garbage")


@pytest.mark.codec
def test_runner_reports_exit_status_and_stderr() -> None:
    exe = find_ffmpeg()
    with pytest.raises(CodecError, match="exited with status") as info:
        run_ffmpeg([exe, "-hide_banner", "-f", "rawvideo", "-i", "pipe:0", "-f", "null", "-"], stdin=b"x")
    assert "Picture size 0x0 is invalid" in str(info.value)  # FFmpeg's own stderr is in the message


@pytest.mark.codec
def test_runner_timeout() -> None:
    exe = find_ffmpeg()
    argv = [exe, "-hide_banner", "-re", "-f", "lavfi", "-i", "color=size=16x16:rate=25", "-f", "null", "-"]
    with pytest.raises(CodecError, match="timed out"):
        run_ffmpeg(argv, timeout=0.5)


def test_runner_missing_executable(tmp_path: Path) -> None:
    with pytest.raises(EncoderNotFoundError, match="not found"):
        run_ffmpeg([str(tmp_path / "ffmpeg-missing"), "-version"])
