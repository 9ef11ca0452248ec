"""The shared core of the arm's spatial-memory tasks (RestorePlace, WhereHidden): a place on the table is shown,
hidden, and must be acted on after a delay.

:class:`SpatialTaskEnv` owns what both tasks share: the phases (the place shown for ``cue_steps``, then
``delay_steps`` with it hidden, then the response behind the go lamp), the held arm, the ``cue`` channel (the shown
place while it is visible; for the whole episode in the observability twin), the ``memory_place`` label and the
memory-demand declarations. A task adds its bodies in ``_build`` and fills the hooks ``_place_objects`` (reset),
``_hide`` (the first delay step), ``_detect`` (its answer events, every step), ``_show_place`` (its visual marker
of the place) and ``_object_obs_spaces`` / ``_object_obs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.env import RobotEnv
from chronotope.envs.robot.tasks.common import SPAWN_HIGH, SPAWN_LOW, MemoryTaskConfig

PHASES = ("cue", "delay", "response")


@dataclass
class SpatialTaskConfig(MemoryTaskConfig):
    """Options of the spatial-memory tasks (plus :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``, and
    :class:`RobotEnvConfig`)."""

    cue_steps: int = 5
    """Env steps the place is shown, from the first observation on."""
    delay_steps: int = 20
    """Env steps between the place being hidden and the go lamp (the distractor phase: the arm is held)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.cue_steps, int) and not isinstance(self.cue_steps, bool) and self.cue_steps >= 1):
            raise ValueError(f"cue_steps={self.cue_steps!r}; expected a positive int")
        if not (isinstance(self.delay_steps, int) and not isinstance(self.delay_steps, bool) and self.delay_steps >= 0):
            raise ValueError(f"delay_steps={self.delay_steps!r}; expected a non-negative int")


def normalised_place(xy: np.ndarray) -> np.ndarray:
    """A table place xy [2] (m) mapped from the spawn box (``common.SPAWN_LOW`` .. ``SPAWN_HIGH``) to [-1, 1]^2:
    the ``memory_place`` label, at the scale a regression head learns well."""
    return (2.0 * (np.asarray(xy, float) - SPAWN_LOW) / (SPAWN_HIGH - SPAWN_LOW) - 1.0).astype(np.float32)


class SpatialTaskEnv(RobotEnv):
    """Base of the spatial-memory arm tasks; not registered itself (see RestorePlace and WhereHidden for the task
    sheets).

    Attributes (after reset): ``place`` (float [2], the xy the task shows and hides: what must be remembered).
    """

    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "cue")
    place_steps: ClassVar[int] = 0
    """Reference oracle's pace: the most env steps after the go lamp at which it still acts on the remembered
    place (:meth:`cue_to_query_span`); 0 when it needs the place only at the go lamp."""

    # ----------------------------------------------------------------------------------------- task hooks
    def _place_objects(self) -> None:
        """Samples the episode (sets ``self.place``) and puts the task's bodies where the cue phase shows them."""
        raise NotImplementedError

    def _hide(self) -> None:
        """Hides the place (the first delay step; in the twin only what the task moves moves)."""

    def _detect(self) -> None:
        """Updates the task's answer events from the state after a step (and at reset)."""

    def _show_place(self, visible: bool) -> None:
        """Shows or hides the task's visual marker of the place."""

    def _object_obs_spaces(self) -> dict[str, spaces.Box]:
        return {}

    def _object_obs(self) -> dict[str, np.ndarray]:
        return {}

    # ----------------------------------------------------------------------------------------- episode
    def _initialize_episode(self) -> None:
        self._place_objects()

    @property
    def response_start(self) -> int:
        """Step of the first observation with the go lamp lit."""
        return self.cfg.cue_steps + self.cfg.delay_steps

    @property
    def phase(self) -> str:
        t = self.step_count
        if t < self.cfg.cue_steps:
            return "cue"
        return "delay" if t < self.response_start else "response"

    def cue_visible(self) -> bool:
        """Whether the place is shown now (``cue`` and the marker): in the cue phase, or always in the twin."""
        return self.phase == "cue" or self.cfg.observability == "full"

    def _update_scene(self) -> None:
        self._detect()
        if self.step_count == self.cfg.cue_steps:
            self._hide()
        self._show_place(self.cue_visible())
        self.set_go_lamp(self.phase == "response")

    # ----------------------------------------------------------------------------------------- memory demand
    def controllable(self) -> bool:
        return not self.cfg.hold_arm or self.phase == "response"

    def cue_to_query_span(self) -> int:
        if self.cfg.observability == "full":
            return 0
        # last shown at step cue_steps - 1; acted on until response_start + place_steps at the oracle's pace
        return self.cfg.delay_steps + 1 + self.place_steps

    # ----------------------------------------------------------------------------------------- observations
    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {
            **self._object_obs_spaces(),
            "cue": spaces.Box(-1.0, 1.0, (3,), np.float32),
            "phase": spaces.Box(0.0, 1.0, (len(PHASES),), np.float32),
        }

    def _task_obs(self) -> dict[str, np.ndarray]:
        cue = np.array([*self.place, 1.0]) if self.cue_visible() else np.zeros(3)
        phase = np.zeros(len(PHASES))
        phase[PHASES.index(self.phase)] = 1.0
        return {**self._object_obs(), "cue": cue, "phase": phase}
