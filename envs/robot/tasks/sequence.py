"""The shared core of the arm's sequential-memory tasks (ButtonSequence, ColourSequence): a sequence of items is
shown one at a time, then the arm must answer with the items in the order shown.

:class:`SequenceTaskEnv` owns what both tasks share: the cue timing (each element lit for ``show_steps``, then
``gap_steps`` dark, so a repeated element reads as two), the phases (cue, delay, response), the progress through
the sequence, the rule for an answer (the right next item advances, any other item or an answer before the go lamp
ends the episode), the reward terms, the observability twin's ``remaining_sequence`` and the memory-demand
declarations. A task adds its items (buttons, pads) in ``_build`` and fills the hooks ``num_items``,
``allow_repeats``, ``_place_items``, ``_reset_items``, ``_detect_responses``, ``_show_item`` and
``_item_obs_spaces`` / ``_item_obs``. The phase clock and the held arm come from
:class:`~chronotope.envs.robot.tasks.common.PhasedMemoryTaskEnv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.tasks.common import (
    MemoryTaskConfig,
    PhasedMemoryTaskEnv,
    check_non_negative_ints,
    check_positive_ints,
)

CYCLE_STEPS = 20
"""Pace of the reference oracle (:mod:`chronotope.envs.robot.oracles`), used by ``cue_to_query_span``: it chooses
the item of element i at most ``i * CYCLE_STEPS`` steps after the go lamp (hover over the item, press or touch it,
back up; element 0 at the go lamp itself). Measured over 100 default episodes of each task and 30 with 5 items and
``length`` 5: at most 18.5 (ButtonSequence) and 19.0 (ColourSequence) steps per element."""


@dataclass
class SequenceTaskConfig(MemoryTaskConfig):
    """Options of the sequential-memory tasks (plus :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``,
    and :class:`RobotEnvConfig`)."""

    length: int = 3
    """Sequence length L, the difficulty knob: the cue phase, the answer and the number of possible sequences (the
    inverse of the memoryless bound) grow with it. Long sequences need a longer time limit than the registered one
    (``gymnasium.make(id, max_episode_steps=...)``): the reference oracle takes about ``cycle_steps`` per element."""
    show_steps: int = 4
    """Env steps each element stays lit."""
    gap_steps: int = 2
    """Dark env steps after each element (at least 1, so a repeated element shows as two)."""
    delay_steps: int = 0
    """Env steps between the end of the cue phase (the last element's gap) and the go lamp."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "length", "show_steps", "gap_steps")
        check_non_negative_ints(self, "delay_steps")


class SequenceTaskEnv(PhasedMemoryTaskEnv):
    """Base of the sequential-memory arm tasks; not registered itself (see ButtonSequence and ColourSequence for
    the task sheets).

    Attributes (after reset): ``sequence`` (int array [L], item ids in the order shown), ``progress`` (elements
    answered correctly so far).
    """

    reward_terms: ClassVar[tuple[str, ...]] = ("progress", "success")
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "cue")
    cycle_steps: ClassVar[int] = CYCLE_STEPS
    """Oracle steps per element (:data:`CYCLE_STEPS`), used by :meth:`cue_to_query_span`."""

    # ----------------------------------------------------------------------------------------- task hooks
    @property
    def num_items(self) -> int:
        """How many items (buttons, colours) the sequence is drawn from."""
        raise NotImplementedError

    @property
    def allow_repeats(self) -> bool:
        """Whether an item may occur more than once in the sequence."""
        raise NotImplementedError

    def _place_items(self, response: bool) -> None:
        """Places the items (every reset with ``response=False``; at the go lamp with ``response=True``)."""

    def _reset_items(self) -> None:
        """Clears the per-item answer detectors at reset."""

    def _detect_responses(self) -> np.ndarray:
        """Ids of the items whose answer (a press, a touch) began in the last step, in ascending order."""
        raise NotImplementedError

    def _show_item(self, item: int | None) -> None:
        """Lights item ``item`` (a button's cap, the cue panel's colour); None: everything dark."""
        raise NotImplementedError

    def row_of_item(self, item: int) -> int:
        """The ``object_pose`` row that holds item ``item`` now (identity where the rows are the items in id
        order)."""
        return int(item)

    def _item_obs_spaces(self) -> dict[str, spaces.Box]:
        return {}

    def _item_obs(self) -> dict[str, np.ndarray]:
        return {}

    # ----------------------------------------------------------------------------------------- episode
    def _initialize_episode(self) -> None:
        c = self.cfg
        self._place_items(response=False)
        self._reset_items()
        if self.allow_repeats:
            self.sequence = self.np_random.integers(self.num_items, size=c.length)
        else:
            self.sequence = self.np_random.permutation(self.num_items)[: c.length]
        self.sequence = self.sequence.astype(np.int64)
        self.progress = 0
        self.wrong_response = False
        self.early_response = False
        self._gained = 0

    @property
    def cue_len(self) -> int:
        """Steps of the cue phase: ``length * (show_steps + gap_steps)``, whatever the sequence."""
        return self.cfg.length * (self.cfg.show_steps + self.cfg.gap_steps)

    @property
    def cue_end(self) -> int:
        return self.cue_len

    @property
    def response_start(self) -> int:
        return self.cue_len + self.cfg.delay_steps

    @property
    def success(self) -> bool:
        return self.progress == self.cfg.length

    @property
    def ended(self) -> bool:
        return self.success or self.wrong_response or self.early_response

    def cued_item(self) -> int | None:
        """The item lit now: element i during its ``show_steps``; in the twin after the cue phase, the next element
        to answer (None once the sequence is done)."""
        t, c = self.step_count, self.cfg
        if t < self.cue_len:
            i, r = divmod(t, c.show_steps + c.gap_steps)
            return int(self.sequence[i]) if r < c.show_steps else None
        if c.observability == "full" and self.progress < c.length:
            return int(self.sequence[self.progress])
        return None

    def _update_scene(self) -> None:
        t = self.step_count
        self._gained = 0
        responses = self._detect_responses()  # always, so the detectors keep their state
        if len(responses) and not self.ended:
            if self.phase != "response":
                self.early_response = True
            elif len(responses) == 1 and responses[0] == self.sequence[self.progress]:
                self.progress += 1
                self._gained = 1
            else:
                self.wrong_response = True
        if t == self.response_start and t > 0:
            self._place_items(response=True)
        self._show_item(self.cued_item())
        self.set_go_lamp(self.phase == "response")

    # ----------------------------------------------------------------------------------------- shaping
    def approach_points(self) -> np.ndarray:
        """Without repeats, the items not answered yet (the one just pressed can never be right again: with it in
        the minimum, leaving it for the next item cost reward, and a GRU that had learnt the first press pressed it
        again); with repeats, every item."""
        pts = self.answer_points()
        if self.allow_repeats:
            return pts
        rest = np.delete(pts, self.sequence[: self.progress], axis=0)
        return rest if len(rest) else pts  # a sequence through every item is over once none is left

    def _shaping_terms(self) -> dict[str, float]:
        if self._gained:  # a correct answer restarts the approach (as the go lamp starts it): no credit this step
            self._approach_d = None
        return super()._shaping_terms()

    # ----------------------------------------------------------------------------------------- memory demand
    def num_sequences(self) -> int:
        """How many sequences the sampler draws from (uniformly)."""
        n, k = self.num_items, self.cfg.length
        return n**k if self.allow_repeats else math.perm(n, k)

    def cue_to_query_span(self) -> int:
        c = self.cfg
        if c.observability == "full":
            return 0
        period = c.show_steps + c.gap_steps
        # element i: last lit at i * period + show_steps - 1, needed at response_start + i * cycle_steps
        return max(
            self.response_start + i * self.cycle_steps - (i * period + c.show_steps - 1) for i in range(c.length)
        )

    def _guess_bound(self) -> float:
        return 1.0 / self.num_sequences()

    # ----------------------------------------------------------------------------------------- observations
    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        n, k = self.num_items, self.cfg.length
        out = {
            **self._item_obs_spaces(),
            "cue": spaces.Box(0.0, 1.0, (n,), np.float32),
            "phase": self.phase_space(),
            "progress": spaces.Box(0.0, float(k), (1,), np.float32),
            "next_element": spaces.Box(0.0, 1.0, (k,), np.float32),
        }
        if self.cfg.observability == "full":
            out["remaining_sequence"] = spaces.Box(0.0, 1.0, (k, n), np.float32)
        return out

    def _task_obs(self) -> dict[str, np.ndarray]:
        n, k = self.num_items, self.cfg.length
        cue = np.zeros(n)
        item = self.cued_item()
        if item is not None:
            cue[item] = 1.0
        progress = np.array([float(self.progress)])
        nxt = np.zeros(k)
        if self.progress < k:
            nxt[self.progress] = 1.0
        out = {
            **self._item_obs(),
            "cue": cue,
            "phase": self.phase_one_hot(),
            "progress": progress,
            "next_element": nxt,
        }
        if self.cfg.observability == "full":
            rest = np.zeros((k, n))
            left = self.sequence[self.progress :]
            rest[np.arange(len(left)), left] = 1.0
            out["remaining_sequence"] = rest
        return out

    def memory_slot(self) -> np.ndarray:
        """The ``memory_slot`` label [num_items]: one-hot of the ``object_pose`` row of the next item to answer
        (the last element's once the sequence is done). What the memory must hand the policy at each step: the
        stored sequence indexed by the observed ``progress``."""
        slot = np.zeros(self.num_items, np.float32)
        slot[self.row_of_item(int(self.sequence[min(self.progress, self.cfg.length - 1)]))] = 1.0
        return slot

    def memory_order(self) -> np.ndarray:
        """The ``memory_order`` label [num_items * length]: a [rows, positions] table flattened row-major, entry
        (r, i) = 1 when element i of the sequence is the item in ``object_pose`` row r now. Dotted with the
        ``next_element`` observation it names the row of the next answer (``memory_slot``): a per-row table for the
        trainers' ``--readout-query next_element``, which stores the whole order from the cue phase on."""
        table = np.zeros((self.num_items, self.cfg.length), np.float32)
        for i, item in enumerate(self.sequence):
            table[self.row_of_item(int(item)), i] = 1.0
        return table.reshape(-1)

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        k = self.cfg.length
        terms = {
            "progress": self._gained / k,
            "success": 1.0 if (self._gained and self.success) else 0.0,
        }
        measures = {
            "success": self.success,
            "progress": self.progress,
            "wrong_response": self.wrong_response,
            "early_response": self.early_response,
            "phase": self.phase,
            "sequence": self.sequence.copy(),
            "memory_sequence": np.eye(self.num_items, dtype=np.float32)[self.sequence].reshape(-1),
            "memory_slot": self.memory_slot(),
            "memory_order": self.memory_order(),
        }
        return self.ended, terms, measures
