"""Analytic RGB-D test scenes: axis-aligned boxes ray-cast in numpy (no renderer dependency).

Used by the tests and the benchmark to build a scene memory from frames whose ground truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics, camera_poses


@dataclass(frozen=True)
class Box:
    """Axis-aligned box [lo, hi] (world, metres) with an RGB colour in [0, 1] and an instance id."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]
    instance: int


def box_room(size: float = 4.0, height: float = 2.5) -> list[Box]:
    """A closed room (floor, ceiling, four walls) with three coloured boxes on the floor."""
    s, t = size / 2, 0.1
    return [
        Box((-s, -s, -t), (s, s, 0.0), (0.55, 0.45, 0.35), 1),  # floor
        Box((-s, -s, height), (s, s, height + t), (0.9, 0.9, 0.9), 2),  # ceiling
        Box((-s - t, -s, 0), (-s, s, height), (0.7, 0.75, 0.8), 3),
        Box((s, -s, 0), (s + t, s, height), (0.8, 0.7, 0.6), 4),
        Box((-s, -s - t, 0), (s, -s, height), (0.6, 0.8, 0.6), 5),
        Box((-s, s, 0), (s, s + t, height), (0.75, 0.65, 0.8), 6),
        Box((0.8, 0.6, 0.0), (1.4, 1.2, 0.8), (0.9, 0.1, 0.1), 7),  # red box
        Box((-1.4, 0.5, 0.0), (-0.9, 1.0, 1.2), (0.1, 0.2, 0.9), 8),  # blue column
        Box((-0.5, -1.5, 0.0), (0.3, -0.9, 0.5), (0.95, 0.85, 0.1), 9),  # yellow crate
    ]


def raycast_boxes(
    boxes: list[Box], cam_to_world: np.ndarray, intrinsics: CameraIntrinsics, max_depth: float = 10.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders boxes from one pose [4, 4] -> rgb uint8 [H, W, 3], z-depth float32 [H, W], instance int32 [H, W].

    Shading is Lambertian under a fixed light plus a faint 0.25 m checker so that surfaces carry texture.
    Pixels that hit nothing within ``max_depth`` get depth ``max_depth`` and instance 0.
    """
    pose = np.asarray(cam_to_world, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ValueError(f"cam_to_world must be a finite (4, 4) matrix, got {pose.tolist()}")
    rays_cam = intrinsics.camera_rays().reshape(-1, 3).astype(np.float64)  # z == 1: t is z-depth
    d = rays_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    best = np.full(d.shape[0], np.inf)
    inst = np.zeros(d.shape[0], dtype=np.int32)
    normal = np.zeros_like(d)
    color = np.zeros_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        for b in boxes:
            t0 = (np.asarray(b.lo) - o) * inv
            t1 = (np.asarray(b.hi) - o) * inv
            tmin, tmax = np.minimum(t0, t1), np.maximum(t0, t1)
            tn = np.nanmax(tmin, axis=1)
            tf = np.nanmin(tmax, axis=1)
            axis = np.nanargmax(tmin, axis=1)
            hit = (tf >= tn) & (tn > 1e-6) & (tn < best)
            best[hit] = tn[hit]
            inst[hit] = b.instance
            n = np.zeros((hit.sum(), 3))
            n[np.arange(hit.sum()), axis[hit]] = -np.sign(d[hit, axis[hit]])
            normal[hit] = n
            color[hit] = b.color
    hitm = np.isfinite(best) & (best < max_depth)
    p = o + d * np.where(hitm, best, 0)[:, None]
    light = np.array([0.3, 0.5, 0.81])
    shade = 0.55 + 0.45 * np.abs(normal @ light)
    checker = 0.9 + 0.1 * ((np.floor(p[:, 0] / 0.25) + np.floor(p[:, 1] / 0.25) + np.floor(p[:, 2] / 0.25)) % 2)
    rgb = np.clip(color * (shade * checker)[:, None], 0, 1)
    rgb[~hitm] = 0
    depth = np.where(hitm, best, max_depth).astype(np.float32)
    inst[~hitm] = 0
    h, w = intrinsics.height, intrinsics.width
    return (rgb * 255).round().astype(np.uint8).reshape(h, w, 3), depth.reshape(h, w), inst.reshape(h, w)


def orbit_poses(n: int, radius: float = 1.2, height: float = 1.2, pitch: float = -0.35, phase: float = 0.0):
    """n cam-to-world poses [n, 4, 4] on a circle around the room centre, looking outward-tangentially inward."""
    ang = phase + np.linspace(0, 2 * np.pi, n, endpoint=False)
    pos = np.stack([radius * np.cos(ang), radius * np.sin(ang), np.full(n, height)], -1)
    yaw = ang + np.pi * 0.75  # look across the room, not at the centre, so that walls and boxes are in view
    return camera_poses(pos, yaw, np.full(n, pitch))
