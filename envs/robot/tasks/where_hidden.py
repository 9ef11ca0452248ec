"""chronotope/WhereHidden-v0: a ball is shown under one of several identical cups; after the cups come down and a
delay, touch the cup it is under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.tasks.common import is_int, sample_separated_xy
from chronotope.envs.robot.tasks.cups import BALL_RADIUS, CUP_RAISE, CUP_TOP, CupTaskEnv, add_cups_and_ball
from chronotope.envs.robot.tasks.spatial import SpatialTaskConfig, SpatialTaskEnv, normalised_place

MAX_CUPS = 6
CUP_SEPARATION = 0.1
"""Least distance (m) between cup centres (4 cm between rims: closed fingers touching one stay clear of the
others)."""


@dataclass
class WhereHiddenConfig(SpatialTaskConfig):
    """WhereHidden options (plus :class:`SpatialTaskConfig`: ``cue_steps``, ``delay_steps``;
    :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    num_cups: int = 5
    """Identical cups on the table (2..6), the difficulty knob; the memoryless bound is 1 / num_cups (the default
    5 keeps it well under 0.35 of the perfect oracle, where 3 would sit at 0.33)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (is_int(self.num_cups) and 2 <= self.num_cups <= MAX_CUPS):
            raise ValueError(f"num_cups={self.num_cups!r}; expected an int in [2, {MAX_CUPS}]")


class WhereHiddenEnv(CupTaskEnv, SpatialTaskEnv):
    """**WhereHidden** (spatial memory, a place among K): ``num_cups`` identical cups hover over their places on
    the table and a red ball lies under one of them for the first ``cue_steps`` steps; then the cups come down,
    covering the ball, and the rows of ``object_pose`` are re-ordered. After ``delay_steps`` more the go lamp
    lights and the arm must touch the cup the ball is under. The cups do not move and cannot be told apart, so
    what must be remembered is *where* the ball was (which of the K places), not which object (no cup is ever
    shuffled: unlike a shell game, nothing needs tracking). With ``hold_arm`` (default) the arm is held at its start
    pose until the go lamp (the agent's actions are ignored).

    Randomisations: cup xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m, >= 0.1 m apart; the ball's cup uniform over
    the ``num_cups``; the row order of the cups in ``object_pose``, drawn at reset and again when the cups come
    down; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_cups, 7] (cup poses, rows in the episode's random
        order, re-drawn when the cups come down, so only a row's place says which cup it is), ``cue`` [3] = (x, y,
        1) of the ball while it is in sight (zeros afterwards), ``phase`` [3] one-hot (cue, delay, response).
        ``rgbd`` withholds ``object_pose`` and ``cue``: the cups and the ball are seen in the cameras. The ``full``
        twin: once the cups are down the ball rests on top of its cup and ``cue`` stays on, in both observation
        modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: in the response phase, a finger pad touches the cup the ball is under. The first touch ends the
        episode: any other cup (or two at once), or any cup before the go lamp (possible only without
        ``hold_arm``), is a failure.
    Reward terms: ``success`` = +1 on success (no penalty for a wrong cup, as in ButtonSequence: it would make
        touching nothing beat a guess; no shaping towards the cup: it would leak the place through the reward).
    Measures: ``success``, ``wrong_touch``, ``early_touch``, ``phase``, ``hidden_cup`` (int, the cup's id; the
        episode's hidden variable), ``place`` (float [2], the ball's xy in m), ``memory_place`` (float [2], that
        place mapped from the spawn box to [-1, 1]^2: what must be remembered) and ``memory_slot`` (float
        [num_cups], one-hot of the ``object_pose`` row of the ball's cup now); both labels for the trainers'
        ``--aux-key``.

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the ball on its cup and ``cue`` show the place for the whole episode,
        so the task needs no memory. ``cue_to_query_span()`` = ``delay_steps + 1``: the ball is last in sight at
        step ``cue_steps - 1`` and the cup to reach for is chosen at the first response observation (step
        ``cue_steps + delay_steps``), after which the reference oracle follows that cup's row (default 21; 0 for
        the twin). ``controllable()``: from the response phase on with ``hold_arm``, every step without it.
        ``memoryless_bound()``: the ball's cup is uniform and drawn independently of everything a reactive policy
        sees at the response (held arm pose; cup places drawn independently of it, identical cups, rows re-drawn
        when the cups come down), so the posterior is uniform and one touch ends the episode: success is exactly
        ``1 / num_cups`` (0.2 at the defaults), times the motor success. Without ``hold_arm`` the bound is 1 (the
        hand can hover over the ball's cup through the delay; see :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = WhereHiddenConfig

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_cups_and_ball(spec, [(0.4, -0.2 + 0.08 * k) for k in range(self.cfg.num_cups)], (0.4, 0.0))

    @property
    def ball_cup(self) -> int:
        """The cup the ball is under (the answer): ``hidden_cup``."""
        return self.hidden_cup

    def _place_objects(self) -> None:
        m, n = self.model, self.cfg.num_cups
        self.cup_xy = sample_separated_xy(self.np_random, n, CUP_SEPARATION)
        self.hidden_cup = int(self.np_random.integers(n))
        self.row_cup = self.np_random.permutation(n)  # cup id of each row of object_pose
        self.place = self.cup_xy[self.hidden_cup].copy()
        for k, p in enumerate(self.cup_xy):  # static bodies: moving them edits this env's own model
            m.body_pos[m.body(f"cup_{k}").id] = [*p, CUP_RAISE]
        self._reset_cups()

    def _hide(self) -> None:
        m = self.model
        for k, p in enumerate(self.cup_xy):
            m.body_pos[m.body(f"cup_{k}").id] = [*p, 0.0]
        self.row_cup = self.np_random.permutation(self.cfg.num_cups)

    def _show_place(self, visible: bool) -> None:
        # Under its raised cup during the cue; once the cups are down, inside the ball's cup (out of sight), or on
        # top of it in the twin.
        lowered = self.step_count >= self.cfg.cue_steps
        z = CUP_TOP + BALL_RADIUS if (lowered and visible) else BALL_RADIUS
        self.model.body_pos[self.model.body("ball").id] = [*self.place, z]

    def _object_obs_spaces(self) -> dict[str, spaces.Box]:
        return {"object_pose": spaces.Box(-np.inf, np.inf, (self.cfg.num_cups, 7), np.float32)}

    def _object_obs(self) -> dict[str, np.ndarray]:
        return {"object_pose": self.cup_poses()}

    def _measures(self) -> dict[str, Any]:
        return {"hidden_cup": self.hidden_cup, "place": self.place.copy(), "memory_place": normalised_place(self.place)}
