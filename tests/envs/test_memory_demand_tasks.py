"""Memory demand of TargetSequence and Ballet (shared/specs/memory-demand.md): the observability twin, the declared
cue-to-query span, the controllable steps, and the memoryless bound far below the perfect-memory oracle."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.nav.oracles import evaluate
from chronotope.envs.sim.kinematic import MOVE_FORWARD, TURN_LEFT
from chronotope.envs.tasks.ballet import DANCER_RADIUS, MARK_SCALE, SEEK, WATCH

STATE = {"obs_mode": "state", "num_scenes": 3}


# ----------------------------------------------------------------------------------------------- TargetSequence
def test_target_sequence_twin_shows_every_target_and_partial_only_those_in_view():
    part = gym.make("chronotope/TargetSequence-v0", **STATE)
    full = gym.make("chronotope/TargetSequence-v0", observability="full", **STATE)
    hidden_seen = False
    for seed in range(3):
        op, _ = part.reset(seed=seed)
        of, _ = full.reset(seed=seed)
        task = part.unwrapped.core.task
        for t in range(40):
            cols = task.colours[0]
            if t < task.observe_steps:  # the observe phase shows every target, through walls, at any range
                assert (op["visible_targets"][cols, 0] == 1).all() and (op["visible_targets"][cols, 1] > 0).all()
                assert np.array_equal(of["visible_targets"], op["visible_targets"])
                op, *_ = part.step(TURN_LEFT)
                of, *_ = full.step(TURN_LEFT)
                continue
            sees = task.sees(part.unwrapped.core, task.xy)[0]
            # partial: a target's row is non-zero only while its colour is made out now
            assert np.array_equal(op["visible_targets"][cols, 0], sees.astype(np.float32))
            assert not op["visible_targets"][cols[~sees]].any()
            # twin: same episode, same flags, and distance + angle of every target at every step
            assert np.array_equal(of["visible_targets"][:, 0], op["visible_targets"][:, 0])
            assert (of["visible_targets"][cols, 1] > 0).all()
            named = int(op["target_color"].argmax())
            assert of["goal"][0] > 0 and np.allclose(of["goal"], of["visible_targets"][named, 1:])
            assert op["goal"].any() == bool(op["visible_targets"][named, 0])
            hidden_seen |= not op["goal"].any()
            a = MOVE_FORWARD if t % 3 else TURN_LEFT
            op, *_ = part.step(a)
            of, *_ = full.step(a)
    assert hidden_seen, "the named target was never out of view: the check above proved nothing"
    # pixel modes have no visible_targets, except in the twin and with an observe phase (pixels cannot show a target
    # out of view)
    plain = gym.make("chronotope/TargetSequence-v0", num_scenes=1, observe_steps=0)
    assert "visible_targets" not in plain.observation_space.spaces
    assert "visible_targets" in gym.make("chronotope/TargetSequence-v0", num_scenes=1).observation_space.spaces
    twin = gym.make("chronotope/TargetSequence-v0", num_scenes=1, observability="full")
    assert "visible_targets" in twin.observation_space.spaces


def test_target_sequence_colour_range_and_separation():
    env = gym.make("chronotope/TargetSequence-v0", **STATE)
    core = env.unwrapped.core
    task = core.task
    assert task.colour_range == 2.0 and task.min_separation == 3.0
    for seed in range(4):
        env.reset(seed=seed)
        scene = int(core.sim.scene[0])
        ids = task.instances[0]
        for a in range(task.num_targets):
            for b in range(a + 1, task.num_targets):
                assert task.separation(core, scene, int(ids[a]), int(ids[b])) >= task.min_separation
        for _ in range(30):
            env.step(TURN_LEFT)
            near = np.linalg.norm(task.xy - core.sim.position[:, None], axis=-1) <= task.colour_range
            assert np.array_equal(task.sees(core, task.xy), task.visible(core, task.xy) & near)
    with pytest.raises(ValueError, match="min_separation"):
        gym.make("chronotope/TargetSequence-v0", min_separation=1.5)
    with pytest.raises(ValueError, match="colour_range"):
        gym.make("chronotope/TargetSequence-v0", colour_range=0.0)
    with pytest.raises(ValueError, match="observability"):
        gym.make("chronotope/TargetSequence-v0", observability="some")


def test_target_sequence_span_and_controllable():
    env = gym.make("chronotope/TargetSequence-v0", **STATE)
    env.reset(seed=0)
    task = env.unwrapped.core.task
    assert task.cue_to_query_span() == 127  # the registered 128-step episodes
    assert task.controllable(env.unwrapped.core).all()
    venv = gym.make_vec(
        "chronotope/TargetSequence-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        max_episode_steps=300,
        **STATE,
    )
    assert venv.unwrapped.core.task.cue_to_query_span() == 299  # known before the first reset
    assert (
        gym.make("chronotope/TargetSequence-v0", observability="full", **STATE).unwrapped.core.task.cue_to_query_span()
        == 0
    )


def test_target_sequence_memoryless_bound_far_below_perfect_but_not_on_the_twin():
    # The defaults (128-step episodes, 3-6 room apartments, 20 sites): docs/RESULTS.md 5 measures bound / perfect
    # ~0.31 over 200 episodes; 16 episodes here.
    kw = dict(obs_mode="state", num_scenes=4)
    score = {
        (kind, obs): evaluate("chronotope/TargetSequence-v0", kind, 16, num_envs=8, seed=0, observability=obs, **kw)[
            "score"
        ]
        for kind, obs in (("perfect", "partial"), ("memoryless", "partial"), ("memoryless", "full"))
    }
    perfect, bound, twin = score["perfect", "partial"], score["memoryless", "partial"], score["memoryless", "full"]
    assert perfect >= 2, score
    assert bound <= 0.5 * perfect, score
    assert twin >= perfect, score  # the twin needs no exploration either


# ----------------------------------------------------------------------------------------------- Ballet
def test_ballet_twin_marks_the_instructed_dancer_after_the_watch_only():
    part = gym.make("chronotope/Ballet-v0", **STATE)
    full = gym.make("chronotope/Ballet-v0", observability="full", **STATE)
    for seed in range(3):
        op, _ = part.reset(seed=seed)
        of, _ = full.reset(seed=seed)
        task, ftask = part.unwrapped.core.task, full.unwrapped.core.task
        j = int(task.instructed[0])
        marked_seen = False
        for _ in range(task.watch_steps + task.delay + 24):
            phase = int(task.phase[0])
            vis = op["dancers"][:, 0] > 0
            assert np.array_equal(vis, of["dancers"][:, 0] > 0)  # same episode, same view
            if phase == WATCH:  # the dances are the same in both, no mark yet
                assert np.allclose(op["dancers"], of["dancers"])
                assert not ftask.marked(full.unwrapped.core).any()
            else:
                rest = vis.copy()
                rest[j] = False
                assert np.allclose(op["dancers"][vis, 4], DANCER_RADIUS)  # partial: all dancers alike
                assert np.allclose(of["dancers"][rest, 4], DANCER_RADIUS)
                if vis[j]:
                    assert np.isclose(of["dancers"][j, 4], DANCER_RADIUS * MARK_SCALE)
                    marked_seen = True
            a = TURN_LEFT  # ignored until the seek phase, then turns in place: every dancer comes into view
            op, *_ = part.step(a)
            of, *_ = full.step(a)
        assert marked_seen


def test_ballet_twin_mark_shows_in_pixels():
    kw = dict(semantic=True, num_scenes=3, resolution=(48, 48), num_dancers=2, dance_steps=4, delay=2)
    part = gym.make("chronotope/Ballet-v0", **kw)
    full = gym.make("chronotope/Ballet-v0", observability="full", **kw)
    op, _ = part.reset(seed=0)
    of, _ = full.reset(seed=0)
    core = part.unwrapped.core
    dancer_id = core.max_instance + 1 + int(core.task.instructed[0])
    for _ in range(8 + 2 + 24):
        if core.task.phase[0] == SEEK:
            n_part = int((op["semantic"] == dancer_id).sum())
            if n_part > 10:
                assert (of["semantic"] == dancer_id).sum() > 1.5 * n_part
                return
        op, *_ = part.step(TURN_LEFT)
        of, *_ = full.step(TURN_LEFT)
    pytest.fail("the instructed dancer never came into view")


def test_ballet_span_matches_the_phases_and_controllable_is_the_seek_phase():
    env = gym.make("chronotope/Ballet-v0", **STATE)
    obs, _ = env.reset(seed=4)
    core = env.unwrapped.core
    task = core.task
    assert (task.num_dancers, task.dance_steps, task.delay, task.seek_steps) == (4, 8, 16, 40)
    first = int(task.order[0, 0])
    last_dance, instruction, mask = None, None, []
    pos = core.sim.position[0].copy()
    for t in range(task.watch_steps + task.delay + 3):
        if task.phase[0] == WATCH and int(task.order[0, task.phase_t[0] // task.dance_steps]) == first:
            last_dance = t  # the observation shows the first performer's dance
        if instruction is None and obs["instruction"].any():
            instruction = t
        mask.append(bool(task.controllable(core)[0]))
        assert mask[-1] == (task.phase[0] == SEEK)
        obs, *_ = env.step(MOVE_FORWARD)
        if not mask[-1]:  # scripted: the forward action was ignored
            assert np.array_equal(core.sim.position[0], pos)
    assert task.phase[0] == SEEK and not np.array_equal(core.sim.position[0], pos)
    assert instruction - last_dance == task.cue_to_query_span() == 41
    assert mask == [False] * (task.watch_steps + task.delay) + [True] * 3
    assert (
        gym.make("chronotope/Ballet-v0", num_dancers=8, delay=48, **STATE).unwrapped.core.task.cue_to_query_span()
        == 105
    )
    assert gym.make("chronotope/Ballet-v0", observability="full", **STATE).unwrapped.core.task.cue_to_query_span() == 0


def test_ballet_memoryless_bound_far_below_perfect_but_not_on_the_twin():
    kw = dict(obs_mode="state", num_scenes=4)
    succ = {
        (kind, obs): evaluate("chronotope/Ballet-v0", kind, 32, num_envs=16, seed=0, observability=obs, **kw)["success"]
        for kind, obs in (("perfect", "partial"), ("memoryless", "partial"), ("memoryless", "full"))
    }
    assert succ["perfect", "partial"] >= 0.95, succ
    # The bound is 1/4; 32 episodes: 0.55 is ~4 standard deviations above it.
    assert succ["memoryless", "partial"] <= 0.55, succ
    assert succ["memoryless", "full"] >= 0.9, succ


def test_target_sequence_num_rooms_sets_the_apartments():
    env = gym.make("chronotope/TargetSequence-v0", num_rooms=(8, 9), num_scenes=2, obs_mode="state")
    assert all(8 <= len(s.rooms) <= 9 for s in env.unwrapped.core.scenes)
    env.reset(seed=0)
    for bad in (1, (5, 4), "many", True):
        with pytest.raises(ValueError, match="num_rooms"):
            gym.make("chronotope/TargetSequence-v0", num_rooms=bad, num_scenes=1)


def test_ballet_pattern_labels_appear_when_a_dance_has_been_seen_whole():
    """``memory_patterns`` labels dancer j's row with its pattern from the observation showing the last frame of
    its dance on: the set of labelled rows grows by one per dance, in the performing order, and ends as the task's
    patterns; the instructed row's label is the instruction."""
    env = gym.make("chronotope/Ballet-v0", **STATE)
    _, info = env.reset(seed=2)
    task = env.unwrapped.core.task
    k, ds = task.num_dancers, task.dance_steps
    labelled = []
    for t in range(task.watch_steps + task.delay + 1):
        lab = info["memory_patterns"].reshape(8, 8)
        rows = np.flatnonzero(np.isfinite(lab).all(1))
        assert np.isinf(lab[np.setdiff1d(np.arange(8), rows)]).all()
        assert list(rows) == sorted(int(j) for j in task.order[0, : min(k, (t + 1) // ds)]), t
        labelled.append(len(rows))
        obs, _, _, _, info = env.step(0)
    assert labelled[ds - 2] == 0 and labelled[ds - 1] == 1 and labelled[-1] == k
    lab = info["memory_patterns"].reshape(8, 8)
    np.testing.assert_array_equal(lab[:k].argmax(1), task.patterns[0, :k])
    assert obs["instruction"].any()
    np.testing.assert_array_equal(lab[task.instructed[0]], obs["instruction"])


def test_target_sequence_site_rows_name_colours_only_while_shown_and_guide_to_each_site():
    env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", num_scenes=2, num_rooms=None)
    core = env.unwrapped.core
    task = core.task
    rows_of_targets = set()
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        rows = obs["sites"]
        present = task.site_ids[0] >= 0
        assert rows.shape == (20, 7) and np.array_equal(rows[:, 0], present.astype(np.float32))
        assert len(set(task.site_ids[0][present].tolist())) == present.sum()  # distinct objects
        tr = task.target_row[0]
        rows_of_targets.update(tr.tolist())
        assert np.array_equal(task.site_ids[0, tr], task.instances[0])
        # observe phase: each target row shows its colour, no other row shows one; the label is the whole table
        colours = np.zeros((20, 8), np.float32)
        colours[tr, task.colours[0]] = 1
        assert np.array_equal(obs["site_colours"], colours)
        label = info["memory_colours"].reshape(20, 8)
        used = np.isin(np.arange(8), task.colours[0])
        assert np.array_equal(label[present][:, used], colours[present][:, used])
        assert np.isinf(label[~present]).all() and np.isinf(label[:, ~used]).all()
        assert np.array_equal(info["memory_slot"], np.eye(20)[tr[task.current[0]]])
    assert len(rows_of_targets) > 6, "the target rows must move around: the row order says nothing"
    # after the observe phase a row's colour shows only while its target is in view within colour_range
    for _ in range(task.observe_steps):
        obs, *_ = env.step(TURN_LEFT)
    reached, shown_later = 0, 0
    for _ in range(300):
        sees = task.sees(core, task.xy)[0]
        expect = np.zeros((20, 8), np.float32)
        expect[task.target_row[0][sees], task.colours[0][sees]] = 1
        assert np.array_equal(obs["site_colours"], expect)
        shown_later += int(sees.any())
        # following the named target's row: its (dx, dy) is the first step of a shortest path
        row = obs["sites"][task.target_row[0, task.current[0]]]
        ang = np.arctan2(row[5], row[4])
        a = MOVE_FORWARD if abs(ang) < np.deg2rad(7.5) else (TURN_LEFT if ang > 0 else 3)
        obs, r, *_ = env.step(a)
        reached += int(r >= 1)
    assert reached >= 3 and shown_later > 0
    with pytest.raises(ValueError, match="sites"):
        gym.make("chronotope/TargetSequence-v0", sites=2)
    with pytest.raises(ValueError, match="sites"):
        gym.make("chronotope/TargetSequence-v0", sites=25)
    with pytest.raises(ValueError, match="observe_steps"):
        gym.make("chronotope/TargetSequence-v0", observe_steps=-1)
    with pytest.raises(ValueError, match="num_colours"):
        gym.make("chronotope/TargetSequence-v0", num_colours=2)
    for num_colours, expect in ((None, {0, 1, 2}), (4, {0, 1, 2, 3})):  # None: the first K, as in Memory Maze
        env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", num_scenes=2, num_colours=num_colours)
        drawn = set()
        for seed in range(8):
            env.reset(seed=seed)
            drawn.update(env.unwrapped.core.task.colours[0].tolist())
        assert drawn == expect, num_colours


def test_target_sequence_colour_labels_wait_for_a_sighting_without_observe_phase():
    env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", num_scenes=2, observe_steps=0, num_rooms=None)
    task = env.unwrapped.core.task
    obs, info = env.reset(seed=1)
    assert not obs["site_colours"].any() or task.sees(env.unwrapped.core, task.xy)[0].any()
    for _ in range(150):
        seen = task.site_seen[0]
        label = info["memory_colours"].reshape(20, 8)
        used = np.isin(np.arange(8), task.colours[0])
        assert np.isinf(label[~seen]).all() and np.isinf(label[:, ~used]).all()
        assert np.array_equal(label[seen][:, used], task.colour_table()[0][seen][:, used])
        row = obs["sites"][task.target_row[0, task.current[0]]]  # walk to the named target: rows come into view
        ang = np.arctan2(row[5], row[4])
        a = MOVE_FORWARD if abs(ang) < np.deg2rad(7.5) else (TURN_LEFT if ang > 0 else 3)
        obs, _, _, _, info = env.step(a)
    assert 0 < task.site_seen[0].sum() < (task.site_ids[0] >= 0).sum()
