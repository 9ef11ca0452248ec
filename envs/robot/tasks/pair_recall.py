"""chronotope/PairRecall-v0: identical pads light up in different colours at once and go dark; after a delay a
colour is named: touch the pad that showed it."""

from __future__ import annotations

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
from chronotope.envs.robot.tasks.spatial import normalised_place

PAD_RGBA = (0.55, 0.55, 0.6, 1.0)
"""Colour of a dark pad (all pads look alike while dark)."""


@dataclass
class PairRecallConfig(CapacityTaskConfig):
    """PairRecall options (plus :class:`CapacityTaskConfig`: ``cue_steps``, ``delay_steps``;
    :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    num_pairs: int = 4
    """Pads, and colours shown on them, K (2..6): the capacity knob, how many pad-colour pairs must be held at
    once. The memoryless bound is 1 / K (the default 4 keeps it well under 0.35 of the perfect oracle, where 3
    would sit at 0.33)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (is_int(self.num_pairs) and 2 <= self.num_pairs <= MAX_PADS):
            raise ValueError(f"num_pairs={self.num_pairs!r}; expected an int in [2, {MAX_PADS}]")


class PairRecallEnv(CapacityTaskEnv):
    """**PairRecall** (capacity memory, K associations): ``num_pairs`` identical grey pads lie on the table. For the
    first ``cue_steps`` steps they all light up at once, each in its own colour (the first ``num_pairs`` colours
    of :data:`~chronotope.envs.robot.tasks.capacity.COLOURS`, in a random assignment); then they go dark and their
    rows in ``object_pose`` are re-drawn. After ``delay_steps`` more the go lamp lights and the cue panel names one
    of the colours (the query); the arm must touch the pad that showed it. The query is unknown until the go lamp,
    so all K pad-colour pairs must be held through the delay (paired-associate recall): one pair is CueRecallPick,
    one place WhereHidden. With ``hold_arm`` (default) the arm is held at its start pose until the go lamp (the
    agent's actions are ignored), so its pose cannot carry the pairs.

    Randomisations: pad xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m, >= 0.11 m apart (fixed for the episode); the
    colour of each pad, a uniform permutation; the query colour, uniform over the K (drawn at reset, shown from the
    go lamp on); the row order of the pads in ``object_pose``, drawn at reset and again when the pads go dark;
    home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_pairs, 7] (pad poses, rows in the episode's random
        order, re-drawn when the pads go dark, so only a row's place says which pad it is), ``cue`` [num_pairs,
        num_pairs] (row r one-hot of the colour pad r shows while lit, zeros once dark), ``query`` [num_pairs]
        one-hot of the named colour from the go lamp on (zeros before), ``phase`` [3] one-hot (cue, delay,
        response). ``rgbd`` withholds ``object_pose``, ``cue`` and ``query``: the lit pads are seen in the
        cameras, the query on the cue panel. The ``full`` twin: the pads stay lit (and ``cue`` on) for the whole
        episode, in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: in the response phase, a finger pad touches the pad that showed the query colour. The first touch ends
        the episode: any other pad (or two at once), or any pad before the go lamp (possible only without
        ``hold_arm``), is a failure.
    Reward terms: ``success`` = +1 on success (no penalty for a wrong pad, as in WhereHidden: it would make touching
        nothing beat a guess; no shaping towards the pad: it would leak the answer through the reward).
    Measures: ``success``, ``progress`` (0 or 1), ``wrong_touch``, ``early_touch``, ``phase``, ``pad_colours`` (int
        array [num_pairs], the colour id each pad showed; with ``query`` (int, the named colour id) the episode's
        hidden variables) and ``memory_pairs`` (float [num_pairs * 2]: for each colour id, the place of the pad
        that showed it, mapped from the spawn box to [-1, 1]^2, flattened: what must be remembered, a label for
        the trainers' ``--aux-key``) and ``memory_place`` (float [2], that place for the query's colour: the pad
        to touch, a label that only a policy which has seen the query can meet, i.e. from the go lamp on).

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the pads keep their colours, so the query is answered by looking.
        ``cue_to_query_span()`` = ``delay_steps + 1``: the pairs are last shown at step ``cue_steps - 1`` and the
        pad is chosen at the first response observation (step ``cue_steps + delay_steps``), after which the
        reference oracle follows that pad's row (default 21; 0 for the twin). ``controllable()``: from the response
        phase on with ``hold_arm``, every step without it. ``memoryless_bound()``: at the go lamp a reactive
        policy sees the held arm, the query, and identical pads whose places and rows were drawn independently of
        the colours; the assignment is a uniform permutation, so given the query its pad is uniform over the K
        pads and one touch ends the episode: success is exactly ``1 / num_pairs`` (0.25 at the defaults), times
        the motor success. Without ``hold_arm`` the bound is 1 (the hand pose can encode the assignment; see
        :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = PairRecallConfig
    reward_terms: ClassVar[tuple[str, ...]] = ("success",)
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "cue", "query")

    @property
    def num_pads(self) -> int:
        return self.cfg.num_pairs

    @property
    def num_answers(self) -> int:
        return 1

    def _sample_episode(self) -> None:
        k = self.num_pads
        self.pad_colours = self.np_random.permutation(k)  # the colour id pad p shows
        self.query = int(self.np_random.integers(k))
        self.answers = np.flatnonzero(self.pad_colours == self.query)

    def _hide(self) -> None:
        self.shuffle_rows()

    def _respond(self) -> None:
        self.set_cue_rgba(COLOURS[COLOUR_NAMES[self.query]])

    def _pad_rgba(self, k: int) -> np.ndarray:
        return np.array(COLOURS[COLOUR_NAMES[self.pad_colours[k]]] if self.cue_visible() else PAD_RGBA)

    def _guess_bound(self) -> float:
        return 1.0 / self.cfg.num_pairs

    def _extra_obs_spaces(self) -> dict[str, spaces.Box]:
        k = self.num_pads
        return {"cue": spaces.Box(0.0, 1.0, (k, k), np.float32), "query": spaces.Box(0.0, 1.0, (k,), np.float32)}

    def _extra_obs(self) -> dict[str, np.ndarray]:
        k = self.num_pads
        cue = np.eye(k)[self.pad_colours[self.row_pad]] if self.cue_visible() else np.zeros((k, k))
        query = np.zeros(k)
        if self.phase == "response":
            query[self.query] = 1.0
        return {"cue": cue, "query": query}

    def _measures(self) -> dict[str, Any]:
        places = np.zeros((self.num_pads, 2), np.float32)
        places[self.pad_colours] = [normalised_place(p) for p in self.pad_xy]
        return {
            "pad_colours": self.pad_colours.copy(),
            "query": self.query,
            "memory_pairs": places.reshape(-1),
            "memory_place": places[self.query].copy(),
        }
