"""Registry-driven tests of the robot envs: API checks, determinism, pickling, errors, rewards, cues, oracles."""

from __future__ import annotations

import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.robot.registration import register_robot_envs

ENV_IDS = register_robot_envs()
MEMORY_IDS = ["chronotope/CueRecallPick-v0", "chronotope/CountPress-v0"]


def _rollout(env: gym.Env, seed: int, steps: int) -> tuple[list, np.ndarray]:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    traj = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        traj.append((obs, r, term))
        if term or trunc:
            break
    u = env.unwrapped
    state = np.concatenate([u.data.qpos, u.data.qvel, u.data.act, u.data.ctrl, [u.data.time]])
    return traj, state


def _assert_obs_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_registration_is_lazy_and_idempotent():
    code = (
        "import sys; from chronotope.envs.robot.registration import register_robot_envs as r; "
        "ids = r(); r(); import gymnasium; assert all(i in gymnasium.registry for i in ids); "
        "import chronotope.envs; assert 'mujoco' not in sys.modules, 'registration imported mujoco'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_and_sb3_check_env(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    env.close()


@pytest.mark.parametrize("env_id", ["chronotope/PickPlace-v0", "chronotope/CueRecallPick-v0"])
def test_check_env_rgbd_and_joint_mode(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, obs_mode="rgbd", control_mode="joint")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_determinism_bit_identical(env_id):
    t1, s1 = _rollout(gym.make(env_id), seed=7, steps=25)
    t2, s2 = _rollout(gym.make(env_id), seed=7, steps=25)
    assert len(t1) == len(t2)
    _assert_obs_equal(t1[0], t2[0])
    for (o1, r1, d1), (o2, r2, d2) in zip(t1[1:], t2[1:]):
        _assert_obs_equal(o1, o2)
        assert r1 == r2 and d1 == d2
    assert np.array_equal(s1, s2)
    _, s3 = _rollout(gym.make(env_id), seed=8, steps=25)
    assert not np.array_equal(s1, s3)  # the seed matters


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = gym.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=3)
    for _ in range(5):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    actions = [env.action_space.sample() for _ in range(10)]
    for a in actions:
        o1, r1, *_ = env.step(a)
        o2, r2, *_ = clone.step(a)
        _assert_obs_equal(o1, o2)
        assert r1 == r2
    assert np.array_equal(env.unwrapped.data.qpos, clone.unwrapped.data.qpos)


def test_bad_actions_and_kwargs_raise_value_errors():
    env = gym.make("chronotope/Reach-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="nan"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="1.5"):
        env.step(np.array([0.0, 1.5, 0.0, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="bogus_option"):
        gym.make("chronotope/Reach-v0", bogus_option=1)
    with pytest.raises(ValueError, match="pixels"):
        gym.make("chronotope/Reach-v0", obs_mode="pixels")
    with pytest.raises(ValueError, match="96"):
        gym.make("chronotope/Reach-v0", image_size=96)
    with pytest.raises(ValueError, match="camera_backend='vulkan'"):
        gym.make("chronotope/Reach-v0", camera_backend="vulkan")
    for bad in ("front", ("top",), (), ("front", "front")):
        with pytest.raises(ValueError, match="cameras="):
            gym.make("chronotope/Reach-v0", cameras=bad)
    with pytest.raises(ValueError, match="num_colors=9"):
        gym.make("chronotope/CueRecallPick-v0", num_colors=9)
    with pytest.raises(ValueError, match="reward_type='shaped'"):
        gym.make("chronotope/PickPlace-v0", reward_type="shaped")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_is_sum_of_named_terms_along_oracle_episode(env_id):
    from chronotope.envs.robot.oracles import Oracle

    env = gym.make(env_id)
    oracle = Oracle(env_id, memory=True)
    obs, _ = env.reset(seed=11)
    oracle.reset(obs)
    terms_seen: set[str] = set()
    for _ in range(200):
        obs, r, term, trunc, info = env.step(oracle.act(obs))
        terms = {k: v for k, v in info.items() if k.startswith("reward_")}
        terms_seen |= set(terms)
        assert r == pytest.approx(sum(terms.values()), abs=1e-9)
        assert trunc is False or env.unwrapped.step_count >= env.spec.max_episode_steps
        if term or trunc:
            break
    assert info["success"] and r > 0
    assert terms_seen == {f"reward_{n}" for n in env.unwrapped.reward_terms}


def test_sparse_reward_has_only_success_term():
    env = gym.make("chronotope/PickPlace-v0", reward_type="sparse")
    env.reset(seed=0)
    _, r, _, _, info = env.step(env.action_space.sample())
    assert [k for k in info if k.startswith("reward_")] == ["reward_success"] and r == 0.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_with_memory_succeeds(env_id):
    from chronotope.envs.robot.oracles import Oracle, run_episode

    env = gym.make(env_id)
    oracle = Oracle(env_id, memory=True, seed=0)
    results = [run_episode(env, oracle, seed=100 + s) for s in range(3)]
    assert all(r["success"] for r in results), results


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_memoryless_oracle_succeeds_exactly_when_its_guess_is_right(env_id):
    from chronotope.envs.robot.oracles import Oracle

    env = gym.make(env_id)
    right = wrong = 0
    for s in range(6):
        oracle = Oracle(env_id, memory=False, seed=s)
        obs, _ = env.reset(seed=200 + s)
        oracle.reset(obs)
        for _ in range(env.spec.max_episode_steps):
            obs, _, term, _, info = env.step(oracle.act(obs))
            if term:
                break
        assert oracle.remembered is None  # it never kept the cue
        truth = info.get("cued_color", info.get("target_count"))
        if info["success"]:
            right += 1
        else:
            wrong += 1
            # failed episodes are wrong answers, not motor failures
            assert info.get("wrong_lift") or (info.get("done_touched") and info["presses"] != truth), info
    assert wrong > 0


def test_cue_visible_only_while_lit():
    env = gym.make("chronotope/CueRecallPick-v0", cue_steps=4, delay_steps=6)
    obs, info = env.reset(seed=5)
    cues = [obs["cue"]]
    for _ in range(12):
        obs, *_ = env.step(np.zeros(4, dtype=np.float32))
        cues.append(obs["cue"])
    cues = np.stack(cues)
    expected = np.zeros_like(cues)
    expected[:4, info["cued_color"]] = 1.0
    np.testing.assert_array_equal(cues, expected)

    env = gym.make("chronotope/CountPress-v0")
    obs, info = env.reset(seed=9)
    lamp = [obs["cue"][0]]
    while obs["phase"][0] > 0.5:
        obs, *_ = env.step(np.zeros(4, dtype=np.float32))
        lamp.append(obs["cue"][0])
    lamp = np.array(lamp)
    rising = int(np.sum((lamp[1:] > 0.5) & (lamp[:-1] < 0.5)) + (lamp[0] > 0.5))
    assert rising == info["target_count"]
    assert len(lamp) - 1 == env.unwrapped.cue_len  # the cue phase length does not depend on n


@pytest.mark.parametrize("backend", ["gl", "raycast"])
def test_rgbd_observation_shows_cue_and_scene(backend):
    from chronotope.envs.robot import arm_constants as C

    env = gym.make("chronotope/CueRecallPick-v0", obs_mode="rgbd", image_size=64, cue_steps=2, camera_backend=backend)
    obs, info = env.reset(seed=1)
    u = env.unwrapped
    assert "cue" not in obs and "object_pose" not in obs
    assert obs["front_rgb"].shape == (64, 64, 3) and obs["front_rgb"].dtype == np.uint8
    depth = obs["front_depth"][..., 0]
    # The front camera is ~1.2 m from the workspace: depths in metres, not normalised [0, 1] buffer values.
    seg = obs["front_seg"][..., 0]
    hit = depth > 0
    assert hit.mean() > 0.5 and 0.3 < float(depth[hit].min()) and float(depth.max()) < 6.0
    # Table-top pixels: the depth along the optical axis matches the camera-to-plane geometry.
    cam = u.model.camera("front_cam").id
    pos, rot = u.data.cam_xpos[cam], u.data.cam_xmat[cam].reshape(3, 3)
    table = seg == u.model.body("table").id
    rows, cols = np.nonzero(table)
    f = 32 / np.tan(np.deg2rad(u.model.cam_fovy[cam]) / 2)
    for r, c in list(zip(rows, cols))[:: max(1, len(rows) // 20)]:
        ray = rot @ np.array([(c + 0.5 - 32) / f, -(r + 0.5 - 32) / f, -1.0])  # camera looks along -z
        t = -pos[2] / ray[2]  # hit of the plane z = 0, in units of the optical-axis distance
        assert depth[r, c] == pytest.approx(t, rel=0.03)
    panel = seg == u.model.body("cue_panel").id
    assert panel.sum() > 5
    for name in u.colours:
        assert (seg == u.model.body(f"block_{name}").id).any(), name
    assert (obs["wrist_seg"] == u.model.body("left_finger").id).any()  # the fingers are in the wrist view
    cued = np.array(C.PALETTE[u.colours[info["cued_color"]]][:3]) * 255
    lit = obs["front_rgb"][panel].mean(0)
    assert np.argmax(lit) == np.argmax(cued)
    for _ in range(3):
        obs, *_ = env.step(np.zeros(4, dtype=np.float32))
    off = obs["front_rgb"][obs["front_seg"][..., 0] == u.model.body("cue_panel").id].mean(0)
    assert off.max() - off.min() < 20  # grey once the cue is off


def test_joint_control_tracks_targets():
    env = gym.make("chronotope/Reach-v0", control_mode="joint")
    env.reset(seed=0)
    u = env.unwrapped
    target = np.array([0.3, 0.2, 1.5, 1.2, 0.1, -0.4])
    a = np.append(u._joint_ctrl.normalise(target), -1.0).astype(np.float32)
    for _ in range(15):
        obs, *_ = env.step(a)
    np.testing.assert_allclose(obs["joint_pos"], target, atol=0.02)


def test_ee_delta_moves_tcp_and_keeps_gripper_pointing_down():
    env = gym.make("chronotope/Reach-v0")
    obs, _ = env.reset(seed=0)
    start = obs["ee_pos"].copy()
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32))
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32))
    np.testing.assert_allclose(obs["ee_pos"] - start, [0.0, 0.0, -0.15], atol=0.01)
    assert abs(abs(obs["ee_quat"][2]) - 1.0) < 1e-3  # still a half turn about y: tool axis down


MEMORY_IDS = (
    "CueRecallPick",
    "CountPress",
    "ButtonSequence",
    "ColourSequence",
    "RestorePlace",
    "WhereHidden",
    "MultiCueTouch",
    "PairRecall",
    "ShellGame",
)


def test_oracle_script_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.robot_oracles", "--episodes", "2", "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert "CountPress" in out.stdout
    import json

    res = json.loads((tmp_path / "robot_oracles.json").read_text())["results"]
    assert res["chronotope/PickPlace-v0|memory"]["success_rate"] == 1.0
    # every memory task (a MemoryTaskConfig: it has the observability twin) gets its twin row, the others none
    twins = {k.split("|")[0] for k in res if k.endswith("|memoryless_twin")}
    assert twins >= {f"chronotope/{t}-v0" for t in MEMORY_IDS}
    assert not twins & {"chronotope/Reach-v0", "chronotope/PickPlace-v0"}


@pytest.mark.slow
def test_bench_quick_smoke(tmp_path):
    import json

    subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.bench.robot", "--quick", "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    res = json.loads((tmp_path / "robot.json").read_text())
    assert res["warp_error"] is None
    assert res["batched"]["1"]["warp_vs_mujoco_arm_qpos_maxdiff_after_10_env_steps"] < 1e-3
    assert set(res["rgbd_vector_vs_sync"]) == {"gl", "raycast"}


def test_distractor_moves_blocks_during_delay_and_oracle_still_succeeds():
    from chronotope.envs.robot.oracles import Oracle, run_episode

    env = gym.make("chronotope/CueRecallPick-v0", distractor=True, distractor_period=4, cue_steps=3, delay_steps=12)
    obs, _ = env.reset(seed=4)
    poses = [obs["object_pose"][:, :2].copy()]
    for _ in range(16):
        obs, *_ = env.step(np.array([0, 0, 0, -1], dtype=np.float32))
        poses.append(obs["object_pose"][:, :2].copy())
    moved = [t for t in range(1, 17) if np.abs(poses[t] - poses[t - 1]).max() > 0.01]
    assert moved == [3, 7, 11, 15]  # delay starts at step 3, every 4 steps, then the shuffle at the response
    assert run_episode(env, Oracle("CueRecallPick", memory=True), seed=4)["success"]


def test_cue_recall_touch_answer():
    """``answer="touch"``: the perfect oracle's approach succeeds on the touch; a touch of another block ends the
    episode as a failure without the lift mode's -1; the labels name the cued block."""
    from chronotope.envs.robot.oracles import Oracle, _toward, evaluate, run_episode

    env = gym.make("chronotope/CueRecallPick-v0", answer="touch")
    r = run_episode(env, Oracle("CueRecallPick", memory=True), seed=2)
    assert r["success"] and r["return"] == 1.0 and r["steps"] < 60  # ends at the touch, before any lift
    assert evaluate("chronotope/CueRecallPick-v0", "memoryless", 16, seed=0, answer="touch")["success"] <= 9 / 16

    obs, info = env.reset(seed=2)
    u = env.unwrapped
    assert info["memory_slot"].tolist() == np.eye(4)[u.cued].tolist()
    wrong = (u.cued + 1) % 4
    done, t = False, 0
    while not done and t < 119:
        target = obs["object_pose"][wrong, :3] + [0.0, 0.0, 0.02 if u.phase == "response" else 0.2]
        obs, reward, done, _, info = env.step(_toward(obs, target, 1.0))
        t += 1
    assert done and info["wrong_lift"] and not info["success"] and reward == 0.0
    assert info["memory_place"] == pytest.approx(
        2 * (u.free_body_pose(f"block_{u.colours[u.cued]}")[:2] - [0.35, -0.2]) / [0.25, 0.4] - 1
    )


@pytest.mark.parametrize("env_id", ["chronotope/ShellGame-v0", "chronotope/ButtonSequence-v0"])
def test_raycast_cameras_agree_with_the_gl_renderer(env_id):
    """The ray-cast backend sees what MuJoCo's GL renderer draws: the same body at >= 99.5% of the pixels (the rest
    are silhouette edges, where a pixel-centre ray and the rasteriser's coverage rule may disagree), the same planar
    depth there (but at a few grazing edge pixels), and each body's colour with the same dominant channel (shading
    differs: Lambert vs GL lights)."""
    kw = dict(obs_mode="rgbd", image_size=64)
    gl_env = gym.make(env_id, **kw)
    ray_env = gym.make(env_id, camera_backend="raycast", **kw)
    obs_gl, _ = gl_env.reset(seed=3)
    obs_ray, _ = ray_env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = rng.uniform(-1, 1, gl_env.action_space.shape).astype(np.float32)
        obs_gl, *_ = gl_env.step(a)
        obs_ray, *_ = ray_env.step(a)
    for cam in ("front", "wrist"):
        seg_gl, seg_ray = obs_gl[f"{cam}_seg"][..., 0], obs_ray[f"{cam}_seg"][..., 0]
        same = seg_gl == seg_ray
        assert same.mean() >= 0.995, (cam, same.mean())
        err = np.abs(obs_ray[f"{cam}_depth"][same] - obs_gl[f"{cam}_depth"][same])
        assert np.mean(err <= 2e-3) >= 0.995 and np.median(err) < 1e-4, (cam, np.sort(err.ravel())[-10:])
        for body in np.unique(seg_gl[same]):
            px = same & (seg_gl == body)
            if body == 0 or px.sum() < 10:
                continue
            c_gl = obs_gl[f"{cam}_rgb"][px].mean(0)
            c_ray = obs_ray[f"{cam}_rgb"][px].mean(0)
            if np.ptp(c_gl) > 40:  # a saturated colour (a cue, a button): the same channel dominates
                assert np.argmax(c_ray) == np.argmax(c_gl), (cam, body, c_gl, c_ray)


def test_camera_subset_sets_the_image_keys():
    env = gym.make("chronotope/WhereHidden-v0", obs_mode="rgbd", cameras=["front"], camera_backend="raycast")
    obs, _ = env.reset(seed=0)
    assert {k for k in obs if k.endswith(("_rgb", "_depth", "_seg"))} == {"front_rgb", "front_depth", "front_seg"}
    assert env.observation_space.contains(obs)
    assert env.unwrapped.config_dict()["cameras"] == ("front",)
    both = gym.make("chronotope/WhereHidden-v0", obs_mode="rgbd", camera_backend="raycast")
    full, _ = both.reset(seed=0)
    np.testing.assert_array_equal(obs["front_rgb"], full["front_rgb"])  # the same picture, fewer keys
    rgb_only = gym.make("chronotope/WhereHidden-v0", obs_mode="rgbd", camera_outputs=["rgb"])
    obs, _ = rgb_only.reset(seed=0)
    assert {k for k in obs if k.endswith(("_rgb", "_depth", "_seg"))} == {"front_rgb", "wrist_rgb"}
    assert rgb_only.observation_space.contains(obs)
    for bad in ("rgb", (), ("rgb", "normals")):
        with pytest.raises(ValueError, match="camera_outputs="):
            gym.make("chronotope/WhereHidden-v0", camera_outputs=bad)
