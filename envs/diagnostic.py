"""MemoryLength: the smallest task that needs memory, for checking that a trainer carries memory gradients.

After bsuite's ``memory_len``: a cue is shown at the first step only, ``delay`` blank steps follow, then a query
step asks for the cue. It has no navigation, no rendering and no way around memory, so it isolates the learning
problem of a recurrent or attention core trained by RL: a memoryless policy scores ``1 / num_cues`` in
expectation, a perfect memory 1, and how many environment steps a trainer needs to get from one to the other (and
at which ``delay`` it stops getting there) is a property of the trainer and the core, not of perception.

    env = gymnasium.make("chronotope/MemoryLength-v0", delay=30, num_cues=4)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MemoryLengthEnv(gym.Env):
    """Task sheet.

    Description: at step 0 the observation shows one of ``num_cues`` cues (one-hot); steps 1..``delay`` show only
    a "wait" flag; step ``delay + 1`` shows a "query" flag, and the action taken there answers (action k = cue k).
    The episode ends after the answer: reward 1 if it names the cue, 0 otherwise. Actions before the query are
    ignored (and cost nothing).

    Memory demand: the cue is uniform and independent of everything else the agent sees, so a memoryless policy
    succeeds with probability exactly ``1 / num_cues`` (the memoryless bound), the perfect-memory oracle always.
    Cue-to-query span (:meth:`cue_to_query_span`): ``delay + 1`` steps. Observability twin
    (``observability="full"``): the cue stays in the observation at every step, so no memory is needed.

    Observations: float32 [num_cues + 2]: the cue one-hot (step 0 only; every step in the twin), the wait flag,
    the query flag. Actions: ``Discrete(num_cues)``. Info: ``success`` (at the answer step), ``memory_slot`` (the
    cue one-hot at every step: the auxiliary label of what must be remembered), ``cue``.

    Args:
        delay: blank steps between the cue and the query (>= 0).
        num_cues: number of possible cues (>= 2).
        observability: "partial" (the memory task) or "full" (the twin).
    """

    metadata = {"render_modes": []}

    def __init__(self, delay: int = 10, num_cues: int = 2, observability: str = "partial") -> None:
        if not isinstance(delay, (int, np.integer)) or isinstance(delay, bool) or delay < 0:
            raise ValueError(f"delay must be an integer >= 0, got {delay!r}")
        if not isinstance(num_cues, (int, np.integer)) or isinstance(num_cues, bool) or num_cues < 2:
            raise ValueError(f"num_cues must be an integer >= 2, got {num_cues!r}")
        if observability not in ("partial", "full"):
            raise ValueError(f"observability must be 'partial' or 'full', got {observability!r}")
        self.delay, self.num_cues, self.observability = int(delay), int(num_cues), observability
        self.observation_space = spaces.Box(0.0, 1.0, (self.num_cues + 2,), np.float32)
        self.action_space = spaces.Discrete(self.num_cues)
        self.t = 0
        self.cue = 0

    def cue_to_query_span(self) -> int:
        """Steps from the cue's observation to the answer that needs it."""
        return self.delay + 1

    def _obs(self) -> np.ndarray:
        o = np.zeros(self.num_cues + 2, np.float32)
        if self.t == 0 or self.observability == "full":
            o[self.cue] = 1.0
        if self.t > 0:  # the wait flag, or the query flag at the answer step
            o[self.num_cues + (self.t == self.delay + 1)] = 1.0
        return o

    def _info(self, success: float = 0.0) -> dict:
        return {"success": success, "cue": self.cue, "memory_slot": np.eye(self.num_cues)[self.cue]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.cue = int(self.np_random.integers(self.num_cues))
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):  # integers and integer numpy scalars of any width pass
            raise ValueError(f"invalid action {action!r}: expected an integer in 0..{self.num_cues - 1}")
        if self.t == self.delay + 1:
            success = float(int(action) == self.cue)
            self.t += 1
            return np.zeros(self.num_cues + 2, np.float32), success, True, False, self._info(success)
        self.t += 1
        return self._obs(), 0.0, False, False, self._info()


def memoryless_bound(num_cues: int) -> float:
    """Best success of a policy that sees only the current observation: a guess among the cues."""
    return 1.0 / num_cues
