"""chronotope/Reach-v0: move the tool centre point to a goal in the air."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.env import RobotEnv, RobotEnvConfig
from chronotope.envs.robot.tasks.common import add_goal_marker

REWARD_TYPES = ("dense", "sparse")


@dataclass
class ReachConfig(RobotEnvConfig):
    """Reach options (plus :class:`RobotEnvConfig`)."""

    reward_type: str = "dense"
    """``dense``: negative distance + success bonus; ``sparse``: success bonus only."""
    success_radius: float = 0.03
    """Tool-to-goal distance (m) that counts as reached."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type={self.reward_type!r}; expected one of {REWARD_TYPES}")
        if not 0.005 <= self.success_radius <= 0.2:
            raise ValueError(f"success_radius={self.success_radius!r}; expected in [0.005, 0.2] m")


class ReachEnv(RobotEnv):
    """**Reach**: bring the tool centre point within ``success_radius`` of a goal point.

    Randomisations: goal uniform in x [0.3, 0.6], y [-0.25, 0.25], z [0.05, 0.3] m; home joints +- noise.
    Observations: base keys + ``goal`` [3] (m, world).
    Actions: see :class:`RobotEnvConfig` (``ee_delta`` [4] or ``joint`` [7]).
    Success: ``|ee_pos - goal| < success_radius``; the episode terminates on success.
    Reward terms: ``distance`` = -|ee_pos - goal| (dense only); ``success`` = +1 on the success step.
    Measures: ``success``, ``distance``.
    """

    Config: ClassVar[type] = ReachConfig
    reward_terms: ClassVar[tuple[str, ...]] = ("distance", "success")
    goal_low: ClassVar[np.ndarray] = np.array([0.3, -0.25, 0.05])
    goal_high: ClassVar[np.ndarray] = np.array([0.6, 0.25, 0.3])

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_goal_marker(spec, "goal")

    def _initialize_episode(self) -> None:
        self.goal = self.np_random.uniform(self.goal_low, self.goal_high)
        self.data.mocap_pos[0] = self.goal

    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {"goal": spaces.Box(-np.inf, np.inf, (3,), np.float32)}

    def _task_obs(self) -> dict[str, np.ndarray]:
        return {"goal": self.goal}

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        dist = float(np.linalg.norm(self.ee_pos - self.goal))
        success = dist < self.cfg.success_radius
        terms = {"success": 1.0 if success else 0.0}
        if self.cfg.reward_type == "dense":
            terms["distance"] = -dist
        return success, terms, {"success": success, "distance": dist}
