"""Start-up noise of native libraries, silenced at its source without hiding real errors.

Headless runs used to print lines that look like failures but are not: Warp's initialisation banner and module
load timings (INFO), Warp's "Could not find or load the NVIDIA CUDA driver" when only the CPU was asked for,
and, when Open3D opens its offscreen window, libwayland's "XDG_RUNTIME_DIR is invalid", GLFW's "Failed to detect
any supported platform" and Open3D's "falling back to EGL" (the fallback is the headless path, not an error).

- :func:`init_warp_quietly` lowers Warp's log level to warnings (only if it is still at its default) and
  initialises it, dropping the CUDA-driver line when the caller wants the CPU only.
- :func:`drop_native_lines` runs a block with the process's stdout / stderr file descriptors captured (C
  libraries write there, below Python's ``sys.stdout``) and writes back every line that matches none of the
  given patterns, so anything unexpected (a real EGL or CUDA error) still reaches the terminal.

``CHRONOTOPE_DEBUG=1`` turns the filtering off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator

WARP_NO_CUDA_DRIVER = r"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"
"""Warp's native warning when libcuda is absent: noise when the caller asked for the CPU."""

OPEN3D_HEADLESS_NOISE = (
    r"XDG_RUNTIME_DIR is invalid or not set",  # libwayland-client, probed by GLFW
    r"GLFW Error: Failed to detect any supported platform",  # GLFW with no X11 / Wayland display
    r"\[Visualizer\] No display detected, falling back to EGL",
    r"EGLOffscreenContext: created",
)
"""What Open3D's ``Visualizer.create_window`` prints on its way to the EGL offscreen context when no display
exists."""


def _debug() -> bool:
    return os.environ.get("CHRONOTOPE_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def drop_native_lines(patterns: Iterable[str], fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Runs the block with file descriptors ``fds`` captured, then writes back every captured line that matches
    none of ``patterns`` (regular expressions, searched). Output is replayed also when the block raises."""
    compiled = [re.compile(p) for p in patterns]
    if not compiled or _debug():
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int, object]] = []
    try:
        for fd in fds:
            try:
                orig = os.dup(fd)
            except OSError:  # closed descriptor: nothing to filter
                continue
            tmp = tempfile.TemporaryFile()
            saved.append((fd, orig, tmp))
            os.dup2(tmp.fileno(), fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, orig, tmp in saved:
            os.dup2(orig, fd)
            os.close(orig)
            tmp.seek(0)
            data = tmp.read()
            tmp.close()
            kept = [
                line
                for line in data.splitlines(keepends=True)
                if not any(c.search(line.decode("utf-8", "replace")) for c in compiled)
            ]
            if kept:
                os.write(fd, b"".join(kept))


def init_warp_quietly(wp, cpu_only: bool) -> None:
    """Initialises Warp without its INFO banner (and, with ``cpu_only``, without the missing-CUDA-driver line);
    warnings and errors still print. A log level the user already changed is left alone."""
    config = wp.config
    if hasattr(config, "log_level"):
        if config.log_level == getattr(wp, "LOG_INFO", 20) and not _debug():
            config.log_level = getattr(wp, "LOG_WARNING", 30)
    elif not _debug():  # Warp before 1.10: a boolean
        config.quiet = True
    with drop_native_lines([WARP_NO_CUDA_DRIVER] if cpu_only else [], fds=(2,)):
        wp.init()
