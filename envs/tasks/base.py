"""Task objects: episode sampling, task sensors, reward terms and success radius for the batched nav core."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.measures import NAV_MEASURES, Measure


@dataclass
class Episode:
    """One navigation episode of one environment.

    Attributes:
        scene: index into the scene pool.
        start_position: (x, y).
        start_yaw: radians.
        goal_position: (x, y) of the goal point (PointNav) or of the nearest goal instance (ObjectNav).
        field: geodesic distance field (m) on the scene's grid from the goal region.
        start_distance: d_0.
        shortest_path: l, the geodesic length to the nearest success location.
        goal_category: object category id (ObjectNav), -1 otherwise.
        extra: task-specific data (targets, phases, instruction ...).
    """

    scene: int
    start_position: np.ndarray
    start_yaw: float
    goal_position: np.ndarray
    field: np.ndarray
    start_distance: float
    shortest_path: float
    goal_category: int = -1
    extra: dict = field(default_factory=dict)


class Task:
    """Base class of navigation tasks.

    Subclasses set ``name`` and ``success_radius`` and implement :meth:`sample_episode`,
    :meth:`sensor_spaces` and :meth:`sensors`. Rewards: progress on geodesic distance, a success bonus and a
    slack penalty (habitat defaults), each reported as ``info["reward_<name>"]``.
    """

    name = "task"
    success_radius = 0.2
    cache_attrs: tuple[str, ...] = ()
    """Attributes holding caches derived from the scenes alone (geodesic fields, ...): pickled empty, so a pickled
    env (in every checkpoint) does not grow with each scene and goal visited; they refill on demand."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for k in self.cache_attrs:
            if k in state:
                state[k] = type(state[k])()
        return state

    def __init__(self, success_reward: float = 2.5, slack_reward: float = -0.01, progress_scale: float = 1.0) -> None:
        self.success_reward = float(success_reward)
        self.slack_reward = float(slack_reward)
        self.progress_scale = float(progress_scale)

    def measure_types(self) -> tuple[type[Measure], ...]:
        return NAV_MEASURES

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        raise NotImplementedError

    def sensor_spaces(self, core) -> dict[str, spaces.Space]:
        raise NotImplementedError

    def sensors(self, core) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def reward_terms(self, core, prev_distance: np.ndarray) -> dict[str, np.ndarray]:
        d = core.distance_to_goal
        progress = np.where(np.isfinite(prev_distance) & np.isfinite(d), prev_distance - d, 0.0)
        success = core.measures["success"].value
        return {
            "progress": self.progress_scale * progress,
            "success": self.success_reward * success,
            "slack": np.full(core.n, self.slack_reward),
        }


def agent_frame(d: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World vectors ``d`` [..., 2] in the frame of headings ``yaw`` (broadcast against ``d[..., 0]``): x forward,
    y left."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def start_frame(position: np.ndarray, yaw: np.ndarray, start: np.ndarray, start_yaw: np.ndarray):
    """GPS (position in the start frame, x forward, y left) [N, 2] and compass (heading - start heading) [N]."""
    gps = agent_frame(position - start, start_yaw)
    compass = np.pi - np.mod(np.pi - (yaw - start_yaw), 2 * np.pi)
    return gps, compass


def polar(from_xy: np.ndarray, from_yaw: np.ndarray, to_xy: np.ndarray) -> np.ndarray:
    """(distance, angle) [N, 2] of points ``to_xy`` seen from poses (angle positive to the left)."""
    d = to_xy - from_xy
    rho = np.linalg.norm(d, axis=-1)
    phi = np.arctan2(d[:, 1], d[:, 0]) - from_yaw
    phi = np.pi - np.mod(np.pi - phi, 2 * np.pi)
    return np.stack([rho, phi], -1)
