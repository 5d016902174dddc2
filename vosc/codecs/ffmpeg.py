"""The FFmpeg binary: locating it, pure argv builders, and the one checked runner.

Argument lists are built by pure functions (unit-tested without running anything). Only
:func:`run_ffmpeg` executes a process: no shell, stdin/stdout as pipes, exit status checked, stderr
captured into the error message, and a timeout.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence

from vosc.codecs.base import CodecError, EncoderNotFoundError

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with `pip install imageio-ffmpeg` (its static FFmpeg build includes libvvenc)"


def find_ffmpeg(path: str | os.PathLike[str] | None = None) -> str:
    """Return the FFmpeg executable: ``path`` when given, else the binary shipped by ``imageio-ffmpeg``.

    Raises:
        EncoderNotFoundError: The binary does not exist or ``imageio-ffmpeg`` is not installed.
    """
    if path is not None:
        p = os.fspath(path)
        if not (os.path.isfile(p) and os.access(p, os.X_OK)):
            raise EncoderNotFoundError(f"FFmpeg binary not found or not executable at {p!r}; {INSTALL_HINT}")
        return p
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - imageio-ffmpeg is a dependency
        raise EncoderNotFoundError(f"FFmpeg (imageio-ffmpeg) is not installed; {INSTALL_HINT}") from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise EncoderNotFoundError(f"imageio-ffmpeg found no FFmpeg binary ({exc}); {INSTALL_HINT}") from exc


def version_argv(exe: str) -> list[str]:
    """``ffmpeg -version``."""
    return [exe, "-hide_banner", "-version"]


def format_vvenc_params(params: Mapping[str, object]) -> str:
    """Join VVenC parameters into FFmpeg's ``-vvenc-params`` syntax ``Key=value:Key=value``.

    Raises:
        ValueError: A key or value contains ``:`` or ``=`` (FFmpeg's separators).
    """
    items = []
    for key, value in params.items():
        text = str(value)
        if any(sep in key or sep in text for sep in ":="):
            raise ValueError(f"vvenc parameter {key}={text!r} contains ':' or '=', which FFmpeg cannot pass")
        items.append(f"{key}={text}")
    return ":".join(items)


def vvenc_encode_argv(
    exe: str,
    width: int,
    height: int,
    qp: int,
    vvenc_params: Mapping[str, object],
    qpa: bool = False,
    fps: int = 25,
) -> list[str]:
    """Argv that reads raw ``yuv420p10le`` frames on stdin and writes a raw VVC stream on stdout.

    Args:
        exe: FFmpeg executable.
        width: Even frame width.
        height: Even frame height.
        qp: VVenC QP (0..63).
        vvenc_params: VVenC configuration keys (without ``QP``), passed via ``-vvenc-params``.
        qpa: Perceptual QP adaptation (``-qpa``); off for fixed-QP encoding.
        fps: Nominal frame rate (affects only timing metadata).
    """
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{width}x{height}", "-r", str(fps),
        "-i", "pipe:0",
        "-c:v", "libvvenc", "-qp", str(qp), "-qpa", "1" if qpa else "0",
        "-vvenc-params", format_vvenc_params(vvenc_params),
        "-f", "vvc", "pipe:1",
    ]  # fmt: skip


def decode_argv(exe: str, input_format: str, pix_fmt: str = "yuv420p10le") -> list[str]:
    """Argv that decodes a raw Annex-B stream (``-f hevc``/``vvc``) from stdin to raw planes on stdout.

    ``-fps_mode passthrough`` keeps exactly one output frame per decoded picture (no duplication or
    dropping), and ``-threads 1`` keeps the decoder on one core.
    """
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
        "-f", input_format, "-i", "pipe:0",
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1",
    ]  # fmt: skip


def trace_headers_argv(exe: str, input_format: str) -> list[str]:
    """Argv that prints every parameter-set, picture- and slice-header syntax element of a raw
    Annex-B stream on stdin (FFmpeg's ``trace_headers`` bitstream filter, log on stderr)."""
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "info", "-f", input_format, "-i", "pipe:0",
        "-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-",
    ]  # fmt: skip


_TRACE = re.compile(r"\]\s+\d+\s+(\w+)(?:\[[^\]]*\])*\s+[01]+\s+=\s+(-?\d+)\s*$")


def slice_qps_from_trace(text: str) -> list[int]:
    """Slice QP (``SliceQpY``) of every picture, in decoding order, from ``trace_headers`` output.

    HEVC: ``26 + init_qp_minus26 + slice_qp_delta``; VVC: ``26 + pps_init_qp_minus26 +`` the
    slice's ``sh_qp_delta`` or, when the QP delta is in the picture header, ``ph_qp_delta``. One value
    per picture: only the first slice of a picture (``first_slice_segment_in_pic_flag`` for HEVC; VVC
    streams here have one slice per picture) is counted.
    """
    init, ph_delta = 0, 0
    qps: list[int] = []
    first_slice = True
    for line in text.splitlines():
        m = _TRACE.search(line)
        if not m:
            continue
        name, value = m.group(1), int(m.group(2))
        if name in ("init_qp_minus26", "pps_init_qp_minus26"):
            init = value
        elif name == "ph_qp_delta":
            ph_delta = value
            qps.append(26 + init + ph_delta)
            first_slice = False
        elif name == "first_slice_segment_in_pic_flag":
            first_slice = bool(value)
        elif name in ("slice_qp_delta", "sh_qp_delta") and first_slice:
            qps.append(26 + init + value)
    return qps


def run_ffmpeg(argv: Sequence[str], stdin: bytes | None = None, timeout: float = 600.0) -> bytes:
    """Run FFmpeg (see :func:`run_ffmpeg_capture`) and return its stdout."""
    return run_ffmpeg_capture(argv, stdin=stdin, timeout=timeout)[0]


def run_ffmpeg_capture(
    argv: Sequence[str], stdin: bytes | None = None, timeout: float = 600.0
) -> tuple[bytes, bytes]:
    """The one runner: execute FFmpeg without a shell and return ``(stdout, stderr)``.

    Args:
        argv: Full argument list; ``argv[0]`` is the executable.
        stdin: Bytes fed to the process's standard input.
        timeout: Seconds before the process is killed.

    Raises:
        EncoderNotFoundError: The executable does not exist.
        CodecError: Non-zero exit status or timeout; the message carries the tail of stderr.
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EncoderNotFoundError(f"FFmpeg binary {argv[0]!r} not found; {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"").decode(errors="replace")[-2000:]
        raise CodecError(
            f"FFmpeg timed out after {timeout:.0f} s: {' '.join(argv[:12])} ...\n{tail}"
        ) from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise CodecError(f"FFmpeg exited with status {proc.returncode}: {' '.join(argv[:12])} ...\n{tail}")
    if proc.stderr:
        log.debug("ffmpeg stderr: %s", proc.stderr.decode(errors="replace")[-500:])
    return proc.stdout, proc.stderr


def parse_version(text: str) -> str:
    """Extract ``"ffmpeg version X"`` from ``ffmpeg -version`` output (first line)."""
    m = re.search(r"ffmpeg version (\S+)", text)
    if not m:
        raise CodecError(f"cannot parse FFmpeg version from {text[:200]!r}")
    return m.group(1)


@functools.lru_cache(maxsize=8)
def ffmpeg_version(exe: str) -> str:
    """Version string of the FFmpeg binary ``exe`` (e.g. ``n9.0.2-17-g2a571b6068-20260930``)."""
    return parse_version(run_ffmpeg(version_argv(exe), timeout=30).decode(errors="replace"))
