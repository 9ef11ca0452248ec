"""Scripted controllers for the robot tasks (``state`` observations, ``ee_delta`` control).

Each oracle sees only observations. ``memory=True`` keeps what the cue channel showed (perfect memory);
``memory=False`` is the same controller with its cue memory wiped before every observation, so at decision
time (cue off) it knows nothing about the cue and guesses uniformly: that is the memoryless baseline.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from chronotope.envs.robot.tasks.count_press import BUTTON_TOP

Obs = dict[str, np.ndarray]
Script = Generator[np.ndarray, Obs, None]

MAX_STEP = 0.03
"""Must match the env's ``max_ee_step`` (the default)."""
TCP_TO_TIP = 0.015
"""The tool centre point sits this far (m) above the fingertips."""


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
        task: ``Reach``, ``PickPlace``, ``CueRecallPick`` or ``CountPress`` (or a full id containing one).
        memory: keep the cue (perfect memory) or forget it every step (memoryless; guesses at decision time).
        seed: seed of the guessing generator.
    """

    def __init__(self, task: str, memory: bool = True, seed: int | None = None):
        names = ("CueRecallPick", "PickPlace", "CountPress", "Reach")
        found = [n for n in names if n in task]
        if not found:
            raise ValueError(f"no oracle for task {task!r}; expected one of {names}")
        self.task = found[0]
        self.memory = memory
        self.rng = np.random.default_rng(seed)
        self._script: Script | None = None

    def reset(self, obs: Obs) -> None:
        self.remembered: int | None = None  # cued colour index / blink count, when known
        self._blinks = 0
        self._lamp_was_on = False
        self._script = getattr(self, f"_script_{self.task}")(obs)
        self._first = True

    def _observe_cue(self, obs: Obs) -> None:
        if not self.memory:  # memoryless: wipe everything the cue channel ever said
            self.remembered, self._blinks, self._lamp_was_on = None, 0, False
        cue = obs.get("cue")
        if cue is None:
            return
        if self.task == "CueRecallPick":
            if cue.max() > 0.5:
                self.remembered = int(np.argmax(cue))
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
        while obs["phase"][2] < 0.5:  # wait out cue and delay
            obs = yield _toward(obs, home, -1.0)
        k = self.remembered if self.remembered is not None else int(self.rng.integers(len(obs["cue"])))
        obs = yield from _pick(obs, lambda o: o["object_pose"][k, :3].astype(float), 0.15)
        yield from _hold_forever(obs)

    def _script_CountPress(self, obs: Obs) -> Script:
        button = obs["object_pose"][0, :3].astype(float)
        pad = obs["object_pose"][1, :3].astype(float)
        above = np.array([button[0], button[1], 0.09])
        while obs["phase"][1] < 0.5:  # hover above the button while the lamp blinks
            obs = yield _toward(obs, above, 1.0)
        n = self.remembered if self.remembered is not None else int(self.rng.integers(1, 6))
        down = np.array([button[0], button[1], BUTTON_TOP + TCP_TO_TIP - 0.011])
        for _ in range(n):
            obs = yield from _move(obs, down, 1.0, 0.004, max_steps=15)
            obs = yield from _move(obs, above, 1.0, 0.01, max_steps=15)
        obs = yield from _move(obs, np.array([pad[0], pad[1], 0.09]), 1.0, 0.015)
        while True:
            obs = yield _toward(obs, np.array([pad[0], pad[1], 0.0]), 1.0)


def _hold_forever(obs: Obs) -> Script:
    p = obs["ee_pos"].astype(float)
    while True:
        obs = yield _toward(obs, p, 1.0)


def run_episode(env, oracle: Oracle, seed: int, max_steps: int = 1000) -> dict:
    """Runs one episode of ``oracle`` in ``env`` (a gymnasium env, time-limited or not); returns its last info
    plus ``steps`` and ``return``."""
    obs, info = env.reset(seed=seed)
    oracle.reset(obs)
    ret, steps = 0.0, 0
    for steps in range(1, max_steps + 1):  # noqa: B007
        obs, r, term, trunc, info = env.step(oracle.act(obs))
        ret += r
        if term or trunc:
            break
    return {**info, "steps": steps, "return": ret}
