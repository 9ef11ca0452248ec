"""The capacity-memory arm tasks (MultiCueTouch, PairRecall): what the cue shows and when it goes, the observability
twin, the answer rules and rewards, config errors, the declared span and bound, and the references (perfect oracle,
memoryless guess, twin). The registry-driven tests (check_env, determinism, pickling, reward sum, batched env equal
to single envs) cover them through the registry."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.oracles import _toward
from chronotope.envs.robot.registration import register_robot_envs
from chronotope.envs.robot.tasks.capacity import COLOUR_NAMES, COLOURS, PAD_TOP
from chronotope.envs.robot.tasks.multi_cue_touch import DIM
from chronotope.envs.robot.tasks.pair_recall import PAD_RGBA
from chronotope.envs.robot.tasks.spatial import normalised_place

from . import memory_task_checks as checks

register_robot_envs()
MULTI, PAIRS = "chronotope/MultiCueTouch-v0", "chronotope/PairRecall-v0"
CAPACITY_IDS = [MULTI, PAIRS]


def _pad_rgba(u) -> np.ndarray:
    """[num_pads, 4] the pads' colours now, by pad id."""
    return u.model.geom_rgba[u._pad_geom_ids]


def test_multi_cue_lights_the_set_at_once_and_the_twin_keeps_it():
    env, part = checks.trace(MULTI, 26)
    u = env.unwrapped
    assert u.response_start == 25 and u.phase == "response" and len(u.cued) == 3
    lit = np.zeros(6, np.float32)
    lit[u.cued] = 1.0
    for t, obs in enumerate(part):
        np.testing.assert_array_equal(obs["cue"], lit if t < 5 else np.zeros(6), err_msg=f"step {t}")
        assert obs["progress"][0] == 0.0
    full_colour = np.array([COLOURS[n] for n in COLOUR_NAMES])
    np.testing.assert_allclose(_pad_rgba(u)[:, :3], DIM * full_colour[:, :3])  # all dim once the cue is off
    env, full = checks.trace(MULTI, 26, observability="full")
    u = env.unwrapped
    lit = np.zeros(6, np.float32)
    lit[u.cued] = 1.0
    assert all(np.array_equal(o["cue"], lit) for o in full)  # the twin never hides it
    rgba = _pad_rgba(u)
    np.testing.assert_allclose(rgba[u.cued], full_colour[u.cued])
    np.testing.assert_allclose(np.delete(rgba, u.cued, 0)[:, :3], DIM * np.delete(full_colour, u.cued, 0)[:, :3])


def test_multi_cue_pads_move_and_change_rows_at_the_go_lamp():
    env, trace = checks.trace(MULTI, 25, seed=1)
    u = env.unwrapped
    before, after = trace[24], trace[25]
    assert u.phase == "response" and after["phase"][2] == 1.0
    moved = np.linalg.norm(np.sort(before["object_pose"][:, :2], 0) - np.sort(after["object_pose"][:, :2], 0))
    assert moved > 1e-3
    # each row's colour one-hot names the pad whose pose the row holds
    rows = np.argmax(after["pad_colour"], axis=1)
    np.testing.assert_array_equal(rows, u.row_pad)
    for r, k in enumerate(rows):
        np.testing.assert_allclose(after["object_pose"][r, :2], u.model.body_pos[u.model.body(f"pad_{k}").id, :2])
        assert after["object_pose"][r, 2] == 0.0


def test_pair_recall_shows_the_pairs_then_darkens_reorders_and_names_a_colour():
    env, trace = checks.trace(PAIRS, 26, seed=2)
    u = env.unwrapped
    k = u.cfg.num_pairs
    assert sorted(u.pad_colours) == list(range(k)) and 0 <= u.query < k
    during, dark, asked = trace[4], trace[5], trace[25]
    # while lit, row r's cue names the colour of the pad whose place the row holds
    for obs in (trace[0], during):
        for r in range(k):
            pad = int(np.argmin(np.linalg.norm(u.pad_xy - obs["object_pose"][r, :2], axis=1)))
            assert np.argmax(obs["cue"][r]) == u.pad_colours[pad]
    assert not dark["cue"].any() and not dark["query"].any() and trace[24]["query"].sum() == 0
    key = lambda poses: sorted(map(tuple, np.round(poses[:, :2], 6)))  # noqa: E731
    assert (
        key(during["object_pose"]) == key(dark["object_pose"]) == key(asked["object_pose"])
    )  # the pads stay put; only their rows are re-drawn
    for r, pad in enumerate(u.row_pad):
        np.testing.assert_allclose(dark["object_pose"][r, :2], u.pad_xy[pad], atol=1e-9)
    np.testing.assert_array_equal(asked["query"], np.eye(k)[u.query])
    np.testing.assert_allclose(u.model.geom_rgba[u._cue_geom], COLOURS[COLOUR_NAMES[u.query]])
    np.testing.assert_allclose(_pad_rgba(u), np.tile(PAD_RGBA, (k, 1)))  # all alike once dark
    env, full = checks.trace(PAIRS, 26, seed=2, observability="full")
    u = env.unwrapped
    assert all(o["cue"].sum() == k for o in full)  # the twin keeps the pads lit
    np.testing.assert_array_equal(full[-1]["cue"], np.eye(k)[u.pad_colours[u.row_pad]])
    np.testing.assert_allclose(_pad_rgba(u)[:, :3], [COLOURS[COLOUR_NAMES[c]][:3] for c in u.pad_colours])


def test_rgbd_withholds_the_privileged_keys():
    for env_id, secret in ((MULTI, {"cue", "object_pose", "pad_colour"}), (PAIRS, {"cue", "object_pose", "query"})):
        env = gym.make(env_id, obs_mode="rgbd")
        obs, _ = env.reset(seed=0)
        assert not secret & set(obs) and {"phase", "front_rgb", "wrist_seg"} <= set(obs)
        u = env.unwrapped
        seg = obs["front_seg"][..., 0]
        assert all((seg == u.model.body(f"pad_{k}").id).any() for k in range(u.num_pads))  # every pad in view
        env.close()


@pytest.mark.parametrize("env_id", CAPACITY_IDS)
def test_perfect_oracle_succeeds_and_the_aux_labels_name_what_is_held(env_id):
    env = gym.make(env_id)
    u = env.unwrapped
    for oracle, r in checks.perfect_runs(env, range(3), seed_policy=True):
        assert not r["wrong_touch"] and not r["early_touch"], r
        if env_id == MULTI:
            assert oracle.remembered == set(u.cued.tolist()) and r["progress"] == 3
            assert r["return"] == pytest.approx(2.0)  # 3 x 1/3 progress + 1 success
            np.testing.assert_array_equal(r["memory_set"], np.isin(np.arange(6), u.cued).astype(np.float32))
        else:
            assert r["return"] == 1.0 and r["query"] == u.query
            places = r["memory_pairs"].reshape(-1, 2)
            for pad, colour in enumerate(u.pad_colours):
                np.testing.assert_allclose(places[colour], normalised_place(u.pad_xy[pad]), atol=1e-6)


def test_touching_a_cued_pad_again_does_nothing_and_an_uncued_pad_ends_the_episode():
    env = gym.make(MULTI)
    u = env.unwrapped
    obs, _ = env.reset(seed=4)
    while u.phase != "response":
        obs, *_ = env.step(checks.STILL)
    row = lambda colour: int(np.argmax(obs["pad_colour"][:, colour]))  # noqa: E731
    uncued = int(np.setdiff1d(np.arange(6), u.cued)[0])
    plan = [int(u.cued[0]), int(u.cued[0]), uncued]
    infos = []
    for colour in plan:
        xy = obs["object_pose"][row(colour), :2].astype(float)
        touched = False
        for target in [np.array([*xy, 0.09])] * 20 + [np.array([*xy, PAD_TOP])] * 15 + [np.array([*xy, 0.09])] * 10:
            obs, r, term, _, info = env.step(_toward(obs, target, 1.0))
            touched |= bool(u.touching()[colour])
            if term:
                break
        assert touched
        infos.append((r, term, info))
    assert [i["progress"] for _, _, i in infos] == [1, 1, 1]  # the second touch of the same pad counts nothing
    assert not infos[0][1] and not infos[1][1]
    r, term, info = infos[2]
    assert term and info["wrong_touch"] and not info["success"] and r == 0.0


def test_memoryless_guess_succeeds_exactly_when_it_is_right():
    """The cue never reaches the memoryless oracle's answers: MultiCueTouch touches its guessed colours in the
    drawn order and stops at the first uncued one (a wrong touch, not a motor failure); PairRecall touches one
    uniformly drawn pad."""
    env = gym.make(MULTI)
    u = env.unwrapped
    wrong = 0
    for _, oracle, r in checks.memoryless_runs(env, MULTI, range(8)):
        agree = int(np.argmin(np.append(np.isin(oracle._plan, u.cued), False)))  # guesses before the first miss
        assert r["progress"] == agree and r["success"] == (agree == 3) and r["wrong_touch"] == (agree < 3), r
        assert r["return"] == pytest.approx(agree / 3 + float(r["success"]))
        wrong += not r["success"]
    assert wrong > 0

    env = gym.make(PAIRS)
    u = env.unwrapped
    wrong = 0
    for _, oracle, r in checks.memoryless_runs(env, PAIRS, range(6)):
        guess = int(np.argmin(np.linalg.norm(u.pad_xy - oracle._plan, axis=1)))
        assert r["success"] == (guess == u.answers[0]) and r["wrong_touch"] == (not r["success"]), r
        wrong += not r["success"]
    assert wrong > 0


# 16 seeded episodes. Memoryless successes ~ Binomial(16, 1/20) (MultiCueTouch) or (16, 1/4) (PairRecall):
# P(> 8) < 1e-3, so "<= 8/16" is a loose but safe bound; the perfect oracle and the twin measured 1.00.
@pytest.mark.parametrize("env_id", CAPACITY_IDS)
def test_references_perfect_memoryless_and_twin(env_id):
    perfect, memoryless = checks.references(env_id, most_memoryless=8 / 16)
    assert memoryless["wrong_touch"] + memoryless["success"] == pytest.approx(1.0)  # the failures are wrong touches
    assert memoryless["return"] < perfect["return"]


def test_declared_memoryless_bounds():
    bound = checks.memoryless_bound
    assert bound(MULTI) == pytest.approx(1 / 20)  # C(6, 3) sets
    assert bound(MULTI, num_cued=2) == bound(MULTI, num_cued=4) == pytest.approx(1 / 15)
    assert bound(MULTI, num_pads=5, num_cued=1) == pytest.approx(1 / 5)
    assert bound(MULTI, num_cued=5) == pytest.approx(1 / math.comb(6, 5))
    assert bound(PAIRS) == pytest.approx(1 / 4) and bound(PAIRS, num_pairs=6) == pytest.approx(1 / 6)
    checks.check_twin_and_free_arm_bounds(CAPACITY_IDS)


def test_cue_to_query_span_covers_the_perfect_oracles_decisions():
    span = checks.cue_to_query_span
    assert span(MULTI) == 20 + 1 + 2 * 20 and span(MULTI, num_cued=5, delay_steps=10) == 11 + 4 * 20
    assert span(MULTI, num_cued=1) == 21
    assert span(PAIRS) == 21 and span(PAIRS, delay_steps=3, num_pairs=6) == 4
    assert span(MULTI, observability="full") == span(PAIRS, observability="full") == 0
    for env_id, kw in ((MULTI, {}), (MULTI, {"num_cued": 5}), (PAIRS, {})):
        env = gym.make(env_id, **kw)
        u = env.unwrapped
        for seed, (oracle, _) in enumerate(checks.perfect_runs(env, range(2))):
            assert oracle.decision_steps[0] == u.response_start
            assert len(oracle.decision_steps) == u.num_answers
            assert max(oracle.decision_steps) - (u.cfg.cue_steps - 1) <= u.cue_to_query_span(), (kw, seed)


@pytest.mark.parametrize("env_id", CAPACITY_IDS)
def test_held_arm_ignores_actions_until_the_go_lamp(env_id):
    checks.check_held_arm(env_id, held_steps=8, delay_steps=3)


@pytest.mark.parametrize("env_id", CAPACITY_IDS)
def test_a_touch_before_the_go_lamp_ends_the_episode(env_id):
    """Without the hold the arm can touch a pad during the cue or the delay: that is a failure, even on a pad that
    would have been right."""
    env = gym.make(env_id, hold_arm=False, delay_steps=60)
    u = env.unwrapped
    obs, _ = env.reset(seed=2)
    obs, r, term, info = checks.reach_down_at(env, obs, u.pad_xy[u.answers[0]], hover=0.09)
    assert term and info["early_touch"] and not info["success"] and r == 0.0 and info["progress"] == 0
    assert u.phase != "response"


def test_colours_are_distinct_and_extend_the_arm_palette():
    assert list(COLOURS)[: len(C.PALETTE)] == list(C.PALETTE) and len(COLOURS) == 6
    rgb = np.array([COLOURS[n][:3] for n in COLOUR_NAMES])
    gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(6)
    assert gaps.min() > 0.3


def test_config_errors_name_the_value():
    cases = [
        (MULTI, {"num_pads": 7}, "num_pads=7"),
        (MULTI, {"num_pads": 2}, "num_pads=2"),
        (MULTI, {"num_cued": 6}, "num_cued=6"),
        (MULTI, {"num_cued": 0}, "num_cued=0"),
        (MULTI, {"num_pads": 4, "num_cued": 4}, "num_cued=4"),
        (MULTI, {"num_cued": True}, "num_cued=True"),
        (MULTI, {"cue_steps": 0}, "cue_steps=0"),
        (PAIRS, {"delay_steps": -1}, "delay_steps=-1"),
        (PAIRS, {"num_pairs": 1}, "num_pairs=1"),
        (PAIRS, {"num_pairs": 7}, "num_pairs=7"),
        (PAIRS, {"observability": "bogus"}, "'bogus'"),
        (MULTI, {"hold_arm": "yes"}, "hold_arm"),
    ]
    checks.check_config_errors(cases, vector_case=(PAIRS, {"num_pairs": 9}, "num_pairs=9"))


def test_memory_demand_lists_both_tasks_with_knob_rows():
    checks.check_memory_demand_rows(
        {"MultiCueTouch": {"num_cued=2", "num_cued=5"}, "PairRecall": {"num_pairs=2", "num_pairs=6"}}
    )
