"""GaussianMemoryWrapper on the real navigation env (a generated apartment), and the M3 apartment script."""

from __future__ import annotations

import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import chronotope.envs  # noqa: F401
from chronotope.memory.gaussian.scene_memory import SceneMemoryConfig
from chronotope.memory.gaussian.wrapper import GaussianMemoryWrapper

SMALL = SceneMemoryConfig(capacity=1500, steps_per_keyframe=2, init_stride=4, max_keyframes=8)
GRID = 4


def make_env(encoder=None, keyframe_every: int = 2, semantic: bool = False) -> GaussianMemoryWrapper:
    env = gym.make("chronotope/PointNav-v0", obs_mode="rgbd", semantic=semantic, scene_seeds=(0,), resolution=(32, 32))
    return GaussianMemoryWrapper(env, SMALL, encoder=encoder, keyframe_every=keyframe_every, grid=GRID)


def test_check_env_spaces_and_bounds():
    env = make_env()
    check_env(env, skip_render_check=True)
    n = env.memory.summary_size(GRID)
    assert env.observation_space["gaussian_memory"].shape == (n,) == (8 + 2 * GRID * GRID,)
    obs, _ = env.reset(seed=1)
    for t in range(6):
        assert env.observation_space.contains(obs), t
        assert obs["gaussian_memory"].dtype == np.float32 and np.isfinite(obs["gaussian_memory"]).all()
        obs, *_ = env.step(2)
    assert env.memory.frames_seen == 1 + 6 // 2  # reset frame + every 2nd step


def test_check_env_with_encoder_features():
    env = make_env(encoder="random", keyframe_every=3)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    d = env.memory.feature_dim
    assert d > 0 and obs["gaussian_memory"].shape == (8 + d + 2 * GRID * GRID,)
    assert np.abs(obs["gaussian_memory"][8 : 8 + d]).sum() > 0  # the decoded-feature part is filled


def _back_pose(pose: np.ndarray) -> np.ndarray:
    """The same camera turned by 180 degrees about the vertical."""
    rz = np.diag([-1.0, -1.0, 1.0])
    out = pose.copy()
    out[:3, :3] = rz @ pose[:3, :3]
    return out


def test_summary_reflects_newly_seen_parts():
    env = make_env(keyframe_every=1)
    obs, info = env.reset(seed=2)
    pose = np.asarray(info["camera_pose"])
    back = _back_pose(pose)
    sl = slice(8 + GRID * GRID, 8 + 2 * GRID * GRID)  # alpha render part
    before = env.memory.summary(back, GRID).numpy()
    n0 = env.memory.n_gaussians
    assert before[sl].mean() < 0.2, before[sl]  # nothing behind the agent is known yet
    for _ in range(12):  # 12 x 15 deg: turn around on the spot
        obs, *_ = env.step(2)
    after = env.memory.summary(back, GRID).numpy()
    assert env.memory.n_gaussians > n0
    assert after[sl].mean() > 0.6, after[sl]  # ...and now the memory covers that view
    assert after[0] > before[0]  # fill grew
    assert not np.allclose(after[2:5], before[2:5])  # centroid moved
    # and the obs of the current (turned) pose equals the summary the memory gives for it
    np.testing.assert_allclose(
        obs["gaussian_memory"], np.clip(env.memory.summary(back, GRID).numpy(), env._lo, env._hi), atol=1e-4
    )


def test_seeded_rollouts_match_and_reset_clears():
    def roll(seed):
        env = make_env(keyframe_every=2)
        obs, _ = env.reset(seed=seed)
        out = [obs["gaussian_memory"]]
        for a in (1, 2, 1, 3, 1):
            obs, *_ = env.step(a)
            out.append(obs["gaussian_memory"])
        return env, np.stack(out)

    env, a = roll(5)
    _, b = roll(5)
    np.testing.assert_array_equal(a, b)
    env.reset(seed=6)
    assert env.memory.frames_seen == 1 and env.memory.n_gaussians <= SMALL.capacity


def test_bad_arguments():
    env = gym.make("chronotope/PointNav-v0", obs_mode="rgbd", scene_seeds=(0,), resolution=(32, 32))
    with pytest.raises(ValueError, match="keyframe_every"):
        GaussianMemoryWrapper(env, SMALL, keyframe_every=0)
    with pytest.raises(ValueError, match="already exists"):
        GaussianMemoryWrapper(env, SMALL, key="rgb")
    depth_only = gym.make("chronotope/PointNav-v0", obs_mode="depth", scene_seeds=(0,), resolution=(32, 32))
    with pytest.raises(ValueError, match="'rgb' and 'depth'"):
        GaussianMemoryWrapper(depth_only, SMALL)


def test_box_distance_oracle():
    from chronotope.envs.scene.spec import SceneObject
    from chronotope.scripts.experiments.gaussian_eval import box_distance

    obj = SceneObject(4, 1, "red", (1.0, 2.0), math.pi / 2, (0.4, 1.0, 0.8))  # rotated: 1.0 along x, 0.4 along y
    pts = np.array([[1.0, 2.0, 0.4], [1.5, 2.0, 0.4], [1.9, 2.0, 0.4], [1.0, 2.5, 0.4], [1.0, 2.0, 1.8]])
    np.testing.assert_allclose(box_distance(pts, obj), [0.0, 0.0, 0.4, 0.3, 1.0], atol=1e-9)


@pytest.mark.slow
def test_m3_eval_quick_script(tmp_path):
    """The apartment evaluation end to end (a few minutes): metrics are finite, JSON, table and plot written."""
    cmd = [sys.executable, "-m", "chronotope.scripts.experiments.m3_eval", "--quick", "--out-dir", str(tmp_path)]
    subprocess.run(cmd, check=True, timeout=900)
    import json

    res = json.loads((tmp_path / "m3_eval_quick.json").read_text())
    (seed,) = res["per_seed"]
    assert seed["heldout"]["psnr_db"] > 22
    comp = seed["compression"]
    assert comp["bytes_per_gaussian"] < comp["bytes_per_gaussian_raw_features"]
    assert comp["bytes_total"] < comp["bytes_raw_store"]
    loc = seed["localisation"]
    assert loc["objects"] > 0 and loc["accuracy"] > loc["chance"]
    assert res["aggregate"]["held-out PSNR (dB, target >= 25)"]["n"] == 1
    assert (tmp_path / "m3_eval_quick.md").is_file() and (tmp_path / "m3_seeds_quick.png").is_file()
    assert (tmp_path / "m3_heldout_views_quick.png").is_file()


def test_locate_in_views_finds_a_box_and_rejects_bad_queries():
    import torch.nn.functional as F

    from chronotope.envs.render.camera import CameraIntrinsics
    from chronotope.memory.gaussian.encoders import make_encoder
    from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory
    from chronotope.memory.gaussian.synthetic import box_room, orbit_poses, raycast_boxes

    intr = CameraIntrinsics(32, 32, 90.0)
    boxes = box_room()
    mem = GaussianSceneMemory(
        intr, SceneMemoryConfig(steps_per_keyframe=6), encoder=make_encoder("efficientnet_lite0", last_block=4)
    )
    frames = []
    for p in orbit_poses(6):
        rgb, depth, inst = raycast_boxes(boxes, p, intr)
        mem.add_frame(rgb, depth, p)
        frames.append((rgb, inst))
    poses = mem.keyframe_poses()
    assert poses.shape == (6, 4, 4)
    hits = 0
    for box in boxes[6:]:  # the three coloured boxes on the floor
        rgb, inst = max(frames, key=lambda f: (f[1] == box.instance).sum())
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        fmap = F.interpolate(mem.encoder(x), size=(32, 32), mode="bilinear")[0].permute(1, 2, 0)
        q = fmap[torch.from_numpy(inst == box.instance)].mean(0)
        (res,) = mem.locate_in_views(q, poses)
        lo, hi = np.asarray(box.lo), np.asarray(box.hi)
        err = np.linalg.norm(np.maximum(np.maximum(lo - res.position.numpy(), res.position.numpy() - hi), 0))
        hits += err <= 0.5
        assert -1.0 <= res.score <= 1.0 and 0 <= int(res.indices[0]) < 6
    assert hits == 3, hits  # measured errors 0.09, 0.0, 0.03 m
    with pytest.raises(ValueError, match="query_features"):
        mem.locate_in_views(torch.zeros(5), poses)
    with pytest.raises(ValueError, match="NaN"):
        mem.locate_in_views(torch.full((40,), float("nan")), poses)
    with pytest.raises(ValueError, match="at least one pose"):
        mem.locate_in_views(torch.zeros(40), np.zeros((0, 4, 4)))
