"""MemoryLength: the cue shows once, the query asks for it; oracles, twin, span, bad input."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.diagnostic import memoryless_bound


def _run(env, policy, episodes: int, seed: int = 0) -> float:
    wins = 0.0
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        seen = []
        while True:
            seen.append(obs)
            obs, r, term, trunc, info = env.step(policy(seen))
            if term or trunc:
                wins += r
                break
    return wins / episodes


@pytest.mark.parametrize("delay,num_cues", [(0, 2), (7, 3)])
def test_perfect_memory_always_wins_and_a_reactive_policy_is_at_chance(delay, num_cues):
    env = gym.make("chronotope/MemoryLength-v0", delay=delay, num_cues=num_cues)
    perfect = _run(env, lambda seen: int(np.argmax(seen[0][:num_cues])), 60)
    reactive = _run(env, lambda seen: int(np.argmax(seen[-1][:num_cues])), 600)  # sees only the query step
    assert perfect == 1.0
    assert abs(reactive - memoryless_bound(num_cues)) < 0.06
    obs, _ = env.reset(seed=1)
    for t in range(delay + 1):  # the cue only at step 0, then wait flags, then the query flag
        assert obs[:num_cues].sum() == (1 if t == 0 else 0) and obs[num_cues] == (t > 0) and obs[-1] == 0
        obs, r, term, *_ = env.step(0)
        assert r == 0 and not term
    assert obs[-1] == 1 and obs[: num_cues + 1].sum() == 0


def test_twin_shows_the_cue_at_the_query_and_labels_name_it():
    env = gym.make("chronotope/MemoryLength-v0", delay=5, observability="full")
    assert _run(env, lambda seen: int(np.argmax(seen[-1][:2])), 40) == 1.0
    _, info = env.reset(seed=3)
    assert np.array_equal(info["memory_slot"], np.eye(2)[info["cue"]])
    assert env.unwrapped.cue_to_query_span() == 6


def test_the_trainer_reads_the_declared_span():
    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.memory_span import declared_span

    venv = make_vector_env("chronotope/MemoryLength-v0", 2, {"delay": 12}, "", 0)
    assert declared_span(venv) == 13
    venv.close()


def test_bad_values_are_named():
    for kw, bad in (({"delay": -1}, "-1"), ({"num_cues": 1}, "1"), ({"observability": "x"}, "'x'")):
        with pytest.raises(ValueError, match=bad):
            gym.make("chronotope/MemoryLength-v0", **kw)
    env = gym.make("chronotope/MemoryLength-v0")
    env.reset(seed=0)
    for a in (2, -1, float("nan"), 0.5):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(a)
