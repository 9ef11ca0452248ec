"""chronotope/RestorePlace-v0: a block sits on a marked place; it is moved away and the mark vanishes; put it back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.tasks.common import BLOCK_HALF, SPAWN_HIGH, SPAWN_LOW, add_block
from chronotope.envs.robot.tasks.spatial import SpatialTaskConfig, SpatialTaskEnv, normalised_place

PAD_HALF_HEIGHT = 0.001
"""Half height (m) of the place marker, a flat visual disc on the table."""
PAD_RGBA = (0.2, 0.85, 0.35, 1.0)
HIDDEN_Z = -0.02
"""Height (m) of the marker's body while hidden: inside the table top, out of every camera's sight."""
LIFT_HEIGHT = 0.03
"""Height (m) of the block's bottom above the table that counts as lifted."""
SET_DOWN_HEIGHT = 0.004
"""Height (m) of the block's bottom below which a lifted block counts as set down (the episode's one answer)."""
PLACE_STEPS = 45
"""Pace of the reference oracle (:mod:`chronotope.envs.robot.oracles`), used by ``cue_to_query_span``: it acts on
the remembered place (carries the block towards it, lowers it there) until at most this many steps after the go
lamp. Measured over 100 default episodes: at most 43 steps (mean 32)."""


@dataclass
class RestorePlaceConfig(SpatialTaskConfig):
    """RestorePlace options (plus :class:`SpatialTaskConfig`: ``cue_steps``, ``delay_steps``;
    :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    tolerance: float = 0.04
    """Success radius (m): the block must be set down with its centre this close (in xy) to its original place.
    The difficulty knob: the memoryless bound grows with its square (0.066 at 0.04 m, 0.15 at 0.06 m). The place
    marker shown during the cue is a disc of this radius."""
    min_move: float = 0.1
    """Least distance (m) between the original place and where the block is moved; above ``tolerance``, so the block
    never starts inside the goal."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tolerance, bool) or not (
            isinstance(self.tolerance, (int, float)) and 0.01 <= self.tolerance <= 0.08
        ):
            raise ValueError(f"tolerance={self.tolerance!r}; expected in [0.01, 0.08] m")
        if isinstance(self.min_move, bool) or not (
            isinstance(self.min_move, (int, float)) and self.tolerance < self.min_move <= 0.2
        ):
            raise ValueError(f"min_move={self.min_move!r}; expected in (tolerance={self.tolerance!r}, 0.2] m")


def close_pair_probability(d: float, low=SPAWN_LOW, high=SPAWN_HIGH) -> float:
    """P(|X - Y| < d) for X, Y independent and uniform in the box (``d`` at most its shorter side): the closed form
    of the distance distribution in a rectangle a x b, (pi d^2 a b - 4/3 d^3 (a + b) + d^4 / 2) / (a b)^2."""
    a, b = (np.asarray(high, float) - np.asarray(low, float)).tolist()
    if not 0.0 <= d <= min(a, b):
        raise ValueError(f"d={d!r}; expected in [0, {min(a, b)}] m")
    return (math.pi * d**2 * a * b - 4.0 / 3.0 * d**3 * (a + b) + d**4 / 2.0) / (a * b) ** 2


class RestorePlaceEnv(SpatialTaskEnv):
    """**RestorePlace** (spatial memory, a continuous place): a block sits on a green disc (the place marker,
    radius ``tolerance``) for the first ``cue_steps`` steps. Then the block jumps to another place on the table and
    the disc vanishes; after ``delay_steps`` more (the distractor phase, the arm held) the go lamp lights and the
    arm must pick the block up and set it down where it was. What must be remembered is a point on the table, seen
    once, with nothing left there to mark it. With ``hold_arm`` (default) the arm is held at its start pose until
    the go lamp (the agent's actions are ignored), so its pose cannot carry the place.

    Randomisations: the original place p0 and the moved-to place p1, uniform over the pairs of points of the spawn
    box (x [0.35, 0.6], y [-0.2, 0.2] m) at least ``min_move`` apart (both drawn at reset, by rejection of whole
    pairs); home joints +- noise. The block's yaw is 0.
    Observations (``state``): base keys + ``object_pose`` [1, 7] (the block), ``cue`` [3] = (x, y, 1) of the
        original place while the marker is shown (zeros afterwards), ``phase`` [3] one-hot (cue, delay,
        response). ``rgbd`` withholds ``object_pose`` and ``cue``: the marker and the block are seen in the
        cameras. The ``full`` twin: the marker and ``cue`` stay on for the whole episode (the block still moves),
        in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: the block, lifted (its bottom more than 3 cm above the table) in the response phase, is set down (its
        bottom back below 4 mm) with its centre within ``tolerance`` (xy) of the original place. The first set-down
        ends the episode, right or wrong, so places cannot be tried one after another; lifting the block before
        the go lamp (possible only without ``hold_arm``) ends it as a failure.
    Reward terms: ``lift`` = +0.25 the first time the block is lifted in the response phase (the grasp, the same
        wherever the place is); ``success`` = +1 on success. No penalty for a wrong set-down and no shaping
        towards the place (it would leak the place through the reward).
    Measures: ``success``, ``lifted``, ``set_down``, ``early_lift``, ``place_error`` (m, xy distance of the block
        from the original place now), ``phase``, ``place`` (float [2], the original place in m; the episode's
        hidden variable) and ``memory_place`` (float [2], that place mapped from the spawn box to [-1, 1]^2:
        what must be remembered, a label for the trainers' ``--aux-key``).

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the marker and ``cue`` show the place for the whole episode, so the
        task needs no memory. ``cue_to_query_span()`` = ``delay_steps + 1 + PLACE_STEPS``: the place is last shown
        at step ``cue_steps - 1`` and the reference oracle steers the block towards it until at most
        :data:`PLACE_STEPS` steps after the go lamp (default 66; 0 for the twin). ``controllable()``: from the
        response phase on with ``hold_arm``, every step without it. ``memoryless_bound()``: at the go lamp a
        reactive policy sees the held arm, the block at p1 and nothing that depends on p0 but p1 itself; the pair
        is uniform over the pairs at least ``d = min_move`` apart, so given p1 the original place is uniform over
        the spawn box B minus the disc of radius d around p1, S(p1), and one set-down ends the episode. The best
        set-down point covers at most pi r^2 (r = ``tolerance``) of S(p1), so success is at most
        E[pi r^2 / |S(p1)|] over p1's marginal (density |S(p1)| / Z, Z = |B|^2 P(|X - Y| >= d) for X, Y uniform
        in B) = pi r^2 / (|B| P(|X - Y| >= d)), with :func:`close_pair_probability` in closed form: 0.066 at the
        defaults (0.025 m: 0.026; 0.06 m: 0.147), times the motor success. It is exact when a disc of radius r
        fits in S(p1) for every p1 (true at the defaults: the inset corner of B farthest from p1, which the
        memoryless oracle chooses, is always >= d + r from it) and an over-estimate otherwise, as the spec
        prefers. Without ``hold_arm`` the bound is 1 (the hand can hover over the place through the delay; see
        :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = RestorePlaceConfig
    reward_terms: ClassVar[tuple[str, ...]] = ("lift", "success")
    place_steps: ClassVar[int] = PLACE_STEPS

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_block(spec, "block", C.PALETTE["blue"])
        pad = spec.worldbody.add_body(name="place_pad", pos=[0.45, 0.0, HIDDEN_Z])
        pad.add_geom(
            name="place_pad",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[self.cfg.tolerance, PAD_HALF_HEIGHT, 0],
            pos=[0, 0, PAD_HALF_HEIGHT],
            rgba=list(PAD_RGBA),
            contype=0,
            conaffinity=0,
            group=1,
        )

    def _place_objects(self) -> None:
        d = self.cfg.min_move
        for _ in range(1000):
            p0, p1 = self.np_random.uniform(SPAWN_LOW, SPAWN_HIGH, size=(2, 2))
            if np.linalg.norm(p0 - p1) >= d:
                break
        else:  # unreachable for min_move <= 0.2 (P(accept) >= 0.36 per try)
            raise RuntimeError(f"could not draw two places {d} m apart")
        self.place, self.moved_to = p0, p1
        self.set_free_body_pose("block", np.array([*p0, BLOCK_HALF]))
        self.lifted = self.set_down = self.early_lift = False
        self._lift_gained = False

    def _hide(self) -> None:
        self.set_free_body_pose("block", np.array([*self.moved_to, BLOCK_HALF]))

    def _show_place(self, visible: bool) -> None:
        # A static body: moving it edits this env's own model.
        m = self.model
        m.body_pos[m.body("place_pad").id] = [*self.place, 0.0] if visible else [*self.place, HIDDEN_Z]

    @property
    def ended(self) -> bool:
        return self.set_down or self.early_lift

    def block_bottom(self) -> float:
        """Height (m) of the block's bottom face above the table (its centre's height less half an edge)."""
        return float(self.free_body_pose("block")[2] - BLOCK_HALF)

    def place_error(self) -> float:
        """XY distance (m) of the block's centre from the original place."""
        return float(np.linalg.norm(self.free_body_pose("block")[:2] - self.place))

    def _detect(self) -> None:
        self._lift_gained = False
        if self.ended:
            return
        bottom = self.block_bottom()
        if bottom > LIFT_HEIGHT:
            if self.phase != "response":
                self.early_lift = True
            elif not self.lifted:
                self.lifted = self._lift_gained = True
        elif self.lifted and bottom < SET_DOWN_HEIGHT:
            self.set_down = True

    @property
    def success(self) -> bool:
        return self.set_down and self.place_error() < self.cfg.tolerance

    def _guess_bound(self) -> float:
        c = self.cfg
        area = float(np.prod(SPAWN_HIGH - SPAWN_LOW))
        return min(1.0, math.pi * c.tolerance**2 / (area * (1.0 - close_pair_probability(c.min_move))))

    def _object_obs_spaces(self) -> dict[str, spaces.Box]:
        return {"object_pose": spaces.Box(-np.inf, np.inf, (1, 7), np.float32)}

    def _object_obs(self) -> dict[str, np.ndarray]:
        return {"object_pose": self.free_body_pose("block")[None]}

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        success = self.success
        terms = {"lift": 0.25 if self._lift_gained else 0.0, "success": 1.0 if success else 0.0}
        measures = {
            "success": success,
            "lifted": self.lifted,
            "set_down": self.set_down,
            "early_lift": self.early_lift,
            "place_error": self.place_error(),
            "phase": self.phase,
            "place": self.place.copy(),
            "memory_place": normalised_place(self.place),
        }
        return self.ended, terms, measures
