"""Depth back-projection and pose helpers shared by the maps (conventions of ``envs/render/camera.py``)."""

from __future__ import annotations

import functools
import math

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.maps import kernels


def check_pose(cam_to_world: np.ndarray) -> np.ndarray:
    """Validates a cam-to-world pose and returns it as float64 ``[4, 4]``."""
    pose = np.asarray(cam_to_world, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"cam_to_world must have shape [4, 4], got {pose.shape}")
    if not np.isfinite(pose).all():
        raise ValueError(f"cam_to_world contains NaN or inf: {pose.tolist()}")
    return pose


def backproject_depth(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    cam_to_world: np.ndarray,
    max_depth: float,
) -> tuple[np.ndarray, np.ndarray]:
    """World points of the pixels that hit something.

    Pixels whose depth is ``>= max_depth`` (nothing hit), ``<= 0`` or not finite are dropped.

    Args:
        depth: z-depth in metres, ``[H, W]`` or ``[H, W, 1]``.
        intrinsics: the camera that produced ``depth``.
        cam_to_world: float ``[4, 4]`` pose of that camera.
        max_depth: the renderer's depth clip.

    Returns:
        points float64 ``[N, 3]`` in the world frame, and the flat pixel indices int64 ``[N]`` they came from.
    """
    d = np.asarray(depth)
    pts, _, idx = backproject_depth_batch(d[None], intrinsics, check_pose(cam_to_world)[None], max_depth)
    return pts, idx


def backproject_depth_batch(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    cam_to_world: np.ndarray,
    max_depth: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points of the pixels that hit something, for a batch of B frames at once.

    Each frame is transformed on its own, so its points are bit-identical whichever batch it comes in.

    Args:
        depth: z-depth in metres, ``[B, H, W]`` or ``[B, H, W, 1]``.
        intrinsics: the camera of every frame.
        cam_to_world: float ``[B, 4, 4]`` poses.
        max_depth: the renderer's depth clip.

    Returns:
        points float64 ``[M, 3]`` grouped by frame (frame 0's first), the frame int64 ``[M]`` and the flat
        pixel index int64 ``[M]`` of each.
    """
    columns, frame, idx = backproject_depth_columns(depth, intrinsics, cam_to_world, max_depth)
    return np.ascontiguousarray(columns.T), frame, idx


@functools.lru_cache(maxsize=16)
def _ray_columns(intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """The x and y components (float64 ``[H * W]`` each, read-only) of ``intrinsics.camera_rays()``, whose z is 1."""
    rays = intrinsics.camera_rays().reshape(-1, 3).astype(np.float64)
    if not (rays[:, 2] == 1.0).all():
        raise AssertionError("camera rays must have z == 1")
    x, y = np.ascontiguousarray(rays[:, 0]), np.ascontiguousarray(rays[:, 1])
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def backproject_depth_columns(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    cam_to_world: np.ndarray,
    max_depth: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`backproject_depth_batch` with the points by coordinate: float64 ``[3, M]`` contiguous (x, y, z
    rows; the same values), the frame int64 ``[M]`` and the flat pixel index int64 ``[M]``.

    One compiled pass (:func:`chronotope.maps.kernels.backproject`) whose arithmetic is that of every point on
    its own: the camera-frame point is the z == 1 ray scaled by the z-depth, rotated (each row's three products
    added left to right), then translated, so a frame's points are the same whichever batch it comes in.
    """
    d = np.asarray(depth)
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    if d.ndim == 4 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 3 or d.shape[1:] != (intrinsics.height, intrinsics.width):
        raise ValueError(
            f"depth shape {np.asarray(depth).shape} does not match the camera {intrinsics.height}x{intrinsics.width}"
        )
    pose = np.asarray(cam_to_world, dtype=np.float64)
    if pose.shape != (d.shape[0], 4, 4) or not np.isfinite(pose).all():
        raise ValueError(f"cam_to_world must be {d.shape[0]} finite [4, 4] poses, got shape {pose.shape}")
    rx, ry = _ray_columns(intrinsics)
    return kernels.backproject(
        d.reshape(d.shape[0], -1), rx, ry, np.ascontiguousarray(pose[:, :3, :3]), np.ascontiguousarray(pose[:, :3, 3]),
        float(max_depth),
    )  # fmt: skip


def camera_yaw(cam_to_world: np.ndarray) -> float:
    """Heading of the camera's optical axis projected on the floor: 0 along +x, counter-clockwise positive."""
    pose = np.asarray(cam_to_world, dtype=np.float64)
    fwd = pose[:3, 2]
    return math.atan2(fwd[1], fwd[0])


def world_to_agent_xy(offsets: np.ndarray, yaw: float) -> np.ndarray:
    """Rotates world-frame xy offsets ``[..., 2]`` into the agent frame (x forward, y left)."""
    c, s = math.cos(yaw), math.sin(yaw)
    off = np.asarray(offsets, dtype=np.float64)
    return np.stack([c * off[..., 0] + s * off[..., 1], -s * off[..., 0] + c * off[..., 1]], axis=-1)
