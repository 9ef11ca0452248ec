"""Helpers shared by the robot tasks: spec builders for blocks and goal markers, spawn sampling, the options of
the memory tasks and :class:`PhasedMemoryTaskEnv`, the phase clock of the memory tasks that end behind a go lamp."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.env import RobotEnv, RobotEnvConfig

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

    approach_reward: float = 0.0
    """Weight of an optional shaping term ``approach`` in the response phase (0: off, the default; the tasks whose
    answer is a touch support it): ``approach_reward * (d_before - d_after)`` per step, where d is the distance (m)
    from the tool centre point to the *nearest* answer target (every cup / pad / button the task could ask for,
    :meth:`RobotEnv.answer_points`). The minimum runs over all the candidates alike, so the term says
    nothing about which one is right; it telescopes to ``approach_reward * (d_go - d_end)`` over an episode, the
    same for a touch of any candidate, so it changes no policy's preference between candidates (potential-based
    shaping, Ng et al. 1999). It teaches the motor skill (bring a finger to a candidate), which a random arm never
    stumbles on (random success 0 on these tasks), and leaves the choice to memory. The sequence tasks restart it
    at each correct answer, and ButtonSequence drops the pressed buttons from the minimum
    (:meth:`PhasedMemoryTaskEnv.approach_points`): it then telescopes between answers."""

    def __post_init__(self) -> None:
        super().__post_init__()
        a = self.approach_reward
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (np.isfinite(a) and a >= 0):
            raise ValueError(f"approach_reward={a!r}; expected a finite float >= 0")
        if self.observability not in OBSERVABILITY:
            raise ValueError(f"observability must be one of {OBSERVABILITY}, got {self.observability!r}")
        if not isinstance(self.hold_arm, bool):
            raise ValueError(f"hold_arm={self.hold_arm!r}; expected a bool")


def is_int(v: Any) -> bool:
    """Whether ``v`` is an int and not a bool (a config check: ``True`` is an int to Python)."""
    return isinstance(v, int) and not isinstance(v, bool)


def check_positive_ints(cfg: Any, *names: str) -> None:
    """Raises ValueError naming the first field of ``cfg`` in ``names`` that is not a positive int."""
    for name in names:
        v = getattr(cfg, name)
        if not (is_int(v) and v >= 1):
            raise ValueError(f"{name}={v!r}; expected a positive int")


def check_non_negative_ints(cfg: Any, *names: str) -> None:
    """Raises ValueError naming the first field of ``cfg`` in ``names`` that is not a non-negative int."""
    for name in names:
        v = getattr(cfg, name)
        if not (is_int(v) and v >= 0):
            raise ValueError(f"{name}={v!r}; expected a non-negative int")


@dataclass
class CueDelayConfig(MemoryTaskConfig):
    """Options of the memory tasks that show their cue once and then hold it through a delay (the spatial and the
    capacity tasks), plus :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``, and :class:`RobotEnvConfig`."""

    cue_steps: int = 5
    """Env steps the cue (a place; all the pads at once) is shown, from the first observation on."""
    delay_steps: int = 20
    """Env steps between the cue going off and the go lamp (the distractor phase: the arm is held)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "cue_steps")
        check_non_negative_ints(self, "delay_steps")


class PhasedMemoryTaskEnv(RobotEnv):
    """Base of the arm memory tasks whose episode runs cue -> a middle phase -> response behind the go lamp (the
    sequential, spatial, capacity and object-memory tasks; its config is a :class:`MemoryTaskConfig`). It owns the
    phase clock, the held arm, the cue's visibility, the twin's and the free arm's memoryless bound of 1, the
    one-hot ``phase`` observation and the bodies' pose rows. A task fills ``response_start`` and
    ``_guess_bound``, and ``cue_end`` where its cue phase is not ``cfg.cue_steps`` long; not registered itself.
    """

    phases: ClassVar[tuple[str, str, str]] = ("cue", "delay", "response")
    """The three phases' names, in order (the ``phase`` measure; the ``phase`` observation one-hot)."""

    def body_tops(self, bodies: Iterable[str], height: float) -> np.ndarray:
        """Points [n, 3]: each named body's origin raised by ``height`` (m): the tops of cups, pads, buttons."""
        m, d = self.model, self.data
        return np.array([d.xpos[m.body(name).id] for name in bodies]) + np.array([0.0, 0.0, height])

    # ----------------------------------------------------------------------------------------- task hooks
    @property
    def cue_end(self) -> int:
        """Step of the first observation after the cue phase."""
        return self.cfg.cue_steps

    @property
    def response_start(self) -> int:
        """Step of the first observation with the go lamp lit."""
        raise NotImplementedError

    def _guess_bound(self) -> float:
        """The memory task's memoryless bound with the arm held (the Bayes guess's success; see the task sheet)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- shaping
    def _shaping_terms(self) -> dict[str, float]:
        coef = self.cfg.approach_reward
        if not coef:
            return {}
        if self.phase != "response":
            self._approach_d = None
            return {"approach": 0.0}
        d = float(np.min(np.linalg.norm(self.approach_points() - self.ee_pos, axis=1)))
        prev = getattr(self, "_approach_d", None)
        if self.step_count <= max(self.response_start, 1):  # the go lamp's first observation: no step to credit
            prev = None
        self._approach_d = d
        return {"approach": 0.0 if prev is None else coef * (prev - d)}

    def approach_points(self) -> np.ndarray:
        """The points the ``approach`` term's minimum runs over now: every answer point (a task whose answers
        leave candidates that can no longer be right narrows them)."""
        return self.answer_points()

    # ----------------------------------------------------------------------------------------- phases
    @property
    def phase(self) -> str:
        t = self.step_count
        if t < self.cue_end:
            return self.phases[0]
        return self.phases[1] if t < self.response_start else self.phases[2]

    def cue_visible(self) -> bool:
        """Whether the cue is shown now: in the cue phase, or always in the twin."""
        return self.phase == "cue" or self.cfg.observability == "full"

    # ----------------------------------------------------------------------------------------- memory demand
    def controllable(self) -> bool:
        return not self.cfg.hold_arm or self.phase == "response"

    def memoryless_bound(self) -> float:
        if self.cfg.observability == "full" or not self.cfg.hold_arm:
            return 1.0
        return self._guess_bound()

    # ----------------------------------------------------------------------------------------- observations
    def phase_space(self) -> spaces.Box:
        """The ``phase`` observation's space: a one-hot over :attr:`phases`."""
        return spaces.Box(0.0, 1.0, (len(self.phases),), np.float32)

    def phase_one_hot(self) -> np.ndarray:
        """The ``phase`` observation [3]: one-hot of the phase now."""
        out = np.zeros(len(self.phases))
        out[self.phases.index(self.phase)] = 1.0
        return out

    def body_poses(self, bodies: Iterable[str]) -> np.ndarray:
        """Poses [len(bodies), 7] (position, quaternion wxyz) of the named bodies, a row each, in that order."""
        d, m = self.data, self.model
        ids = [m.body(name).id for name in bodies]
        poses = np.zeros((len(ids), 7))
        for r, b in enumerate(ids):
            poses[r, :3] = d.xpos[b]
            poses[r, 3:] = d.xquat[b]
        return poses

    def touching_geoms(self, geom_ids: np.ndarray) -> np.ndarray:
        """Whether a finger pad is in contact with each of the geoms ``geom_ids`` [n]."""
        return np.array([self.in_contact(self._pad_geoms, g) for g in geom_ids])


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
