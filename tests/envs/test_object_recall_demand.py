"""ObjectRecall's memory demand: the start says nothing about the target, a STOP chooses one object, the Bayes
memoryless policy stays far below perfect memory, and the observability twin removes the need for memory."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.nav.oracles import evaluate, make_oracle

KW = {"obs_mode": "state", "num_scenes": 4}


def _env(**kw):
    return gym.make("chronotope/ObjectRecall-v0", **{**KW, **kw})


def test_start_is_independent_of_which_object_is_the_target():
    env = _env()
    core = env.unwrapped.core
    task = core.task
    nearest_is_target, chance = [], []
    for seed in range(120):
        env.reset(seed=seed)
        scene = int(core.sim.scene[0])
        cands = task.room_candidates(core, scene, int(task.target_room[0]))
        assert len(cands) >= task.num_distractors + 1
        row, col, _ = core.sim.stack.cells(core.sim.scene[:1], core.sim.position[:1])
        d = np.array([task.object_field(core, scene, o.instance_id)[row[0], col[0]] for o in cands])
        assert d.min() >= task.min_start_distance  # no candidate can be chosen by stopping on the spot
        nearest_is_target.append(cands[int(np.argmin(d))].instance_id == task.target[0])
        chance.append(1.0 / len(cands))
    # A start drawn given the target (the old sampler) made the nearest object the target far more often.
    assert abs(np.mean(nearest_is_target) - np.mean(chance)) < 0.12


def test_a_stop_chooses_the_nearest_object_only():
    env = _env()
    env.reset(seed=3)
    core, task = env.unwrapped.core, env.unwrapped.core.task
    while task.phase[0] != 2:
        env.step(1)
    scene = int(core.sim.scene[0])
    grid = core.grids[scene]
    h, w = grid.shape
    target = int(task.target[0])
    chosen = task.choice_cells(core, 0, target)[:h, :w]
    near_target = (task.object_field(core, scene, target)[:h, :w] <= task.success_radius) & ~chosen
    assert chosen.any() and near_target.any()  # some cells near the target are nearer to another object

    def stop_at(cell) -> float:
        xy = grid.origin + (np.array(cell[::-1]) + 0.5) * grid.cell_size
        task.teleport(core, 0, xy, 0.0)
        core._update_distance()
        return float(task.selects_target(core, 0))

    assert stop_at(np.argwhere(chosen)[0]) == 1.0
    assert stop_at(np.argwhere(near_target)[0]) == 0.0
    # Through the env: a STOP in the chosen cells succeeds.
    cell = np.argwhere(chosen)[len(np.argwhere(chosen)) // 2]
    stop_at(cell)
    _, r, term, _, info = env.step(0)
    assert term and info["success"] == 1.0 and r > 0.9


def test_memoryless_bound_is_far_below_perfect_and_the_twin_needs_no_memory():
    kw = {**KW, "num_scenes": 3}
    perfect = evaluate("chronotope/ObjectRecall-v0", "perfect", 32, num_envs=8, **kw)
    memoryless = evaluate("chronotope/ObjectRecall-v0", "memoryless", 32, num_envs=8, **kw)
    twin = evaluate("chronotope/ObjectRecall-v0", "memoryless", 32, num_envs=8, observability="full", **kw)
    assert perfect["success"] >= 0.9
    # The bound is ~0.22 (1 / objects in the room); 32 episodes keep 0.5 out of reach by chance.
    assert memoryless["success"] <= 0.5
    assert twin["success"] >= 0.9


def test_bayes_bound_is_one_over_the_candidates():
    venv = gym.make_vec("chronotope/ObjectRecall-v0", num_envs=4, vectorization_mode="vector_entry_point", **KW)
    core = venv.unwrapped.core
    oracle = make_oracle("object_recall", "memoryless")
    venv.reset(seed=0)
    counts = []
    for _ in range(120):
        a = oracle.act(core)
        for i in np.flatnonzero((core.task.phase == 2) & (core.task.phase_t == 0)):
            counts.append(len(core.task.memoryless_posterior(core, i)))
        venv.step(a)
    assert oracle.bound and len(counts) >= len(oracle.bound)
    assert max(oracle.bound) <= 1.0 / (core.task.num_distractors + 1) + 1e-9


def test_observability_twin_keeps_the_cue():
    for obs_mode in ("full", "partial"):
        env = _env(observability=obs_mode)
        obs, _ = env.reset(seed=1)
        task = env.unwrapped.core.task
        while task.phase[0] != 2:
            obs, *_ = env.step(1)
        if obs_mode == "full":
            assert obs["cue"][0] == 1.0 and obs["target_cue"][1] > 0
            assert obs["candidates"][:, 3].sum() == 1.0  # the target's row stays flagged
        else:
            assert obs["cue"][0] == 0.0 and not obs["target_cue"].any()
            assert not obs["candidates"][:, 3].any()


def test_candidate_rows_flag_the_target_only_while_it_is_cued_and_in_view():
    """``candidates`` lists the room's objects in a fixed order that does not depend on the target; the cue flag
    marks the target's row exactly when ``target_cue`` shows it, and the row's position is the cue's."""
    env = _env()
    core = env.unwrapped.core
    task = core.task
    slots, counts, flagged = [], [], 0
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        rows = task.room_candidates(core, int(core.sim.scene[0]), int(task.target_room[0]))
        counts.append(len(rows))
        assert obs["candidates"][:, 0].sum() == len(rows)
        slots.append([o.instance_id for o in rows].index(int(task.target[0])))
        assert info["memory_slot"].sum() == 1 and int(np.argmax(info["memory_slot"])) == slots[-1]  # aux label
        while task.phase[0] != 2:
            c, cue = obs["candidates"], obs["target_cue"]
            assert (c[:, 3] > 0).sum() == (1 if cue[0] > 0 else 0)
            if cue[0] > 0:
                flagged += 1
                row = c[slots[-1]]
                assert row[3] == 1.0
                np.testing.assert_allclose(np.hypot(row[1], row[2]), cue[1], atol=1e-4)
                np.testing.assert_allclose(np.arctan2(row[2], row[1]), cue[2], atol=1e-4)
            obs, *_ = env.step(1)
    assert flagged > 0 and len(set(slots)) > 1  # the target is not always the same row


def test_span_and_bad_observability():
    task = _env(delay=7, observe_steps=24, recall_steps=30).unwrapped.core.task
    assert task.cue_to_query_span() == 24 + 7 + 30
    with pytest.raises(ValueError, match="observability.*'hidden'"):
        _env(observability="hidden")


def _follow_rows(env, pick, episodes: int) -> float:
    """Success of a scripted policy that follows the guide of the ``candidates`` row ``pick(obs, task)`` and
    STOPs where that row says ``here`` (its choice distance is 0)."""
    task = env.unwrapped.core.task
    wins = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=500 + ep)
        while True:
            a = 1
            if obs["phase"][2] == 1:
                dist, dx, dy, here = obs["candidates"][pick(obs, task), 4:]
                assert here == (dist <= 0)
                ang = np.arctan2(dy, dx)
                a = 0 if here else (1 if abs(ang) <= np.radians(10) else (2 if ang > 0 else 3))
            obs, _, term, trunc, info = env.step(a)
            if term or trunc:
                break
        wins.append(info["success"])
    return float(np.mean(wins))


def test_following_the_target_row_succeeds_and_a_guess_is_at_chance():
    """The rows' guides lead to where a STOP chooses their object: following the cued row (perfect memory) wins,
    following the nearest row (no memory) wins about once per candidate count."""
    env = _env()
    perfect = _follow_rows(env, lambda obs, task: int(task.target_slot[0]), 20)
    guess = _follow_rows(
        env,
        lambda obs, task: int(np.argmin(np.where(obs["candidates"][:, 0] > 0, obs["candidates"][:, 4], np.inf))),
        20,
    )
    assert perfect >= 0.85, perfect
    assert guess <= 0.45, guess


def test_pixel_candidates_give_the_rows_without_the_cue():
    """``pixel_candidates=True`` in ``rgbd`` observes the ``state`` mode's rows with the cue column 0, so which object
    was cued shows only in the pixels (the tint), while the memory label still names the target's row."""
    kw = {"resolution": (32, 32), "delay": 2}
    pix = _env(obs_mode="rgbd", pixel_candidates=True, **kw)
    state = _env(**kw)
    assert "candidates" not in _env(obs_mode="rgbd", **kw).observation_space.spaces
    for seed in range(3):
        (po, pinfo), (so, sinfo) = pix.reset(seed=seed), state.reset(seed=seed)
        assert pix.unwrapped.core.task.target[0] == state.unwrapped.core.task.target[0]
        np.testing.assert_array_equal(pinfo["memory_slot"], sinfo["memory_slot"])
        cued_rows = 0
        for _ in range(30):
            np.testing.assert_allclose(
                po["candidates"][:, [0, 1, 2, 4, 5, 6, 7]], so["candidates"][:, [0, 1, 2, 4, 5, 6, 7]]
            )
            assert not po["candidates"][:, 3].any()
            # the perception label of the pixel mode is the state mode's cue column
            np.testing.assert_array_equal(pinfo["cue_slot"], so["candidates"][:, 3])
            cued_rows += int(so["candidates"][:, 3].any())
            assert pix.observation_space["candidates"].contains(po["candidates"])
            (po, _, _, _, pinfo), (so, *_) = pix.step(1), state.step(1)
        assert cued_rows > 0  # the state twin flagged the target meanwhile; the pixel rows never did
    with pytest.raises(ValueError, match="pixel_candidates.*'yes'"):
        _env(obs_mode="rgbd", pixel_candidates="yes")
