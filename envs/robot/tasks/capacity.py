"""The shared core of the arm's capacity-memory tasks (MultiCueTouch, PairRecall): several things are shown at once,
all of them must be held through a delay, and the answer needs any or all of them.

:class:`CapacityTaskEnv` owns what both tasks share: flat pads on the table that the arm answers by touching, the
phases (the cue shown for ``cue_steps``, then ``delay_steps`` with it gone, then the response behind the go lamp),
the held arm, the answer rule (a touch of a pad still to be answered advances, a touch of any other pad, or any
touch before the go lamp, ends the episode; touching an answered pad again does nothing), the pads' rows in
``object_pose`` (in an order the task re-draws), the reward terms and the memory-demand declarations. A task sets
its pads' colours and what must be answered in ``_sample_episode`` (reset) and fills the hooks ``num_pads``,
``num_answers``, ``_hide`` (the first delay step), ``_respond`` (the go lamp), ``_pad_rgba`` and
``_extra_obs_spaces`` / ``_extra_obs``. The phase clock and the held arm come from
:class:`~chronotope.envs.robot.tasks.common.PhasedMemoryTaskEnv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.tasks.common import CueDelayConfig, PhasedMemoryTaskEnv, sample_separated_xy

COLOURS: dict[str, tuple[float, float, float, float]] = {
    **C.PALETTE,
    "cyan": (0.1, 0.8, 0.85, 1.0),
}
"""The arm palette (``arm_constants.PALETTE``, in its order) and cyan, so that up to six pads can each have their
own colour; colour ids follow this order."""
COLOUR_NAMES = tuple(COLOURS)
MAX_PADS = len(COLOUR_NAMES)
PAD_HALF = 0.03
"""Half edge (m) of the square pads."""
PAD_TOP = 0.01
"""Height (m) of a pad's top above the table."""
PAD_SEPARATION = 0.11
"""Least distance (m) between pad centres (5 cm between edges, room for the closed fingers; six pads always fit
the spawn box)."""
CYCLE_STEPS = 20
"""Pace of the reference oracle (:mod:`chronotope.envs.robot.oracles`), used by ``cue_to_query_span``: it chooses
the pad of answer i at most ``i * CYCLE_STEPS`` steps after the go lamp (hover over the pad, touch it, back up;
answer 0 at the go lamp itself). Measured over 100 default MultiCueTouch episodes and 30 each with ``num_cued``
4 and 5: at most 17.5 steps per answer (mean 14.2 to 14.7)."""


@dataclass
class CapacityTaskConfig(CueDelayConfig):
    """Options of the capacity-memory tasks: :class:`CueDelayConfig`'s (``cue_steps``, the steps the cue is shown,
    all of it at once; ``delay_steps``; ``observability``, ``hold_arm``, and :class:`RobotEnvConfig`)."""


def add_pad(spec: mujoco.MjSpec, name: str, rgba: tuple[float, ...] | np.ndarray) -> None:
    """Adds a static flat square pad ``name`` (body and geom) to the world body; the task places it by editing
    ``model.body_pos``."""
    pad = spec.worldbody.add_body(name=name, pos=[0.45, 0.0, 0.0])
    pad.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[PAD_HALF, PAD_HALF, PAD_TOP / 2],
        pos=[0, 0, PAD_TOP / 2],
        rgba=list(rgba),
        contype=1,
        conaffinity=3,
    )


class CapacityTaskEnv(PhasedMemoryTaskEnv):
    """Base of the capacity-memory arm tasks; not registered itself (see MultiCueTouch and PairRecall for the task
    sheets).

    Attributes (after reset): ``answers`` (int array, the pad ids that must all be touched), ``answered`` (bool
    [num_pads], pads touched correctly so far), ``row_pad`` (int [num_pads], the pad id of each row of
    ``object_pose``).
    """

    reward_terms: ClassVar[tuple[str, ...]] = ("progress", "success")
    cycle_steps: ClassVar[int] = CYCLE_STEPS
    """Oracle steps per answer (:data:`CYCLE_STEPS`), used by :meth:`cue_to_query_span`."""

    # ----------------------------------------------------------------------------------------- task hooks
    @property
    def num_pads(self) -> int:
        raise NotImplementedError

    @property
    def num_answers(self) -> int:
        """How many pads must be touched (the length of ``answers``, whatever the episode)."""
        raise NotImplementedError

    def _sample_episode(self) -> None:
        """Draws the episode's hidden variables and sets ``self.answers`` (pads are placed already)."""
        raise NotImplementedError

    def _hide(self) -> None:
        """The first delay step (the cue has gone; in the twin only what the task moves moves)."""

    def _respond(self) -> None:
        """The go lamp (the first response step)."""

    def _pad_rgba(self, k: int) -> np.ndarray:
        """Colour of pad ``k`` now."""
        raise NotImplementedError

    def _extra_obs_spaces(self) -> dict[str, spaces.Box]:
        return {}

    def _extra_obs(self) -> dict[str, np.ndarray]:
        return {}

    def _measures(self) -> dict[str, Any]:
        """The task's own measures (hidden variables, ``memory_*`` labels)."""
        return {}

    # ----------------------------------------------------------------------------------------- pads
    def _build(self, spec: mujoco.MjSpec) -> None:
        for k in range(self.num_pads):
            add_pad(spec, f"pad_{k}", (0.5, 0.5, 0.5, 1.0))

    def place_pads(self) -> None:
        """Draws new places for the pads (>= :data:`PAD_SEPARATION` apart) and a new row order."""
        m, n = self.model, self.num_pads
        xy = sample_separated_xy(self.np_random, n, PAD_SEPARATION)
        for k, p in enumerate(xy):  # static bodies: moving them edits this env's own model
            m.body_pos[m.body(f"pad_{k}").id, :2] = p
        self.pad_xy = xy
        self.shuffle_rows()

    def shuffle_rows(self) -> None:
        """Draws a new order of the pads' rows in the observation (the pads stay where they are)."""
        self.row_pad = self.np_random.permutation(self.num_pads)

    def touching(self) -> np.ndarray:
        """Whether a finger pad is in contact with each pad [num_pads] (by pad id)."""
        return self.touching_geoms(self._pad_geom_ids)

    def answer_points(self) -> np.ndarray:
        return self.body_tops((f"pad_{k}" for k in range(self.num_pads)), PAD_TOP)

    def row_of(self, pad: int) -> int:
        """The ``object_pose`` row that holds pad ``pad`` now."""
        return int(np.flatnonzero(self.row_pad == pad)[0])

    # ----------------------------------------------------------------------------------------- episode
    def _initialize_episode(self) -> None:
        m = self.model
        self._pad_geom_ids = np.array([m.geom(f"pad_{k}").id for k in range(self.num_pads)])
        self._touching = np.zeros(self.num_pads, bool)
        self.place_pads()
        self._sample_episode()
        self.answers = np.asarray(self.answers, np.int64)
        self.answered = np.zeros(self.num_pads, bool)
        self.wrong_touch = self.early_touch = False
        self._gained = 0

    @property
    def response_start(self) -> int:
        return self.cfg.cue_steps + self.cfg.delay_steps

    @property
    def progress(self) -> int:
        """Pads answered correctly so far."""
        return int(self.answered.sum())

    @property
    def success(self) -> bool:
        return self.progress == len(self.answers)

    @property
    def ended(self) -> bool:
        return self.success or self.wrong_touch or self.early_touch

    def _detect(self) -> None:
        self._gained = 0
        now = self.touching()  # always, so the rising edges stay right
        began = now & ~self._touching
        self._touching = now
        new = np.flatnonzero(began & ~self.answered)  # a repeated touch of an answered pad does nothing
        if not len(new) or self.ended:
            return
        if self.phase != "response":
            self.early_touch = True
        elif np.isin(new, self.answers).all():
            self.answered[new] = True
            self._gained = len(new)
        else:
            self.wrong_touch = True

    def _update_scene(self) -> None:
        t = self.step_count
        self._detect()
        if t == self.cfg.cue_steps:
            self._hide()
        if t == self.response_start and t > 0:
            self._respond()
        for k, g in enumerate(self._pad_geom_ids):
            self.model.geom_rgba[g] = self._pad_rgba(k)
        self.set_go_lamp(self.phase == "response")

    # ----------------------------------------------------------------------------------------- memory demand
    def cue_to_query_span(self) -> int:
        if self.cfg.observability == "full":
            return 0
        # last shown at step cue_steps - 1; answer i chosen at response_start + i * cycle_steps at the oracle's pace
        return self.cfg.delay_steps + 1 + (self.num_answers - 1) * self.cycle_steps

    # ----------------------------------------------------------------------------------------- observations
    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {
            "object_pose": spaces.Box(-np.inf, np.inf, (self.num_pads, 7), np.float32),
            **self._extra_obs_spaces(),
            "phase": self.phase_space(),
        }

    def _task_obs(self) -> dict[str, np.ndarray]:
        poses = self.body_poses(f"pad_{k}" for k in self.row_pad)
        return {"object_pose": poses, **self._extra_obs(), "phase": self.phase_one_hot()}

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        terms = {
            "progress": self._gained / len(self.answers),
            "success": 1.0 if (self._gained and self.success) else 0.0,
        }
        measures = {
            "success": self.success,
            "progress": self.progress,
            "wrong_touch": self.wrong_touch,
            "early_touch": self.early_touch,
            "phase": self.phase,
            **self._measures(),
        }
        return self.ended, {k: terms[k] for k in self.reward_terms}, measures
