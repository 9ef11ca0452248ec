"""Test fixture: a camera in an axis-aligned box room with one pillar, depth and ids rendered analytically.

Follows the navigation-env contract the map wrappers rely on (Dict obs with "depth" [H,W,1] float32 and
"semantic" [H,W,1] int32, ``info["camera_pose"]``, ``unwrapped.intrinsics``, ``unwrapped.max_depth``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics, camera_poses

ROOM = np.array([6.0, 4.0, 2.5])  # the room is [0, 6] x [0, 4] x [0, 2.5]
PILLAR_LO = np.array([3.0, 1.5, 0.0])
PILLAR_HI = np.array([3.5, 2.0, 2.5])
# ids: walls x=0 -> 1, x=6 -> 2, y=0 -> 3, y=4 -> 4; floor 5; ceiling 6; pillar 7
WALL_IDS = np.array([[1, 2], [3, 4], [5, 6]])
PILLAR_ID = 7


def render_box(pose: np.ndarray, intr: CameraIntrinsics, max_depth: float) -> tuple[np.ndarray, np.ndarray]:
    """z-depth float32 [H, W] and ids int32 [H, W] of the room seen from cam-to-world ``pose``."""
    rays = intr.camera_rays().reshape(-1, 3).astype(np.float64)
    d = rays @ pose[:3, :3].T  # world directions scaled so that t is the z-depth
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_axis = np.where(d > 0, (ROOM - o) / d, np.where(d < 0, (0.0 - o) / d, np.inf))  # [N, 3]
        axis = np.argmin(t_axis, axis=1)
        t = t_axis[np.arange(len(d)), axis]
        ids = WALL_IDS[axis, (d[np.arange(len(d)), axis] > 0).astype(int)]
        t1, t2 = (PILLAR_LO - o) / d, (PILLAR_HI - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
    hit_p = (t_near <= t_far) & (t_near > 0) & (t_near < t)
    t = np.where(hit_p, t_near, t)
    ids = np.where(hit_p, PILLAR_ID, ids)
    far = t >= max_depth
    t = np.where(far, max_depth, t)
    ids = np.where(far, 0, ids)
    return t.reshape(intr.height, intr.width).astype(np.float32), ids.reshape(intr.height, intr.width).astype(np.int32)


def surface_distance(points: np.ndarray) -> np.ndarray:
    """Distance of points inside the room to the nearest room or pillar surface, [N]."""
    p = np.asarray(points, np.float64)
    d_room = np.minimum(p, ROOM - p).min(axis=1)
    # distance to the pillar box (outside it): Euclidean distance to the box
    q = np.maximum(np.maximum(PILLAR_LO - p, p - PILLAR_HI), 0.0)
    return np.minimum(d_room, np.linalg.norm(q, axis=1))


def free_position(xy: np.ndarray, margin: float = 0.3) -> bool:
    """Whether a camera at floor position ``xy`` keeps ``margin`` from walls and pillar."""
    x, y = xy
    if not (margin <= x <= ROOM[0] - margin and margin <= y <= ROOM[1] - margin):
        return False
    return not (
        PILLAR_LO[0] - margin <= x <= PILLAR_HI[0] + margin and PILLAR_LO[1] - margin <= y <= PILLAR_HI[1] + margin
    )


class BoxRoomEnv(gym.Env):
    """Move forward 0.25 m / turn left / turn right 30 degrees in the box room; no reward, never terminates."""

    metadata = {"render_modes": []}

    def __init__(self, height: int = 32, width: int = 32, max_depth: float = 5.0, camera_height: float = 1.0):
        self.intrinsics = CameraIntrinsics(height, width, 90.0)
        self.max_depth = float(max_depth)
        self.camera_height = camera_height
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Dict(
            {
                "depth": gym.spaces.Box(0.0, self.max_depth, (height, width, 1), np.float32),
                "semantic": gym.spaces.Box(0, 7, (height, width, 1), np.int32),
            }
        )
        self.pos = np.zeros(2)
        self.yaw = 0.0

    def pose(self) -> np.ndarray:
        return camera_poses(np.array([[*self.pos, self.camera_height]]), np.array([self.yaw]))[0]

    def _obs(self):
        pose = self.pose()
        depth, ids = render_box(pose, self.intrinsics, self.max_depth)
        return {"depth": depth[..., None], "semantic": ids[..., None]}, {"camera_pose": pose}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        while True:
            xy = self.np_random.uniform([0.3, 0.3], ROOM[:2] - 0.3)
            if free_position(xy):
                break
        self.pos = xy
        self.yaw = float(self.np_random.uniform(-np.pi, np.pi))
        return self._obs()

    def step(self, action):
        if action == 0:
            nxt = self.pos + 0.25 * np.array([np.cos(self.yaw), np.sin(self.yaw)])
            if free_position(nxt):
                self.pos = nxt
        elif action == 1:
            self.yaw += np.pi / 6
        elif action == 2:
            self.yaw -= np.pi / 6
        else:
            raise ValueError(f"action must be 0, 1 or 2, got {action}")
        obs, info = self._obs()
        return obs, 0.0, False, False, info
