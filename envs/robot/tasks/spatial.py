"""The shared core of the arm's spatial-memory tasks (RestorePlace, WhereHidden): a place on the table is shown,
hidden, and must be acted on after a delay.

:class:`SpatialTaskEnv` owns what both tasks share: the phases (the place shown for ``cue_steps``, then
``delay_steps`` with it hidden, then the response behind the go lamp), the held arm, the ``cue`` channel (the shown
place while it is visible; for the whole episode in the observability twin), the ``memory_place`` label and the
memory-demand declarations. A task adds its bodies in ``_build`` and fills the hooks ``_place_objects`` (reset),
``_hide`` (the first delay step), ``_detect`` (its answer events, every step), ``_show_place`` (its visual marker
of the place) and ``_object_obs_spaces`` / ``_object_obs``. The phase clock and the held arm come from
:class:`~chronotope.envs.robot.tasks.common.PhasedMemoryTaskEnv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.tasks.common import SPAWN_HIGH, SPAWN_LOW, CueDelayConfig, PhasedMemoryTaskEnv


@dataclass
class SpatialTaskConfig(CueDelayConfig):
    """Options of the spatial-memory tasks: :class:`CueDelayConfig`'s (``cue_steps``, the steps the place is shown;
    ``delay_steps``, hidden before the go lamp; ``observability``, ``hold_arm``, and :class:`RobotEnvConfig`)."""


def normalised_place(xy: np.ndarray) -> np.ndarray:
    """A table place xy [2] (m) mapped from the spawn box (``common.SPAWN_LOW`` .. ``SPAWN_HIGH``) to [-1, 1]^2:
    the ``memory_place`` label, at the scale a regression head learns well."""
    return (2.0 * (np.asarray(xy, float) - SPAWN_LOW) / (SPAWN_HIGH - SPAWN_LOW) - 1.0).astype(np.float32)


class SpatialTaskEnv(PhasedMemoryTaskEnv):
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
        return self.cfg.cue_steps + self.cfg.delay_steps

    def _update_scene(self) -> None:
        self._detect()
        if self.step_count == self.cfg.cue_steps:
            self._hide()
        self._show_place(self.cue_visible())
        self.set_go_lamp(self.phase == "response")

    # ----------------------------------------------------------------------------------------- memory demand
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
            "phase": self.phase_space(),
        }

    def _task_obs(self) -> dict[str, np.ndarray]:
        cue = np.array([*self.place, 1.0]) if self.cue_visible() else np.zeros(3)
        return {**self._object_obs(), "cue": cue, "phase": self.phase_one_hot()}
