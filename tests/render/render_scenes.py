"""Shared scenes and renderer factories for the renderer tests (a plain module: imported by name)."""

from __future__ import annotations

import numpy as np
import pytest

from chronotope.envs.render.base import make_renderer
from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
from chronotope.envs.scene.mesh import SceneMesh

BACKENDS = ("open3d", "mjwarp", "mujoco")


def room(instance_base: int = 0, seed: int = 0, n_objects: int = 6) -> SceneMesh:
    """A closed 8 m x 6 m room: floor, ceiling, four walls and a few boxes, each with its own instance id."""
    rng = np.random.default_rng(seed)
    t, hx, hy, z = 0.1, 4.0, 3.0, 2.6
    parts = [
        SceneMesh.box([-hx - t, -hy - t, -t], [hx + t, hy + t, 0.0], instance_base + 1, (170, 160, 150)),
        SceneMesh.box([-hx - t, -hy - t, z], [hx + t, hy + t, z + t], instance_base + 2, (235, 235, 230)),
        SceneMesh.box([-hx - t, -hy, 0], [-hx, hy, z], instance_base + 3, (200, 190, 170)),
        SceneMesh.box([hx, -hy, 0], [hx + t, hy, z], instance_base + 4, (190, 200, 170)),
        SceneMesh.box([-hx - t, -hy - t, 0], [hx + t, -hy, z], instance_base + 5, (180, 180, 210)),
        SceneMesh.box([-hx - t, hy, 0], [hx + t, hy + t, z], instance_base + 6, (210, 180, 180)),
    ]
    for k in range(n_objects):
        c = rng.uniform([-hx + 1, -hy + 1], [hx - 1, hy - 1])
        s = rng.uniform(0.2, 0.5, 2)
        top = rng.uniform(0.4, 1.8)
        col = tuple(int(v) for v in rng.integers(40, 255, 3))
        parts.append(SceneMesh.box([*(c - s), 0.0], [*(c + s), top], instance_base + 10 + k, col))
    return SceneMesh.concatenate(parts)


def random_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cam-to-world [n, 4, 4] at random places inside :func:`room`, random yaw, some pitch."""
    pos = np.c_[rng.uniform(-3.5, 3.5, n), rng.uniform(-2.5, 2.5, n), rng.uniform(0.3, 2.2, n)]
    return camera_poses(pos, rng.uniform(-np.pi, np.pi, n), rng.uniform(-0.6, 0.6, n))


def build(backend: str, meshes, intrinsics: CameraIntrinsics, max_depth: float = 10.0):
    """A renderer, or a skip naming why the backend cannot start here."""
    try:
        return make_renderer(backend, meshes, intrinsics, max_depth=max_depth)
    except ImportError as e:
        pytest.skip(f"backend {backend!r} unavailable: {e}")
    except RuntimeError as e:
        if backend == "mujoco":  # no GL context (no EGL / display) on this machine
            pytest.skip(f"backend 'mujoco' cannot open a GL context: {e}")
        raise
