"""Pinhole camera conventions shared by the simulator and every renderer backend.

World frame: metres, z up. Camera frame: OpenCV (x right, y down, z forward). A camera pose is a
cam-to-world 4x4 matrix. Pixel (row v, column u) looks through its centre (u + 0.5, v + 0.5). Depth is
z-depth (distance along the optical axis), not ray length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Square-pixel pinhole camera with a horizontal field of view."""

    height: int = 64
    width: int = 64
    hfov_deg: float = 90.0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"camera {name} must be a positive integer, got {value!r}")
        if not (0.0 < float(self.hfov_deg) < 180.0):
            raise ValueError(f"hfov_deg must be in (0, 180), got {self.hfov_deg!r}")

    @property
    def fx(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.cy / self.fy))

    def matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def camera_rays(self) -> np.ndarray:
        """Ray directions in the camera frame, float32 [H, W, 3], with z component exactly 1.

        Because z == 1, a hit distance ``t`` along such a ray *is* the z-depth.
        """
        u = (np.arange(self.width, dtype=np.float64) + 0.5 - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float64) + 0.5 - self.cy) / self.fy
        uu, vv = np.meshgrid(u, v)
        return np.stack([uu, vv, np.ones_like(uu)], axis=-1).astype(np.float32)


# Rotation taking OpenCV camera axes to a z-up body frame whose x axis looks forward:
# camera z (forward) -> body x, camera x (right) -> body -y, camera y (down) -> body -z.
CV_TO_BODY = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)


def camera_poses(position: np.ndarray, yaw: np.ndarray, pitch: np.ndarray | None = None) -> np.ndarray:
    """Cam-to-world matrices float64 [N, 4, 4] for cameras at ``position`` [N, 3] looking along yaw [N].

    Yaw 0 looks along +x, positive yaw turns left (counter-clockwise seen from above). Pitch > 0 looks up.
    """
    position = np.asarray(position, dtype=np.float64).reshape(-1, 3)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    if not (np.isfinite(position).all() and np.isfinite(yaw).all()):
        raise ValueError("camera poses contain NaN or inf")
    n = position.shape[0]
    if yaw.shape[0] != n:
        raise ValueError(f"got {n} positions but {yaw.shape[0]} yaws")
    cy, sy = np.cos(yaw), np.sin(yaw)
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = cy, -sy, sy, cy, 1.0
    rot = rz
    if pitch is not None:
        pitch = np.asarray(pitch, dtype=np.float64).reshape(-1)
        cp, sp = np.cos(pitch), np.sin(pitch)
        ry = np.zeros((n, 3, 3))  # rotation about body y; positive pitch raises the x axis
        ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cp, -sp, 1.0, sp, cp
        rot = rz @ ry
    out = np.zeros((n, 4, 4))
    out[:, :3, :3] = rot @ CV_TO_BODY
    out[:, :3, 3] = position
    out[:, 3, 3] = 1.0
    return out
