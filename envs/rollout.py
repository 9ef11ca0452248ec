"""The one episode-running loop: a policy on a vector env over a fixed, seeded list of episodes.

Every evaluation goes through :func:`iter_episodes` / :func:`run_episodes`: ``chronotope eval`` (an ActorCritic or
an SB3 run), the imitation learner's curve, the reference policies of the memory tasks (nav and arm oracles, and
through them the demo's and the memory-demand table's rows), dataset recording and the experiment scripts.

Episode ``k`` of the list is the env reset with ``seeds[k]``, whichever sub-environment (lane) runs it, so the
records do not depend on the number of lanes. Lanes take the list's next episode when theirs ends (a masked
``reset(seed=..., options={"reset_mask": ...})`` replaces the auto-reset episode), and every episode of the list is
run to its end: taking the first episodes to *finish* would favour short ones (early STOPs). Lanes left without an
episode run on unrecorded until the last recorded one ends.

The vector env is any SAME_STEP auto-resetting Gymnasium vector env (``NavVectorEnv``, map wrappers over it, a
``SyncVectorEnv``); it reports the end of an episode in Gymnasium's layout (:mod:`chronotope.envs.vector_info`).

A policy is a callable ``policy(obs, starts, seeds) -> actions [N]``: ``obs`` the batched observation,
``starts`` bool [N] true where that observation is the first of an episode (memories clear there), ``seeds`` the
env seed of the episode each lane just started (``None`` where ``starts`` is false, or where a lane starts an
unrecorded episode), so a policy can seed its own randomness per episode. Oracles that read the env's state
(``core``) ignore the arguments. An optional observer sees every recorded episode's steps (trajectories, dataset
recording): ``start(episode, lane, obs, info)`` with the episode's first observation and reset info, then
``step(episode, lane, action, reward, terminated, truncated, obs, info)`` per step with the observation and info
after it (the final ones on the last step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from chronotope.envs.vector_info import final_info_row, info_row

Policy = Callable[[Any, np.ndarray, list], np.ndarray]
"""``policy(obs, starts bool [N], seeds list[int | None] [N]) -> actions [N]`` (see the module docstring)."""


class EpisodeObserver(Protocol):
    def start(self, episode: int, lane: int, obs: Any, info: dict[str, Any]) -> None: ...

    def step(
        self,
        episode: int,
        lane: int,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        obs: Any,
        info: dict[str, Any],
    ) -> None: ...


@dataclass
class EpisodeRecord:
    """One finished episode of the list."""

    index: int
    """Position in the seed list."""
    seed: int | None
    """Env seed it was reset with."""
    lane: int
    """Sub-environment that ran it."""
    info: dict[str, Any]
    """Its last step info (the ``final_info`` row: measures, poses ...)."""
    ret: float
    """Undiscounted return."""
    steps: int
    """Actions taken."""
    terminated: bool
    truncated: bool


def obs_row(obs: Any, i: int) -> Any:
    """Lane ``i`` of a batched observation (a dict of arrays or an array)."""
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def iter_episodes(
    venv, policy: Policy, seeds: Sequence[int], observer: EpisodeObserver | None = None
) -> Iterator[EpisodeRecord]:
    """Runs ``policy`` on the episodes ``seeds`` (episode k reset with ``seeds[k]``); yields their records in the
    order they finish. The env is reset here and left open."""
    seeds = [int(s) for s in seeds]
    n, total = venv.num_envs, len(seeds)
    if total == 0:
        return
    # Lanes beyond the list start (unrecorded) on the list's seeds again: deterministic, never recorded.
    lane_seed: list[int | None] = [seeds[i % total] for i in range(n)]
    episode_of: list[int | None] = [i if i < total else None for i in range(n)]
    next_episode = min(n, total)
    obs, info = venv.reset(seed=list(lane_seed))
    if observer is not None:
        for i in range(min(n, total)):
            observer.start(i, i, obs_row(obs, i), info_row(info, i))
    starts = np.ones(n, bool)
    ret = np.zeros(n)
    steps = np.zeros(n, np.int64)
    while any(k is not None for k in episode_of):
        act = policy(obs, starts, lane_seed)
        obs, reward, term, trunc, info = venv.step(act)
        term, trunc = np.asarray(term, bool).tolist(), np.asarray(trunc, bool).tolist()
        reward = np.asarray(reward, np.float64)
        ret += reward
        steps += 1
        done = [a or b for a, b in zip(term, trunc)]
        reseed = np.zeros(n, bool)
        lane_seed = [None] * n
        finished: list[EpisodeRecord] = []
        for i in range(n):
            k = episode_of[i]
            if k is not None and observer is not None:
                if done[i]:
                    o, inf = info["final_obs"][i], final_info_row(info, i)
                else:
                    o, inf = obs_row(obs, i), info_row(info, i)
                observer.step(k, i, act[i], float(reward[i]), term[i], trunc[i], o, inf)
            if not done[i]:
                continue
            if k is not None:
                last = final_info_row(info, i)
                finished.append(EpisodeRecord(k, seeds[k], i, last, float(ret[i]), int(steps[i]), term[i], trunc[i]))
            episode_of[i] = next_episode if next_episode < total else None
            if episode_of[i] is not None:
                next_episode += 1
                reseed[i] = True
                lane_seed[i] = seeds[episode_of[i]]
            ret[i] = 0.0
            steps[i] = 0
        if reseed.any():  # the auto-reset episode is replaced by the list's next one
            obs, reset_info = venv.reset(seed=list(lane_seed), options={"reset_mask": reseed})
            if observer is not None:
                for i in np.flatnonzero(reseed):
                    observer.start(episode_of[i], int(i), obs_row(obs, i), info_row(reset_info, i))
        starts = np.asarray(done, bool)
        yield from finished


def run_episodes(
    venv, policy: Policy, seeds: Sequence[int], observer: EpisodeObserver | None = None
) -> list[EpisodeRecord]:
    """The records of :func:`iter_episodes`, in the order of the list."""
    return sorted(iter_episodes(venv, policy, seeds, observer), key=lambda r: r.index)
