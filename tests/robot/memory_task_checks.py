"""Checks shared by the test files of the arm memory tasks (test_sequence_tasks, test_spatial_tasks,
test_capacity_tasks, test_object_tasks): each file keeps what is specific to its tasks and calls these for the
held arm, the references, the declared bound and span, an answer before the go lamp, config errors and the
memory-demand rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot.oracles import Oracle, _toward, evaluate, make_policy, run_episode

STILL = np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32)
"""Hold still with the gripper closed."""
PUSH = np.array([1.0, 1.0, -1.0, 1.0], dtype=np.float32)
"""A full push, ignored while the arm is held."""
EPISODES = 16
"""Seeded episodes per reference in :func:`references` (each file bounds the memoryless successes for 16)."""


def trace(env_id: str, steps: int, seed: int = 3, **kw) -> tuple[gym.Env, list[dict]]:
    """A fresh env reset with ``seed`` and its observations over ``steps`` still steps (``steps + 1`` of them)."""
    env = gym.make(env_id, **kw)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(STILL)
        out.append(obs)
    return env, out


def memoryless_bound(env_id: str, **kw) -> float:
    return gym.make(env_id, **kw).unwrapped.memoryless_bound()


def cue_to_query_span(env_id: str, **kw) -> int:
    return gym.make(env_id, **kw).unwrapped.cue_to_query_span()


def check_twin_and_free_arm_bounds(env_ids: Iterable[str]) -> None:
    """The twin and the free arm need no memory: their declared memoryless bound is 1."""
    for env_id in env_ids:
        assert memoryless_bound(env_id, observability="full") == 1.0 and memoryless_bound(env_id, hold_arm=False) == 1.0


def references(env_id: str, most_memoryless: float) -> tuple[dict, dict]:
    """Evaluates the perfect oracle, the memoryless guess and the memoryless guess on the twin over
    :data:`EPISODES` seeded episodes; checks that the perfect oracle and the twin succeed in at least 15 and the
    guess in at most ``most_memoryless``; returns the perfect and the memoryless results for the task's own checks."""
    perfect = evaluate(env_id, "perfect", EPISODES, seed=0)
    memoryless = evaluate(env_id, "memoryless", EPISODES, seed=0)
    twin = evaluate(env_id, "memoryless", EPISODES, seed=0, observability="full")
    assert perfect["success"] >= 15 / 16 and twin["success"] >= 15 / 16
    assert memoryless["success"] <= most_memoryless
    return perfect, memoryless


def perfect_runs(env: gym.Env, seeds: Iterable[int], seed_policy: bool = False) -> Iterator[tuple[Oracle, dict]]:
    """Plays the perfect oracle on each seeded episode (its policy seeded alike with ``seed_policy``); yields the
    oracle and the result of each, having checked that it succeeded."""
    for seed in seeds:
        oracle = make_policy(env, "perfect")
        r = run_episode(env, oracle, seed=seed, policy_seed=seed if seed_policy else None)
        assert r["success"], (seed, r)
        yield oracle, r


def memoryless_runs(
    env: gym.Env, env_id: str, seeds: Iterable[int], episode_offset: int = 100
) -> Iterator[tuple[int, Oracle, dict]]:
    """Plays the memoryless oracle seeded ``s`` on episode ``episode_offset + s`` for each ``s`` in ``seeds``; yields
    ``s``, the oracle and the result, having checked that the oracle remembered nothing."""
    for s in seeds:
        oracle = Oracle(env_id, memory=False, seed=s, cfg=env.unwrapped.cfg)
        r = run_episode(env, oracle, seed=episode_offset + s)
        assert oracle.remembered is None
        yield s, oracle, r


def check_held_arm(env_id: str, held_steps: int, **kw) -> None:
    """With the arm held (the default) every step before the go lamp, ``held_steps`` of them, ignores a full push and
    is not controllable; the go lamp frees the arm; without the hold it is free from the start."""
    env = gym.make(env_id, **kw)
    u = env.unwrapped
    obs, _ = env.reset(seed=1)
    start = obs["ee_pos"].copy()
    flags = []
    while u.phase != "response":
        flags.append(u.controllable())
        obs, *_ = env.step(PUSH)
    assert len(flags) == held_steps and not any(flags)
    np.testing.assert_allclose(obs["ee_pos"], start, atol=0.005)
    assert u.controllable()
    free = gym.make(env_id, hold_arm=False).unwrapped
    free.reset(seed=1)
    assert free.controllable()


def reach_down_at(env: gym.Env, obs: dict, xy: np.ndarray, hover: float) -> tuple[dict, float, bool, dict]:
    """Steers the hand over ``xy`` at height ``hover`` for 25 steps, then down to the table for 25, stopping when the
    episode ends; returns the last observation, reward, termination and info."""
    for target in [np.array([*xy, hover])] * 25 + [np.array([*xy, 0.0])] * 25:
        obs, r, term, _, info = env.step(_toward(obs, target, 1.0))
        if term:
            break
    return obs, r, term, info


def check_config_errors(cases: Iterable[tuple[str, dict, str]], vector_case: tuple[str, dict, str]) -> None:
    """Each ``(env_id, kwargs, message)`` case raises ValueError matching ``message`` from ``gym.make``, and the
    vector case from ``gym.make_vec`` (the batched entry point checks its kwargs too)."""
    for env_id, kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            gym.make(env_id, **kw)
    env_id, kw, msg = vector_case
    with pytest.raises(ValueError, match=msg):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kw)


def check_memory_demand_rows(knobs_of: dict[str, set[str]]) -> None:
    """The memory-demand experiment lists each task with a ``defaults`` row and the given knob rows, all arm rows."""
    from chronotope.scripts.experiments.memory_demand import SETTINGS

    for task, knobs in knobs_of.items():
        rows = [s for s in SETTINGS if s.task == task]
        assert {s.knob for s in rows} >= {"defaults", *knobs} and all(s.family == "arm" for s in rows)
