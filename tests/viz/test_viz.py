"""Visualisation: trajectory files round trip, and pictures checked by content (projected path / goal colours)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)
from chronotope.agents.evaluate import save_trajectories
from chronotope.envs.nav.expert import ShortestPathExpert
from chronotope.envs.wrappers.recording import TrajectoryRecorder
from chronotope.scripts.viz import VizConfig, viz
from chronotope.scripts.viz import open3d_scene as o3s
from chronotope.scripts.viz.plots import learning_curves, mean_ci, metrics_bar, topdown_map
from chronotope.scripts.viz.trajectory import load_episode, num_episodes, scene_for_episode
from chronotope.scripts.viz.video import episode_frames, frame_strip, write_video


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two shortest-path-expert PointNav episodes recorded by the wrapper, with what the env reported."""
    path = tmp_path_factory.mktemp("traj") / "traj.npz"
    env = gym.make("chronotope/PointNav-v0", obs_mode="state", num_scenes=2, max_episode_steps=120)
    env = TrajectoryRecorder(env, path)
    expert = ShortestPathExpert()
    seen = []
    for seed in (3, 4):
        _, info = env.reset(seed=seed)
        poses, coll = [info["agent_pose"].copy()], [info["collisions"]]
        scene_json = env.unwrapped.scene.to_json()
        goal = env.unwrapped.core.goal_position[0].copy()
        done = False
        while not done:
            _, _, term, trunc, info = env.step(expert.act(env.unwrapped.core)[0])
            poses.append(info["agent_pose"].copy())
            coll.append(info["collisions"])
            done = term or trunc
        seen.append({"poses": np.array(poses), "goal": goal, "scene_json": scene_json, "collisions": coll[-1]})
    env.close()  # writes the file
    return path, seen


def _match_fraction(img, uv, expected, radius=2, tol=12):
    """Fraction of points whose (radius) neighbourhood holds a pixel within ``tol`` of its expected colour."""
    h, w = img.shape[:2]
    hits = 0
    for (u, v), col in zip(uv, expected, strict=True):
        r0, r1 = max(0, round(v) - radius), min(h, round(v) + radius + 1)
        c0, c1 = max(0, round(u) - radius), min(w, round(u) + radius + 1)
        patch = img[r0:r1, c0:c1].reshape(-1, 3).astype(int)
        hits += bool(patch.size) and np.abs(patch - np.asarray(col)).max(1).min() <= tol
    return hits / len(uv)


def _segment_midpoints(poses, z):
    """Midpoints [K, 3] of segments longer than 0.1 m and their time colours (uint8 [K, 3])."""
    cols = (o3s.time_colors(len(poses) - 1) * 255).round()
    a, b = poses[:-1, :2], poses[1:, :2]
    keep = np.linalg.norm(b - a, axis=1) > 0.1
    mid = (a + b) / 2
    return np.column_stack([mid[keep], np.full(keep.sum(), z)]), cols[keep]


def test_recorder_writes_eval_format_and_extras(recorded):
    path, seen = recorded
    assert num_episodes(path) == 2
    with np.load(path) as z:
        for key in ("poses", "pose_index", "actions", "rewards", "step_index", "scene_id"):
            assert key in z.files
        assert z["pose_index"][-1] == len(z["poses"]) and z["step_index"][-1] == len(z["rewards"])
    for k, s in enumerate(seen):
        ep = load_episode(path, k)
        np.testing.assert_allclose(ep.poses, s["poses"])
        assert ep.num_steps == len(s["poses"]) - 1 == len(ep.actions)
        np.testing.assert_allclose(ep.goal, s["goal"])
        assert int(ep.collided.sum()) == s["collisions"]
        assert scene_for_episode(ep).to_json() == s["scene_json"]


def test_eval_files_rebuild_scene_from_run_config(tmp_path):
    # A file written by `chronotope eval` alone: no extras; the scene comes from the run's config.
    (tmp_path / "config.json").write_text(
        json.dumps({"env": "chronotope/PointNav-v0", "env_kwargs": json.dumps({"scene_seeds": [7, 11]})})
    )
    (tmp_path / "eval").mkdir()
    traj = {"poses": np.array([[1.0, 2.0, 0.0], [1.2, 2.0, 0.0]]), "actions": [1], "rewards": [0.1], "scene_id": 1}
    save_trajectories(tmp_path / "eval" / "trajectories.npz", [traj])
    ep = load_episode(tmp_path, 0)
    assert ep.goal is None and ep.collided is None and ep.scene_json is None
    from chronotope.envs.scene.generator import generate_apartment

    assert scene_for_episode(ep).to_json() == generate_apartment(11).to_json()


def test_empty_and_bad_input_give_clear_errors(tmp_path):
    p = tmp_path / "t.npz"
    # The eval format with one episode of no poses (save_trajectories cannot reshape 0 actions, so by hand).
    np.savez(
        p,
        poses=np.zeros((0, 3)),
        pose_index=np.array([0, 0]),
        actions=np.zeros((0, 1)),
        rewards=np.zeros(0),
        step_index=np.array([0, 0]),
        scene_id=np.array([0]),
    )
    with pytest.raises(ValueError, match="empty trajectory"):
        load_episode(p, 0)
    with pytest.raises(ValueError, match="episode 5 out of range"):
        load_episode(p, 5)
    with pytest.raises(ValueError, match="empty trajectory"):
        topdown_map(None, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="does not exist"):
        load_episode(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="unknown camera preset 'side'"):
        o3s.camera_preset("side", np.zeros(3), np.ones(3))


def test_3d_top_view_shows_path_and_goal_where_projected(recorded):
    path, _ = recorded
    ep = load_episode(path, 0)
    scene = scene_for_episode(ep)
    cam = o3s.camera_preset("top", *o3s.view_bounds(scene, ep), width=480, height=360)
    geoms = o3s.episode_layers(ep, scene, ("scene", "path", "goal"))
    img = o3s.render_png([g for gs in geoms.values() for g in gs], cam)
    assert img.shape == (360, 480, 3)

    mid, cols = _segment_midpoints(ep.poses, z=0.1)
    assert len(mid) >= 5
    uv, _ = cam.project(mid)
    assert _match_fraction(img, uv, cols) >= 0.8
    # the goal post's top disc, flat-coloured
    (gu, gv) = cam.project(np.r_[ep.goal, 0.6][None])[0][0]
    goal_rgb = np.round(np.asarray(o3s.GOAL_COLOR) * 255)
    assert np.abs(img[round(gv), round(gu)].astype(int) - goal_rgb).max() <= 3

    # Without those layers the same pixels do not carry those colours: the checks above can fail.
    bare = o3s.render_png(geoms["scene"], cam)
    assert _match_fraction(bare, uv, cols) <= 0.2
    assert np.abs(bare[round(gv), round(gu)].astype(int) - goal_rgb).max() > 30


def test_3d_three_quarter_view_frames_the_scene(recorded):
    path, _ = recorded
    ep = load_episode(path, 1)
    scene = scene_for_episode(ep)
    lo, hi = o3s.view_bounds(scene, ep)
    cam = o3s.camera_preset("three-quarter", lo, hi, width=400, height=300)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    uv, depth = cam.project(corners)
    assert (depth > 0).all() and (uv >= 0).all() and (uv[:, 0] < 400).all() and (uv[:, 1] < 300).all()
    geoms = o3s.episode_layers(ep, scene, ("path", "poses", "goal"))
    img = o3s.render_png([g for gs in geoms.values() for g in gs], cam)
    mid, cols = _segment_midpoints(ep.poses, z=0.1)
    assert _match_fraction(img, cam.project(mid)[0], cols) >= 0.7


def test_map_layers_are_built_from_the_episode(recorded):
    path, _ = recorded
    ep = load_episode(path, 0)
    scene = scene_for_episode(ep)
    tree = o3s.octree_from_episode(ep, scene, every=6)
    c = tree.centers(tree.keys)
    lo, hi = scene.bounds
    assert len(c) > 50
    assert (c[:, :2] > lo - 0.2).all() and (c[:, :2] < hi + 0.2).all()
    assert (c[:, 2] > 0.0).all() and (c[:, 2] < scene.wall_height).all()  # floor and ceiling left out
    g = o3s.topology_from_episode(ep, delta=0.75)
    length = np.linalg.norm(np.diff(ep.poses[:, :2], axis=0), axis=1).sum()
    assert length / 0.75 / 2 <= len(g) <= length / 0.75 + 2
    assert g.graph.number_of_edges() >= len(g) - 1
    geoms = o3s.episode_layers(
        ep, scene, ("octree", "graph", "splats"), graph=g, octree=tree, splats=(c, np.ones_like(c) * 0.5)
    )
    assert len(geoms["graph"]) == len(g) + 1  # node spheres + one edge LineSet
    assert len(np.asarray(geoms["splats"][0].points)) == len(c)
    with pytest.raises(ValueError, match="unknown layer"):
        o3s.episode_layers(ep, scene, ("scene", "walls"))


def test_topdown_map_shows_path_colours_and_goal(recorded, tmp_path):
    path, _ = recorded
    ep = load_episode(path, 0)
    scene = scene_for_episode(ep)
    m = topdown_map(scene, ep.poses, ep.goal, ep.collided, px_per_m=40, path=tmp_path / "map.png")
    assert (tmp_path / "map.png").is_file()
    lo, hi = scene.bounds
    assert abs(m.image.shape[1] - (hi[0] - lo[0] + 0.6) * 40) <= 2
    mid, cols = _segment_midpoints(ep.poses, z=0.0)
    uv = m.world_to_pixel(mid[:, :2])
    assert _match_fraction(m.image, uv, cols, radius=1, tol=25) >= 0.8
    # the same pixels on a map of another path do not show these colours
    other = topdown_map(scene, ep.poses[:1], None, px_per_m=40)
    assert _match_fraction(other.image, uv, cols, radius=1, tol=25) <= 0.2
    gu, gv = m.world_to_pixel(ep.goal)[0]
    goal_rgb = np.round(np.asarray(o3s.GOAL_COLOR) * 255)
    assert np.abs(m.image[round(gv), round(gu)].astype(int) - goal_rgb).max() <= 25


def test_learning_curves_mean_and_ci(tmp_path):
    rng = np.random.default_rng(0)
    finals = []
    for s in range(3):
        run = tmp_path / f"algo-s{s}"
        run.mkdir()
        vals = np.linspace(0, 1, 5) + rng.normal(0, 0.1, 5)
        finals.append(vals[-1])
        run.joinpath("progress.jsonl").write_text(
            "".join(json.dumps({"step": 100 * (i + 1), "return": float(v)}) + "\n" for i, v in enumerate(vals))
        )
    fig = learning_curves(sorted(tmp_path.iterdir()), path=tmp_path / "c.png", points=5)
    line = fig.axes[0].lines[0]
    assert line.get_label() == "algo (n=3)"
    assert line.get_ydata()[-1] == pytest.approx(np.mean(finals))
    mean, ci = mean_ci(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_allclose(mean, [3.0, 4.0])
    np.testing.assert_allclose(ci, 4.302652729911275 * 2.0 / np.sqrt(3))  # t(0.975, 2) * std / sqrt(n)
    assert len(fig.axes[0].collections) == 1  # one CI band


def test_metrics_bar_heights(tmp_path):
    for name, succ in (("a", 0.25), ("b", 0.75)):
        d = tmp_path / name / "eval"
        d.mkdir(parents=True)
        d.joinpath("summary.json").write_text(
            json.dumps({"success": {"mean": succ, "ci95": 0.1, "n": 8}, "spl": {"mean": succ / 2, "ci95": 0.05}})
        )
    fig = metrics_bar({"a": tmp_path / "a", "b": tmp_path / "b"}, metrics=("success", "spl"))
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == pytest.approx([0.125, 0.25, 0.375, 0.75])
    with pytest.raises(ValueError, match="lacks metric"):
        metrics_bar({"a": tmp_path / "a"}, metrics=("ndtw",))


def test_video_frames_and_gif(recorded, tmp_path):
    path, _ = recorded
    ep = load_episode(path, 0)
    scene = scene_for_episode(ep)
    frames = episode_frames(ep, scene, panel=64, max_frames=4, text="go to the goal")
    assert len(frames) == 4 and len({f.shape for f in frames}) == 1
    h, w, _ = frames[0].shape
    assert h == 64 + 22 and w > 3 * 64  # rgb | depth | (map) plus the caption band
    assert (frames[0][:22] < 100).any()  # caption text drawn
    out = write_video(frames, tmp_path / "ep.gif", fps=4)
    import imageio.v3 as iio

    back = iio.imread(out)
    assert back.shape[0] == 4
    assert frame_strip(frames, 2).shape == (2 * h, w, 3)
    with pytest.raises(ValueError, match="unknown video extension"):
        write_video(frames, tmp_path / "ep.avi")


def test_viz_command_writes_png(recorded, tmp_path):
    path, _ = recorded
    out = viz(VizConfig(target=path, episode=1, save=tmp_path / "v.png", camera="top", width=320, height=240))
    import imageio.v3 as iio

    img = iio.imread(out)
    assert img.shape == (240, 320, 3) and img.std() > 10
    assert viz(VizConfig(target=path, what="map", save=tmp_path / "m.png")).is_file()


def test_viz_cli_says_once_where_it_wrote(recorded, tmp_path, capsys):
    from chronotope.scripts.cli import main

    path, _ = recorded
    out = tmp_path / "once.png"
    main(["viz", str(path), "--what", "map", "--save", str(out)])
    printed = capsys.readouterr().out
    assert out.is_file()
    assert printed.count("wrote") == 1 and f"wrote {out.resolve()}" in printed
