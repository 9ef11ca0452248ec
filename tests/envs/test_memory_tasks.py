"""Memory tasks (ObjectRecall, TargetSequence, Ballet): phases, cues, success rules, visibility, oracle gaps."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.nav.expert import ShortestPathExpert
from chronotope.envs.nav.oracles import evaluate, make_oracle
from chronotope.envs.tasks.visibility import PALETTE, WallGrid

SMALL = {"num_scenes": 3, "resolution": (32, 32)}


def test_object_recall_phases_cue_and_teleport():
    env = gym.make(
        "chronotope/ObjectRecall-v0", obs_mode="state", delay=5, teleport=True, delay_task="pointnav", **SMALL
    )
    obs, info = env.reset(seed=2)
    core, task = env.unwrapped.core, env.unwrapped.core.task
    start = core.sim.position[0].copy()
    assert task.room_of(core, 0) == task.target_room[0]
    yaws = [core.sim.yaw[0]]
    seen = obs["target_cue"][0] > 0
    for t in range(24):  # one full turn: every object of the room comes into view
        assert obs["cue"][0] == 1.0 and obs["phase"].tolist() == [1, 0, 0]
        obs, r, term, _, info = env.step(1)  # MOVE_FORWARD is ignored: the task turns the agent
        yaws.append(core.sim.yaw[0])
        if t < 23:
            assert np.array_equal(core.sim.position[0], start)
            seen = seen or obs["target_cue"][0] > 0
        assert not term
    assert seen, "the cued target was never visible during the look-around"
    turns = np.diff(np.unwrap(yaws[:6]))
    assert np.allclose(turns, np.radians(15))
    # delay: cue off, another room, distractor goal given, target never exposed
    assert obs["cue"][0] == 0.0 and obs["phase"].tolist() == [0, 1, 0]
    assert task.room_of(core, 0) != task.target_room[0]
    assert obs["distractor_goal"][0] > 0 and np.array_equal(obs["goal"], obs["distractor_goal"])
    assert not obs["target_cue"].any()
    for _ in range(4):
        obs, _, term, _, _ = env.step(0)  # STOP does nothing during the delay
        assert not term and obs["phase"].tolist() == [0, 1, 0]
    obs, _, term, _, info = env.step(2)
    assert obs["phase"].tolist() == [0, 0, 1] and not term and info["phase"] == 2
    assert not obs["goal"].any()


def test_object_recall_success_only_for_stop_near_target():
    kw = dict(
        obs_mode="state", observe_steps=2, delay=3, recall_steps=150, teleport=True, delay_task="pointnav", **SMALL
    )
    env = gym.make("chronotope/ObjectRecall-v0", **kw)
    env.reset(seed=5)
    core = env.unwrapped.core
    for _ in range(5):
        env.step(1)
    assert core.task.phase[0] == 2
    d = core.distance_to_goal[0]
    assert d > core.success_radius  # the teleport left the target's room
    _, r, term, _, info = env.step(0)  # STOP far from the target: failure
    assert term and info["success"] == 0.0 and info["reward_success"] == 0.0
    # The perfect-memory oracle (it saw the target during a full turn) succeeds, with SPL in (0, 1].
    env = gym.make("chronotope/ObjectRecall-v0", **{**kw, "observe_steps": 24})
    env.reset(seed=5)
    core = env.unwrapped.core
    oracle = make_oracle("object_recall", "perfect")
    for _ in range(400):
        _, r, term, _, info = env.step(int(oracle.act(core)[0]))
        if term:
            break
    assert term and info["success"] == 1.0 and r > 0.5 and 0 < info["spl"] <= 1.0
    assert info["time_to_target"] > 0
    # Running out of recall steps ends the episode as a failure.
    env = gym.make("chronotope/ObjectRecall-v0", **{**kw, "recall_steps": 4})
    env.reset(seed=5)
    for _ in range(9):
        _, _, term, _, info = env.step(2)
    assert term and info["success"] == 0.0 and info["time_to_target"] == 4


def test_object_recall_cue_is_painted_in_rgb():
    env = gym.make("chronotope/ObjectRecall-v0", semantic=True, num_scenes=3, resolution=(48, 48), delay=1)
    task = env.unwrapped.core.task
    seen = 0
    for seed in range(4):  # furniture can hide a small target from a low camera in a whole turn: try a few
        obs, _ = env.reset(seed=seed)
        for _ in range(24):
            m = obs["semantic"][..., 0] == task.target[0]
            if m.sum() > 5:
                px = obs["rgb"][m].astype(float).mean(0)
                assert px[0] > px[1] + 40 and px[2] > px[1] + 40, px  # magenta tint
                seen += 1
                break
            obs, *_ = env.step(1)
    assert seen >= 2, "the target was in view in fewer than 2 of 4 episodes"


def test_visibility_walls_fov_and_range():
    env = gym.make("chronotope/ObjectRecall-v0", obs_mode="state", **SMALL)
    env.reset(seed=0)
    core = env.unwrapped.core
    scene = core.scenes[0]
    walls = WallGrid(core.scenes, core.sim.stack)
    # A wall piece away from doors: points 0.5 m either side of its middle.
    lo, hi = max((b for b in scene.wall_boxes() if b[0][2] == 0), key=lambda b: np.ptp(b[1][:2] - b[0][:2]))
    mid = (lo[:2] + hi[:2]) / 2
    normal = np.array([1.0, 0.0]) if hi[0] - lo[0] < hi[1] - lo[1] else np.array([0.0, 1.0])
    eye, behind, front = mid - 0.5 * normal, mid + 0.5 * normal, mid - 1.2 * normal
    sc = np.array([0])
    yaw = np.array([np.arctan2(normal[1], normal[0])])
    pts = np.stack([behind, front])[None]
    los = walls.line_of_sight(sc, eye[None], pts)[0]
    assert not los[0] and los[1]
    # Facing the wall, the point behind it is in the field of view and range, yet hidden by the wall.
    assert not walls.visible(sc, eye[None], yaw, behind[None, None], 90, 10)[0, 0]
    # In front (no wall between: point just before the wall) is visible; behind the camera is not; beyond range not.
    near = eye + 0.3 * normal
    assert walls.visible(sc, eye[None], yaw, near[None, None], 90, 10)[0, 0]
    assert not walls.visible(sc, eye[None], yaw + np.pi, near[None, None], 90, 10)[0, 0]
    assert not walls.visible(sc, eye[None], yaw, near[None, None], 90, 0.2)[0, 0]


def test_target_sequence_reward_and_next_target():
    env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", num_targets=4, **SMALL)
    obs, _ = env.reset(seed=3)
    core = env.unwrapped.core
    expert = ShortestPathExpert()
    colours, total = [int(obs["target_color"].argmax())], 0.0
    for _ in range(600):
        obs, r, term, trunc, info = env.step(int(expert.act(core)[0]))
        assert not term
        total += r
        if r > 0:
            assert info["success"] == 1.0 and r == 1.0
            c = int(obs["target_color"].argmax())
            assert c != colours[-1] and c in set(core.task.colours[0].tolist())
            colours.append(c)
        if len(colours) >= 4:
            break
    assert info["score"] == total == len(colours) - 1 >= 3
    # state mode: the named target's goal vector is zero unless that target is visible now
    vis = obs["visible_targets"][int(obs["target_color"].argmax())]
    assert (vis[0] == 0) == (not obs["goal"].any())


def test_target_sequence_explore_reward_pays_each_new_cell_once():
    """The explore term pays once per cell of the start-anchored grid the agent enters for the first time in the
    episode (counted here from the agent's recorded positions), and the score does not include it."""
    cell = 0.5
    env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", explore_reward=0.1, explore_cell=cell, **SMALL)
    obs, info = env.reset(seed=5)
    start = np.asarray(info["agent_pose"][:2], float)
    expert = ShortestPathExpert()
    core = env.unwrapped.core
    seen, paid, targets = {(0, 0)}, 0, 0.0
    for _ in range(300):
        obs, r, term, trunc, info = env.step(int(expert.act(core)[0]))
        key = tuple(np.floor((np.asarray(info["agent_pose"][:2]) - start) / cell).astype(int))
        new = key not in seen
        seen.add(key)
        assert info["reward_explore"] == pytest.approx(0.1 if new else 0.0)
        assert r == pytest.approx(info["reward_success"] + info["reward_explore"])
        paid += new
        targets += info["reward_success"]
    assert paid >= 10 and info["score"] == targets
    # a reset forgets the visited cells: the first steps out of the start cell pay again
    env.reset(seed=5)
    first = [env.step(int(expert.act(core)[0]))[4]["reward_explore"] for _ in range(20)]
    assert sum(first) > 0
    plain = gym.make("chronotope/TargetSequence-v0", obs_mode="state", **SMALL)
    plain.reset(seed=0)
    assert "reward_explore" not in plain.step(1)[4]  # off by default: the task's reward is unchanged
    with pytest.raises(ValueError, match="explore_reward"):
        gym.make("chronotope/TargetSequence-v0", explore_reward=-1.0)
    with pytest.raises(ValueError, match="explore_cell"):
        gym.make("chronotope/TargetSequence-v0", explore_reward=0.1, explore_cell=0.0)


def test_target_sequence_memory_goal_labels_the_named_target_once_its_colour_has_shown():
    """memory_goal: zeros until the named target's colour has shown in the episode; then 1 and its place in
    the agent's frame, equal to the goal vector the observation shows while it is in view."""
    env = gym.make("chronotope/TargetSequence-v0", obs_mode="state", num_targets=4, **SMALL)
    obs, info = env.reset(seed=3)
    core, expert = env.unwrapped.core, ShortestPathExpert()
    extent, shown, checked = core.max_extent, set(), 0
    for _ in range(500):
        named = int(obs["target_color"].argmax())
        shown.update(np.flatnonzero(obs["visible_targets"][:, 0] == 1).tolist())  # every colour showing now
        label = info["memory_goal"]
        assert label[0] == float(named in shown)
        if named in shown:
            fwd, left = label[1:] * extent
            assert np.hypot(fwd, left) == pytest.approx(
                np.linalg.norm(core.task.xy[0, core.task.current[0]] - core.sim.position[0]), abs=1e-6
            )
            if obs["goal"].any():  # in view now: the observation's (distance, angle)
                d, a = obs["goal"]
                assert (fwd, left) == pytest.approx((d * np.cos(a), d * np.sin(a)), abs=1e-4)
                checked += 1
        else:
            assert (label[1:] == 0).all()
        obs, _, _, _, info = env.step(int(expert.act(core)[0]))
    assert checked >= 5 and len(shown) >= 2
    env.reset(seed=4)  # a reset forgets: only what shows at the start is seen
    task = env.unwrapped.core.task
    assert (task.seen[0] == task.observable_targets(env.unwrapped.core)[0]).all()


def test_target_sequence_targets_painted():
    env = gym.make("chronotope/TargetSequence-v0", semantic=True, num_scenes=3, resolution=(48, 48))
    core = env.unwrapped.core
    task = core.task
    painted = unpainted = 0
    for seed in range(40):  # turn on the spot from a few starts; targets in view are painted iff within range
        obs, _ = env.reset(seed=seed)
        for _ in range(24):
            shows = task.sees(core, task.xy)[0]
            for inst, c, show in zip(task.instances[0], task.colours[0], shows, strict=True):
                m = obs["semantic"][..., 0] == inst
                if m.sum() > 5:
                    px = obs["rgb"][m].astype(float).mean(0)
                    hit = np.argmax(px) == np.argmax(PALETTE[c].astype(float)) and np.ptp(px) > 60
                    if show:
                        assert hit, (px, PALETTE[c])
                        painted += 1
                    else:
                        unpainted += 1
            obs, *_ = env.step(2)
        if painted and unpainted:
            return
    pytest.fail(f"turning showed {painted} painted and {unpainted} out-of-range targets; need both")


def test_ballet_watch_phase_and_compositing():
    env = gym.make(
        "chronotope/Ballet-v0", semantic=True, num_scenes=3, resolution=(48, 48), num_dancers=2, delay=4, dance_steps=16
    )
    obs, _ = env.reset(seed=0)
    core, task = env.unwrapped.core, env.unwrapped.core.task
    pos = core.sim.position[0].copy()
    ids = set()
    for t in range(2 * 16 + 4):
        assert not obs["instruction"].any()
        performer = task.order[0, min(t // 16, 1)]
        if t < 32:
            assert np.isclose(np.cos(core.sim.yaw[0] - task.bearing[0, performer]), 1.0)
        ids |= set(np.unique(obs["semantic"]).tolist())
        obs, r, term, _, _ = env.step(1)  # ignored
        assert np.array_equal(core.sim.position[0], pos) and not term
    assert {core.max_instance + 1, core.max_instance + 2} <= ids  # both dancers rendered with their own ids
    assert obs["instruction"].sum() == 1 and obs["phase"].tolist() == [0, 0, 1]
    named = int(obs["instruction"].argmax())
    assert named == task.patterns[0, task.instructed[0]]


def test_ballet_state_exposes_moving_visible_dancers():
    env = gym.make("chronotope/Ballet-v0", obs_mode="state", num_scenes=3, num_dancers=4)
    obs, _ = env.reset(seed=1)
    task = env.unwrapped.core.task
    track = []
    for _ in range(task.dance_steps):
        j = task.order[0, 0]
        track.append(obs["dancers"][j].copy())
        obs, *_ = env.step(0)
    track = np.array(track)
    assert track[:, 0].all()  # the performer is in view while it dances
    assert np.ptp(track[:, 1:5], axis=0).max() > 0.05  # and it moves (or pulses)
    # The agent faces the performer's resting point, so its displacement along / across the circle is what the
    # egocentric y-left / x-forward show beyond the resting point.
    assert np.allclose(track[:, 5], track[:, 2], atol=1e-5)
    assert np.allclose(track[:, 6], track[:, 1] - task.circle_radius, atol=1e-5)
    for _ in range(task.watch_steps - task.dance_steps + 1):  # to the delay: every dancer at rest
        obs, *_ = env.step(0)
    assert obs["phase"][1] == 1 and not obs["dancers"][:, 5:].any()


def test_ballet_rows_name_the_performed_pattern_only_while_it_is_performed():
    env = gym.make("chronotope/Ballet-v0", obs_mode="state", num_scenes=3, num_dancers=4)
    obs, _ = env.reset(seed=2)
    task = env.unwrapped.core.task
    assert obs["dancers"].shape == (8, 15)
    for t in range(task.watch_steps):
        j = task.order[0, t // task.dance_steps]
        named = obs["dancers"][:, 7:]
        assert np.flatnonzero(named.sum(1)).tolist() == [j]  # only the performer's row names a pattern
        assert int(named[j].argmax()) == task.patterns[0, j]
        obs, *_ = env.step(0)
    assert not obs["dancers"][:, 7:].any()  # after the dances nothing names a pattern: the rows must be remembered
    bare = gym.make("chronotope/Ballet-v0", obs_mode="state", num_scenes=3, num_dancers=4, pattern_rows=False)
    assert bare.observation_space["dancers"].shape == (8, 7)
    with pytest.raises(ValueError, match="pattern_rows"):
        gym.make("chronotope/Ballet-v0", obs_mode="state", pattern_rows="yes")


def test_ballet_memory_slot_labels_the_instructed_row_only_once_instructed():
    env = gym.make("chronotope/Ballet-v0", obs_mode="state", num_scenes=3, num_dancers=2, delay=2, dance_steps=2)
    obs, info = env.reset(seed=3)
    task = env.unwrapped.core.task
    seen_seek = False
    for _ in range(12):
        if obs["phase"][2] == 1:  # seek: the label is the instructed dancer's row, and the instruction shows
            seen_seek = True
            assert obs["instruction"].sum() == 1
            assert np.array_equal(info["memory_slot"], np.eye(8)[int(task.instructed[0])])
        else:  # nothing observed yet says which dancer: no label (non-finite)
            assert not np.isfinite(info["memory_slot"]).any()
        obs, _, term, trunc, info = env.step(1)
        if term or trunc:
            break
    assert seen_seek
    env.close()


@pytest.mark.parametrize(
    "env_id,kwargs,perfect_min,memoryless_max",
    [
        ("chronotope/ObjectRecall-v0", {"delay": 20, "recall_steps": 150}, 0.9, 0.45),
        ("chronotope/Ballet-v0", {"num_dancers": 8, "delay": 16}, 0.9, 0.4),
    ],
)
def test_oracle_gap(env_id, kwargs, perfect_min, memoryless_max):
    eps = 12
    perfect = evaluate(env_id, "perfect", eps, num_envs=6, obs_mode="state", num_scenes=4, **kwargs)
    memoryless = evaluate(env_id, "memoryless", eps, num_envs=6, obs_mode="state", num_scenes=4, **kwargs)
    assert perfect["success"] >= perfect_min, perfect
    assert memoryless["success"] <= memoryless_max, memoryless
    assert perfect["success"] - memoryless["success"] >= 0.5


def test_target_sequence_memory_helps():
    kw = dict(obs_mode="state", num_scenes=2, max_episode_steps=400, num_rooms=None)  # small apartments: 400 steps do
    perfect = evaluate("chronotope/TargetSequence-v0", "perfect", 4, num_envs=4, **kw)
    memoryless = evaluate("chronotope/TargetSequence-v0", "memoryless", 4, num_envs=4, **kw)
    rnd = evaluate("chronotope/TargetSequence-v0", "random", 4, num_envs=4, **kw)
    assert perfect["score"] > memoryless["score"] > rnd["score"]


def test_vector_auto_reset_of_short_recall_episodes():
    venv = gym.make_vec(
        "chronotope/ObjectRecall-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        obs_mode="state",
        observe_steps=2,
        delay=2,
        recall_steps=3,
        num_scenes=2,
    )
    obs, _ = venv.reset(seed=0)
    ended = 0
    for _ in range(7):
        obs, _, term, trunc, info = venv.step(np.array([1, 2, 3]))
        if term.any():
            ended += int(term.sum())
            assert info["_final_info"][term].all()
            assert (obs["phase"][term] == [1, 0, 0]).all() and (obs["cue"][term] == 1).all()
    assert ended == 3


def test_bad_memory_task_kwargs():
    with pytest.raises(ValueError, match="-1"):
        gym.make("chronotope/ObjectRecall-v0", delay=-1)
    with pytest.raises(ValueError, match="num_rooms"):
        gym.make("chronotope/ObjectRecall-v0", num_rooms=1)
    with pytest.raises(ValueError, match="9"):
        gym.make("chronotope/Ballet-v0", num_dancers=9)
    with pytest.raises(ValueError, match="num_targets"):
        gym.make("chronotope/TargetSequence-v0", num_targets=1)
    with pytest.raises(ValueError, match="colour_mode"):
        gym.make("chronotope/Ballet-v0", colour_mode=1)
    with pytest.raises(ValueError, match="unknown oracle kind"):
        make_oracle("ballet", "psychic")


def test_num_rooms_and_distractors_shape_the_scene_pool():
    env = gym.make("chronotope/ObjectRecall-v0", obs_mode="state", num_rooms=3, num_distractors=3, num_scenes=2)
    env.reset(seed=0)
    core = env.unwrapped.core
    assert all(len(s.rooms) == 3 for s in core.scenes)
    task = core.task
    for seed in range(4):
        env.reset(seed=seed)
        room = task.target_room[0]
        assert sum(o.room_id == room for o in core.scenes[core.sim.scene[0]].objects) >= 4


def test_object_recall_without_teleport_waits_in_the_target_room():
    import gymnasium as gym
    import numpy as np

    env = gym.make(
        "chronotope/ObjectRecall-v0", obs_mode="state", delay=5, teleport=False, delay_task="wait", num_scenes=2
    )
    obs, info = env.reset(seed=3)
    task = env.unwrapped.core.task
    room = task.target_room[0]
    for _ in range(24):  # observe: turned in place
        obs, *_ = env.step(1)
    pos = env.unwrapped.core.sim.position[0].copy()
    for _ in range(5):  # delay: "wait" ignores the agent's actions
        obs, *_ = env.step(1)
        assert np.array_equal(env.unwrapped.core.sim.position[0], pos)
    assert obs["phase"].tolist() == [0.0, 0.0, 1.0]
    spec = env.unwrapped.scene
    assert spec.room_at(*pos).id == room
    with pytest.raises(ValueError, match="delay_task"):
        gym.make("chronotope/ObjectRecall-v0", delay_task="nap")
