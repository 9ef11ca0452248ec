"""chronotope/ButtonSequence-v0: buttons light up one at a time; press them in the order they lit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.tasks.common import sample_separated_xy
from chronotope.envs.robot.tasks.count_press import BUTTON_TOP, BUTTON_TRAVEL, add_button
from chronotope.envs.robot.tasks.sequence import SequenceTaskConfig, SequenceTaskEnv

COLOUR_NAMES = tuple(C.PALETTE)
BUTTON_SEPARATION = 0.11
"""Least distance (m) between button centres: the closed fingers pressing one cap stay clear of the others."""
DIM = 0.3
"""Brightness of an unlit cap (a fraction of its palette colour); a lit cap shows the full colour."""


@dataclass
class ButtonSequenceConfig(SequenceTaskConfig):
    """ButtonSequence options (plus :class:`SequenceTaskConfig`: ``length``, ``show_steps``, ``gap_steps``,
    ``delay_steps``; :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    num_buttons: int = 4
    """Buttons on the table (2..5), each its own colour (``arm_constants.PALETTE`` order); ``length`` must not
    exceed it (the sequence has no repeats)."""
    press_depth: float = 0.007
    """Cap displacement (m) that registers a press; the button re-arms once its cap is back above half of it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.num_buttons, int) and 2 <= self.num_buttons <= len(COLOUR_NAMES)):
            raise ValueError(f"num_buttons={self.num_buttons!r}; expected an int in [2, {len(COLOUR_NAMES)}]")
        if self.length > self.num_buttons:
            raise ValueError(
                f"length={self.length!r} exceeds num_buttons={self.num_buttons!r}: the sequence has no repeats"
            )
        if not 0.002 <= self.press_depth < BUTTON_TRAVEL:
            raise ValueError(f"press_depth={self.press_depth!r}; expected in [0.002, {BUTTON_TRAVEL}) m")


class ButtonSequenceEnv(SequenceTaskEnv):
    """**ButtonSequence** (sequential memory): ``num_buttons`` buttons of distinct colours stand on the table.
    During the cue phase ``length`` of them light up one at a time (each for ``show_steps``, then ``gap_steps``
    dark), in a random order without repeats; after ``delay_steps`` more the go lamp lights and the arm must press
    the buttons in the order they lit (Corsi block tapping: what must be remembered is *which objects, in which
    order*; the buttons stay where they are). With ``hold_arm`` (default) the arm is held at its start pose until
    the go lamp (the agent's actions are ignored), so neither its pose nor a press can carry the order.

    Randomisations: the order, uniform over the ``num_buttons! / (num_buttons - length)!`` ordered selections;
    button xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m, >= 0.11 m apart; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_buttons, 7] (row k = cap of the button of colour
        k), ``cue`` [num_buttons] one-hot of the lit button (zeros while none is lit), ``phase`` [3] one-hot (cue,
        delay, response), ``progress`` [1] (buttons pressed correctly so far), ``next_element`` [length] (one-hot
        of ``progress``: the position of the next answer in the sequence; zeros once it is complete). ``rgbd``
        withholds ``object_pose`` and ``cue``: a lit button shows its full colour, an unlit one a dim version of it.
        The ``full`` twin: after the cue phase the next button to press stays lit (``cue`` and the cap), and
        ``remaining_sequence`` [length, num_buttons] (row i one-hot of the (progress + i)-th button of the
        order, zero rows past its end) is observed at every step, in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: the ``length`` buttons pressed in the order shown. A press registers when a cap sinks
        ``press_depth``; pressing any other button than the next one (or two at once), or any button before the
        go lamp (possible only without ``hold_arm``), ends the episode as a failure.
    Reward terms: ``progress`` = +1 / length per correct press; ``success`` = +1 when the order is complete. A
        wrong press costs nothing but the rest of the episode: with a penalty, pressing nothing would beat an early
        guess, and a learner would stop pressing before it could learn the order. With ``approach_reward`` the
        response phase adds the neutral shaping towards the *nearest* cap top not pressed yet, restarted at each
        correct press (:class:`MemoryTaskConfig`; a shaping towards the next button would leak the order through
        the reward).
    Measures: ``success``, ``progress``, ``wrong_response``, ``early_response``, ``phase``, ``sequence`` (int
        array [length], the button ids in the order shown; the episode's hidden variable), ``memory_sequence``
        (float [length * num_buttons], its one-hot rows flattened: what must be remembered, a label for the
        trainers' ``--aux-key``) and ``memory_slot`` (float [num_buttons], one-hot of the ``object_pose`` row of
        the next button to press: the stored order read at the observed ``progress``) and ``memory_order`` (float
        [num_buttons * length], the [rows, positions] table of the order, :meth:`SequenceTaskEnv.memory_order`).

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the next button is lit and ``remaining_sequence`` shows the rest of
        the order, so the task needs no memory. ``cue_to_query_span()``: element i is last lit at step
        ``i * (show_steps + gap_steps) + show_steps - 1`` and needed when the oracle heads for it,
        ``cue_len + delay_steps + i * CYCLE_STEPS`` (:data:`~chronotope.envs.robot.tasks.sequence.CYCLE_STEPS`, the
        reference oracle's pace; a slower agent needs more); the span is the maximum over i (default:
        18 + 2 * 20 - 15 = 43; 0 for the twin).
        ``controllable()``: from the response phase on with ``hold_arm``, every step without it.
        ``memoryless_bound()``: the order is uniform and drawn independently of everything a reactive policy sees
        at the go lamp (held arm pose, button poses; the cue phase lasts ``cue_len`` whatever the order), and a
        wrong press ends the episode, so no answer can be corrected: even granting the policy the commitment of
        a whole guessed order (a motor plan: a strictly reactive policy sees only its last press, through its hand
        pose, and does worse), success is exactly ``(num_buttons - length)! / num_buttons!`` (1/24 at the
        defaults), times the motor success. Without ``hold_arm`` the bound is 1 (the hand pose can encode the
        order; see :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = ButtonSequenceConfig

    @property
    def num_items(self) -> int:
        return self.cfg.num_buttons

    @property
    def allow_repeats(self) -> bool:
        return False

    def _build(self, spec: mujoco.MjSpec) -> None:
        self.colours = COLOUR_NAMES[: self.cfg.num_buttons]
        for k in range(len(self.colours)):  # CountPress's button, one per colour
            add_button(spec, f"_{k}", (0.4, -0.2 + 0.1 * k), self._cap_rgba(k, lit=False))

    def _cap_rgba(self, k: int, lit: bool) -> np.ndarray:
        rgba = np.array(C.PALETTE[self.colours[k]])
        if not lit:
            rgba[:3] *= DIM
        return rgba

    def _place_items(self, response: bool) -> None:
        if response:  # the buttons stay where they lit: their places are part of what is remembered
            return
        m = self.model
        xy = sample_separated_xy(self.np_random, self.cfg.num_buttons, BUTTON_SEPARATION)
        for k, p in enumerate(xy):  # static bodies: moving them edits this env's own model
            m.body_pos[m.body(f"button_base_{k}").id, :2] = p

    def _reset_items(self) -> None:
        m = self.model
        self._button_qadr = np.array([m.joint(f"button_{k}").qposadr[0] for k in range(self.cfg.num_buttons)])
        self._cap_geoms = np.array([m.geom(f"button_{k}").id for k in range(self.cfg.num_buttons)])
        self._armed = np.ones(self.cfg.num_buttons, bool)

    def button_depth(self) -> np.ndarray:
        """Cap displacements below rest [num_buttons] (m, >= 0 when pressed)."""
        return -self.data.qpos[self._button_qadr]

    def _detect_responses(self) -> np.ndarray:
        # Sampled once per env step (25 Hz); a press takes several steps, so none is missed.
        depth = self.button_depth()
        pressed = self._armed & (depth >= self.cfg.press_depth)
        self._armed = (self._armed & ~pressed) | (depth < 0.5 * self.cfg.press_depth)
        return np.flatnonzero(pressed)

    def _show_item(self, item: int | None) -> None:
        for k, g in enumerate(self._cap_geoms):
            self.model.geom_rgba[g] = self._cap_rgba(k, lit=k == item)

    def answer_points(self) -> np.ndarray:
        # The cap tops at rest: a fingertip there (the tool centre point is above the tips) has pressed the cap.
        return self.body_tops((f"button_base_{k}" for k in range(self.cfg.num_buttons)), BUTTON_TOP)

    def _item_obs_spaces(self) -> dict[str, spaces.Box]:
        return {"object_pose": spaces.Box(-np.inf, np.inf, (self.cfg.num_buttons, 7), np.float32)}

    def _item_obs(self) -> dict[str, np.ndarray]:
        return {"object_pose": self.body_poses(f"button_{k}" for k in range(self.cfg.num_buttons))}
