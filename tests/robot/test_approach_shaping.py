"""The arm memory tasks' optional approach shaping (``approach_reward``): it telescopes, it is silent outside the
response phase, and it says nothing about which candidate is the answer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot.oracles import make_policy

TOUCH_TASKS = (
    ("chronotope/WhereHidden-v0", {}),
    ("chronotope/ShellGame-v0", {}),
    ("chronotope/PairRecall-v0", {}),
    ("chronotope/MultiCueTouch-v0", {}),
    ("chronotope/CueRecallPick-v0", {"answer": "touch"}),
)
"""Tasks with one answer, or a set answered in any order: the term telescopes over the whole response phase."""


def _episode(env_id: str, seed: int, hidden_cup: int | None = None, **kw) -> tuple[list[float], list[str], gym.Env]:
    """One episode of the perfect oracle with ``approach_reward=2``; with ``hidden_cup`` the hidden cup is overwritten
    after reset (WhereHidden: the cue already shows the original place, so the oracle, which reads the cue, moves
    as before; only the answer differs). Returns the approach terms, the phases and the env."""
    env = gym.make(env_id, approach_reward=2.0, **kw)
    oracle = make_policy(env, "perfect", seed=seed)
    obs, info = env.reset(seed=seed)
    oracle.reset(obs, seed=seed)
    if hidden_cup is not None:
        env.unwrapped.hidden_cup = hidden_cup
    terms, phases, done = [], [], False
    while not done:
        obs, reward, term, trunc, info = env.step(oracle.act(obs))
        terms.append(info["reward_approach"])
        phases.append(info["phase"])
        done = term or trunc
    return terms, phases, env


@pytest.mark.parametrize(("env_id", "kw"), TOUCH_TASKS)
def test_approach_telescopes_and_is_silent_before_the_go_lamp(env_id, kw):
    terms, phases, env = _episode(env_id, seed=4, **kw)
    u = env.unwrapped
    terms, phases = np.array(terms), np.array(phases)
    assert np.all(terms[phases != "response"] == 0.0)
    assert np.any(terms[phases == "response"] > 0.0)  # the oracle moves towards a candidate
    # The sum is 2 * (distance at the go lamp - distance now): recompute both ends from the env.
    d_end = np.min(np.linalg.norm(u.answer_points() - u.ee_pos, axis=1))
    env.reset(seed=4)
    while u.phase != "response":
        env.step(np.zeros(env.action_space.shape, np.float32))  # the arm is held: the action is ignored
    d_go = np.min(np.linalg.norm(u.answer_points() - u.ee_pos, axis=1))
    assert terms.sum() == pytest.approx(2.0 * (d_go - d_end), abs=1e-9)


@pytest.mark.parametrize(
    ("env_id", "kw", "narrows"),
    [
        ("chronotope/ButtonSequence-v0", {"num_buttons": 4}, True),
        ("chronotope/ButtonSequence-v0", {"num_buttons": 3}, True),
        ("chronotope/ColourSequence-v0", {}, False),
    ],
)
def test_sequence_approach_restarts_at_each_answer(env_id, kw, narrows):
    """The sequence tasks: each correct answer restarts the approach (0 at that step), and it telescopes between
    answers. Without repeats (ButtonSequence) the minimum runs over the buttons not pressed yet, so leaving a
    pressed button for the next costs nothing; with 3 of 3 buttons the last press leaves none, and the term still
    comes out. With repeats (ColourSequence) every pad stays a candidate."""
    env = gym.make(env_id, approach_reward=2.0, **kw)
    num_buttons = env.unwrapped.num_items
    u = env.unwrapped
    oracle = make_policy(env, "perfect", seed=3)
    obs, info = env.reset(seed=3)
    oracle.reset(obs, seed=3)
    prev_d, prev_progress, done, checked = None, 0, False, 0
    while not done:
        obs, _, term, trunc, info = env.step(oracle.act(obs))
        done = term or trunc
        pts = u.approach_points()
        d = float(np.min(np.linalg.norm(pts - u.ee_pos, axis=1)))
        if info["phase"] != "response":
            assert info["reward_approach"] == 0.0
        elif info["progress"] > prev_progress:
            assert info["reward_approach"] == 0.0
            left = num_buttons - info["progress"] if narrows else num_buttons
            assert len(pts) == (left or num_buttons)
            checked += 1
        elif prev_d is not None:
            assert info["reward_approach"] == pytest.approx(2.0 * (prev_d - d), abs=1e-12)
        prev_d = d if info["phase"] == "response" else None
        prev_progress = info["progress"]
    assert u.success and checked == 3


def test_approach_does_not_depend_on_the_answer():
    """The same arm motion gives the same approach terms whichever cup hides the ball (the minimum runs over every
    candidate), while the success term does change."""
    ref, _, env = _episode("chronotope/WhereHidden-v0", seed=7)
    assert env.unwrapped.success
    for answer in range(env.unwrapped.cfg.num_cups):
        terms, _, other = _episode("chronotope/WhereHidden-v0", seed=7, hidden_cup=answer)
        assert terms == ref
        assert other.unwrapped.success == (answer == env.unwrapped.hidden_cup)


def test_approach_off_by_default_keeps_the_reward_terms():
    env = gym.make("chronotope/WhereHidden-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert "reward_approach" not in info


@pytest.mark.parametrize("value", [-0.5, float("nan"), True, "1"])
def test_bad_approach_reward_is_named(value):
    with pytest.raises(ValueError, match="approach_reward"):
        gym.make("chronotope/WhereHidden-v0", approach_reward=value)


def test_approach_reward_on_a_task_without_a_touch_answer_is_refused():
    with pytest.raises(ValueError, match="approach_reward=1.0: CountPressEnv has no answer points"):
        gym.make("chronotope/CountPress-v0", approach_reward=1.0)
    with pytest.raises(ValueError, match="approach_reward=1.0 needs answer='touch'"):
        gym.make("chronotope/CueRecallPick-v0", approach_reward=1.0)
