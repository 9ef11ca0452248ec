"""VLN-v0: measures against hand-computed cases, reference paths, instructions, tokenizer, datasets, replay."""

import gzip
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.spec import Door, Room, SceneObject, SceneSpec, Wall
from chronotope.envs.tasks.instructions import (
    MAX_SENTENCES,
    TEMPLATES,
    UNK_ID,
    VOCAB_PATH,
    Tokenizer,
    build_vocabulary,
    default_tokenizer,
    describe_route,
    polyline_corners,
    route_events,
    tokenize,
)
from chronotope.envs.tasks.measures import dtw
from chronotope.envs.tasks.vln import VLN_MEASURES, VLNExpert
from chronotope.envs.tasks.vln_dataset import (
    DatasetConfig,
    densify,
    generate_dataset,
    load_dataset,
    parse_scene_id,
    quaternion_to_yaw,
    reference_path,
    resample,
    save_dataset,
    segment_free,
    yaw_to_quaternion,
)
from chronotope.envs.vector_info import final_info_row


# ------------------------------------------------------------------------------------------------ measures
class FakeCore:
    """The attributes VLN measures read, driven by hand."""

    def __init__(self, refs, starts, d_start, radius=3.0):
        n = len(refs)
        self.n, self.success_radius = n, radius
        self.episodes = [SimpleNamespace(extra={"ndtw_reference": np.asarray(r, float)}) for r in refs]
        self.sim = SimpleNamespace(position=np.asarray(starts, float).reshape(n, 2).copy())
        self.distance_to_goal = np.asarray(d_start, float).reshape(n).copy()
        self.start_distance = self.distance_to_goal.copy()
        self.shortest_path = self.distance_to_goal.copy()
        self.called_stop = np.zeros(n, bool)
        self.collided = np.zeros(n, bool)
        self.moved = np.zeros(n)
        self.measures = {m.uuid: m(n) for m in VLN_MEASURES}
        for m in self.measures.values():
            m.reset_metric(np.arange(n), self)

    def step(self, pos, dist, stop=False):
        pos = np.asarray(pos, float).reshape(self.n, 2)
        self.moved = np.linalg.norm(pos - self.sim.position, axis=1)
        self.sim.position = pos
        self.distance_to_goal = np.asarray(dist, float).reshape(self.n)
        self.called_stop = np.broadcast_to(np.asarray(stop, bool), (self.n,)).copy()
        for m in self.measures.values():
            m.update_metric(self)

    def __getitem__(self, k):
        return self.measures[k].value


def test_straight_reference_walked_exactly():
    ref = [[0, 0], [1, 0], [2, 0], [3, 0]]
    c = FakeCore([ref], [[0, 0]], [3.0])
    assert c["ndtw"][0] == pytest.approx(math.exp(-6.0 / 12.0))  # only the start so far: 0 + 1 + 2 + 3
    for x, stop in ((1, False), (2, False), (3, True)):
        c.step([[x, 0]], [3.0 - x], stop)
    assert c["ndtw"][0] == pytest.approx(1.0) and c["sdtw"][0] == pytest.approx(1.0)
    assert c["success"][0] == 1 and c["spl"][0] == pytest.approx(1.0)
    assert c["path_length"][0] == pytest.approx(3.0) and c["steps"][0] == 3
    assert c["task_completion"][0] == 1 and c["spd"][0] == 0.0 and c["distance_to_goal"][0] == 0.0


def test_ndtw_detour_and_hand_computed_dtw():
    # reference (0,0) (1,0) (2,0); the agent steps through (1,1): DTW = 1, nDTW = exp(-1 / (3 * 3))
    c = FakeCore([[[0, 0], [1, 0], [2, 0]]], [[0, 0]], [2.0])
    c.step([[1, 1]], [1.5])
    c.step([[2, 0]], [0.0], True)
    assert c.measures["ndtw"].dtw[0] == pytest.approx(1.0)
    assert c["ndtw"][0] == pytest.approx(math.exp(-1.0 / 9.0))
    assert c["sdtw"][0] == pytest.approx(math.exp(-1.0 / 9.0))
    # Q = (0,0) (2,0) against the same reference: cost rows [0,1,2] and [2,1,0] -> DTW = 1 (by hand)
    c = FakeCore([[[0, 0], [1, 0], [2, 0]]], [[0, 0]], [2.0])
    c.step([[2, 0]], [0.0])
    assert c.measures["ndtw"].dtw[0] == pytest.approx(1.0)
    assert dtw(np.array([[0, 0], [2, 0]]), np.array([[0, 0], [1, 0], [2, 0]])) == pytest.approx(1.0)
    # turning in place on the start point costs nothing; turning 1 m off the path costs 1 per step
    c = FakeCore([[[0, 0], [1, 0]], [[0, 0], [1, 0]]], [[0, 0], [0, 1]], [1.0, 1.4])
    c.step([[0, 0], [0, 1]], [1.0, 1.4])
    c.step([[1, 0], [1, 0]], [0.0, 0.0])
    assert c.measures["ndtw"].dtw.tolist() == pytest.approx([0.0, 2.0])


def test_success_threshold_oracle_success_and_task_completion():
    # two agents STOP at 2.9 m and 3.1 m from the goal
    c = FakeCore([[[0, 0], [5, 0]]] * 2, [[0, 0], [0, 0]], [5.0, 5.0])
    c.step([[2.1, 0], [1.9, 0]], [2.9, 3.1], True)
    assert c["success"].tolist() == [1.0, 0.0] and c["oracle_success"].tolist() == [1.0, 0.0]
    assert c["task_completion"].tolist() == [1.0, 0.0] and c["spd"].tolist() == [2.9, 3.1]
    assert c["sdtw"][1] == 0.0 and c["sdtw"][0] == pytest.approx(c["ndtw"][0])
    # passing within 2.5 m and stopping 4 m away: oracle success only
    c = FakeCore([[[0, 0], [5, 0]]], [[0, 0]], [5.0])
    c.step([[2.5, 0]], [2.5])
    c.step([[1.0, 0]], [4.0], True)
    assert (c["success"][0], c["oracle_success"][0], c["task_completion"][0]) == (0.0, 1.0, 0.0)
    # the time limit ends an episode 1 m from the goal without STOP: task completion 1, success 0
    c = FakeCore([[[0, 0], [5, 0]]], [[0, 0]], [5.0])
    c.step([[4.0, 0]], [1.0])
    assert (c["success"][0], c["task_completion"][0]) == (0.0, 1.0)


def test_spl_of_a_path_twice_as_long_as_optimal():
    c = FakeCore([[[0, 0], [2, 0]]], [[0, 0]], [2.0])
    for p, d in (([0, 1], 2.2), ([1, 1], 1.4), ([1, 0], 1.0), ([2, 0], 0.0)):
        c.step([p], [d], d == 0.0)
    assert c["path_length"][0] == pytest.approx(4.0)
    assert c["spl"][0] == pytest.approx(0.5)


def test_incremental_dtw_equals_exact_dtw_with_resets():
    rng = np.random.default_rng(0)
    refs = [rng.normal(size=(m, 2)).cumsum(0) for m in (3, 7, 12)]
    c = FakeCore(refs, [r[0] + 0.3 for r in refs], [5.0, 5.0, 5.0])
    paths = [[p.copy()] for p in c.sim.position]
    for t in range(15):
        pos = c.sim.position + rng.normal(scale=0.5, size=(3, 2))
        c.step(pos, [5.0, 5.0, 5.0])
        for i in range(3):
            paths[i].append(pos[i])
        if t == 6:  # env 1 starts a new episode with a longer reference mid-way
            new = rng.normal(size=(20, 2)).cumsum(0)
            c.episodes[1].extra["ndtw_reference"] = new
            refs[1] = new
            c.sim.position[1] = new[0] + 0.1
            paths[1] = [c.sim.position[1].copy()]
            for m in c.measures.values():
                m.reset_metric(np.array([1]), c)
    for i in range(3):
        exact = dtw(np.array(paths[i]), refs[i])
        assert c.measures["ndtw"].dtw[i] == pytest.approx(exact, rel=1e-9)
        assert c["ndtw"][i] == pytest.approx(math.exp(-exact / (len(refs[i]) * 3.0)), rel=1e-9)


# ------------------------------------------------------------------------------------------------ scenes
def two_room_scene():
    """Bedroom [0,4]x[0,4] and kitchen [4,8]x[0,4] joined by a 1 m door at (4, 2); red sofa, white fridge."""
    walls = (
        Wall((0, 0), (8, 0)),
        Wall((0, 4), (8, 4)),
        Wall((0, 0), (0, 4)),
        Wall((8, 0), (8, 4)),
        Wall((4, 0), (4, 4)),
    )
    sofa = SceneObject(4, cat.CATEGORY_BY_NAME["sofa"].id, "red", (2.0, 0.9), math.pi / 2, (0.9, 2.0, 0.85), 0)
    fridge = SceneObject(5, cat.CATEGORY_BY_NAME["fridge"].id, "white", (7.6, 2.0), math.pi, (0.7, 0.7, 1.8), 1)
    return SceneSpec(
        "two-rooms",
        (Room(0, "bedroom", (0, 0), (4, 4)), Room(1, "kitchen", (4, 0), (8, 4))),
        walls,
        (Door((4.0, 2.0), 1.0, "y", (0, 1)),),
        (sofa, fridge),
    )


def test_reference_path_is_the_straight_geodesic_through_the_door():
    spec = two_room_scene()
    grid = spec.navgrid()
    start, goal = np.array([1.0, 2.0]), np.array([6.9, 2.0])
    field = grid.distance_field(goals_xy=goal[None])
    path, corners = reference_path(grid, field, start, goal, 0.5)
    assert len(corners) == 2  # a straight line: the door is in line with start and goal
    assert np.allclose(path[0], start) and np.allclose(path[-1], goal)
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).max() <= 0.5 + 1e-9
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert length == pytest.approx(5.9, abs=1e-6)
    d0 = float(grid.lookup(field, start))
    assert 0.97 * d0 <= length <= d0 + 0.05
    # around the wall: the start in the corner of the bedroom, the path bends at the door
    start = np.array([1.0, 3.5])
    path, corners = reference_path(grid, field, start, goal, 0.5)
    assert len(corners) >= 3
    assert all(segment_free(grid, a, b) for a, b in zip(path[:-1], path[1:]))
    d0 = float(grid.lookup(field, start))
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert np.linalg.norm(goal - start) < length and 0.97 * d0 <= length <= d0 + 0.05


def test_reference_paths_on_generated_apartments():
    from chronotope.envs.nav.core import _navgrid, _scene_from_seed

    rng = np.random.default_rng(1)
    for seed in (0, 1):
        spec = _scene_from_seed(seed, "{}")
        grid = _navgrid(spec, 0.18, 0.05, 1.5)
        main = grid.largest_component()
        for _ in range(3):
            start, goal = grid.sample_navigable(rng, 2, main)
            field = grid.distance_field(goals_xy=goal[None])
            path, _ = reference_path(grid, field, start, goal, 0.5)
            length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
            d0 = float(grid.lookup(field, start))
            assert 0.97 * d0 - 0.05 <= length <= d0 + 0.05, (seed, d0, length)
            assert all(segment_free(grid, a, b) for a, b in zip(path[:-1], path[1:]))


def test_resample_and_densify():
    p = np.array([[0, 0], [2, 0], [2, 1]], float)
    r = resample(p, 0.5)
    assert len(r) == 7 and np.allclose(r[-1], [2, 1]) and np.allclose(r[4], [2, 0])
    d = densify(np.array([[0, 0], [1, 0], [1, 0.2]]), 0.25)
    assert np.allclose(d, [[0, 0], [0.25, 0], [0.5, 0], [0.75, 0], [1, 0], [1, 0.2]])
    with pytest.raises(ValueError, match="-1"):
        resample(p, -1)


# ------------------------------------------------------------------------------------------------ language
def test_polyline_corners():
    assert polyline_corners(np.array([[0, 0], [2, 0], [2, 2]])) == [(2.0, pytest.approx(math.pi / 2))]
    assert polyline_corners(np.array([[0, 0], [2, 0], [2, -2]])) == [(2.0, pytest.approx(-math.pi / 2))]
    # two 45 deg bends 0.5 m apart merge into one 90 deg turn; a 20 deg bend is dropped
    bends = np.array([[0, 0], [2, 0], [2.35, 0.35], [2.35, 2], [2.35 + math.sin(0.35), 2 + 2 * math.cos(0.35)]])
    (at, a), *rest = polyline_corners(bends)
    assert at == pytest.approx(2.0) and a == pytest.approx(math.pi / 2) and rest == []


def test_route_events_of_a_known_route():
    spec = two_room_scene()
    fridge = spec.object_by_instance(5)
    path = resample(np.array([[1.0, 2.0], [6.9, 2.0]]), 0.5)
    kinds = [e.kind for e in route_events(spec, path, math.pi, fridge)]  # facing away from the route
    assert kinds == ["turn_around", "pass", "leave", "enter", "stop"]
    events = route_events(spec, path, math.pi / 2, fridge)  # facing +y: the route is to the right
    assert events[0].kind == "start_turn" and dict(events[0].slots) == {"dir": "right"}
    assert [dict(e.slots) for e in events if e.kind in ("leave", "enter")] == [{"room": "bedroom"}, {"room": "kitchen"}]
    assert dict(events[-1].slots) == {"obj": "white fridge"}
    text = describe_route(spec, path, 0.0, fridge, np.random.default_rng(0))
    for words in ("red sofa", "bedroom", "kitchen", "white fridge"):
        assert words in text
    # seeded: the same generator gives the same text, phrasings vary across draws
    assert text == describe_route(spec, path, 0.0, fridge, np.random.default_rng(0))
    texts = {describe_route(spec, path, 0.0, fridge, np.random.default_rng(s)) for s in range(20)}
    assert len(texts) >= 5


def test_generated_instructions_are_well_formed():
    data = generate_dataset(DatasetConfig("train", episodes=12, num_scenes=3, seed=5))
    tok = default_tokenizer()
    stops = set()
    for e in data["episodes"]:
        text = e["instruction"]["instruction_text"]
        n_sent = text.count(".")
        assert 1 <= n_sent <= MAX_SENTENCES, text
        assert UNK_ID not in tok.encode(text).tolist(), text
        assert len(tokenize(text)) <= 80
        last = text.rstrip(".").split(". ")[-1].lower()
        assert e["info"]["goal_object"] in last, text  # the stop sentence names the goal landmark
        stops.add(last.split(" the ")[0])
    assert len(stops) >= 2  # several stop phrasings


def test_vocabulary_file_and_tokenizer():
    assert VOCAB_PATH.read_text().splitlines() == build_vocabulary()
    tok = default_tokenizer()
    ids = tok.encode("Stop next to the zebra.", max_length=8)
    assert ids.dtype == np.int64 and ids.shape == (8,)
    assert ids[4] == UNK_ID and ids[6:].tolist() == [0, 0]
    assert tok.decode(tok.encode("Leave the bedroom, then turn left.")) == "leave the bedroom, then turn left."
    assert tok.encode("turn left turn left", max_length=2).tolist() == tok.encode("turn left").tolist()
    for phrasings in TEMPLATES.values():
        for t in phrasings:
            assert UNK_ID not in tok.encode(t.format(room="living room", obj="red sofa", dir="left")).tolist()
    with pytest.raises(ValueError, match="<pad>"):
        Tokenizer(("a", "b"))
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("stop", max_length=0)


# ------------------------------------------------------------------------------------------------ datasets
@pytest.fixture(scope="module")
def val_file(tmp_path_factory):
    data = generate_dataset(DatasetConfig("val_unseen", episodes=4, num_scenes=2, seed=0))
    return save_dataset(data, tmp_path_factory.mktemp("vln") / "val_unseen.json.gz"), data


def test_dataset_schema_and_splits(val_file):
    path, data = val_file
    loaded = load_dataset(path)
    assert loaded == json.loads(gzip.decompress(path.read_bytes()))
    assert loaded["episodes"] == data["episodes"]
    ep = loaded["episodes"][0]
    for k in ("episode_id", "trajectory_id", "scene_id", "start_position", "start_rotation", "goals", "reference_path"):
        assert k in ep
    assert ep["goals"][0]["radius"] == 3.0 and len(ep["goals"][0]["position"]) == 3
    assert (
        ep["instruction"]["instruction_tokens"]
        == default_tokenizer().encode(ep["instruction"]["instruction_text"]).tolist()
    )
    assert ep["info"]["geodesic_distance"] >= 5.0
    assert ep["reference_path"][0] == ep["start_position"] and ep["reference_path"][-1] == ep["goals"][0]["position"]
    train = generate_dataset(DatasetConfig("train", episodes=3, num_scenes=2, seed=0))
    seen = generate_dataset(DatasetConfig("val_seen", episodes=3, num_scenes=2, seed=0))
    seeds = {s: {parse_scene_id(e["scene_id"]) for e in d["episodes"]} for s, d in (("t", train), ("s", seen))}
    unseen = {parse_scene_id(e["scene_id"]) for e in data["episodes"]}
    assert not unseen & seeds["t"] and seeds["s"] <= seeds["t"]
    assert train["episodes"][0]["start_position"] != seen["episodes"][0]["start_position"]
    assert quaternion_to_yaw(yaw_to_quaternion(2.5)) == pytest.approx(2.5)


def test_env_replays_a_dataset_in_order(val_file):
    path, data = val_file
    env = gym.make("chronotope/VLN-v0", obs_mode="state", task_kwargs={"episodes_file": str(path)})
    core = env.unwrapped.core
    assert sorted(s.seed for s in core.scenes) == sorted({parse_scene_id(e["scene_id"]) for e in data["episodes"]})
    for k in range(5):
        obs, info = env.reset(seed=k)
        rec = data["episodes"][k % 4]
        assert info["episode_id"] == rec["episode_id"]
        assert info["instruction"] == rec["instruction"]["instruction_text"]
        assert core.episodes[0].extra["instruction"] == rec["instruction"]["instruction_text"]
        n = len(rec["instruction"]["instruction_tokens"])
        assert obs["instruction"][:n].tolist() == rec["instruction"]["instruction_tokens"]
        assert not obs["instruction"][n:].any()
        assert np.allclose(core.sim.position[0], rec["start_position"][:2])
        assert core.sim.yaw[0] == pytest.approx(quaternion_to_yaw(rec["start_rotation"]))
        assert core.start_distance[0] == pytest.approx(rec["info"]["geodesic_distance"], abs=1e-3)
        assert core.scenes[core.sim.scene[0]].seed == parse_scene_id(rec["scene_id"])
    # sampled order is seeded
    kw = {"obs_mode": "state", "task_kwargs": {"episodes_file": str(path), "episode_order": "sample"}}
    ids = [[gym.make("chronotope/VLN-v0", **kw).reset(seed=s)[1]["episode_id"] for s in range(6)] for _ in range(2)]
    assert ids[0] == ids[1] and len(set(ids[0])) > 1


def test_seed_order_replays_episode_seed_mod_length_in_the_rollout_loop(val_file):
    """episode_order="seed": a reset seeded with s replays file episode s mod 4, whichever lane runs it, so the
    rollout list range(n) is the file's first n episodes (auto-resets in between are drawn, then replaced)."""
    from chronotope.envs.rollout import run_episodes
    from chronotope.scripts.experiments.vln_baselines import evaluate, random_landmark_policy

    path, data = val_file
    kw = {"obs_mode": "state", "task_kwargs": {"episodes_file": str(path), "episode_order": "seed"}}
    for s in (0, 1, 6, 4):
        assert gym.make("chronotope/VLN-v0", **kw).reset(seed=s)[1]["episode_id"] == s % 4
    venv = gym.make_vec("chronotope/VLN-v0", num_envs=3, vectorization_mode="vector_entry_point", **kw)
    core = venv.unwrapped.core
    recs = run_episodes(venv, lambda obs, starts, seeds: VLNExpert().act(core), [2, 0, 3, 1, 2])
    assert [int(r.info["episode_id"]) for r in recs] == [2, 0, 3, 1, 2]
    assert recs[0].steps == recs[4].steps and recs[0].info["ndtw"] == recs[4].info["ndtw"]
    # the experiment's random agents draw per episode: the same numbers whatever the number of lanes
    ekw = {"obs_mode": "state", "task_kwargs": {"episodes_file": str(path)}, "max_episode_steps": 60}
    runs = [evaluate(ekw, random_landmark_policy(0), 4, n) for n in (1, 3)]
    assert runs[0] == runs[1]


def test_expert_follows_the_reference_path(val_file):
    path, data = val_file
    kw = {"obs_mode": "state", "task_kwargs": {"episodes_file": str(path)}}
    venv = gym.make_vec("chronotope/VLN-v0", num_envs=4, vectorization_mode="vector_entry_point", **kw)
    venv.reset(seed=0)
    core = venv.unwrapped.core
    expert = VLNExpert()
    trail = [[p.copy()] for p in core.sim.position]
    refs = [ep.extra["ndtw_reference"] for ep in core.episodes]
    done = {}
    while len(done) < 4:
        _, _, term, trunc, info = venv.step(expert.act(core))
        for i in range(4):
            if i not in done:
                trail[i].append(core.sim.position[i].copy() if not (term[i] or trunc[i]) else None)
            if info.get("_final_info", np.zeros(4, bool))[i] and i not in done:
                done[i] = final_info_row(info, i)
                trail[i][-1] = done[i]["agent_pose"][:2]
    for i, fi in done.items():
        assert fi["success"] == 1.0 and fi["ndtw"] >= 0.9, fi
        exact = np.exp(-dtw(np.array(trail[i]), refs[i]) / (len(refs[i]) * 3.0))
        assert fi["ndtw"] == pytest.approx(exact, rel=1e-9)
        assert fi["sdtw"] == fi["ndtw"] and fi["task_completion"] == 1.0
    venv.close()


def test_generated_episodes_observation_and_info():
    env = gym.make("chronotope/VLN-v0", obs_mode="depth", num_scenes=2, resolution=(16, 16))
    obs, info = env.reset(seed=3)
    assert obs["instruction"].dtype == np.int64 and obs["instruction"].shape == (80,)
    assert obs["instruction"].tolist() == default_tokenizer().encode(info["instruction"], 80).tolist()
    ep = env.unwrapped.core.episodes[0]
    assert ep.extra["reference_path"][0].tolist() == ep.start_position.tolist()
    assert info["episode_id"] == -1 and 5.0 <= ep.start_distance <= 20.0
    venv = gym.make_vec(
        "chronotope/VLN-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_mode="state", num_scenes=2
    )
    _, vinfo = venv.reset(seed=3)
    assert vinfo["instruction"][0] == info["instruction"] and isinstance(vinfo["instruction"][1], str)


def test_bad_vln_input_gives_clear_errors(tmp_path, val_file):
    with pytest.raises(ValueError, match="nowhere.json.gz"):
        gym.make("chronotope/VLN-v0", task_kwargs={"episodes_file": str(tmp_path / "nowhere.json.gz")})
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a chronotope VLN dataset"):
        gym.make("chronotope/VLN-v0", task_kwargs={"episodes_file": str(bad)})
    with pytest.raises(ValueError, match="backwards"):
        gym.make("chronotope/VLN-v0", task_kwargs={"episode_order": "backwards"})
    with pytest.raises(ValueError, match="max_instruction_length"):
        gym.make("chronotope/VLN-v0", task_kwargs={"max_instruction_length": 0})
    with pytest.raises(ValueError, match="scene_files"):
        gym.make("chronotope/VLN-v0", scene_files=["x.json"], task_kwargs={"episodes_file": str(val_file[0])})
    with pytest.raises(ValueError, match="test_split"):
        generate_dataset(DatasetConfig("test_split", episodes=1))
    with pytest.raises(ValueError, match="mp3d/abc"):
        parse_scene_id("mp3d/abc")


def test_vln_dataset_cli(tmp_path):
    out = tmp_path / "train.json.gz"
    cmd = [sys.executable, "-m", "chronotope.scripts.vln_dataset", "--split", "val_unseen", "--episodes", "2"]
    subprocess.run([*cmd, "--num-scenes", "1", "--out", str(out)], check=True, capture_output=True)
    data = load_dataset(out)
    assert data["split"] == "val_unseen" and len(data["episodes"]) == 2
    assert all(parse_scene_id(e["scene_id"]) >= 100_000 for e in data["episodes"])


@pytest.mark.slow
def test_vln_baselines_quick(tmp_path):
    from chronotope.scripts.experiments.vln_baselines import Config, run

    res = run(Config(quick=True, out=tmp_path))["results"]
    assert res["expert"]["success"] >= 0.95 and res["expert"]["ndtw"] >= 0.9
    assert res["random_landmark"]["success"] < 0.6 and res["random"]["success"] < 0.2
    assert (tmp_path / "vln_baselines.json").is_file()


def test_state_mode_does_not_reveal_the_goal():
    import gymnasium as gym
    import numpy as np

    env = gym.make("chronotope/VLN-v0", obs_mode="state", num_scenes=2)
    obs, _ = env.reset(seed=0)
    assert np.all(obs["goal"] == 0)
    obs, *_ = env.step(1)
    assert np.all(obs["goal"] == 0)
