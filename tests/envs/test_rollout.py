"""The one episode loop (chronotope.envs.rollout): a seeded episode list, run to the ends, whatever the lanes."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import chronotope.envs  # noqa: F401
from chronotope.envs.rollout import iter_episodes, run_episodes

KW = {"obs_mode": "state", "num_scenes": 2, "max_episode_steps": 8}
SEEDS = [40 + k for k in range(7)]


class EpisodeSeeded:
    """Random actions (STOP included) from a generator seeded with each episode's seed."""

    def __init__(self) -> None:
        self.rngs: dict[int, np.random.Generator] = {}

    def __call__(self, obs, starts, seeds):
        for i in np.flatnonzero(starts):
            if seeds[i] is not None:
                self.rngs[i] = np.random.default_rng(seeds[i])
        return np.array([self.rngs[i].integers(0, 4) for i in range(len(starts))])


class Trace:
    def __init__(self) -> None:
        self.first: dict[int, dict] = {}
        self.actions: dict[int, list] = {}

    def start(self, episode, lane, obs, info):
        self.first[episode] = obs
        self.actions[episode] = []

    def step(self, episode, lane, action, reward, terminated, truncated, obs, info):
        self.actions[episode].append(int(action))


def _single_env_reference():
    """The same episodes one at a time in a single env: first observation, actions, return, last info."""
    env = gym.make("chronotope/PointNav-v0", **KW)
    out = []
    for s in SEEDS:
        obs, _ = env.reset(seed=s)
        rng = np.random.default_rng(s)
        first, acts, ret = obs, [], 0.0
        while True:
            a = int(rng.integers(0, 4))
            acts.append(a)
            obs, r, term, trunc, info = env.step(a)
            ret += r
            if term or trunc:
                break
        out.append((first, acts, ret, info, term, trunc))
    env.close()
    return out


@pytest.mark.parametrize("num_envs", [1, 3, 9])
def test_records_are_the_listed_episodes_whatever_the_lanes(num_envs):
    ref = _single_env_reference()
    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **KW)
    trace = Trace()
    recs = run_episodes(venv, EpisodeSeeded(), SEEDS, trace)
    venv.close()
    assert [r.index for r in recs] == list(range(len(SEEDS))) and [r.seed for r in recs] == SEEDS
    ends = set()
    for r, (first, acts, ret, info, term, trunc) in zip(recs, ref):
        assert all(np.array_equal(trace.first[r.index][k], first[k]) for k in first)
        assert trace.actions[r.index] == acts and r.steps == len(acts)
        assert r.ret == pytest.approx(ret, abs=1e-12) and (r.terminated, r.truncated) == (term, trunc)
        assert r.info.keys() == info.keys() and all(np.array_equal(r.info[k], info[k]) for k in info)
        ends.add((term, trunc))
    assert ends == {(True, False), (False, True)}  # STOPs and time limits both ran to their ends


def test_runs_on_a_sync_vector_env():
    venv = SyncVectorEnv(
        [lambda: gym.make("chronotope/PointNav-v0", **KW) for _ in range(3)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    recs = list(iter_episodes(venv, EpisodeSeeded(), SEEDS))
    venv.close()
    assert sorted(r.index for r in recs) == list(range(len(SEEDS)))
    ref = _single_env_reference()
    for r in recs:
        assert r.ret == pytest.approx(ref[r.index][2], abs=1e-12) and r.steps == len(ref[r.index][1])
