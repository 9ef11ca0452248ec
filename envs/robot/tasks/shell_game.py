"""chronotope/ShellGame-v0: a ball is shown under one of several identical cups; the cups come down and swap places
in sight; touch the cup the ball is under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.tasks.common import MemoryTaskConfig, check_non_negative_ints, check_positive_ints, is_int
from chronotope.envs.robot.tasks.cups import BALL_RADIUS, CUP_RAISE, CUP_TOP, CupTaskEnv, add_cups_and_ball
from chronotope.envs.robot.tasks.spatial import normalised_place

MAX_CUPS = 5
SLOT_SPACING = 0.11
"""Distance (m) between neighbouring slots of the row of cups (5 cm between rims)."""
ROW_CENTRE_LOW = np.array([0.42, -0.03])
"""Lower xy corner (m) of the box the centre of the row of slots is drawn in."""
ROW_CENTRE_HIGH = np.array([0.52, 0.03])
MIN_SWAP_STEPS = 4
"""Fewest env steps a swap may take: a swapping cup then moves at most 2 r sin(pi / 8) = 4.2 cm per step on its
half circle (r = 5.5 cm), less than half the least distance between cups (11 cm), so the cup nearest to where the
ball's cup was one step earlier is always the ball's cup (what the perfect oracle relies on)."""


@dataclass
class ShellGameConfig(MemoryTaskConfig):
    """ShellGame options (plus :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``; and
    :class:`RobotEnvConfig`)."""

    num_cups: int = 4
    """Identical cups in a row (2..5); the memoryless bound is 1 / num_cups (the default 4 keeps it well under 0.35
    of the perfect oracle, where the classic 3 would sit at 0.33)."""
    num_swaps: int = 3
    """Swaps of two neighbouring cups after the cups come down (0..12), the difficulty knob: how much motion must
    be tracked. 0 leaves a place to remember (WhereHidden with the cups in a row). The registered time limit (100
    steps) fits 12 swaps at the default timing (the reference oracle ends by step 82); slower swaps or longer
    delays may need a longer one (``gymnasium.make(id, max_episode_steps=...)``)."""
    swap_steps: int = 5
    """Env steps each swap takes (at least :data:`MIN_SWAP_STEPS`): the two cups move on a half circle about the
    point between them, one in front of the row, the other behind it."""
    cue_steps: int = 5
    """Env steps the cups hover with the ball in sight, from the first observation on."""
    delay_steps: int = 5
    """Env steps between the last swap's end and the go lamp."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (is_int(self.num_cups) and 2 <= self.num_cups <= MAX_CUPS):
            raise ValueError(f"num_cups={self.num_cups!r}; expected an int in [2, {MAX_CUPS}]")
        if not (is_int(self.num_swaps) and 0 <= self.num_swaps <= 12):
            raise ValueError(f"num_swaps={self.num_swaps!r}; expected an int in [0, 12]")
        if not (is_int(self.swap_steps) and self.swap_steps >= MIN_SWAP_STEPS):
            raise ValueError(f"swap_steps={self.swap_steps!r}; expected an int >= {MIN_SWAP_STEPS}")
        check_positive_ints(self, "cue_steps")
        check_non_negative_ints(self, "delay_steps")


class ShellGameEnv(CupTaskEnv):
    """**ShellGame** (object memory, an object tracked through motion): ``num_cups`` identical cups hover in a row
    and a red ball lies under one of them for the first ``cue_steps`` steps. Then the cups come down over their
    slots, covering the ball, and ``num_swaps`` times two neighbouring cups swap places in sight (each swap takes
    ``swap_steps`` steps: the two cups travel on a half circle, one in front of the row, one behind it; the ball
    travels inside its cup). ``delay_steps`` after the last swap the go lamp lights and the arm must touch the cup
    the ball is under. The cups cannot be told apart and their rows in ``object_pose`` are re-drawn at every step
    until the go lamp, so what must be remembered is *which object* holds the ball, followed from frame to frame
    (the ball ends in another place than where it was shown, unlike WhereHidden). With ``hold_arm`` (default) the
    arm is held at its start pose until the go lamp (the agent's actions are ignored).

    Randomisations: the centre of the row of slots uniform in x [0.42, 0.52], y [-0.03, 0.03] m (slots 0.11 m apart
    along y); the ball's cup uniform over the ``num_cups``; each swap's pair of neighbouring slots uniform over the
    ``num_cups - 1`` pairs, independently; the row order of the cups in ``object_pose``, re-drawn at every step up
    to the first of the response phase; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [num_cups, 7] (cup poses, rows in a fresh random order at
        every step before the response, fixed during it, so only the motion says which cup a row holds), ``cue``
        [3] = (x, y, 1) of the ball's cup while the ball is in sight (zeros afterwards), ``phase`` [3] one-hot
        (cue, shuffle, response). ``rgbd`` withholds ``object_pose`` and ``cue``: the cups, their motion and the
        ball are seen in the cameras. The ``full`` twin: once the cups are down the ball rides on top of its cup
        and ``cue`` follows it, in both observation modes.
    Actions: see :class:`RobotEnvConfig`.
    Success: in the response phase, a finger pad touches the cup the ball is under. The first touch ends the
        episode: any other cup (or two at once), or any cup before the go lamp (possible only without
        ``hold_arm``), is a failure.
    Reward terms: ``success`` = +1 on success (no penalty for a wrong cup, as in WhereHidden; no shaping towards
        the cup: it would leak the answer through the reward).
    Measures: ``success``, ``wrong_touch``, ``early_touch``, ``phase``, ``ball_cup`` (int, the cup's id; with the
        swaps the episode's hidden variables), ``memory_place`` (float [2], where the ball's cup is now, mapped from
        the spawn box to [-1, 1]^2 (a swap's half circle may reach a little beyond)) and ``memory_slot`` (float
        [num_cups], one-hot of the ``object_pose`` row of the ball's cup now): what must be tracked, labels for the
        trainers' ``--aux-key``.

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: the ball on its cup and ``cue`` show the cup at every step, so the
        task needs no memory. ``cue_to_query_span()`` = ``num_swaps * swap_steps + delay_steps + 1``: the ball is
        last in sight at step ``cue_steps - 1`` and the cup to reach for is chosen at the first response
        observation, after which the reference oracle follows that cup's row (default 21; 0 for the twin); every
        observation in between is needed too (the motion). ``controllable()``: from the response phase on with
        ``hold_arm``, every step without it. ``memoryless_bound()``: at the go lamp a reactive policy sees the held
        arm and identical cups at rest on the slots (the same set of places whichever cup holds the ball, the
        swaps being independent of the ball's cup), rows re-drawn; the ball's slot is its uniform starting slot
        moved by the swaps' permutation, so it is uniform too and one touch ends the episode: success is exactly
        ``1 / num_cups`` (0.25 at the defaults), times the motor success. Without ``hold_arm`` the bound is 1 (the
        hand can follow the ball's cup through the swaps; see :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = ShellGameConfig
    phases: ClassVar[tuple[str, str, str]] = ("cue", "shuffle", "response")

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_cups_and_ball(spec, [(0.47, SLOT_SPACING * k) for k in range(self.cfg.num_cups)], (0.47, 0.0))

    # ----------------------------------------------------------------------------------------- episode
    def _initialize_episode(self) -> None:
        c = self.cfg
        n = c.num_cups
        centre = self.np_random.uniform(ROW_CENTRE_LOW, ROW_CENTRE_HIGH)
        self.slot_xy = centre + np.stack([np.zeros(n), (np.arange(n) - (n - 1) / 2) * SLOT_SPACING], axis=1)
        self.ball_cup = int(self.np_random.integers(n))
        self.swaps = self.np_random.integers(n - 1, size=c.num_swaps)  # swap j: the cups in slots s and s + 1
        slots = [np.arange(n)]  # slot of each cup after j swaps
        for s in self.swaps:
            nxt = slots[-1].copy()
            a, b = int(np.flatnonzero(nxt == s)[0]), int(np.flatnonzero(nxt == s + 1)[0])
            nxt[a], nxt[b] = s + 1, s
            slots.append(nxt)
        self.cup_slots = np.stack(slots)  # [num_swaps + 1, num_cups]
        self.row_cup = self.np_random.permutation(n)
        self._reset_cups()

    @property
    def response_start(self) -> int:
        c = self.cfg
        return c.cue_steps + c.num_swaps * c.swap_steps + c.delay_steps

    def cup_xy(self) -> np.ndarray:
        """Where each cup is now [num_cups, 2] (m, by cup id): on its slot, or on a swap's half circle."""
        c = self.cfg
        u = min(self.step_count - c.cue_steps, c.num_swaps * c.swap_steps)  # steps of swapping done
        if u <= 0:
            return self.slot_xy[self.cup_slots[0]]
        j = (u - 1) // c.swap_steps  # the swap under way (or just finished)
        f = (u - j * c.swap_steps) / c.swap_steps
        if f == 1.0:
            return self.slot_xy[self.cup_slots[j + 1]]
        xy = self.slot_xy[self.cup_slots[j]].copy()
        s = self.swaps[j]
        centre = 0.5 * (self.slot_xy[s] + self.slot_xy[s + 1])
        cos, sin = np.cos(np.pi * f), np.sin(np.pi * f)
        rot = np.array([[cos, -sin], [sin, cos]])
        for cup in np.flatnonzero((self.cup_slots[j] == s) | (self.cup_slots[j] == s + 1)):
            xy[cup] = centre + rot @ (xy[cup] - centre)  # diametrically opposite: they never meet
        return xy

    def _update_scene(self) -> None:
        self._detect()
        m, t = self.model, self.step_count
        xy = self.cup_xy()
        lowered = t >= self.cfg.cue_steps
        for k, p in enumerate(xy):  # static bodies: moving them edits this env's own model
            m.body_pos[m.body(f"cup_{k}").id] = [*p, 0.0 if lowered else CUP_RAISE]
        # Under its raised cup during the cue; once the cups are down, inside its cup (out of sight), or on top of
        # it in the twin.
        z = CUP_TOP + BALL_RADIUS if (lowered and self.cue_visible()) else BALL_RADIUS
        m.body_pos[m.body("ball").id] = [*xy[self.ball_cup], z]
        if t <= self.response_start:
            self.row_cup = self.np_random.permutation(self.cfg.num_cups)
        self.set_go_lamp(self.phase == "response")

    # ----------------------------------------------------------------------------------------- memory demand
    def cue_to_query_span(self) -> int:
        if self.cfg.observability == "full":
            return 0
        # last in sight at step cue_steps - 1; the cup is chosen at response_start and then followed by its row
        return self.response_start - (self.cfg.cue_steps - 1)

    # ----------------------------------------------------------------------------------------- observations
    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {
            "object_pose": spaces.Box(-np.inf, np.inf, (self.cfg.num_cups, 7), np.float32),
            "cue": spaces.Box(-1.0, 1.0, (3,), np.float32),
            "phase": self.phase_space(),
        }

    def _task_obs(self) -> dict[str, np.ndarray]:
        cue = np.array([*self.cup_xy()[self.ball_cup], 1.0]) if self.cue_visible() else np.zeros(3)
        return {"object_pose": self.cup_poses(), "cue": cue, "phase": self.phase_one_hot()}

    def _measures(self) -> dict[str, Any]:
        return {"ball_cup": self.ball_cup, "memory_place": normalised_place(self.cup_xy()[self.ball_cup])}
