"""Scripted controllers and memory-demand references for the robot tasks (``state`` observations, ``ee_delta``).

Each oracle sees only observations (plus the task's settings and sampling rules, which a trained policy could
absorb in its weights). The references of a memory task (see :func:`evaluate`):

- ``random``: uniform random actions (the floor).
- ``perfect`` (``Oracle(memory=True)``): keeps what the cue channel showed (the same channel, visible to the agent
  while the cue is on) and acts optimally on it (the ceiling).
- ``memoryless`` (``Oracle(memory=False)``): the best reactive policy we know, the memoryless bound. Its cue memory
  is wiped before every observation, so it acts on the current observation only, except for the commitment of the
  motion it is executing (the block it reaches for, the presses it is making), which is a motor plan, not a
  memory of the cue (as the navigation oracles' exploration waypoint). Derivation, with ``hold_arm`` (the
  default): at the response nothing a reactive policy observes depends on the cue (the arm was held at its start
  pose, objects are drawn independently of the cue), so the posterior over the cue is the sampler's uniform prior
  and every single guess is Bayes-optimal; one answer ends the episode (a lift, a pad touch), so the bound is
  exactly ``1 / num_colors`` (CueRecallPick) or ``1 / max_count`` (CountPress) times the motor success of the
  controller; the oracle guesses uniformly at random (seeded), which has the same expectation as any fixed guess.
  Without ``hold_arm`` a reactive policy can write the cue into its own hand pose while the cue is lit and read it
  back at the response (``pose_code``): the measured value is then an estimate (a lower one) of a bound that is
  ~ the perfect oracle's. With ``observability="full"`` (the twin) the cue is in the current observation, so the
  memoryless oracle reaches the perfect oracle's level.

The sequential tasks (ButtonSequence, ColourSequence) follow the same pattern. ``perfect`` records each element as
it lights (a rising edge of the ``cue`` channel in the cue phase) and answers them in order; ``memoryless`` draws a
guess of the whole sequence at the go lamp (seeded; uniform over the sequences the task samples) and executes it:
keeping its own guessed order while answering is a motor plan, which a strictly reactive policy could not even
keep, so its success, exactly one over the number of sequences (times the motor success), over-estimates the
memoryless bound, as the spec prefers. With ``observability="full"`` it reads the next element from the twin's
``remaining_sequence`` instead. ``pose_code`` is not implemented for them: without ``hold_arm`` the memoryless
policy still guesses (an under-estimate of a bound the tasks declare as 1).

The spatial tasks (RestorePlace, WhereHidden): ``perfect`` keeps the place the ``cue`` channel showed (x, y) and
acts on it: RestorePlace picks the block up wherever it now is and sets it down with its centre on the place;
WhereHidden touches the cup whose row's place is nearest to it. ``memoryless`` acts on the Bayes guess at the go
lamp and keeps it as a motor plan: RestorePlace sets the block down at the inset corner of the spawn box (``tolerance``
in from its edges) farthest from where the block now is (given that place the original one is uniform outside the
``min_move`` disc around it, so every point whose tolerance disc lies in that region is an equally good guess, and
that corner is one whenever any is; see the task sheet for the bound); WhereHidden touches a uniformly drawn row
(seeded; every cup is equally likely). With ``observability="full"`` both read the place from the current ``cue``.
``pose_code`` is not implemented for them (without ``hold_arm`` the memoryless policy still guesses).

The capacity tasks (MultiCueTouch, PairRecall): ``perfect`` keeps what the ``cue`` channel showed while it was on,
MultiCueTouch the set of lit colours (touched one after another, in colour order, each where its pad now is),
PairRecall each lit pad's place with its colour (at the go lamp it touches the pad nearest to the place of the
queried colour). ``memoryless`` draws its guess at the go lamp (seeded) and keeps it as a motor plan:
MultiCueTouch a uniform set of ``num_cued`` colours (touched in the drawn order; keeping the plan and the pads
already touched is more than a strictly reactive policy could, so its success, exactly ``1 / C(num_pads,
num_cued)`` times the motor success, over-estimates the bound, as the spec prefers), PairRecall a uniform pad. With
``observability="full"`` both read the current ``cue``: the lit pads still to touch, or every pad's colour.
``pose_code`` is not implemented for them (without ``hold_arm`` the memoryless policy still guesses).

ShellGame (object memory): ``perfect`` keeps the ball's place from the ``cue`` channel and, at every later step,
moves it to the cup nearest to it in the current observation (a swapping cup moves less than half the distance
between cups per step, so that is the ball's cup: tracking by continuity); at the go lamp it touches that cup.
``memoryless`` touches a uniformly drawn row (seeded). With ``observability="full"`` it reads the place from the
current ``cue``. ``pose_code`` is not implemented (without ``hold_arm`` the memoryless policy still guesses).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from chronotope.envs.robot.tasks.capacity import PAD_TOP as CAPACITY_PAD_TOP
from chronotope.envs.robot.tasks.colour_sequence import PAD_TOP
from chronotope.envs.robot.tasks.common import BLOCK_HALF, SPAWN_HIGH, SPAWN_LOW
from chronotope.envs.robot.tasks.count_press import BUTTON_TOP
from chronotope.envs.robot.tasks.multi_cue_touch import MultiCueTouchConfig
from chronotope.envs.robot.tasks.restore_place import RestorePlaceConfig
from chronotope.envs.robot.tasks.where_hidden import CUP_TOP

Obs = dict[str, np.ndarray]
Script = Generator[np.ndarray, Obs, None]

ORACLE_KINDS = ("random", "memoryless", "perfect")
MAX_STEP = 0.03
"""Must match the env's ``max_ee_step`` (the default)."""
TCP_TO_TIP = 0.015
"""The tool centre point sits this far (m) above the fingertips."""
HOME_XY = np.array([0.4, 0.0])
"""Nominal xy (m) of the tool centre point at the home joints (``arm_constants.HOME_QPOS``); the reset noise moves
it by < 1 cm."""
POSE_CODE_SPEED = 0.6
"""CueRecallPick ``pose_code``: action magnitude while the cue is lit (x 3 cm per step, in the colour's direction)."""
POSE_CODE_SPAN = 0.27
"""CountPress ``pose_code``: hand travel (m, along +y) that ``max_count`` blinks write; n blinks write n / max_count
of it."""
SEQUENCE_TASKS = ("ButtonSequence", "ColourSequence")
HOVER_Z = 0.09
"""Height (m) of the tool centre point while travelling between buttons or pads (fingertips 7.5 cm up)."""
SPATIAL_TASKS = ("RestorePlace", "WhereHidden")
CUP_HOVER_Z = 0.12
"""WhereHidden: height (m) of the tool centre point over the chosen cup before going down (cup tops at 6 cm)."""
PLACE_TOL = 0.003
"""RestorePlace: how close (m, xy) the carried block's centre gets to the place before it is lowered."""
CAPACITY_TASKS = ("MultiCueTouch", "PairRecall")
OBJECT_TASKS = ("ShellGame",)


def _toward(obs: Obs, p: np.ndarray, grip: float, gain: float = 0.5) -> np.ndarray:
    # The env integrates deltas into a target that the arm reaches about one step later; a proportional gain
    # of 1 on that integrator would oscillate (poles on the unit circle), 0.5 settles quickly.
    a = np.zeros(4, dtype=np.float32)
    a[:3] = np.clip(gain * (p - obs["ee_pos"]) / MAX_STEP, -1.0, 1.0)
    a[3] = grip
    return a


def _move(obs: Obs, p: np.ndarray, grip: float, tol: float, max_steps: int = 40) -> Script:
    """Yields actions towards ``p`` until within ``tol`` (m) or ``max_steps``; returns the last obs."""
    for _ in range(max_steps):
        if np.linalg.norm(p - obs["ee_pos"]) < tol:
            break
        obs = yield _toward(obs, p, grip)
    return obs


def _hold(obs: Obs, p: np.ndarray | None, grip: float, steps: int) -> Script:
    for _ in range(steps):
        target = obs["ee_pos"] if p is None else p
        obs = yield _toward(obs, target, grip)
    return obs


def _pick(obs: Obs, pos_fn, lift: float) -> Script:
    """Top-down grasp of the block whose position ``pos_fn(obs)`` returns, then lift by ``lift`` (m)."""
    obs = yield from _move(obs, pos_fn(obs) + [0, 0, 0.1], -1.0, 0.015)
    obs = yield from _move(obs, pos_fn(obs) + [0, 0, 0.005], -1.0, 0.008, max_steps=20)
    obs = yield from _hold(obs, pos_fn(obs) + [0, 0, 0.005], 1.0, 5)
    up = obs["ee_pos"] + [0, 0, lift]
    obs = yield from _move(obs, up, 1.0, 0.01)
    return obs


class Oracle:
    """Scripted policy for one task id.

    Args:
        task: ``Reach``, ``PickPlace``, ``CueRecallPick``, ``CountPress``, ``ButtonSequence``,
            ``ColourSequence``, ``RestorePlace``, ``WhereHidden``, ``MultiCueTouch``, ``PairRecall`` or
            ``ShellGame`` (or a full id containing one).
        memory: keep the cue (perfect memory) or forget it every step (memoryless; guesses at decision time unless
            the current observation shows the cue, as in the ``full`` twin).
        seed: seed of the guessing generator (re-seeded per episode by :meth:`reset` when given a seed).
        cfg: the task's config (``env.unwrapped.cfg``): the candidate count (``num_colors`` / ``max_count``),
            blink timing, sequence ``length`` and ``repeats``, RestorePlace's ``tolerance``, MultiCueTouch's
            ``num_cued`` that the guesses and ``pose_code`` use; the defaults when None.
        pose_code: memoryless only: write the cue into the hand pose while it is lit and read it back from the
            current observation at the response (only possible without ``hold_arm``; see the module doc).

    Attributes:
        decision_steps: sequential tasks: the observation index (steps since reset) at which the item of each
            element was chosen, in order; spatial tasks: every observation index whose action used the place
            (what ``cue_to_query_span`` is measured against); capacity tasks and ShellGame: the observation index
            at which the pad (cup) of each answer was chosen, in order.
    """

    def __init__(
        self, task: str, memory: bool = True, seed: int | None = None, cfg: Any = None, pose_code: bool = False
    ):
        names = ("CueRecallPick", "PickPlace", "CountPress", "Reach", *SEQUENCE_TASKS, *SPATIAL_TASKS)
        names += (*CAPACITY_TASKS, *OBJECT_TASKS)
        found = [n for n in names if n in task]
        if not found:
            raise ValueError(f"no oracle for task {task!r}; expected one of {names}")
        self.task = found[0]
        self.memory = memory
        self.pose_code = bool(pose_code) and not memory
        self.max_count = int(getattr(cfg, "max_count", 5))
        self.blink_on = int(getattr(cfg, "blink_on", 3))
        self.length = int(getattr(cfg, "length", 3))
        self.repeats = self.task == "ColourSequence" and bool(getattr(cfg, "repeats", True))
        self.tolerance = float(getattr(cfg, "tolerance", RestorePlaceConfig.tolerance))
        self.num_cued = int(getattr(cfg, "num_cued", MultiCueTouchConfig.num_cued))
        self.rng = np.random.default_rng(seed)
        self._script: Script | None = None

    def reset(self, obs: Obs, seed: int | None = None) -> None:
        """Starts an episode from its first observation; ``seed`` re-seeds the guessing generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        # cued colour / blink count / sequence (list) / place (xy) / cued set / (place, colour) pairs, when known
        self.remembered: Any = None
        self._blinks = 0
        self._lamp_was_on = False
        self._shown: list[int] = []  # sequential tasks: the elements seen so far
        self._plan: np.ndarray | None = None  # sequential, spatial and capacity tasks, memoryless: the guess
        self._done: list[int] = []  # MultiCueTouch: the colours touched so far (a motor record, not the cue)
        self._obs_index = -1
        self.decision_steps: list[int] = []
        self._script = getattr(self, f"_script_{self.task}")(obs)
        self._first = True

    def _observe_cue(self, obs: Obs) -> None:
        if not self.memory:  # memoryless: wipe everything the cue channel ever said
            self.remembered, self._blinks, self._lamp_was_on, self._shown = None, 0, False, []
        cue = obs.get("cue")
        if cue is None:
            return
        if self.task in SPATIAL_TASKS:
            if cue[2] > 0.5:  # (x, y, shown)
                self.remembered = cue[:2].astype(float)
        elif self.task in SEQUENCE_TASKS:
            lit = bool(cue.max() > 0.5)
            if lit and not self._lamp_was_on and obs["phase"][0] > 0.5:  # the twin lights items later on too
                self._shown.append(int(np.argmax(cue)))
            self._lamp_was_on = lit
            self.remembered = list(self._shown) or None
        elif self.task == "MultiCueTouch":
            if cue.max() > 0.5:  # the lit pads' colours (in the twin, those still to touch)
                self.remembered = set(np.flatnonzero(cue > 0.5).tolist())
        elif self.task == "PairRecall":
            if cue.max() > 0.5:  # each lit pad's place and colour (rows: the current object_pose order)
                xy = obs["object_pose"][:, :2].astype(float)
                self.remembered = [(xy[r], int(np.argmax(cue[r]))) for r in range(len(cue))]
        elif self.task == "ShellGame":
            if cue[2] > 0.5:  # (x, y, shown)
                self.remembered = cue[:2].astype(float)
            elif self.remembered is not None:  # follow the ball's cup: the cup nearest to where it was a step ago
                xy = obs["object_pose"][:, :2].astype(float)
                self.remembered = xy[int(np.argmin(np.linalg.norm(xy - self.remembered, axis=1)))]
        elif self.task == "CueRecallPick":
            if cue.max() > 0.5:
                self.remembered = int(np.argmax(cue))
        elif "target_count" in obs:  # the full-observability twin shows n
            self.remembered = int(np.argmax(obs["target_count"])) + 1
        else:
            on = bool(cue[0] > 0.5)
            if on and not self._lamp_was_on:
                self._blinks += 1
            self._lamp_was_on = on
            self.remembered = self._blinks if self._blinks > 0 else None

    def act(self, obs: Obs) -> np.ndarray:
        """Action [4] for ``obs``; call :meth:`reset` with the first observation of each episode."""
        if self._script is None:
            raise RuntimeError("call reset(obs) before act(obs)")
        self._observe_cue(obs)
        self._obs_index += 1
        try:
            if self._first:
                self._first = False
                return next(self._script)
            return self._script.send(obs)
        except StopIteration:
            self._script = _hold_forever(obs)
            return next(self._script)

    # ---------------------------------------------------------------------------------------- scripts
    def _script_Reach(self, obs: Obs) -> Script:
        while True:
            obs = yield _toward(obs, obs["goal"].astype(float), -1.0)

    def _script_PickPlace(self, obs: Obs) -> Script:
        obs = yield from _pick(obs, lambda o: o["object_pose"][0, :3].astype(float), 0.08)
        while True:
            obs = yield _toward(obs, obs["goal"].astype(float), 1.0)

    def _script_CueRecallPick(self, obs: Obs) -> Script:
        home = obs["ee_pos"].astype(float)
        k_n = len(obs["cue"])
        angles = 2 * np.pi * np.arange(k_n) / k_n
        while obs["phase"][2] < 0.5:  # wait out cue and delay (the held arm ignores these actions)
            a = _toward(obs, home, -1.0)
            if self.pose_code:  # reactive: move in the lit colour's direction, stand still once it is off
                a[:3] = 0.0
                if obs["cue"].max() > 0.5:
                    ang = angles[int(np.argmax(obs["cue"]))]
                    a[:2] = POSE_CODE_SPEED * np.array([np.cos(ang), np.sin(ang)])
            obs = yield a
        if self.remembered is not None:
            k = self.remembered
        elif self.pose_code:  # read the colour back from the direction the hand moved in
            d = obs["ee_pos"][:2].astype(float) - HOME_XY
            diff = np.angle(np.exp(1j * (np.arctan2(d[1], d[0]) - angles)))
            k = int(np.argmin(np.abs(diff)))
        else:
            k = int(self.rng.integers(k_n))
        obs = yield from _pick(obs, lambda o: o["object_pose"][k, :3].astype(float), 0.15)
        yield from _hold_forever(obs)

    def _script_CountPress(self, obs: Obs) -> Script:
        button = obs["object_pose"][0, :3].astype(float)
        pad = obs["object_pose"][1, :3].astype(float)
        above = np.array([button[0], button[1], 0.09])
        step = POSE_CODE_SPAN / (self.max_count * self.blink_on)  # m per lit step (pose_code)
        while obs["phase"][1] < 0.5:  # hover above the button while the lamp blinks (ignored when held)
            a = _toward(obs, above, 1.0)
            if self.pose_code:  # reactive: move along +y while the lamp is lit, stand still while it is dark
                a[:3] = 0.0
                if obs["cue"][0] > 0.5:
                    a[1] = step / MAX_STEP
            obs = yield a
        if self.remembered is not None:
            n = self.remembered
        elif self.pose_code:  # read the count back from how far the hand moved
            n = int(np.clip(np.rint((obs["ee_pos"][1] - HOME_XY[1]) / (step * self.blink_on)), 1, self.max_count))
        else:
            n = int(self.rng.integers(1, self.max_count + 1))
        obs = yield from _move(obs, above, 1.0, 0.01)
        down = np.array([button[0], button[1], BUTTON_TOP + TCP_TO_TIP - 0.011])
        for _ in range(n):
            obs = yield from _move(obs, down, 1.0, 0.004, max_steps=15)
            obs = yield from _move(obs, above, 1.0, 0.01, max_steps=15)
        obs = yield from _move(obs, np.array([pad[0], pad[1], 0.09]), 1.0, 0.015)
        while True:
            obs = yield _toward(obs, np.array([pad[0], pad[1], 0.0]), 1.0)

    def _sequence_length(self, obs: Obs) -> int:
        if "remaining_sequence" in obs:
            return len(obs["remaining_sequence"])
        if isinstance(self.remembered, list):
            return len(self.remembered)
        return self.length

    def _sequence_item(self, obs: Obs, j: int) -> int:
        """Item (button, colour) of element ``j``: read from the twin, recalled, or the committed guess."""
        self.decision_steps.append(self._obs_index)
        if "remaining_sequence" in obs:  # the twin shows what is left; row 0 is the next element
            return int(np.argmax(obs["remaining_sequence"][0]))
        if isinstance(self.remembered, list) and j < len(self.remembered):
            return self.remembered[j]
        if self._plan is None:  # the guess is drawn once, at the first decision, and then kept as a motor plan
            n = len(obs["cue"])
            self._plan = self.rng.integers(n, size=self.length) if self.repeats else self.rng.permutation(n)
        return int(self._plan[j])

    def _wait_for_go(self, obs: Obs) -> Script:
        home = obs["ee_pos"].astype(float)
        while obs["phase"][2] < 0.5:  # wait out cue and delay (the held arm ignores these actions)
            obs = yield _toward(obs, home, 1.0)
        return obs

    def _answer(self, obs: Obs, xy: np.ndarray, z_down: float) -> Script:
        """Hovers over ``xy``, goes down towards ``z_down`` until the answer registers (``progress`` grows; a wrong
        one ends the episode instead), then back up to the hover height."""
        above = np.array([xy[0], xy[1], HOVER_Z])
        down = np.array([xy[0], xy[1], z_down])
        obs = yield from _move(obs, above, 1.0, 0.01)
        done = obs["progress"][0]
        for _ in range(15):
            if obs["progress"][0] > done:
                break
            obs = yield _toward(obs, down, 1.0)
        obs = yield from _move(obs, above, 1.0, 0.01, max_steps=15)
        return obs

    def _script_ButtonSequence(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        for j in range(self._sequence_length(obs)):
            k = self._sequence_item(obs, j)
            # aim past the cap's full travel (1.2 cm), so the fingertips reach the press depth wherever the button is
            z_down = BUTTON_TOP + TCP_TO_TIP - 0.014
            obs = yield from self._answer(obs, obs["object_pose"][k, :2].astype(float), z_down)
        yield from _hold_forever(obs)

    def _script_ColourSequence(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        for j in range(self._sequence_length(obs)):
            colour = self._sequence_item(obs, j)
            row = int(np.argmax(obs["pad_colour"][:, colour]))  # the pads do not move during the response
            z_down = PAD_TOP + TCP_TO_TIP - 0.005
            obs = yield from self._answer(obs, obs["object_pose"][row, :2].astype(float), z_down)
        yield from _hold_forever(obs)

    def _place(self, obs: Obs) -> np.ndarray:
        """Spatial tasks: the place xy [2] to act on (recalled, read from the twin's cue, or the committed guess)."""
        self.decision_steps.append(self._obs_index)
        if self.remembered is not None:
            return self.remembered
        if self._plan is None:  # the guess is drawn once, at the go lamp, and then kept as a motor plan
            if self.task == "RestorePlace":  # the inset corner farthest from where the block now is
                lo, hi = SPAWN_LOW + self.tolerance, SPAWN_HIGH - self.tolerance
                corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
                block = obs["object_pose"][0, :2].astype(float)
                self._plan = corners[int(np.argmax(np.linalg.norm(corners - block, axis=1)))]
            else:  # WhereHidden: a uniformly drawn cup's place
                self._plan = obs["object_pose"][int(self.rng.integers(len(obs["object_pose"]))), :2].astype(float)
        return self._plan

    def _script_RestorePlace(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        block = lambda o: o["object_pose"][0, :3].astype(float)  # noqa: E731
        self._place(obs)  # a guess is made where the block still shows where it was moved to
        obs = yield from _pick(obs, block, 0.08)
        carry_z = float(obs["ee_pos"][2])
        for _ in range(40):  # carry: the block's centre over the place (the grasp offset is whatever it is)
            off = self._place(obs) - block(obs)[:2]
            if np.linalg.norm(off) < PLACE_TOL:
                break
            obs = yield _toward(obs, np.array([*(obs["ee_pos"][:2] + off), carry_z]), 1.0)
        while True:  # lower it there, still centring it; the env ends the episode at the set-down
            off = self._place(obs) - block(obs)[:2]
            down = obs["ee_pos"][2] - (block(obs)[2] - BLOCK_HALF) - 0.01
            obs = yield _toward(obs, np.array([*(obs["ee_pos"][:2] + off), down]), 1.0)

    def _script_WhereHidden(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        place = self._place(obs)  # the cup is chosen at the go lamp and followed by its row (the rows stay put)
        row = int(np.argmin(np.linalg.norm(obs["object_pose"][:, :2] - place, axis=1)))
        xy = obs["object_pose"][row, :2].astype(float)
        obs = yield from _move(obs, np.array([*xy, CUP_HOVER_Z]), 1.0, 0.01)
        while True:  # down onto the cup's top; the env ends the episode at the touch
            obs = yield _toward(obs, np.array([*xy, CUP_TOP + TCP_TO_TIP - 0.01]), 1.0)

    def _set_item(self, obs: Obs) -> int | None:
        """MultiCueTouch: the colour of the next pad to touch (recalled, read from the twin's lit pads, or the
        committed guess), None once every chosen colour has been touched."""
        if self.remembered is not None:
            chosen = sorted(self.remembered)
        else:
            if self._plan is None:  # the guess is drawn once, at the go lamp, and then kept as a motor plan
                self._plan = self.rng.permutation(len(obs["cue"]))[: self.num_cued]
            chosen = [int(c) for c in self._plan]
        rest = [c for c in chosen if c not in self._done]
        if not rest:
            return None
        self.decision_steps.append(self._obs_index)
        return rest[0]

    def _script_MultiCueTouch(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        while (colour := self._set_item(obs)) is not None:
            row = int(np.argmax(obs["pad_colour"][:, colour]))  # the pads do not move during the response
            z_down = CAPACITY_PAD_TOP + TCP_TO_TIP - 0.005
            obs = yield from self._answer(obs, obs["object_pose"][row, :2].astype(float), z_down)
            self._done.append(colour)
        yield from _hold_forever(obs)

    def _script_PairRecall(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        self.decision_steps.append(self._obs_index)
        poses = obs["object_pose"][:, :2].astype(float)
        if self.remembered is not None:  # the pad nearest to where the queried colour was shown
            query = int(np.argmax(obs["query"]))
            place = next(xy for xy, colour in self.remembered if colour == query)
            row = int(np.argmin(np.linalg.norm(poses - place, axis=1)))
        else:  # a uniformly drawn pad
            row = int(self.rng.integers(len(poses)))
            self._plan = poses[row].copy()
        xy = poses[row]  # the pads stay put: the chosen pad keeps its row
        obs = yield from _move(obs, np.array([*xy, HOVER_Z]), 1.0, 0.01)
        while True:  # down onto the pad; the env ends the episode at the touch
            obs = yield _toward(obs, np.array([*xy, CAPACITY_PAD_TOP + TCP_TO_TIP - 0.005]), 1.0)

    def _script_ShellGame(self, obs: Obs) -> Script:
        obs = yield from self._wait_for_go(obs)
        self.decision_steps.append(self._obs_index)
        poses = obs["object_pose"][:, :2].astype(float)
        if self.remembered is not None:  # the cup the ball was followed to (or that the twin shows)
            row = int(np.argmin(np.linalg.norm(poses - self.remembered, axis=1)))
        else:  # a uniformly drawn cup
            row = int(self.rng.integers(len(poses)))
            self._plan = poses[row].copy()
        xy = poses[row]  # the cups stay put and keep their rows during the response
        obs = yield from _move(obs, np.array([*xy, CUP_HOVER_Z]), 1.0, 0.01)
        while True:  # down onto the cup's top; the env ends the episode at the touch
            obs = yield _toward(obs, np.array([*xy, CUP_TOP + TCP_TO_TIP - 0.01]), 1.0)


def _hold_forever(obs: Obs) -> Script:
    p = obs["ee_pos"].astype(float)
    while True:
        obs = yield _toward(obs, p, 1.0)


class RandomPolicy:
    """Uniform random actions from the env's action space (re-seeded per episode by :meth:`reset`)."""

    def __init__(self, action_space, seed: int | None = None):
        self.action_space = action_space
        self.action_space.seed(seed)

    def reset(self, obs: Obs, seed: int | None = None) -> None:
        if seed is not None:
            self.action_space.seed(seed)

    def act(self, obs: Obs) -> np.ndarray:
        return self.action_space.sample()


def make_policy(env, kind: str, seed: int = 0):
    """Reference policy ``kind`` (``random``, ``memoryless``, ``perfect``) for a robot env (wrapped or not)."""
    if kind not in ORACLE_KINDS:
        raise ValueError(f"unknown oracle kind {kind!r}; valid: {ORACLE_KINDS}")
    u = env.unwrapped
    if kind == "random":
        return RandomPolicy(env.action_space, seed)
    cfg = u.cfg
    if cfg.obs_mode != "state" or cfg.control_mode != "ee_delta":
        raise ValueError(
            f"the scripted oracles need obs_mode='state' and control_mode='ee_delta', "
            f"got obs_mode={cfg.obs_mode!r}, control_mode={cfg.control_mode!r}"
        )
    memory = kind == "perfect"
    # The best reactive policy: a uniform guess when the arm is held, the hand-pose code when it is free.
    pose_code = not memory and not getattr(cfg, "hold_arm", True)
    return Oracle(type(u).__name__, memory=memory, seed=seed, cfg=cfg, pose_code=pose_code)


def run_episode(env, oracle, seed: int, max_steps: int = 1000, policy_seed: int | None = None) -> dict:
    """Runs one episode of ``oracle`` in ``env`` (a gymnasium env, time-limited or not); returns its last info
    plus ``steps`` and ``return``. ``policy_seed`` re-seeds the policy's generator for this episode."""
    obs, info = env.reset(seed=seed)
    oracle.reset(obs, seed=policy_seed)
    ret, steps = 0.0, 0
    for steps in range(1, max_steps + 1):  # noqa: B007
        obs, r, term, trunc, info = env.step(oracle.act(obs))
        ret += r
        if term or trunc:
            break
    return {**info, "steps": steps, "return": ret}


# The episode's hidden variables, not measures of the policy.
_NOT_AVERAGED = ("cued_color", "target_count", "sequence", "hidden_cup", "query", "ball_cup")


def policy_seed(episode_seed: int) -> int:
    """Seed of the policy's generator for an episode: derived from the episode seed but a different stream than
    the env's (``env.reset(seed=s)`` and ``default_rng(s)`` would be the same PCG64 stream)."""
    return int(np.random.SeedSequence([episode_seed, 0x0AC1E]).generate_state(1)[0])


def evaluate(env_id: str, kind: str, episodes: int, seed: int = 0, num_envs: int = 1, **env_kwargs) -> dict:
    """Runs reference policy ``kind`` ("random", "memoryless", "perfect") on ``episodes`` seeded episodes of a
    robot task; returns the mean final measures.

    Episode i uses env seed ``seed + i`` and policy seed ``policy_seed(seed + i)`` (the same episode whatever ran
    before), run by :func:`chronotope.envs.rollout.run_episodes` on a ``SyncVectorEnv`` of ``num_envs`` arms (one
    policy each), so the results do not depend on ``num_envs``.
    ``env_kwargs`` go to ``gymnasium.make`` (e.g. ``observability="full"`` for the twin, ``num_colors=5``). The
    scripted oracles need ``obs_mode="state"`` (the default) and ``ee_delta`` control.

    Returns: ``success`` (rate), ``return`` (mean undiscounted), ``steps`` (mean), every other numeric measure of
    the final info averaged (``wrong_lift``, ``early_lift``, ``presses``, ...), and ``episodes``.
    """
    import gymnasium as gym

    from chronotope.envs.robot.registration import register_robot_envs

    if kind not in ORACLE_KINDS:
        raise ValueError(f"unknown oracle kind {kind!r}; valid: {ORACLE_KINDS}")
    if episodes < 1:
        raise ValueError(f"episodes={episodes!r}; expected >= 1")
    register_robot_envs()
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from chronotope.envs.rollout import obs_row, run_episodes

    venv = SyncVectorEnv(
        [lambda: gym.make(env_id, **env_kwargs) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    try:
        policies = [make_policy(e, kind, seed) for e in venv.envs]

        def act(obs, starts, seeds):
            for i in np.flatnonzero(starts):  # unrecorded episodes (seed None) keep the policy's generator
                policies[i].reset(obs_row(obs, i), seed=None if seeds[i] is None else policy_seed(seeds[i]))
            return np.stack([p.act(obs_row(obs, i)) for i, p in enumerate(policies)])

        records = run_episodes(venv, act, [seed + i for i in range(episodes)])
    finally:
        venv.close()
    done = [{**r.info, "steps": r.steps, "return": r.ret} for r in records]
    keys = [
        k
        for k, v in done[0].items()
        if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))
        and not k.startswith("reward_")
        and k not in _NOT_AVERAGED
    ]
    out = {k: float(np.mean([d[k] for d in done])) for k in keys}
    out["episodes"] = len(done)
    return out
