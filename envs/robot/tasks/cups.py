"""The cups and the ball of the arm's cup tasks (WhereHidden, ShellGame): identical cups, a red ball under one of
them, and the answer, a touch of the ball's cup.

:class:`CupTaskEnv` owns what both tasks share: the touch rule (the first touch of a cup ends the episode: the
ball's cup alone in the response phase is a success; any other cup, two at once, or any cup before the go lamp a
failure), the reward, the memoryless bound ``1 / num_cups``, the cups' rows in ``object_pose``, the ``memory_slot``
label and the measures. A task builds the bodies with :func:`add_cups_and_ball`, sets ``ball_cup`` (the cup the
ball is under) and ``row_cup`` (the cup id of each ``object_pose`` row), calls :meth:`CupTaskEnv._reset_cups` at
reset and fills ``_measures``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import mujoco
import numpy as np

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.tasks.common import PhasedMemoryTaskEnv

CUP_RADIUS = 0.03
CUP_HALF_HEIGHT = 0.03
CUP_TOP = 2 * CUP_HALF_HEIGHT
"""Height (m) of a lowered cup's top above the table."""
CUP_RAISE = 0.1
"""Height (m) the cups hover at during the cue phase, so the ball under one of them is in sight."""
CUP_RGBA = (0.55, 0.55, 0.6, 1.0)
BALL_RADIUS = 0.015


def add_cups_and_ball(spec: mujoco.MjSpec, cup_xy: list[tuple[float, float]], ball_xy: tuple[float, float]) -> None:
    """Adds a static cup ``cup_{k}`` (body and geom) hovering at ``cup_xy[k]`` for each place ``cup_xy[k]`` and
    the non-colliding ball ``ball`` on the table at ``ball_xy``; the task moves them by editing ``model.body_pos``."""
    for k, (x, y) in enumerate(cup_xy):
        cup = spec.worldbody.add_body(name=f"cup_{k}", pos=[x, y, CUP_RAISE])
        cup.add_geom(
            name=f"cup_{k}",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[CUP_RADIUS, CUP_HALF_HEIGHT, 0],
            pos=[0, 0, CUP_HALF_HEIGHT],
            rgba=list(CUP_RGBA),
            contype=1,
            conaffinity=3,
        )
    ball = spec.worldbody.add_body(name="ball", pos=[*ball_xy, BALL_RADIUS])
    ball.add_geom(
        name="ball",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[BALL_RADIUS, 0, 0],
        rgba=list(C.PALETTE["red"]),
        contype=0,
        conaffinity=0,
        group=1,
    )


class CupTaskEnv(PhasedMemoryTaskEnv):
    """Base of the cup tasks; not registered itself (see WhereHidden and ShellGame for the task sheets).

    Attributes (after reset): ``ball_cup`` (int, the cup the ball is under: the answer), ``row_cup`` (int
    [num_cups], the cup id of each row of ``object_pose``), ``touched_ball``, ``wrong_touch``, ``early_touch``.
    """

    reward_terms: ClassVar[tuple[str, ...]] = ("success",)
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "cue")

    # ----------------------------------------------------------------------------------------- task hooks
    def _measures(self) -> dict[str, Any]:
        """The task's own measures (hidden variables, ``memory_place``), between ``phase`` and ``memory_slot``."""
        return {}

    # ----------------------------------------------------------------------------------------- answers
    def _reset_cups(self) -> None:
        """Looks up the cups' geoms and clears the answer events (at reset)."""
        m = self.model
        self._cup_geom_ids = np.array([m.geom(f"cup_{k}").id for k in range(self.cfg.num_cups)])
        self.wrong_touch = self.early_touch = self.touched_ball = False

    @property
    def success(self) -> bool:
        return self.touched_ball

    @property
    def ended(self) -> bool:
        return self.touched_ball or self.wrong_touch or self.early_touch

    def touching(self) -> np.ndarray:
        """Whether a finger pad is in contact with each cup [num_cups] (by cup id)."""
        return self.touching_geoms(self._cup_geom_ids)

    def _detect(self) -> None:
        if self.ended:
            return
        touched = np.flatnonzero(self.touching())
        if not len(touched):
            return
        if self.phase != "response":
            self.early_touch = True
        elif len(touched) == 1 and touched[0] == self.ball_cup:
            self.touched_ball = True
        else:
            self.wrong_touch = True

    def _guess_bound(self) -> float:
        return 1.0 / self.cfg.num_cups

    def answer_points(self) -> np.ndarray:
        return self.body_tops((f"cup_{k}" for k in range(self.cfg.num_cups)), CUP_TOP)

    # ----------------------------------------------------------------------------------------- observations
    def cup_poses(self) -> np.ndarray:
        """The ``object_pose`` observation [num_cups, 7]: the cups' poses in the rows' order (``row_cup``)."""
        return self.body_poses(f"cup_{k}" for k in self.row_cup)

    def memory_slot(self) -> np.ndarray:
        """The ``memory_slot`` label [num_cups]: one-hot of the ``object_pose`` row of the ball's cup now."""
        slot = np.zeros(self.cfg.num_cups, np.float32)
        slot[int(np.flatnonzero(self.row_cup == self.ball_cup)[0])] = 1.0
        return slot

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        measures = {
            "success": self.success,
            "wrong_touch": self.wrong_touch,
            "early_touch": self.early_touch,
            "phase": self.phase,
            **self._measures(),
            "memory_slot": self.memory_slot(),
        }
        return self.ended, {"success": 1.0 if self.success else 0.0}, measures
