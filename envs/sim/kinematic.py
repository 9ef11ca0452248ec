"""Batched kinematic agents in the habitat / VLN-CE convention, moving on navigability grids.

Actions: 0 STOP, 1 MOVE_FORWARD (0.25 m), 2 TURN_LEFT (15 deg), 3 TURN_RIGHT (15 deg). A blocked forward move
goes as far as the free space allows and then slides along the obstacle (the remaining displacement projected
on the world axes, whichever gets further), and reports a collision. All N agents move in one vectorised call;
each lives in one scene of a shared pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chronotope.envs.render.camera import camera_poses
from chronotope.envs.scene.navgrid import NavGrid

STOP, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT = 0, 1, 2, 3
ACTION_NAMES = ("STOP", "MOVE_FORWARD", "TURN_LEFT", "TURN_RIGHT")


@dataclass(frozen=True)
class AgentConfig:
    """Body, camera and actuation of the agents.

    Attributes:
        radius: body cylinder radius (m).
        height: body height (m).
        camera_height: camera above the floor (m).
        forward_step: MOVE_FORWARD distance (m).
        turn_angle: TURN_LEFT / TURN_RIGHT angle (degrees).
        forward_noise: std of multiplicative noise on the forward step (0 = noiseless).
        turn_noise: std of additive noise on turns and on heading when moving (degrees).
        nav_cell: navigability grid cell (m).
    """

    radius: float = 0.18
    height: float = 1.5
    camera_height: float = 1.25
    forward_step: float = 0.25
    turn_angle: float = 15.0
    forward_noise: float = 0.0
    turn_noise: float = 0.0
    nav_cell: float = 0.05

    def __post_init__(self) -> None:
        for name in ("radius", "height", "camera_height", "forward_step", "turn_angle", "nav_cell"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"AgentConfig.{name} must be a positive finite number, got {v!r}")
        for name in ("forward_noise", "turn_noise"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"AgentConfig.{name} must be >= 0, got {v!r}")


class StackedGrids:
    """The pool's navigability grids padded into one array so lookups for N agents are one gather."""

    def __init__(self, grids: Sequence[NavGrid]) -> None:
        if not grids:
            raise ValueError("need at least one navigation grid")
        cells = {g.cell_size for g in grids}
        if len(cells) != 1:
            raise ValueError(f"all grids must share one cell size, got {sorted(cells)}")
        self.grids = list(grids)
        self.cell = grids[0].cell_size
        h = max(g.shape[0] for g in grids)
        w = max(g.shape[1] for g in grids)
        self.navigable = np.zeros((len(grids), h, w), bool)
        self.obstacle = np.ones((len(grids), h, w), bool)
        for i, g in enumerate(grids):
            self.navigable[i, : g.shape[0], : g.shape[1]] = g.navigable
            self.obstacle[i, : g.shape[0], : g.shape[1]] = g.obstacle
        self.origin = np.stack([g.origin for g in grids])  # [S, 2]
        self.shape = (h, w)

    def cells(self, scene: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) for points xy [..., 2] in scenes ``scene`` [...] (broadcast)."""
        o = self.origin[scene]
        col = np.floor((xy[..., 0] - o[..., 0]) / self.cell).astype(np.int64)
        row = np.floor((xy[..., 1] - o[..., 1]) / self.cell).astype(np.int64)
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        return np.clip(row, 0, self.shape[0] - 1), np.clip(col, 0, self.shape[1] - 1), inside

    def ranges(
        self, scene: np.ndarray, xy: np.ndarray, yaw: np.ndarray, num_rays: int, max_range: float, step: float = 0.05
    ) -> np.ndarray:
        """Distances (m) [N, num_rays] from points xy [N, 2] to the nearest obstacle along ``num_rays`` headings
        spread evenly around ``yaw`` (the first straight ahead, counter-clockwise), capped at ``max_range``."""
        angles = yaw[:, None] + np.arange(num_rays) * (2 * np.pi / num_rays)  # [N, R]
        dist = np.arange(1, int(np.ceil(max_range / step)) + 1) * step  # [S]
        d = np.stack([np.cos(angles), np.sin(angles)], -1)  # [N, R, 2]
        pts = xy[:, None, None, :] + dist[None, None, :, None] * d[:, :, None, :]  # [N, R, S, 2]
        row, col, inside = self.cells(scene[:, None, None], pts)
        hit = self.obstacle[np.broadcast_to(scene[:, None, None], row.shape), row, col] | ~inside
        first = np.where(hit.any(-1), np.argmax(hit, -1), len(dist))
        return np.minimum(np.concatenate([dist, [max_range]])[first], max_range)

    def navigable_at(self, scene: np.ndarray, xy: np.ndarray) -> np.ndarray:
        row, col, inside = self.cells(scene, xy)
        return self.navigable[np.broadcast_to(scene, row.shape), row, col] & inside


class BatchKinematics:
    """Poses of N agents and their vectorised motion.

    Attributes:
        position: float64 [N, 2] (x, y) on the floor.
        yaw: float64 [N] heading in radians (0 = +x, counter-clockwise positive), wrapped to (-pi, pi].
        scene: int64 [N] index into the scene pool.
    """

    def __init__(self, grids: Sequence[NavGrid], num_agents: int, config: AgentConfig | None = None) -> None:
        if not isinstance(num_agents, (int, np.integer)) or num_agents <= 0:
            raise ValueError(f"num_agents must be a positive integer, got {num_agents!r}")
        self.config = config or AgentConfig()
        self.stack = StackedGrids(grids)
        self.n = int(num_agents)
        self.position = np.zeros((self.n, 2))
        self.yaw = np.zeros(self.n)
        self.scene = np.zeros(self.n, np.int64)
        # Sub-steps no longer than half a cell, so no obstacle cell is jumped over.
        self._substeps = max(2, int(math.ceil(self.config.forward_step * 1.5 / (0.5 * self.stack.cell))))

    def set_pose(self, idx, position: np.ndarray, yaw: np.ndarray, scene: np.ndarray | None = None) -> None:
        idx = np.atleast_1d(np.asarray(idx, np.int64))
        position = np.asarray(position, np.float64).reshape(len(idx), 2)
        yaw = np.asarray(yaw, np.float64).reshape(len(idx))
        if not (np.isfinite(position).all() and np.isfinite(yaw).all()):
            raise ValueError(f"agent poses must be finite, got position={position.tolist()} yaw={yaw.tolist()}")
        if scene is not None:
            self.scene[idx] = np.asarray(scene, np.int64).reshape(len(idx))
        self.position[idx] = position
        self.yaw[idx] = _wrap(yaw)

    def step(
        self, actions: np.ndarray, rng: Sequence[np.random.Generator] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Applies one action per agent.

        Args:
            actions: int [N] in {0, 1, 2, 3}.
            rng: per-agent generators for actuation noise (required when noise is configured).

        Returns:
            (collided bool [N], moved float64 [N] distance actually travelled).
        """
        a = np.asarray(actions)
        if a.shape != (self.n,):
            raise ValueError(f"expected {self.n} actions of shape ({self.n},), got shape {a.shape}")
        cfg = self.config
        turn = np.where(a == TURN_LEFT, 1.0, np.where(a == TURN_RIGHT, -1.0, 0.0)) * math.radians(cfg.turn_angle)
        fwd = a == MOVE_FORWARD
        step = np.where(fwd, cfg.forward_step, 0.0)
        if cfg.forward_noise > 0 or cfg.turn_noise > 0:
            if rng is None or len(rng) != self.n:
                raise ValueError("actuation noise needs one random generator per agent")
            eps = np.array([[g.normal(), g.normal()] for g in rng])
            step = step * np.maximum(0.0, 1.0 + cfg.forward_noise * eps[:, 0])
            moving = (a == MOVE_FORWARD) | (a == TURN_LEFT) | (a == TURN_RIGHT)
            turn = turn + np.where(moving, math.radians(cfg.turn_noise) * eps[:, 1], 0.0)
        self.yaw = _wrap(self.yaw + turn)
        collided = np.zeros(self.n, bool)
        moved = np.zeros(self.n)
        idx = np.flatnonzero(fwd)
        if idx.size:
            d = np.stack([np.cos(self.yaw[idx]), np.sin(self.yaw[idx])], -1) * step[idx, None]
            new_pos, blocked = self._move(idx, self.position[idx], d)
            moved[idx] = np.linalg.norm(new_pos - self.position[idx], axis=-1)
            self.position[idx] = new_pos
            collided[idx] = blocked
        return collided, moved

    def _advance(self, scene: np.ndarray, start: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Furthest free point along start + s*d, s in (0, 1]; returns (point [M,2], fraction [M])."""
        k = self._substeps
        s = np.arange(1, k + 1) / k  # [K]
        pts = start[:, None, :] + s[None, :, None] * d[:, None, :]  # [M, K, 2]
        ok = self.stack.navigable_at(scene[:, None], pts)  # [M, K]
        # Length of the all-free prefix of the sub-steps.
        prefix = np.where(ok.all(1), k, np.argmin(ok, axis=1))
        frac = prefix / k
        return start + frac[:, None] * d, frac

    def _move(self, idx: np.ndarray, pos: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scene = self.scene[idx]
        p1, frac = self._advance(scene, pos, d)
        blocked = frac < 1.0
        if blocked.any():
            b = np.flatnonzero(blocked)
            rest = d[b] * (1.0 - frac[b])[:, None]
            rx = rest * np.array([1.0, 0.0])
            ry = rest * np.array([0.0, 1.0])
            px, fx = self._advance(scene[b], p1[b], rx)
            py, fy = self._advance(scene[b], p1[b], ry)
            gain_x = np.abs(rx[:, 0]) * fx
            gain_y = np.abs(ry[:, 1]) * fy
            p1[b] = np.where((gain_x >= gain_y)[:, None], px, py)
        return p1, blocked

    def camera_poses(self) -> np.ndarray:
        """Cam-to-world float64 [N, 4, 4] of the agents' head cameras."""
        pos3 = np.concatenate([self.position, np.full((self.n, 1), self.config.camera_height)], -1)
        return camera_poses(pos3, self.yaw)


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wraps angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, 2 * np.pi)
