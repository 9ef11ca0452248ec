"""chronotope/PickPlace-v0: pick a cube and bring it to a goal point (on the table or in the air)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.env import RobotEnv, RobotEnvConfig
from chronotope.envs.robot.tasks.common import BLOCK_HALF, add_block, add_goal_marker, sample_separated_xy

REWARD_TYPES = ("dense", "sparse")


@dataclass
class PickPlaceConfig(RobotEnvConfig):
    """PickPlace options (plus :class:`RobotEnvConfig`)."""

    reward_type: str = "dense"
    """``dense``: reach + grasp + place shaping and a success bonus; ``sparse``: success bonus only."""
    success_radius: float = 0.04
    """Block-centre-to-goal distance (m) that counts as placed."""
    goal_max_height: float = 0.2
    """Goal heights are uniform in [block half size, this] m above the table."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type={self.reward_type!r}; expected one of {REWARD_TYPES}")
        if not 0.01 <= self.success_radius <= 0.2:
            raise ValueError(f"success_radius={self.success_radius!r}; expected in [0.01, 0.2] m")
        if not BLOCK_HALF <= self.goal_max_height <= 0.3:
            raise ValueError(f"goal_max_height={self.goal_max_height!r}; expected in [{BLOCK_HALF}, 0.3] m")


class PickPlaceEnv(RobotEnv):
    """**PickPlace**: grasp a 4 cm cube and hold/place it at a goal point.

    Randomisations: cube xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m (axis-aligned); goal xy in the same box,
    at least 0.1 m from the cube, goal z uniform in [0.02, ``goal_max_height``]; home joints +- noise.
    Observations: base keys + ``object_pose`` [1, 7] (cube position, quaternion) + ``goal`` [3]. In ``rgbd``
        mode ``object_pose`` is withheld (the cube is seen in the cameras).
    Actions: see :class:`RobotEnvConfig`.
    Success: ``|cube - goal| < success_radius``; terminates on success.
    Reward terms (dense): ``reach`` = -|tcp - cube|, ``grasp`` = +0.25 while both pads touch the cube,
        ``place`` = -2 |cube - goal|; always ``success`` = +5 on the success step.
    Measures: ``success``, ``place_distance``, ``grasped``.
    """

    Config: ClassVar[type] = PickPlaceConfig
    reward_terms: ClassVar[tuple[str, ...]] = ("reach", "grasp", "place", "success")
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose",)

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_block(spec, "block", C.PALETTE["red"])
        add_goal_marker(spec, "goal")

    def _initialize_episode(self) -> None:
        block_xy, goal_xy = sample_separated_xy(self.np_random, 2, 0.1)
        self.set_free_body_pose("block", np.array([*block_xy, BLOCK_HALF]))
        z = self.np_random.uniform(BLOCK_HALF, self.cfg.goal_max_height)
        self.goal = np.array([*goal_xy, z])
        self.data.mocap_pos[0] = self.goal
        self._block_geom = self.model.geom("block").id

    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {
            "object_pose": spaces.Box(-np.inf, np.inf, (1, 7), np.float32),
            "goal": spaces.Box(-np.inf, np.inf, (3,), np.float32),
        }

    def _task_obs(self) -> dict[str, np.ndarray]:
        return {"object_pose": self.free_body_pose("block")[None], "goal": self.goal}

    def grasped(self) -> bool:
        """Both finger pads touch the cube."""
        return all(self.in_contact(np.array([g]), self._block_geom) for g in self._pad_geoms)

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        block = self.free_body_pose("block")[:3]
        place = float(np.linalg.norm(block - self.goal))
        success = place < self.cfg.success_radius
        grasped = self.grasped()
        terms = {"success": 5.0 if success else 0.0}
        if self.cfg.reward_type == "dense":
            terms["reach"] = -float(np.linalg.norm(self.ee_pos - block))
            terms["grasp"] = 0.25 if grasped else 0.0
            terms["place"] = -2.0 * place
        return success, terms, {"success": success, "place_distance": place, "grasped": grasped}
