"""Headless start-up is quiet (no Warp banner, no GLFW / XDG "errors" on the EGL fallback) and real errors still
print."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chronotope.envs.render.quiet import drop_native_lines

HEADLESS = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")}
HEADLESS.pop("CHRONOTOPE_DEBUG", None)


def _run(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env or HEADLESS
    )


def test_drop_native_lines_keeps_what_it_does_not_know(capfd):
    with drop_native_lines([r"known noise"]):
        os.write(2, b"known noise: harmless\nEGL error: real\n")  # what a C library writes, below sys.stderr
        os.write(1, b"known noise again\nresult 42\n")
        print("python line")
    out, err = capfd.readouterr()
    assert err == "EGL error: real\n"
    assert sorted(out.splitlines()) == ["python line", "result 42"]


def test_drop_native_lines_replays_when_the_block_raises(capfd):
    with pytest.raises(RuntimeError), drop_native_lines([r"noise"]):
        os.write(2, b"noise\nwhy it failed\n")
        raise RuntimeError("boom")
    assert capfd.readouterr().err == "why it failed\n"


def test_debug_turns_filtering_off(capfd, monkeypatch):
    monkeypatch.setenv("CHRONOTOPE_DEBUG", "1")
    with drop_native_lines([r"noise"]):
        os.write(2, b"noise\n")
    assert capfd.readouterr().err == "noise\n"


def test_warp_initialises_without_banner():
    pytest.importorskip("warp")
    code = (
        "import warp as wp\n"
        "from chronotope.envs.render.quiet import init_warp_quietly\n"
        "init_warp_quietly(wp, cpu_only=True)\n"
        "print('device', wp.get_device('cpu'), wp.config.log_level == wp.LOG_WARNING)\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    assert "initialized" not in both and "Kernel cache" not in both and "CUDA driver" not in both, both
    assert "device cpu True" in r.stdout  # warnings and errors still print


def test_open3d_headless_render_prints_nothing():
    code = (
        "import numpy as np, open3d as o3d\n"
        "from chronotope.scripts.viz import open3d_scene as o3s\n"
        "box = o3d.geometry.TriangleMesh.create_box()\n"
        "cam = o3s.camera_preset('top', np.zeros(3), np.ones(3), width=64, height=48)\n"
        "img = o3s.render_png([box], cam)\n"
        "print('shape', img.shape)\n"
    )
    r = _run(code)
    if "could not create an offscreen window" in r.stderr:
        pytest.skip("no EGL on this machine")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "shape (48, 64, 3)\n", r.stdout
    assert "GLFW" not in r.stderr and "XDG_RUNTIME_DIR" not in r.stderr, r.stderr
