"""Memory demand of the arm memory tasks: observability twin, declared span and controllable steps, references."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot.oracles import evaluate
from chronotope.envs.robot.registration import register_robot_envs

register_robot_envs()
CUE_RECALL, COUNT_PRESS = "chronotope/CueRecallPick-v0", "chronotope/CountPress-v0"
MEMORY_IDS = [CUE_RECALL, COUNT_PRESS]
STILL = np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32)


def _cue_trace(env_id: str, observability: str, steps: int) -> tuple[list[dict], dict]:
    env = gym.make(env_id, observability=observability)
    obs, info = env.reset(seed=3)
    trace = [obs]
    for _ in range(steps):
        obs, *_ = env.step(STILL)
        trace.append(obs)
    return trace, info


def test_cue_recall_twin_keeps_the_cue_after_the_cue_phase():
    full, info = _cue_trace(CUE_RECALL, "full", 10)
    part, _ = _cue_trace(CUE_RECALL, "partial", 10)
    onehot = np.eye(4)[info["cued_color"]]
    for t in range(11):
        np.testing.assert_array_equal(full[t]["cue"], onehot, err_msg=f"step {t}")
        np.testing.assert_array_equal(part[t]["cue"], onehot if t < 5 else 0.0, err_msg=f"step {t}")
    # the same with non-default phases, and the panel colour (the rgbd cue) follows the twin too
    env = gym.make(CUE_RECALL, observability="full", cue_steps=3, delay_steps=4).unwrapped
    env.reset(seed=0)
    for _ in range(10):
        obs, *_ = env.step(STILL)
    assert env.phase == "response" and obs["cue"].max() == 1.0
    from chronotope.envs.robot import arm_constants as C

    np.testing.assert_allclose(env.model.geom_rgba[env._cue_geom], C.PALETTE[env.colours[env.cued]])


def test_count_press_twin_shows_the_count_and_presses_for_the_whole_episode():
    part, _ = _cue_trace(COUNT_PRESS, "partial", 35)
    assert "target_count" not in part[-1] and "presses" not in part[-1]
    env = gym.make(COUNT_PRESS, observability="full")
    assert env.observation_space["target_count"].shape == (5,)
    full, info = _cue_trace(COUNT_PRESS, "full", 35)
    for obs in full:  # cue phase (30 steps) and after it
        np.testing.assert_array_equal(obs["target_count"], np.eye(5)[info["target_count"] - 1])
        assert obs["presses"][0] == 0.0  # the held arm presses nothing
    # not privileged: the rgbd twin keeps both (no pixel shows a count)
    env = gym.make(COUNT_PRESS, observability="full", obs_mode="rgbd")
    obs, _ = env.reset(seed=0)
    assert {"target_count", "presses"} <= set(obs) and "cue" not in obs


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_bad_observability_raises_naming_the_value(env_id):
    with pytest.raises(ValueError, match="'bogus'"):
        gym.make(env_id, observability="bogus")
    with pytest.raises(ValueError, match="hold_arm"):
        gym.make(env_id, hold_arm="yes")


def test_cue_to_query_span():
    span = lambda env_id, **kw: gym.make(env_id, **kw).unwrapped.cue_to_query_span()  # noqa: E731
    assert span(CUE_RECALL) == 21  # last lit obs at step 4, first response obs at step 25
    assert span(CUE_RECALL, delay_steps=50, cue_steps=2) == 51
    assert span(CUE_RECALL, observability="full") == 0
    # CountPress: n = 5 is known at step 24 (5th onset), the pad decision at 30 + 10 + 5 * 8 = 80
    assert span(COUNT_PRESS) == 56
    assert span(COUNT_PRESS, max_count=3) == 18 + 10 + 3 * 8 - 12
    assert span(COUNT_PRESS, observability="full") == 0
    assert span("chronotope/Reach-v0") == 0


def test_count_press_span_covers_the_perfect_oracles_pad_decision():
    from chronotope.envs.robot.oracles import make_policy

    env = gym.make(COUNT_PRESS)
    u = env.unwrapped
    period = u.cfg.blink_on + u.cfg.blink_off
    for seed in range(4):
        policy = make_policy(env, "perfect")
        obs, _ = env.reset(seed=seed)
        policy.reset(obs, seed=seed)
        n = u.target_count
        while not (u.presses == n and obs["ee_pos"][2] > 0.08):  # back up after the n-th press: heads for the pad
            obs, *_ = env.step(policy.act(obs))
        known = n * period if n < u.cfg.max_count else (n - 1) * period
        assert u.step_count - known <= u.cue_to_query_span()


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_controllable_only_in_the_response_phase_and_held_arm_ignores_actions(env_id):
    env = gym.make(env_id)
    u = env.unwrapped
    obs, _ = env.reset(seed=1)
    start = obs["ee_pos"].copy()
    push = np.array([1.0, 1.0, -1.0, 1.0], dtype=np.float32)
    flags = []
    while u.phase != "response":
        flags.append(u.controllable())
        obs, *_ = env.step(push)
    assert not any(flags)
    np.testing.assert_allclose(obs["ee_pos"], start, atol=0.005)  # still at its start pose
    assert obs["gripper_width"][0] > 0.07  # open
    assert u.controllable()
    for _ in range(3):
        obs, *_ = env.step(push)
    assert np.linalg.norm(obs["ee_pos"] - start) > 0.04  # free in the response phase
    free = gym.make(env_id, hold_arm=False).unwrapped
    free.reset(seed=1)
    assert free.controllable()


def test_declared_memoryless_bounds():
    bound = lambda env_id, **kw: gym.make(env_id, **kw).unwrapped.memoryless_bound()  # noqa: E731
    assert bound(CUE_RECALL) == pytest.approx(0.25) and bound(CUE_RECALL, num_colors=3) == pytest.approx(1 / 3)
    assert bound(COUNT_PRESS) == pytest.approx(0.2)
    for env_id in MEMORY_IDS:
        assert bound(env_id, observability="full") == 1.0 and bound(env_id, hold_arm=False) == 1.0


def test_evaluate_rejects_bad_kinds_and_modes():
    with pytest.raises(ValueError, match="oracle kind"):
        evaluate(CUE_RECALL, "clever", 1)
    with pytest.raises(ValueError, match="obs_mode"):
        evaluate(CUE_RECALL, "perfect", 1, obs_mode="rgbd")


# 16 seeded episodes. Memoryless successes ~ Binomial(16, 1/4) (CueRecallPick) or (16, 1/5) (CountPress):
# P(> 11) < 1e-3 even at 1/3, so "<= 11/16" is a safe loose bound; the perfect oracle measured 1.00.
EPISODES = 16


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_memoryless_far_below_perfect_and_not_on_the_twin(env_id):
    perfect = evaluate(env_id, "perfect", EPISODES, seed=0)
    memoryless = evaluate(env_id, "memoryless", EPISODES, seed=0)
    twin = evaluate(env_id, "memoryless", EPISODES, seed=0, observability="full")
    assert perfect["episodes"] == memoryless["episodes"] == EPISODES
    assert perfect["success"] >= 15 / 16
    assert memoryless["success"] <= 11 / 16
    assert perfect["success"] - memoryless["success"] >= 0.25
    assert memoryless["return"] < perfect["return"]
    assert twin["success"] >= perfect["success"] - 1 / 16  # the twin needs no memory


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_free_arm_leaks_the_cue_through_the_hand_pose(env_id):
    """Without the hold, a reactive policy that writes the cue into its hand pose reaches the perfect oracle."""
    free = evaluate(env_id, "memoryless", 6, seed=0, hold_arm=False)
    assert free["success"] >= 5 / 6


def test_random_policy_is_the_floor():
    r = evaluate(CUE_RECALL, "random", 2, seed=0, cue_steps=2, delay_steps=2)
    assert r["episodes"] == 2 and r["success"] == 0.0 and r["steps"] > 0
