"""chronotope/MultiCueTouch-v0: several coloured pads light up at once; after a delay, and after the pads have
moved, touch every pad that lit (in any order) and no other."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.tasks.capacity import (
    COLOUR_NAMES,
    COLOURS,
    MAX_PADS,
    CapacityTaskConfig,
    CapacityTaskEnv,
)
from chronotope.envs.robot.tasks.common import is_int

DIM = 0.3
"""Brightness of an unlit pad (a fraction of its colour); a lit pad shows the full colour."""


@dataclass
class MultiCueTouchConfig(CapacityTaskConfig):
    """MultiCueTouch options (plus :class:`CapacityTaskConfig`: ``cue_steps``, ``delay_steps``;
    :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    num_pads: int = 6
    """Pads on the table, M (3..6), each its own colour (:data:`~chronotope.envs.robot.tasks.capacity.COLOURS`
    order)."""
    num_cued: int = 3
    """Pads lit at once, K (1..M - 1): the capacity knob, how many items must be held at the same time. The
    memoryless bound is 1 / C(M, K) (0.05 at the defaults; K = 2 or 4: 1/15, K = 5: 1/6)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (is_int(self.num_pads) and 3 <= self.num_pads <= MAX_PADS):
            raise ValueError(f"num_pads={self.num_pads!r}; expected an int in [3, {MAX_PADS}]")
        if not (is_int(self.num_cued) and 1 <= self.num_cued < self.num_pads):
            raise ValueError(f"num_cued={self.num_cued!r}; expected an int in [1, num_pads - 1 = {self.num_pads - 1}]")


class MultiCueTouchEnv(CapacityTaskEnv):
    """**MultiCueTouch** (capacity memory, a set of K): ``num_pads`` flat pads of distinct colours lie on the table,
    dim. For the first ``cue_steps`` steps ``num_cued`` of them light up together; then all are dim again, and after
    ``delay_steps`` more the go lamp lights, the pads are re-placed at random and the arm must touch every pad that
    lit, in any order, and no other. What must be remembered is a *set* of K colours held at once (the visual
    working-memory array of change-detection studies): the pads move before the answer, so their places say
    nothing, and the answer needs all K. (ColourSequence is the sequential counterpart: one colour at a time, in
    order.) With ``hold_arm`` (default) the arm is held at its start pose until the go lamp (the agent's actions
    are ignored), so its pose cannot carry the set.

    Randomisations: the cued set, uniform over the C(num_pads, num_cued) subsets; pad xy uniform in x [0.35, 0.6],
    y [-0.2, 0.2] m, >= 0.11 m apart, and the row order of the pads in ``object_pose``, both drawn at reset and
    again at the go lamp; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_pads, 7] (pad poses, rows in the episode's random
        order), ``pad_colour`` [num_pads, num_pads] (row r one-hot of the colour of pad r), ``cue`` [num_pads]
        (by colour id: 1 for each lit pad, zeros once the pads are dim), ``progress`` [1] (cued pads touched so
        far), ``phase`` [3] one-hot (cue, delay, response). ``rgbd`` withholds ``object_pose``, ``pad_colour`` and
        ``cue``: the lit pads and the colours are seen in the cameras. The ``full`` twin: the cued pads not yet
        touched stay lit (and in ``cue``) for the whole episode, in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: every cued pad touched (a finger pad coming into contact with it) in the response phase. Touching an
        uncued pad (or an uncued and a cued one at once), or any pad before the go lamp (possible only without
        ``hold_arm``), ends the episode as a failure; touching a cued pad again does nothing.
    Reward terms: ``progress`` = +1 / num_cued per cued pad touched; ``success`` = +1 when the set is complete (no
        penalty for an uncued pad, as in ButtonSequence: it would make touching nothing beat a guess; no shaping
        towards the cued pads: it would leak the set through the reward).
    Measures: ``success``, ``progress``, ``wrong_touch``, ``early_touch``, ``phase``, ``cued`` (int array
        [num_cued], the cued colour ids in ascending order; the episode's hidden variable) and ``memory_set``
        (float [num_pads], its K-hot by colour id: what must be remembered, a label for the trainers'
        ``--aux-key``).

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the cued pads still to touch stay lit, so the task needs no memory.
        ``cue_to_query_span()`` = ``delay_steps + 1 + (num_cued - 1) * CYCLE_STEPS``: the set is last shown at
        step ``cue_steps - 1`` and the reference oracle chooses the pad of answer i at most ``i * CYCLE_STEPS``
        steps after the go lamp (:data:`~chronotope.envs.robot.tasks.capacity.CYCLE_STEPS`; default
        21 + 2 * 20 = 61; 0 for the twin). ``controllable()``: from the response phase on with ``hold_arm``, every
        step without it. ``memoryless_bound()``: the set is uniform and drawn independently of everything a
        reactive policy sees at the go lamp (held arm pose; pad places and rows re-drawn anyway; the cue phase
        lasts ``cue_steps`` whatever the set), and a touch of an uncued pad ends the episode. Whatever the policy
        has learnt from its own touches so far (``progress`` grows with each right one), given the j pads it has
        touched are cued the others are cued with probability (K - j) / (M - j) each, so success is at most
        prod_j (K - j) / (M - j) = 1 / C(M, K) (1/20 at the defaults), times the motor success: even granting the
        policy the commitment of a whole guessed set (a strictly reactive policy cannot tell which pads it has
        touched, and may touch one twice), no policy does better. Without ``hold_arm`` the bound is 1 (the hand
        pose can encode the set; see :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = MultiCueTouchConfig
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "pad_colour", "cue")

    @property
    def num_pads(self) -> int:
        return self.cfg.num_pads

    @property
    def num_answers(self) -> int:
        return self.cfg.num_cued

    def _sample_episode(self) -> None:
        self.cued = np.sort(self.np_random.permutation(self.num_pads)[: self.cfg.num_cued])
        self.answers = self.cued

    def _respond(self) -> None:
        self.place_pads()

    def lit(self) -> np.ndarray:
        """Which pads are lit now [num_pads] (by colour id): the cued pads not yet touched, while the cue shows."""
        out = np.zeros(self.num_pads, bool)
        if self.cue_visible():
            out[self.cued] = True
            out &= ~self.answered
        return out

    def _pad_rgba(self, k: int) -> np.ndarray:
        rgba = np.array(COLOURS[COLOUR_NAMES[k]])
        if not self.lit()[k]:
            rgba[:3] *= DIM
        return rgba

    def _guess_bound(self) -> float:
        return 1.0 / math.comb(self.cfg.num_pads, self.cfg.num_cued)

    def _extra_obs_spaces(self) -> dict[str, spaces.Box]:
        n = self.num_pads
        return {
            "pad_colour": spaces.Box(0.0, 1.0, (n, n), np.float32),
            "cue": spaces.Box(0.0, 1.0, (n,), np.float32),
            "progress": spaces.Box(0.0, float(self.cfg.num_cued), (1,), np.float32),
        }

    def _extra_obs(self) -> dict[str, np.ndarray]:
        return {
            "pad_colour": np.eye(self.num_pads)[self.row_pad],
            "cue": self.lit().astype(np.float64),
            "progress": np.array([float(self.progress)]),
        }

    def _measures(self) -> dict[str, Any]:
        label = np.zeros(self.num_pads, np.float32)
        label[self.cued] = 1.0
        return {"cued": self.cued.copy(), "memory_set": label}
