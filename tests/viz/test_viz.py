"""Visualisation: trajectory files round trip, and pictures checked by content (projected path / goal colours)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)
from chronotope.envs.nav.expert import ShortestPathExpert
from chronotope.envs.trajectory import load_episode, num_episodes, save_trajectories
from chronotope.envs.wrappers.recording import TrajectoryRecorder
from chronotope.scripts.viz import VizConfig, viz
from chronotope.scripts.viz import open3d_scene as o3s
from chronotope.scripts.viz.plots import learning_curves, mean_ci, metrics_bar, topdown_map
from chronotope.scripts.viz.trajectory import JUMP_DISTANCE, path_segments, scene_for_episode
from chronotope.scripts.viz.video import PANEL_NAMES_BAND, episode_frames, frame_strip, write_video


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
    assert h == 64 + 22 + PANEL_NAMES_BAND and w > 3 * 64  # rgb | depth | (map), caption band, names band
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


def _teleport_poses():
    """Two walks of 0.25 m steps with a 3 m jump between them (pose 3 -> 4)."""
    a = [[0.25 * k, 0.0, 0.0] for k in range(4)]
    b = [[0.75, 3.0 + 0.25 * k, 1.5] for k in range(3)]
    return np.array(a + b)


def test_path_segments_split_at_teleports():
    poses = _teleport_poses()
    assert [s.tolist() for s in path_segments(poses)] == [[0, 1, 2, 3], [4, 5, 6]]
    walk = np.column_stack([np.arange(6) * 0.25, np.zeros(6), np.zeros(6)])
    assert [s.tolist() for s in path_segments(walk)] == [list(range(6))]  # a walk stays one line
    two = np.array([[0, 0, 0], [5, 0, 0], [5, 0.25, 0], [0, 0, 0]], float)
    assert [s.tolist() for s in path_segments(two)] == [[0], [1, 2], [3]]  # every jump cuts; lone poses kept
    assert [s.tolist() for s in path_segments(two, max_step=10.0)] == [[0, 1, 2, 3]]
    assert path_segments(np.zeros((0, 3))) == []
    turn = np.array([[0, 0, 0], [0, 0, 3.0], [JUMP_DISTANCE, 0, 3.0]])  # turning in place, the longest step
    assert len(path_segments(turn)) == 1


def test_teleports_drawn_as_jumps_not_walks():
    """Map: the jump is not in the walked line but dashed apart; 3D: left out of the path, dashes along it."""
    import matplotlib.pyplot as plt

    from chronotope.scripts.viz.plots import draw_path

    poses = _teleport_poses()
    fig, ax = plt.subplots()
    draw_path(ax, poses)
    walked, jumps = ax.collections[:2]
    segs = [np.asarray(s) for s in walked.get_segments()]
    assert len(segs) == len(poses) - 2 and all(np.linalg.norm(s[1] - s[0]) <= 0.26 for s in segs)
    (jump,) = [np.asarray(s) for s in jumps.get_segments()]
    np.testing.assert_allclose(jump, poses[3:5, :2])
    assert jumps.get_label() == "teleport" and jumps.get_linestyle()[0][1] is not None  # dashed
    plt.close(fig)

    line, dashed = o3s.path_geometry(poses)
    lines = np.asarray(line.lines)
    assert [3, 4] not in lines.tolist() and len(lines) == len(poses) - 2
    pts = np.asarray(dashed.points)[:, :2]
    a, b = poses[3, :2], poses[4, :2]
    along = (pts - a) @ (b - a) / np.sum((b - a) ** 2)
    assert np.allclose(a + along[:, None] * (b - a), pts) and along.min() >= 0 and along.max() <= 1
    covered = sum(np.linalg.norm(pts[2 * k + 1] - pts[2 * k]) for k in range(len(pts) // 2))
    assert 0.3 * np.linalg.norm(b - a) < covered < 0.8 * np.linalg.norm(b - a)  # gaps: a dashed line
    assert len(o3s.path_geometry(poses[:4])) == 1  # no jump: one walked line, no dashes


def test_strip_rows_labelled_with_depth_colour_bar():
    from chronotope.envs.render.colorize import colorize_depth, grid_image

    tile = np.full((48, 48, 3), 128, np.uint8)
    rows = [[tile] * 3 for _ in range(3)]
    plain = grid_image(rows)
    img = grid_image(rows, row_labels=("rgb", "depth", "semantic"), depth_row=1, max_depth=10.0)
    extra = img.shape[1] - plain.shape[1]
    assert img.shape[0] == plain.shape[0] and extra > 40
    label_w = int(np.flatnonzero((img[0] == 128).all(1))[0])  # first column of the first tile
    for r in range(3):  # each row's name is written left of it
        assert (img[r * 50 : r * 50 + 48, :label_w] < 80).any()
    bar = img[50:98, label_w + 3 * 50 :]
    assert (img[:48, label_w + 3 * 50 :] == 255).all()  # the bar sits on the depth row only
    near, far = colorize_depth(np.array([[0.0]]), 10.0)[0, 0], colorize_depth(np.array([[10.0]]), 10.0)[0, 0]
    colour_col = bar[:, 4].astype(int)
    assert np.abs(colour_col - near).max(1).min() <= 20 and np.abs(colour_col - far).max(1).min() <= 20
    assert np.argmin(np.abs(colour_col - near).max(1)) < np.argmin(np.abs(colour_col - far).max(1))  # 0 m on top
    with pytest.raises(ValueError, match="row labels"):
        grid_image(rows, row_labels=("rgb",))


def test_video_panels_named_with_depth_colour_bar(recorded):
    from chronotope.envs.render.colorize import depth_colorbar

    path, _ = recorded
    ep = load_episode(path, 0)
    scene = scene_for_episode(ep)
    (frame,) = episode_frames(ep, scene, panel=64, max_frames=1)
    names = frame[22 : 22 + PANEL_NAMES_BAND]
    assert (names < 80).any()  # the panel names
    body = frame[22 + PANEL_NAMES_BAND :]
    bar = depth_colorbar(64, float(ep.max_depth or 10.0))
    x = 64 + 2 + 64  # after rgb | depth
    np.testing.assert_array_equal(body[:, x : x + bar.shape[1]], bar)
