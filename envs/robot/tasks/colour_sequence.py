"""chronotope/ColourSequence-v0: the cue panel shows a sequence of colours; touch the pads of those colours in that
order, after the pads have moved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.tasks.common import sample_separated_xy
from chronotope.envs.robot.tasks.sequence import SequenceTaskConfig, SequenceTaskEnv
from chronotope.envs.robot.tasks.spatial import normalised_place

COLOUR_NAMES = tuple(C.PALETTE)
PAD_HALF = 0.035
"""Half edge (m) of the square pads."""
PAD_TOP = 0.01
"""Height (m) of a pad's top above the table."""
PAD_SEPARATION = 0.12
"""Least distance (m) between pad centres (5 cm between edges)."""
MAX_LENGTH = 6


@dataclass
class ColourSequenceConfig(SequenceTaskConfig):
    """ColourSequence options (plus :class:`SequenceTaskConfig`: ``length``, ``show_steps``, ``gap_steps``,
    ``delay_steps``; :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and :class:`RobotEnvConfig`)."""

    num_colors: int = 3
    """Pads on the table, one per colour (2..5, ``arm_constants.PALETTE`` order); the sequence is drawn from these
    colours."""
    repeats: bool = True
    """Draw each element independently (a colour may recur, also back to back: touch, lift, touch again); False:
    no colour twice (then ``length`` <= ``num_colors``)."""
    shuffle_at_response: bool = True
    """Re-draw the pads' places and their row order in ``object_pose`` when the go lamp lights, so nothing about
    the pads seen during the cue (where a colour was, which row it had) helps: only the colours do."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.num_colors, int) and 2 <= self.num_colors <= len(COLOUR_NAMES)):
            raise ValueError(f"num_colors={self.num_colors!r}; expected an int in [2, {len(COLOUR_NAMES)}]")
        if not isinstance(self.repeats, bool):
            raise ValueError(f"repeats={self.repeats!r}; expected a bool")
        if not isinstance(self.shuffle_at_response, bool):
            raise ValueError(f"shuffle_at_response={self.shuffle_at_response!r}; expected a bool")
        if self.length > MAX_LENGTH:
            raise ValueError(f"length={self.length!r}; expected at most {MAX_LENGTH}")
        if not self.repeats and self.length > self.num_colors:
            raise ValueError(f"length={self.length!r} exceeds num_colors={self.num_colors!r} with repeats=False")


class ColourSequenceEnv(SequenceTaskEnv):
    """**ColourSequence** (sequential memory): the cue panel shows ``length`` colours one at a time (each for
    ``show_steps``, then ``gap_steps`` grey), drawn from ``num_colors`` with repeats (``repeats``); after
    ``delay_steps`` more the go lamp lights, the pads are re-placed at random (``shuffle_at_response``), and the arm
    must touch the pads of the shown colours in the order shown. What must be remembered is a sequence of
    *symbols* seen in one place (digit span), not of objects or places: the pads play no part in the cue and move
    before the answer, so the colours must be matched to the pads where they now are. (ButtonSequence is its
    spatial counterpart: the items light up in place and stay put, and never repeat.) With ``hold_arm`` (default)
    the arm is held at its start pose until the go lamp.

    Randomisations: the sequence, uniform over ``num_colors ** length`` (or, without repeats, over the
    ``num_colors! / (num_colors - length)!`` ordered selections); pad xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m,
    >= 0.12 m apart, and the row order of the pads in ``object_pose``, both drawn at reset and again at the go
    lamp; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_colors, 7] (pad poses, rows in the episode's
        random order), ``pad_colour`` [num_colors, num_colors] (row r one-hot of the colour of pad r), ``cue``
        [num_colors] one-hot of the colour on the panel (zeros while grey), ``phase`` [3] one-hot (cue, delay,
        response), ``progress`` [1] (elements touched correctly so far), ``next_element`` [length] (one-hot of
        ``progress``: the position of the next answer in the sequence; zeros once it is complete). ``rgbd``
        withholds ``object_pose``, ``pad_colour`` and ``cue``: the colours are seen on the panel and the pads.
        The ``full`` twin: after the cue phase the panel (and ``cue``) shows the next colour to touch, and
        ``remaining_sequence`` [length, num_colors] (row i one-hot of the (progress + i)-th colour, zero rows past
        the end) is observed at every step, in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: the ``length`` pads touched (a finger pad coming into contact with one) in the order shown; a
        repeated colour needs the hand to leave the pad and touch it again. Touching a pad of any other colour than
        the next (or two at once), or any pad before the go lamp (possible only without ``hold_arm``), ends the
        episode as a failure.
    Reward terms: ``progress`` = +1 / length per correct touch; ``success`` = +1 when the sequence is complete (no
        penalty on a wrong touch, as in ButtonSequence: it would make touching nothing beat an early guess).
    Measures: ``success``, ``progress``, ``wrong_response``, ``early_response``, ``phase``, ``sequence`` (int
        array [length] of colour ids; the episode's hidden variable) and ``memory_sequence`` (float
        [length * num_colors], its one-hot rows flattened: a label for the trainers' ``--aux-key``) and
        ``memory_place`` (float [2], the place of the next colour's pad mapped from the spawn box to [-1, 1]^2:
        where to reach next, a label a policy can meet from the go lamp on, when the pads take their places; the
        last element's pad once the sequence is done) and ``memory_slot`` (float [num_colors], one-hot of the
        ``object_pose`` row of the next colour's pad; the rows are re-ordered when the pads move).

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the panel shows the next colour and ``remaining_sequence`` the rest,
        so the task needs no memory. ``cue_to_query_span()``: element i is last shown at step
        ``i * (show_steps + gap_steps) + show_steps - 1`` and needed when the oracle heads for its pad,
        ``cue_len + delay_steps + i * CYCLE_STEPS`` at the reference oracle's pace (as ButtonSequence); the span
        is the maximum over i (default: 18 + 2 * 20 - 15 = 43; 0 for the twin). ``controllable()``: from the
        response phase on with ``hold_arm``, every step without it. ``memoryless_bound()``: the sequence is
        uniform and independent of everything a reactive policy sees at the go lamp (held arm pose, pad poses
        and colours, re-drawn anyway; the cue phase lasts ``cue_len`` whatever the sequence); with repeats the
        elements are independent, so whatever the policy has seen of its own answers, each element is right with
        probability ``1 / num_colors`` and a wrong touch ends the episode: success is exactly
        ``num_colors ** -length`` (1/27 at the defaults), times the motor success. Without repeats, granting the
        policy the commitment of a whole guessed order (as ButtonSequence), ``(num_colors - length)! /
        num_colors!``. Without ``hold_arm`` the bound is 1 (the hand pose can encode the sequence; see
        :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = ColourSequenceConfig
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "pad_colour", "cue")

    @property
    def num_items(self) -> int:
        return self.cfg.num_colors

    @property
    def allow_repeats(self) -> bool:
        return self.cfg.repeats

    def _build(self, spec: mujoco.MjSpec) -> None:
        self.colours = COLOUR_NAMES[: self.cfg.num_colors]
        for k, name in enumerate(self.colours):
            pad = spec.worldbody.add_body(name=f"pad_{k}", pos=[0.45, -0.2 + 0.12 * k, 0.0])
            pad.add_geom(
                name=f"pad_{k}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[PAD_HALF, PAD_HALF, PAD_TOP / 2],
                pos=[0, 0, PAD_TOP / 2],
                rgba=list(C.PALETTE[name]),
                contype=1,
                conaffinity=3,
            )

    def _place_items(self, response: bool) -> None:
        if response and not self.cfg.shuffle_at_response:
            return
        m, n = self.model, self.cfg.num_colors
        xy = sample_separated_xy(self.np_random, n, PAD_SEPARATION)
        for k, p in enumerate(xy):  # static bodies: moving them edits this env's own model
            m.body_pos[m.body(f"pad_{k}").id, :2] = p
        self.row_colour = self.np_random.permutation(n)  # colour id of each row of object_pose / pad_colour

    def _reset_items(self) -> None:
        m = self.model
        self._pad_geom_ids = np.array([m.geom(f"pad_{k}").id for k in range(self.cfg.num_colors)])
        self._touching = np.zeros(self.cfg.num_colors, bool)

    def touching(self) -> np.ndarray:
        """Whether a finger pad is in contact with each colour's pad [num_colors]."""
        return self.touching_geoms(self._pad_geom_ids)

    def _detect_responses(self) -> np.ndarray:
        now = self.touching()
        began = now & ~self._touching
        self._touching = now
        return np.flatnonzero(began)

    def _show_item(self, item: int | None) -> None:
        self.set_cue_rgba(C.CUE_OFF_RGBA if item is None else C.PALETTE[self.colours[item]])

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        ended, terms, measures = super()._evaluate()
        colour = self.sequence[min(self.progress, self.cfg.length - 1)]
        xy = self.data.xpos[self.model.body(f"pad_{colour}").id, :2]
        return ended, terms, {**measures, "memory_place": normalised_place(xy)}

    def row_of_item(self, item: int) -> int:
        return int(np.flatnonzero(self.row_colour == item)[0])

    def answer_points(self) -> np.ndarray:
        return self.body_tops((f"pad_{k}" for k in range(self.cfg.num_colors)), PAD_TOP)

    def _item_obs_spaces(self) -> dict[str, spaces.Box]:
        n = self.cfg.num_colors
        return {
            "object_pose": spaces.Box(-np.inf, np.inf, (n, 7), np.float32),
            "pad_colour": spaces.Box(0.0, 1.0, (n, n), np.float32),
        }

    def _item_obs(self) -> dict[str, np.ndarray]:
        poses = self.body_poses(f"pad_{k}" for k in self.row_colour)
        return {"object_pose": poses, "pad_colour": np.eye(self.cfg.num_colors)[self.row_colour]}
