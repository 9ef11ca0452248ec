"""chronotope/CountPress-v0: count a lamp's blinks, press a button that many times, then touch a done pad."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot.env import RobotEnv
from chronotope.envs.robot.tasks.common import MemoryTaskConfig, sample_separated_xy

PHASES = ("cue", "response")
BUTTON_TRAVEL = 0.012
"""Button cap travel (m) from rest to its lower stop."""
BUTTON_TOP = 0.04
"""Height (m) of the cap's top at rest."""
CUE_ON_RGBA = (1.0, 0.95, 0.6, 1.0)
REACH_STEPS = 10
PRESS_STEPS = 8
"""Pace of the reference oracle, used by ``cue_to_query_span``: it leaves the button for the pad at most
``REACH_STEPS + n * PRESS_STEPS`` steps after the go lamp (measured over 40 default episodes: at most 16, 26, 29,
34, 46 steps for n = 1..5)."""


def add_button(spec: mujoco.MjSpec, suffix: str, xy: tuple[float, float], cap_rgba) -> None:
    """Adds a push button on the table at ``xy``: a static housing (body ``button_base<suffix>``, geom
    ``button_housing<suffix>``) and its spring-loaded cap (body, slide joint and geom ``button<suffix>``), whose top
    rests at :data:`BUTTON_TOP` and travels :data:`BUTTON_TRAVEL` down to its stop."""
    housing = spec.worldbody.add_body(name=f"button_base{suffix}", pos=[*xy, 0.0])
    housing.add_geom(
        name=f"button_housing{suffix}",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.035, 0.012, 0],
        pos=[0, 0, 0.012],
        rgba=[0.2, 0.2, 0.22, 1],
        contype=0,
        conaffinity=0,
    )
    cap = housing.add_body(name=f"button{suffix}", pos=[0, 0, BUTTON_TOP - 0.01])
    # A spring-loaded slide: rest at 0, lower stop at -travel; stiffness ~ a few newtons at full press.
    cap.add_joint(
        name=f"button{suffix}",
        type=mujoco.mjtJoint.mjJNT_SLIDE,
        axis=[0, 0, 1],
        range=[-BUTTON_TRAVEL, 0.0],
        limited=mujoco.mjtLimited.mjLIMITED_TRUE,
        stiffness=300.0,
        springref=0.0,
        damping=3.0,
    )
    cap.add_geom(
        name=f"button{suffix}",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.025, 0.01, 0],
        mass=0.02,
        rgba=list(cap_rgba),
        contype=1,
        conaffinity=3,
    )


@dataclass
class CountPressConfig(MemoryTaskConfig):
    """CountPress options (plus :class:`MemoryTaskConfig`: ``observability``, ``hold_arm``, and
    :class:`RobotEnvConfig`)."""

    max_count: int = 5
    """n is uniform in 1..max_count (<= 5); chance level is 1 / max_count."""
    blink_on: int = 3
    """Env steps the lamp stays lit per blink."""
    blink_off: int = 3
    """Env steps dark after each blink. The cue phase always lasts max_count * (on + off) steps, so its length
    does not give n away."""
    press_depth: float = 0.007
    """Cap displacement (m) that registers a press; it re-arms once the cap is back above half this depth."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.max_count, int) and 1 <= self.max_count <= 5):
            raise ValueError(f"max_count={self.max_count!r}; expected an int in [1, 5]")
        for name in ("blink_on", "blink_off"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name}={v!r}; expected a positive int")
        if not 0.002 <= self.press_depth < BUTTON_TRAVEL:
            raise ValueError(f"press_depth={self.press_depth!r}; expected in [0.002, {BUTTON_TRAVEL}) m")


class CountPressEnv(RobotEnv):
    """**CountPress** (temporal memory): the cue panel blinks n times (n in 1..``max_count``); the arm must then
    press the button exactly n times and touch the green done pad. With ``hold_arm`` (default) the arm is held at
    its start pose during the cue phase (the agent's actions are ignored), so it can neither press along with the
    blinks (the button would count for it) nor park its hand somewhere that encodes n.

    Randomisations: n uniform in 1..max_count; button and pad xy uniform in x [0.35, 0.6], y [-0.2, 0.2] m,
    >= 0.15 m apart; home joints +- noise.
    Observations (``state``): base keys + ``object_pose`` [2, 7] (button cap, done pad), ``cue`` [1] = 1 while
        the lamp is lit, ``phase`` [2] one-hot (cue, response). The press count is *not* observed: the agent
        must count its own presses too. ``rgbd`` withholds ``object_pose`` and ``cue``. The ``full`` twin adds
        ``target_count`` [max_count] one-hot of n and ``presses`` [1] (presses registered so far) for the whole
        episode, in both observation modes (no pixel shows a count).
    Actions: see :class:`RobotEnvConfig`.
    Success: touching the done pad (a finger pad in contact with it) with exactly n presses registered; touching
        it with any other count ends the episode as a failure. Presses count from the first step on (none can
        happen while the arm is held).
    Reward terms: ``success`` = +1 on success; ``failure`` = -1 on a wrong count at the pad.
    Measures: ``success``, ``presses``, ``target_count``, ``done_touched``, ``phase``.

    Memory demand (the memory-demand spec; references in :func:`chronotope.envs.robot.oracles.evaluate`):
        ``observability="full"`` is the twin: n and the press count are observed at every step, so the task
        needs no memory. ``cue_to_query_span()``: the decision that needs n is leaving the button for the pad
        after the n-th press; n is known at step ``n * (blink_on + blink_off)`` (the dark step where blink n + 1
        would start; at the ``max_count``-th blink's onset when n = ``max_count``), and that decision comes at
        ``cue_len + REACH_STEPS + n * PRESS_STEPS`` at the reference oracle's pace (a slower agent needs more);
        the span is the maximum over n of the difference (0 for the twin, or when ``max_count`` is 1).
        ``controllable()``: from the response phase on with ``hold_arm``, every step without it.
        ``memoryless_bound()``: n is uniform and drawn independently of everything a reactive policy sees in the
        response phase (held arm pose, button and pad poses; the cue phase lasts ``cue_len`` whatever n), and a
        touch of the pad ends the episode, so the press count at the touch is independent of n: success is
        exactly ``1 / max_count`` for any guess (times the motor success). Without ``hold_arm`` the bound is 1
        (press along with the blinks, or encode n in the hand pose; see :class:`MemoryTaskConfig`).
    """

    Config: ClassVar[type] = CountPressConfig
    reward_terms: ClassVar[tuple[str, ...]] = ("success", "failure")
    privileged_keys: ClassVar[tuple[str, ...]] = ("object_pose", "cue")

    def _build(self, spec: mujoco.MjSpec) -> None:
        add_button(spec, "", (0.45, 0.0), [0.9, 0.15, 0.1, 1])
        pad = spec.worldbody.add_body(name="done_pad", pos=[0.45, 0.2, 0.0])
        pad.add_geom(
            name="done_pad",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.045, 0.045, 0.005],
            pos=[0, 0, 0.005],
            rgba=[0.1, 0.75, 0.2, 1],
            contype=1,
            conaffinity=3,
        )

    def _initialize_episode(self) -> None:
        m = self.model
        self.target_count = int(self.np_random.integers(1, self.cfg.max_count + 1))
        button_xy, pad_xy = sample_separated_xy(self.np_random, 2, 0.15)
        # Both bodies are static: moving them means editing the model (this env's own copy).
        m.body_pos[m.body("button_base").id, :2] = button_xy
        m.body_pos[m.body("done_pad").id, :2] = pad_xy
        self._button_qadr = m.joint("button").qposadr[0]
        self._pad_geom = m.geom("done_pad").id
        self.presses = 0
        self._armed = True
        self.done_touched = False

    @property
    def cue_len(self) -> int:
        return self.cfg.max_count * (self.cfg.blink_on + self.cfg.blink_off)

    @property
    def phase(self) -> str:
        return "cue" if self.step_count < self.cue_len else "response"

    def controllable(self) -> bool:
        return not self.cfg.hold_arm or self.phase == "response"

    def cue_to_query_span(self) -> int:
        c = self.cfg
        if c.observability == "full" or c.max_count == 1:
            return 0
        period = c.blink_on + c.blink_off
        spans = []
        for n in range(1, c.max_count + 1):
            known = n * period if n < c.max_count else (n - 1) * period
            spans.append(self.cue_len + REACH_STEPS + n * PRESS_STEPS - known)
        return max(spans)

    def memoryless_bound(self) -> float:
        if self.cfg.observability == "full" or not self.cfg.hold_arm:
            return 1.0
        return 1.0 / self.cfg.max_count

    def cue_lit(self) -> bool:
        t, period = self.step_count, self.cfg.blink_on + self.cfg.blink_off
        return t < self.target_count * period and t % period < self.cfg.blink_on

    def button_depth(self) -> float:
        """Cap displacement below rest (m, >= 0 when pressed)."""
        return float(-self.data.qpos[self._button_qadr])

    def _update_scene(self) -> None:
        # Presses are sampled once per env step (25 Hz); a press takes several steps, so none is missed.
        depth = self.button_depth()
        if self._armed and depth >= self.cfg.press_depth:
            self.presses += 1
            self._armed = False
        elif not self._armed and depth < 0.5 * self.cfg.press_depth:
            self._armed = True
        self.done_touched = self.in_contact(self._pad_geoms, self._pad_geom)
        self.set_cue_rgba(CUE_ON_RGBA if self.cue_lit() else (0.3, 0.3, 0.3, 1.0))
        self.set_go_lamp(self.phase == "response")

    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        out = {
            "object_pose": spaces.Box(-np.inf, np.inf, (2, 7), np.float32),
            "cue": spaces.Box(0.0, 1.0, (1,), np.float32),
            "phase": spaces.Box(0.0, 1.0, (2,), np.float32),
        }
        if self.cfg.observability == "full":
            out["target_count"] = spaces.Box(0.0, 1.0, (self.cfg.max_count,), np.float32)
            out["presses"] = spaces.Box(0.0, np.inf, (1,), np.float32)
        return out

    def _task_obs(self) -> dict[str, np.ndarray]:
        d, m = self.data, self.model
        poses = np.zeros((2, 7))
        for row, body in enumerate(("button", "done_pad")):
            b = m.body(body).id
            poses[row, :3] = d.xpos[b]
            poses[row, 3:] = d.xquat[b]
        phase = np.zeros(2)
        phase[PHASES.index(self.phase)] = 1.0
        out = {"object_pose": poses, "cue": np.array([1.0 if self.cue_lit() else 0.0]), "phase": phase}
        if self.cfg.observability == "full":
            out["target_count"] = np.eye(self.cfg.max_count)[self.target_count - 1]
            out["presses"] = np.array([float(self.presses)])
        return out

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        done = self.done_touched
        success = bool(done and self.presses == self.target_count)
        failure = bool(done and not success)
        terms = {"success": 1.0 if success else 0.0, "failure": -1.0 if failure else 0.0}
        measures = {
            "success": success,
            "presses": self.presses,
            "target_count": self.target_count,
            "done_touched": done,
            "phase": self.phase,
        }
        return done, terms, measures
