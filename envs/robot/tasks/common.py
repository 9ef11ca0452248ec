"""Helpers shared by the robot tasks: spec builders for blocks and goal markers, spawn sampling, the options of
the memory tasks."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from chronotope.envs.robot.env import RobotEnvConfig

BLOCK_HALF = 0.02
"""Half edge (m) of the cube blocks: 4 cm cubes fit the 8 cm open gripper."""
BLOCK_MASS = 0.05
SPAWN_LOW = np.array([0.35, -0.2])
"""Lower xy corner (m) of the area where objects are placed on the table."""
SPAWN_HIGH = np.array([0.6, 0.2])
OBSERVABILITY = ("partial", "full")
"""``partial``: the cue is shown only in its phase (the memory task); ``full``: the observability twin, the cue
(and whatever else the task needs remembered) stays in the observation for the whole episode, so the same task
needs no memory. The same names as the navigation memory tasks (``chronotope.envs.tasks.visibility``)."""


@dataclass
class MemoryTaskConfig(RobotEnvConfig):
    """Options shared by the arm memory tasks (CueRecallPick, CountPress, ButtonSequence, ColourSequence,
    RestorePlace, WhereHidden, MultiCueTouch, PairRecall, ShellGame), plus :class:`RobotEnvConfig`."""

    observability: str = "partial"
    """``partial`` (the memory task) or ``full`` (the observability twin: the cue stays observable for the whole
    episode; see the task sheet for what exactly stays visible)."""
    hold_arm: bool = True
    """Hold the arm at its start pose (open gripper) until the response phase: the agent's actions are ignored
    before it (:meth:`RobotEnv.controllable` is False). Without the hold the agent's own pose, which it observes,
    can carry the cue through the delay (e.g. move the hand one way per colour while the cue is lit, read the
    direction back at the response): a policy with no memory then solves the task, so the memoryless bound is
    ~ the perfect oracle's (``oracles.evaluate(..., "memoryless", hold_arm=False)`` measures such a policy)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.observability not in OBSERVABILITY:
            raise ValueError(f"observability must be one of {OBSERVABILITY}, got {self.observability!r}")
        if not isinstance(self.hold_arm, bool):
            raise ValueError(f"hold_arm={self.hold_arm!r}; expected a bool")


def add_block(spec: mujoco.MjSpec, name: str, rgba: tuple[float, ...] | np.ndarray, pos=(0.45, 0.0, BLOCK_HALF)):
    """Adds a free cube ``name`` (free joint ``name``, geom ``name``) to the world body."""
    body = spec.worldbody.add_body(name=name, pos=list(pos))
    body.add_freejoint(name=name)
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[BLOCK_HALF] * 3,
        mass=BLOCK_MASS,
        rgba=list(rgba),
        friction=[1.0, 0.005, 0.0001],
        contype=1,
        conaffinity=3,
        condim=4,
    )
    return body


def add_goal_marker(spec: mujoco.MjSpec, name: str, rgba=(0.1, 0.9, 0.2, 0.45), radius: float = 0.02):
    """Adds a mocap body with a non-colliding translucent sphere (moved through ``data.mocap_pos``)."""
    body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.45, 0.0, 0.2])
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[radius, 0, 0],
        rgba=list(rgba),
        contype=0,
        conaffinity=0,
        group=1,
    )
    return body


def sample_separated_xy(
    rng: np.random.Generator, n: int, min_dist: float, low=SPAWN_LOW, high=SPAWN_HIGH, max_tries: int = 1000
) -> np.ndarray:
    """Samples ``n`` xy points [n, 2] in the box, pairwise at least ``min_dist`` apart (rejection sampling)."""
    pts: list[np.ndarray] = []
    for _ in range(max_tries):
        p = rng.uniform(low, high)
        if all(np.linalg.norm(p - q) >= min_dist for q in pts):
            pts.append(p)
            if len(pts) == n:
                return np.stack(pts)
    raise ValueError(f"could not place {n} points {min_dist} m apart in {low}..{high}")
