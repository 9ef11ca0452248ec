"""The sequential-memory arm tasks (ButtonSequence, ColourSequence): cue timing, the observability twin, the
answer rule and rewards, config errors, the declared span and bound, and the references (perfect oracle, memoryless
guess, twin). The registry-driven tests (check_env, determinism, pickling, reward sum, batched env equal to single
envs) cover them through the registry."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.oracles import make_policy, run_episode
from chronotope.envs.robot.registration import register_robot_envs

from . import memory_task_checks as checks

register_robot_envs()
BUTTONS, COLOURS = "chronotope/ButtonSequence-v0", "chronotope/ColourSequence-v0"
SEQUENCE_IDS = [BUTTONS, COLOURS]


def _expected_cue(u, steps: int) -> np.ndarray:
    """[steps + 1, items]: element i lit for show_steps from step i * (show + gap), dark otherwise."""
    c = u.cfg
    out = np.zeros((steps + 1, u.num_items))
    for i, item in enumerate(u.sequence):
        t0 = i * (c.show_steps + c.gap_steps)
        out[t0 : t0 + c.show_steps, item] = 1.0
    return out


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_cue_shows_the_sequence_once_and_the_twin_keeps_it(env_id):
    env, part = checks.trace(env_id, 24)
    u = env.unwrapped
    assert u.cue_len == 18 and u.phase == "response"
    cues = np.stack([o["cue"] for o in part])
    np.testing.assert_array_equal(cues, _expected_cue(u, 24))
    assert "remaining_sequence" not in part[-1]
    assert all(o["progress"][0] == 0.0 for o in part)

    env, full = checks.trace(env_id, 24, observability="full")
    u = env.unwrapped
    rest = np.eye(u.num_items)[u.sequence]
    for t, obs in enumerate(full):
        np.testing.assert_array_equal(obs["remaining_sequence"], rest, err_msg=f"step {t}")
    cues = np.stack([o["cue"] for o in full])
    expected = _expected_cue(u, 24)
    expected[u.cue_len :, u.sequence[0]] = 1.0  # after the cue phase the twin lights the next element
    np.testing.assert_array_equal(cues, expected)


def test_button_caps_light_in_the_order_and_the_colour_panel_shows_colours():
    env, _ = checks.trace(BUTTONS, 0, seed=5)
    u = env.unwrapped
    rgba = u.model.geom_rgba[u._cap_geoms]
    lit = u.sequence[0]
    np.testing.assert_allclose(rgba[lit], C.PALETTE[u.colours[lit]])
    others = np.delete(np.arange(u.num_items), lit)
    assert np.all(rgba[others, :3].max(1) < 0.35)  # dim
    for _ in range(u.cfg.show_steps):
        env.step(checks.STILL)
    assert np.all(u.model.geom_rgba[u._cap_geoms, :3].max(1) < 0.35)  # the gap: all dark

    env, _ = checks.trace(COLOURS, 0, seed=5)
    u = env.unwrapped
    np.testing.assert_allclose(u.model.geom_rgba[u._cue_geom], C.PALETTE[u.colours[u.sequence[0]]])
    for _ in range(u.cue_len):
        env.step(checks.STILL)
    np.testing.assert_allclose(u.model.geom_rgba[u._cue_geom], C.CUE_OFF_RGBA)


def test_rgbd_withholds_the_privileged_keys_and_the_twin_keeps_the_sequence():
    env = gym.make(COLOURS, obs_mode="rgbd", observability="full")
    obs, _ = env.reset(seed=0)
    assert not {"cue", "object_pose", "pad_colour"} & set(obs)
    assert {"remaining_sequence", "progress", "phase", "front_rgb"} <= set(obs)
    env.close()


def test_colour_pads_move_and_change_rows_at_the_go_lamp():
    env, trace = checks.trace(COLOURS, 18, seed=1)
    u = env.unwrapped
    before, after = trace[17], trace[18]
    assert u.phase == "response"
    moved = np.linalg.norm(before["object_pose"][:, :2] - after["object_pose"][:, :2], axis=1)
    assert moved.min() > 1e-3
    # each row's colour one-hot names the pad whose pose the row holds
    rows = np.argmax(after["pad_colour"], axis=1)
    assert sorted(rows) == list(range(u.num_items))
    for r, k in enumerate(rows):
        np.testing.assert_allclose(after["object_pose"][r, :2], u.model.body_pos[u.model.body(f"pad_{k}").id, :2])
    still = gym.make(COLOURS, shuffle_at_response=False)
    obs, _ = still.reset(seed=1)
    for _ in range(18):
        nxt, *_ = still.step(checks.STILL)
    np.testing.assert_array_equal(obs["object_pose"], nxt["object_pose"])


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_perfect_oracle_answers_in_order_and_collects_every_reward(env_id):
    env = gym.make(env_id)
    for oracle, r in checks.perfect_runs(env, range(3), seed_policy=True):
        assert r["progress"] == 3 and not r["wrong_response"], r
        assert r["return"] == pytest.approx(2.0)  # 3 x 1/3 progress + 1 success
        assert oracle.remembered == list(env.unwrapped.sequence)
        onehots = np.eye(env.unwrapped.num_items)[env.unwrapped.sequence]
        np.testing.assert_array_equal(r["memory_sequence"], onehots.reshape(-1))  # the aux label


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_memory_slot_names_the_row_the_next_answer_is_made_at(env_id):
    """Along perfect episodes, at every correct answer the ``object_pose`` row named by the previous step's
    ``memory_slot`` is the item nearest the hand (in xy), and it changes only when ``progress`` does (and, for the
    moved pads, at the go lamp)."""
    env = gym.make(env_id)
    u = env.unwrapped
    for seed in range(3):
        oracle = make_policy(env, "perfect", seed=seed)
        obs, info = env.reset(seed=seed)
        oracle.reset(obs, seed=seed)
        slot, progress, answers, done = None, 0, 0, False
        while not done:
            obs, _, term, trunc, info = env.step(oracle.act(obs))
            done = term or trunc
            if info["progress"] > progress:
                row = int(np.argmax(slot))
                hand = u.ee_pos[:2]
                assert row == int(np.argmin(np.linalg.norm(obs["object_pose"][:, :2] - hand, axis=1)))
                answers += 1
            elif slot is not None and u.step_count != u.response_start:
                np.testing.assert_array_equal(info["memory_slot"], slot)
            progress, slot = info["progress"], info["memory_slot"]
            assert slot.sum() == 1.0
            # The order table read at the observed next position is the slot (a readout_query's arithmetic).
            table = info["memory_order"].reshape(u.num_items, u.cfg.length)
            if not done:
                np.testing.assert_array_equal(table @ obs["next_element"], slot)
                assert obs["next_element"].sum() == 1.0 and obs["next_element"][int(progress)] == 1.0
        assert answers == u.cfg.length
        assert not obs["next_element"].any()  # complete: no position left


def test_back_to_back_repeats_need_two_touches():
    env = gym.make(COLOURS)
    seeds = [s for s in range(40) if _has_repeat(env, s)][:2]
    assert seeds
    for s in seeds:
        assert run_episode(env, make_policy(env, "perfect"), seed=s)["success"]


def _has_repeat(env, seed: int) -> bool:
    env.reset(seed=seed)
    q = env.unwrapped.sequence
    return bool(np.any(q[1:] == q[:-1]))


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_memoryless_guess_succeeds_exactly_when_it_is_the_sequence(env_id):
    """The cue never reaches the memoryless oracle's answer: each episode ends at the first element where its
    guess differs from the sequence (a wrong answer, not a motor failure), and succeeds only if there is none."""
    env = gym.make(env_id)
    u = env.unwrapped
    wrong = 0
    for _, oracle, r in checks.memoryless_runs(env, env_id, range(8)):
        guess = oracle._plan[: u.cfg.length]
        agree = int(np.argmin(np.append(guess == u.sequence, False)))  # length of the common prefix
        assert r["progress"] == agree and r["success"] == (agree == u.cfg.length), (r, guess, u.sequence)
        assert r["wrong_response"] == (not r["success"])
        assert r["return"] == pytest.approx(agree / u.cfg.length + float(r["success"]))
        wrong += not r["success"]
    assert wrong > 0


# 16 seeded episodes. Memoryless successes ~ Binomial(16, 1/24) (ButtonSequence) or (16, 1/27) (ColourSequence):
# P(> 5) < 1e-4, so "<= 5/16" is a loose but safe bound; the perfect oracle and the twin measured 1.00.
@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_references_perfect_memoryless_and_twin(env_id):
    perfect, memoryless = checks.references(env_id, most_memoryless=5 / 16)
    assert memoryless["wrong_response"] >= 11 / 16  # the failures are wrong answers
    assert memoryless["return"] < perfect["return"]


def test_declared_memoryless_bounds():
    bound = checks.memoryless_bound
    assert bound(BUTTONS) == pytest.approx(1 / 24)  # 4 * 3 * 2 orders
    assert bound(BUTTONS, length=2) == pytest.approx(1 / 12)
    assert bound(BUTTONS, num_buttons=5, length=5) == pytest.approx(1 / math.factorial(5))
    assert bound(COLOURS) == pytest.approx(1 / 27)  # 3 ** 3 sequences
    assert bound(COLOURS, repeats=False) == pytest.approx(1 / 6)
    assert bound(COLOURS, num_colors=4, length=4) == pytest.approx(1 / 256)
    checks.check_twin_and_free_arm_bounds(SEQUENCE_IDS)


def test_cue_to_query_span():
    span = checks.cue_to_query_span
    # element 2: last lit at step 2 * 6 + 3 = 15, needed at 18 + 2 * 20 = 58
    assert span(BUTTONS) == span(COLOURS) == 43
    assert span(BUTTONS, length=2) == 12 + 20 - 9
    assert span(COLOURS, length=4, delay_steps=10) == 24 + 10 + 3 * 20 - 21
    assert span(BUTTONS, length=1) == 6 - 3  # the single element: last lit at 3, needed at 6
    assert span(BUTTONS, observability="full") == span(COLOURS, observability="full") == 0


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_span_covers_the_perfect_oracles_decisions(env_id):
    for kw in ({}, {"length": 5, "num_colors" if env_id == COLOURS else "num_buttons": 5}):
        env = gym.make(env_id, max_episode_steps=200, **kw)
        u = env.unwrapped
        period = u.cfg.show_steps + u.cfg.gap_steps
        for seed, (oracle, _) in enumerate(checks.perfect_runs(env, range(2))):
            assert oracle.decision_steps[0] == u.response_start
            for i, t in enumerate(oracle.decision_steps):
                assert t - (i * period + u.cfg.show_steps - 1) <= u.cue_to_query_span(), (kw, seed, i)


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_held_arm_ignores_actions_until_the_go_lamp(env_id):
    checks.check_held_arm(env_id, held_steps=20, delay_steps=2)


@pytest.mark.parametrize("env_id", SEQUENCE_IDS)
def test_an_answer_before_the_go_lamp_ends_the_episode(env_id):
    """Without the hold the arm can answer during the cue: that is a failure (as an early lift in CueRecallPick)."""
    env = gym.make(env_id, hold_arm=False, delay_steps=40)
    obs, _ = env.reset(seed=2)
    xy = obs["object_pose"][0, :2].astype(float)
    obs, r, term, info = checks.reach_down_at(env, obs, xy, hover=0.09)  # over the first item, then down
    assert term and info["early_response"] and not info["success"] and r == 0.0
    assert env.unwrapped.phase != "response"


def test_config_errors_name_the_value():
    cases = [
        (BUTTONS, {"length": 0}, "length=0"),
        (BUTTONS, {"length": 5}, "length=5 exceeds num_buttons=4"),
        (BUTTONS, {"num_buttons": 6}, "num_buttons=6"),
        (BUTTONS, {"press_depth": 0.02}, "press_depth=0.02"),
        (BUTTONS, {"show_steps": 0}, "show_steps=0"),
        (BUTTONS, {"gap_steps": 0}, "gap_steps=0"),
        (COLOURS, {"delay_steps": -1}, "delay_steps=-1"),
        (COLOURS, {"num_colors": 1}, "num_colors=1"),
        (COLOURS, {"repeats": "yes"}, "repeats='yes'"),
        (COLOURS, {"repeats": False, "length": 4}, "length=4 exceeds num_colors=3"),
        (COLOURS, {"length": 7}, "length=7"),
        (COLOURS, {"shuffle_at_response": 1}, "shuffle_at_response=1"),
        (COLOURS, {"observability": "bogus"}, "'bogus'"),
        (BUTTONS, {"hold_arm": "yes"}, "hold_arm"),
    ]
    checks.check_config_errors(cases, vector_case=(BUTTONS, {"length": 9}, "length=9"))


def test_memory_demand_lists_both_tasks_with_knob_rows():
    checks.check_memory_demand_rows({"ButtonSequence": {"length=2"}, "ColourSequence": {"length=2"}})
