"""The batched arm envs (``make_vec(..., vectorization_mode="vector_entry_point")``) against their oracle: a
SAME_STEP ``SyncVectorEnv`` of N single envs made by ``gymnasium.make`` (so with the registered ``TimeLimit``),
seeded alike. Everything a step returns must be equal, the info entry for entry (keys, masks, dtypes, the
``final_obs`` / ``final_info`` of the finished episodes)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from chronotope.envs.robot.registration import ROBOT_ENV_SPECS, register_robot_envs

ENV_IDS = register_robot_envs()
N = 3


def _pair(env_id: str, n: int = N, **kwargs):
    """(native vector env, SyncVectorEnv of single envs) with the same kwargs."""
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    limit = kwargs.pop("max_episode_steps", None)
    sync = SyncVectorEnv(
        [lambda: gym.make(env_id, max_episode_steps=limit, **kwargs) for _ in range(n)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    return venv, sync


def _assert_same(a, b, path: str = "") -> None:
    """Recursive equality of batched results: same dict keys, same array dtypes and values (object arrays such
    as ``final_obs`` compared entry by entry)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (tuple, list)):
        assert isinstance(b, type(a)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, f"{path}: {a.dtype} != {getattr(b, 'dtype', b)}"
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_equals_seeded_single_envs_through_an_autoreset(env_id):
    """Lane 0 runs the perfect oracle (its episode terminates), lanes 1-2 random actions (truncated at the
    registered limit); the run goes on until every lane has had an episode end and a few steps past it."""
    from chronotope.envs.robot.oracles import Oracle
    from chronotope.envs.rollout import obs_row

    venv, sync = _pair(env_id)
    assert venv.max_episode_steps == ROBOT_ENV_SPECS[env_id]["max_episode_steps"]
    obs, info = venv.reset(seed=5)
    obs_s, info_s = sync.reset(seed=5)
    _assert_same(obs, obs_s, "reset obs")
    _assert_same(info, info_s, "reset info")
    oracle = Oracle(env_id, memory=True)
    oracle.reset(obs_row(obs, 0))
    rng = np.random.default_rng(0)
    ended = np.zeros(N, bool)
    kinds = set()
    extra = 3
    for t in range(1000):
        actions = rng.uniform(-1, 1, size=venv.action_space.shape).astype(np.float32)
        actions[0] = oracle.act(obs_row(obs, 0))
        out = venv.step(actions)
        out_s = sync.step(actions)
        for name, a, b in zip(("obs", "reward", "terminated", "truncated", "info"), out, out_s):
            _assert_same(a, b, f"step {t} {name}")
        obs, _, term, trunc, info = out
        if term[0] or trunc[0]:
            oracle.reset(obs_row(obs, 0))
        kinds |= {"terminated"} if term.any() else set()
        kinds |= {"truncated"} if trunc.any() else set()
        ended |= term | trunc
        if ended.all():
            extra -= 1
            if extra == 0:
                break
    assert ended.all() and kinds == {"terminated", "truncated"}, (t, kinds)
    assert t >= ROBOT_ENV_SPECS[env_id]["max_episode_steps"] - 1  # the random lanes ran into the time limit
    venv.close()
    sync.close()


def test_rgbd_joint_control_and_render_equal_single_envs():
    """Pixels from the shared renderer equal each single env's own (the cue colour differs between worlds)."""
    kw = dict(obs_mode="rgbd", control_mode="joint", cue_steps=2, delay_steps=2, max_episode_steps=6)
    venv, sync = _pair("chronotope/CueRecallPick-v0", n=2, render_mode="rgb_array", **kw)
    _assert_same(venv.reset(seed=[3, 4]), sync.reset(seed=[3, 4]), "reset")
    rng = np.random.default_rng(1)
    for t in range(8):  # an autoreset at step 6
        actions = rng.uniform(-1, 1, size=(2, 7)).astype(np.float32)
        _assert_same(venv.step(actions), sync.step(actions), f"step {t}")
        frames, frames_s = venv.render(), sync.render()
        assert len(frames) == 2 and all(f.shape == (64, 64, 3) for f in frames)
        _assert_same(list(frames), list(frames_s), f"render {t}")
    venv.close()
    sync.close()


def test_raycast_cameras_on_threads_equal_single_envs_through_an_autoreset():
    """The ray-cast worlds render on a thread pool after the step; every frame (the final ones of the finished
    episodes included) equals what each single env renders itself."""
    kw = dict(obs_mode="rgbd", camera_backend="raycast", cue_steps=2, delay_steps=2, max_episode_steps=5)
    venv, sync = _pair("chronotope/WhereHidden-v0", n=4, **kw)
    assert venv.unwrapped._pool is not None
    _assert_same(venv.reset(seed=11), sync.reset(seed=11), "reset")
    rng = np.random.default_rng(2)
    ended = False
    for t in range(7):  # an autoreset at step 5
        actions = rng.uniform(-1, 1, size=(4, 4)).astype(np.float32)
        out = venv.step(actions)
        _assert_same(out, sync.step(actions), f"step {t}")
        ended |= bool(out[3].any())
        assert set(out[0]) >= {"front_rgb", "front_depth", "front_seg", "wrist_rgb"}
    assert ended
    venv.close()
    sync.close()


def test_a_step_that_terminates_at_the_limit_is_also_truncated_as_timelimit_does():
    # A generous success radius ends many Reach episodes on their first step, which a limit of 1 also truncates.
    venv, sync = _pair("chronotope/Reach-v0", n=4, success_radius=0.2, max_episode_steps=1)
    _assert_same(venv.reset(seed=0), sync.reset(seed=0), "reset")
    both = 0
    for t in range(5):
        out = venv.step(np.zeros((4, 4), np.float32))
        _assert_same(out, sync.step(np.zeros((4, 4), np.float32)), f"step {t}")
        assert out[3].all()
        both += int((out[2] & out[3]).sum())
    assert both > 0


def test_masked_reset_and_unseeded_resets_match_sync():
    venv, sync = _pair("chronotope/Reach-v0", n=N)
    _assert_same(venv.reset(seed=0), sync.reset(seed=0), "reset")
    actions = np.full((N, 4), 0.5, np.float32)
    _assert_same(venv.step(actions), sync.step(actions), "step")
    mask = np.array([False, True, False])
    _assert_same(
        venv.reset(seed=[None, 9, None], options={"reset_mask": mask}),
        sync.reset(seed=[None, 9, None], options={"reset_mask": mask.copy()}),
        "masked reset",
    )
    _assert_same(venv.step(actions), sync.step(actions), "step after the masked reset")
    _assert_same(venv.reset(), sync.reset(), "unseeded reset (each world keeps its generator)")
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.zeros(N, bool)})


def test_bad_input_raises_naming_it_and_steps_no_world():
    venv = gym.make_vec("chronotope/Reach-v0", num_envs=N, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    before = [e.data.qpos.copy() for e in venv.envs]
    with pytest.raises(ValueError, match=r"\(3, 3\).*expected \(3, 4\)"):
        venv.step(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        venv.step(np.zeros(4, np.float32))
    bad = np.zeros((N, 4), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"env\(s\) \[2\].*nan"):
        venv.step(bad)
    bad[2, 1], bad[1, 0] = 0.0, 1.5
    with pytest.raises(ValueError, match=r"env\(s\) \[1\].*1\.5"):
        venv.step(bad)
    for e, q in zip(venv.envs, before):
        assert e.step_count == 0 and np.array_equal(e.data.qpos, q)
    venv.close()
    with pytest.raises(ValueError, match="bogus_option"):
        gym.make_vec("chronotope/Reach-v0", num_envs=2, vectorization_mode="vector_entry_point", bogus_option=1)
    with pytest.raises(ValueError, match="num_colors=9"):
        gym.make_vec("chronotope/CueRecallPick-v0", num_envs=2, vectorization_mode="vector_entry_point", num_colors=9)
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec("chronotope/Reach-v0", num_envs=0, vectorization_mode="vector_entry_point")
    fresh = gym.make_vec("chronotope/Reach-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="reset"):
        fresh.step(np.zeros((2, 4), np.float32))
    fresh.close()


def test_every_arm_id_is_batched_and_trainers_pick_it():
    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.memory_span import declared_span
    from chronotope.envs.robot.vector_env import RobotVectorEnv

    for env_id in ENV_IDS:
        assert gym.registry[env_id].vector_entry_point is not None, env_id
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
        assert isinstance(venv, RobotVectorEnv) and venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
        single = gym.make(env_id)
        assert venv.single_observation_space == single.observation_space
        assert venv.single_action_space == single.action_space
        venv.close()
    venv = make_vector_env("chronotope/CueRecallPick-v0", 2)
    assert isinstance(venv, RobotVectorEnv)
    # The trainers read the memory task's declared span from it, as they did from a SyncVectorEnv.
    assert declared_span(venv) == gym.make("chronotope/CueRecallPick-v0").unwrapped.cue_to_query_span() > 0
    venv.close()
