"""The spatial-memory arm tasks (RestorePlace, WhereHidden): what the cue shows and when it goes, the observability
twin, the answer rules and rewards, config errors, the declared span and bound, and the references (perfect oracle,
memoryless guess, twin). The registry-driven tests (check_env, determinism, pickling, reward sum, batched env equal
to single envs) cover them through the registry."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot.oracles import _pick, make_policy
from chronotope.envs.robot.registration import register_robot_envs
from chronotope.envs.robot.tasks.common import BLOCK_HALF, SPAWN_HIGH, SPAWN_LOW
from chronotope.envs.robot.tasks.cups import CUP_RAISE, CUP_TOP
from chronotope.envs.robot.tasks.restore_place import HIDDEN_Z, close_pair_probability
from chronotope.envs.robot.tasks.spatial import normalised_place

from . import memory_task_checks as checks

register_robot_envs()
RESTORE, HIDDEN = "chronotope/RestorePlace-v0", "chronotope/WhereHidden-v0"
SPATIAL_IDS = [RESTORE, HIDDEN]


@pytest.mark.parametrize("env_id", SPATIAL_IDS)
def test_cue_shows_the_place_only_in_the_cue_phase_and_the_twin_keeps_it(env_id):
    env, part = checks.trace(env_id, 26)
    u = env.unwrapped
    assert u.cfg.cue_steps == 5 and u.response_start == 25 and u.phase == "response"
    shown = np.array([*u.place, 1.0], np.float32)
    for t, obs in enumerate(part):
        np.testing.assert_array_equal(obs["cue"], shown if t < 5 else np.zeros(3), err_msg=f"step {t}")
    env, full = checks.trace(env_id, 26, observability="full")
    place = np.array([*env.unwrapped.place, 1.0], np.float32)
    assert all(np.array_equal(o["cue"], place) for o in full)  # the twin never hides it


def test_restore_place_moves_the_block_and_hides_the_marker():
    env, trace = checks.trace(RESTORE, 6, seed=1)
    u = env.unwrapped
    pad = u.model.body("place_pad").id
    before, after = trace[4]["object_pose"][0], trace[5]["object_pose"][0]
    np.testing.assert_allclose(before[:2], u.place, atol=1e-3)  # on its place while shown
    assert np.linalg.norm(after[:2] - u.place) >= u.cfg.min_move  # moved away at the first delay step
    np.testing.assert_allclose(after[:2], u.moved_to, atol=1e-3)
    assert u.model.body_pos[pad, 2] == HIDDEN_Z  # the marker is inside the table top
    env, _ = checks.trace(RESTORE, 6, seed=1, observability="full")
    u = env.unwrapped
    np.testing.assert_allclose(u.model.body_pos[u.model.body("place_pad").id], [*u.place, 0.0])


def test_where_hidden_lowers_the_cups_reorders_the_rows_and_hides_the_ball():
    env, trace = checks.trace(HIDDEN, 6, seed=2)
    u = env.unwrapped
    during, after = trace[4]["object_pose"], trace[5]["object_pose"]
    assert np.allclose(during[:, 2], CUP_RAISE) and np.allclose(after[:, 2], 0.0)
    # the rows are re-drawn when the cups come down; each row's place names its cup
    for r, k in enumerate(u.row_cup):
        np.testing.assert_allclose(after[r, :2], u.cup_xy[k], atol=1e-9)
    key = lambda poses: sorted(map(tuple, np.round(poses[:, :2], 6)))  # noqa: E731
    assert key(during) == key(after)  # the cups stay where they were
    ball = u.model.body_pos[u.model.body("ball").id]
    np.testing.assert_allclose(ball, [*u.cup_xy[u.hidden_cup], 0.015])  # inside its cup
    env, _ = checks.trace(HIDDEN, 6, seed=2, observability="full")
    u = env.unwrapped
    assert u.model.body_pos[u.model.body("ball").id][2] > CUP_TOP  # on top of its cup


def test_rgbd_withholds_the_privileged_keys():
    for env_id in SPATIAL_IDS:
        env = gym.make(env_id, obs_mode="rgbd")
        obs, _ = env.reset(seed=0)
        assert not {"cue", "object_pose"} & set(obs) and {"phase", "front_rgb", "wrist_seg"} <= set(obs)
        env.close()


@pytest.mark.parametrize("env_id", SPATIAL_IDS)
def test_perfect_oracle_succeeds_and_the_aux_labels_name_the_place(env_id):
    env = gym.make(env_id)
    u = env.unwrapped
    for oracle, r in checks.perfect_runs(env, range(3), seed_policy=True):
        np.testing.assert_allclose(oracle.remembered, u.place, atol=1e-6)
        np.testing.assert_allclose(r["place"], u.place)
        np.testing.assert_allclose(r["memory_place"], 2 * (u.place - SPAWN_LOW) / (SPAWN_HIGH - SPAWN_LOW) - 1)
        if env_id == RESTORE:
            assert r["set_down"] and r["place_error"] < 0.015 and r["return"] == pytest.approx(1.25)
        else:
            assert r["return"] == 1.0
            assert u.row_cup[int(np.argmax(r["memory_slot"]))] == u.hidden_cup and r["memory_slot"].sum() == 1
    np.testing.assert_array_equal(normalised_place(SPAWN_LOW), [-1, -1])


def test_memoryless_restore_sets_down_at_its_guess_and_succeeds_only_there():
    """The memoryless oracle never sees the place: it sets the block down at the inset corner of the spawn box
    farthest from where the block was moved, and succeeds exactly when the original place lies within the
    tolerance of that corner: in the seeded episodes 0..3 it lies 0.15 to 0.34 m from it (failures), in episode 9
    9 mm (a success by luck, as often as the bound says)."""
    env = gym.make(RESTORE)
    u = env.unwrapped
    tol = u.cfg.tolerance
    lo, hi = SPAWN_LOW + tol, SPAWN_HIGH - tol
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    for s, oracle, r in checks.memoryless_runs(env, RESTORE, (0, 1, 2, 3, 9), episode_offset=0):
        guess = corners[np.argmax(np.linalg.norm(corners - u.moved_to, axis=1))]
        np.testing.assert_allclose(oracle._plan, guess)
        lucky = s == 9
        assert (np.linalg.norm(r["place"] - guess) < tol) == lucky
        assert r["set_down"] and r["success"] == lucky, r
        assert r["place_error"] == pytest.approx(np.linalg.norm(u.free_body_pose("block")[:2] - u.place))
        assert (r["place_error"] < tol) if lucky else (r["place_error"] > 0.1)
        assert r["return"] == pytest.approx(1.25 if lucky else 0.25)  # the lift, and the place only if right


def test_memoryless_touch_succeeds_exactly_when_its_guess_is_the_cup():
    env = gym.make(HIDDEN)
    u = env.unwrapped
    wrong = 0
    for _, oracle, r in checks.memoryless_runs(env, HIDDEN, range(6)):
        guess = int(np.argmin(np.linalg.norm(u.cup_xy - oracle._plan, axis=1)))
        assert r["success"] == (guess == u.hidden_cup) and r["wrong_touch"] == (not r["success"]), r
        wrong += not r["success"]
    assert wrong > 0


# 16 seeded episodes. Memoryless successes ~ Binomial(16, 0.066) (RestorePlace) or (16, 1/5) (WhereHidden):
# P(> 7) < 2e-3, so "<= 7/16" is a loose but safe bound; the perfect oracle and the twin measured 1.00.
@pytest.mark.parametrize("env_id", SPATIAL_IDS)
def test_references_perfect_memoryless_and_twin(env_id):
    _, memoryless = checks.references(env_id, most_memoryless=7 / 16)
    # every failure is a wrong answer: a set-down elsewhere, a touch of another cup
    answered = memoryless["set_down"] if env_id == RESTORE else memoryless["wrong_touch"] + memoryless["success"]
    assert answered == pytest.approx(1.0)


def test_declared_memoryless_bounds():
    bound = checks.memoryless_bound
    far = 1 - close_pair_probability(0.1)
    assert far == pytest.approx(1 - (math.pi * 0.01 * 0.1 - 4 / 3 * 0.001 * 0.65 + 0.0001 / 2) / 0.01)
    assert bound(RESTORE) == pytest.approx(math.pi * 0.04**2 / (0.1 * far)) == pytest.approx(0.0655, abs=1e-4)
    assert bound(RESTORE, tolerance=0.06) == pytest.approx(math.pi * 0.06**2 / (0.1 * far))
    assert bound(HIDDEN) == pytest.approx(1 / 5) and bound(HIDDEN, num_cups=3) == pytest.approx(1 / 3)
    checks.check_twin_and_free_arm_bounds(SPATIAL_IDS)
    # the closed form against a seeded Monte Carlo estimate of P(|X - Y| < d) in the spawn box
    rng = np.random.default_rng(0)
    x, y = rng.uniform(SPAWN_LOW, SPAWN_HIGH, (2, 200_000, 2))
    assert np.mean(np.linalg.norm(x - y, axis=1) < 0.15) == pytest.approx(close_pair_probability(0.15), abs=0.004)


def test_cue_to_query_span_covers_the_perfect_oracles_decisions():
    span = checks.cue_to_query_span
    assert span(RESTORE) == 20 + 1 + 45 and span(RESTORE, delay_steps=40) == 86
    assert span(HIDDEN) == 21 and span(HIDDEN, delay_steps=3) == 4
    assert span(RESTORE, observability="full") == span(HIDDEN, observability="full") == 0
    for env_id in SPATIAL_IDS:
        env = gym.make(env_id)
        u = env.unwrapped
        for oracle, _ in checks.perfect_runs(env, range(3)):
            assert oracle.decision_steps[0] == u.response_start
            assert max(oracle.decision_steps) - (u.cfg.cue_steps - 1) <= u.cue_to_query_span()


@pytest.mark.parametrize("env_id", SPATIAL_IDS)
def test_held_arm_ignores_actions_until_the_go_lamp(env_id):
    checks.check_held_arm(env_id, held_steps=8, delay_steps=3)


def test_an_answer_before_the_go_lamp_ends_the_episode():
    """Without the hold the arm can answer during the delay: a lift or a touch then is a failure."""
    env = gym.make(RESTORE, hold_arm=False, delay_steps=60)
    obs, _ = env.reset(seed=2)
    for _ in range(6):  # wait for the block to move
        obs, *_ = env.step(checks.STILL)
    script = _pick(obs, lambda o: o["object_pose"][0, :3].astype(float), 0.08)
    action = next(script)
    for _ in range(60):
        obs, r, term, _, info = env.step(action)
        if term:
            break
        action = script.send(obs)
    assert term and info["early_lift"] and not info["success"] and r == 0.0 and env.unwrapped.phase == "delay"

    env = gym.make(HIDDEN, hold_arm=False, delay_steps=60)
    obs, _ = env.reset(seed=2)
    for _ in range(6):  # the cups come down
        obs, *_ = env.step(checks.STILL)
    xy = obs["object_pose"][0, :2].astype(float)
    obs, r, term, info = checks.reach_down_at(env, obs, xy, hover=0.12)
    assert term and info["early_touch"] and not info["success"] and r == 0.0


def test_lift_reward_is_paid_once_and_the_set_down_ends_the_episode():
    env = gym.make(RESTORE)
    oracle = make_policy(env, "perfect")
    obs, _ = env.reset(seed=5)
    oracle.reset(obs)
    lifts, block_z = [], []
    for _ in range(120):
        obs, _, term, _, info = env.step(oracle.act(obs))
        lifts.append(info["reward_lift"])
        block_z.append(obs["object_pose"][0, 2])
        if term:
            break
    assert term and info["success"] and info["set_down"] and sum(lifts) == 0.25
    assert max(block_z) > BLOCK_HALF + 0.03 and block_z[-1] < BLOCK_HALF + 0.004


def test_config_errors_name_the_value():
    cases = [
        (RESTORE, {"tolerance": 0.2}, "tolerance=0.2"),
        (RESTORE, {"tolerance": True}, "tolerance=True"),
        (RESTORE, {"min_move": 0.03}, "min_move=0.03"),
        (RESTORE, {"tolerance": 0.06, "min_move": 0.05}, "min_move=0.05"),
        (RESTORE, {"cue_steps": 0}, "cue_steps=0"),
        (HIDDEN, {"delay_steps": -1}, "delay_steps=-1"),
        (HIDDEN, {"num_cups": 7}, "num_cups=7"),
        (HIDDEN, {"num_cups": 1}, "num_cups=1"),
        (HIDDEN, {"observability": "bogus"}, "'bogus'"),
        (RESTORE, {"hold_arm": "yes"}, "hold_arm"),
    ]
    checks.check_config_errors(cases, vector_case=(HIDDEN, {"num_cups": 9}, "num_cups=9"))
    with pytest.raises(ValueError, match="d=0.3"):
        close_pair_probability(0.3)


def test_memory_demand_lists_both_tasks_with_knob_rows():
    checks.check_memory_demand_rows(
        {"RestorePlace": {"tolerance=0.06", "delay_steps=40"}, "WhereHidden": {"num_cups=3", "delay_steps=40"}}
    )
