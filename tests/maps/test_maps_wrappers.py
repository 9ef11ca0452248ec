import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from maps_box_env import BoxRoomEnv

from chronotope.maps.occupancy import OccupancyConfig
from chronotope.maps.octree import OctreeConfig
from chronotope.maps.wrappers import (
    Mem4NavWrapper,
    OccupancyMapWrapper,
    OctreeWrapper,
    TopologyWrapper,
    depth_descriptor,
)

OCC = OccupancyConfig(cell_size=0.1, shape=(80, 80), origin=(-1.0, -1.0))
OCT = OctreeConfig(origin=(-1.0, -1.0, -1.0), size=8.0, depth=6, num_labels=8)


def _stack(env):
    env = OccupancyMapWrapper(env, OCC, crop_size=36)
    env = OctreeWrapper(env, OCT, k=8)
    env = TopologyWrapper(env, k=4)
    return Mem4NavWrapper(env)


def _rollout(seed, n=25):
    env = _stack(BoxRoomEnv(16, 16, max_depth=8.0))
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(seed)
    for _ in range(n):
        obs, *_ = env.step(int(rng.integers(3)))
        out.append(obs)
    return env, out


def test_check_env_and_spaces():
    env = _stack(BoxRoomEnv(16, 16, max_depth=8.0))
    check_env(env, skip_render_check=True)
    _, obs_seq = _rollout(0)
    for obs in obs_seq:
        assert env.observation_space.contains(obs)
        assert obs["occupancy"].shape == (3, 36, 36)


def test_seeded_rollouts_match():
    _, a = _rollout(3)
    _, b = _rollout(3)
    for oa, ob in zip(a, b):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])


def test_features_reflect_the_maps():
    env, obs_seq = _rollout(1, n=30)
    last = obs_seq[-1]
    knn = last["octree_knn"]
    assert knn[:, 5].all()  # the octree has more than k leaves
    dist = np.linalg.norm(knn[:, :3], axis=1)
    assert (np.diff(dist) >= -1e-9).all()
    assert set(knn[:, 4].astype(int).tolist()) <= set(range(1, 8))  # wall / floor / pillar ids
    # reset starts a fresh map
    obs, _ = env.reset(seed=5)
    oct_wrapper = env.env.env
    assert isinstance(oct_wrapper, OctreeWrapper)
    assert oct_wrapper.map.counts(np.arange(len(oct_wrapper.map))).sum() == (obs["depth"] < 8.0).sum()
    # first frame of an episode: nothing remembered yet
    np.testing.assert_array_equal(obs["mem4nav"], 0)
    assert obs["topology"][0, 5] == 1 and obs["topology"][1:, 5].sum() == 0


def test_mem4nav_feature_recalls_a_revisited_view():
    env = Mem4NavWrapper(BoxRoomEnv(16, 16, max_depth=8.0))
    obs0, _ = env.reset(seed=2)
    obs1, *_ = env.step(1)  # turn left
    obs2, *_ = env.step(2)  # turn back: this view equals the first
    v0, v1 = (depth_descriptor(o["depth"], 8.0) for o in (obs0, obs1))
    np.testing.assert_allclose(depth_descriptor(obs2["depth"], 8.0), v0)
    assert obs2["mem4nav"][-2] == 1.0  # served from STM (an exact match has cosine 1)
    # both earlier frames are within eps of the agent, so the feature is the mean of the two
    np.testing.assert_allclose(obs2["mem4nav"][:-2], (v0 + v1) / 2, atol=1e-6)


def test_wrapper_input_errors():
    with pytest.raises(ValueError, match="Dict"):
        OctreeWrapper(gym.make("CartPole-v1"))
    env = OctreeWrapper(BoxRoomEnv(16, 16), OCT)
    with pytest.raises(ValueError, match="already exists"):
        OctreeWrapper(env, OCT)


def test_sb3_multi_input_policy_runs():
    sb3 = pytest.importorskip("stable_baselines3")
    env = OctreeWrapper(TopologyWrapper(BoxRoomEnv(16, 16, max_depth=8.0)), OCT, k=8)
    from chronotope.agents.sb3 import sb3_logger

    model = sb3.PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.set_logger(sb3_logger(None))  # SB3's default would leave an empty $TMPDIR/SB3-<date> folder
    model.learn(total_timesteps=16)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


def test_pointnav_env_if_available():
    import chronotope.envs  # noqa: F401

    if "chronotope/PointNav-v0" not in gym.registry:
        pytest.skip("chronotope/PointNav-v0 is not registered yet")
    env = _stack(gym.make("chronotope/PointNav-v0", obs_mode="rgbd"))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:  # a sampled STOP ends the episode: stepping on would raise
            obs, _ = env.reset()
    assert env.observation_space.contains(obs)


# ------------------------------------------------------------------ wrappers by name (the CLI's --wrappers)
_VLN = {"resolution": (16, 16), "num_scenes": 2, "task_kwargs": {"max_distance": 7.0}}


def test_rendered_depth_in_state_mode_equals_the_depth_mode_frame():
    import chronotope.envs  # noqa: F401
    from chronotope.maps.wrappers import RenderedDepthWrapper

    wrapped = RenderedDepthWrapper(gym.make("chronotope/VLN-v0", obs_mode="state", **_VLN))
    ref = gym.make("chronotope/VLN-v0", obs_mode="depth", **_VLN)
    ow, _ = wrapped.reset(seed=4)
    orf, _ = ref.reset(seed=4)
    assert {"pose", "range", "objects", "depth"} <= set(ow)
    for a in (2, 1, 1, 3, 1):
        np.testing.assert_array_equal(ow["depth"], orf["depth"])
        assert wrapped.observation_space.contains(ow)
        ow, *_ = wrapped.step(a)
        orf, *_ = ref.step(a)
    with pytest.raises(ValueError, match="already exists"):
        RenderedDepthWrapper(ref)


def test_parse_wrappers_orders_dedupes_and_names_bad_values():
    from chronotope.maps.wrappers import WRAPPERS, parse_wrappers

    assert parse_wrappers("mem4nav, depth,octree,depth") == ["depth", "octree", "mem4nav"]
    assert parse_wrappers(["topology"]) == ["topology"]
    assert parse_wrappers("") == [] and parse_wrappers(None) == []
    with pytest.raises(ValueError, match=r"'map'.*" + ", ".join(WRAPPERS)):
        parse_wrappers("octree,map")


def test_apply_wrappers_sizes_the_maps_to_the_scenes():
    """Named wrappers size the occupancy grid and the octree cube from the env's scenes, so no observed point
    of an apartment falls outside (the default extents are fixed and centred on the origin)."""
    import chronotope.envs  # noqa: F401
    from chronotope.maps.wrappers import apply_wrappers

    env = apply_wrappers(gym.make("chronotope/VLN-v0", obs_mode="state", **_VLN), "depth,occupancy,octree")
    env.reset(seed=1)
    for a in (1, 2, 1, 2, 1, 3, 3, 1):
        env.step(a)
    octree, occ = env.map, env.env.map  # outermost first
    assert len(octree) > 0
    for spec in env.unwrapped.core.scenes:
        lo, hi = (np.asarray(b, float)[:2] for b in spec.bounds)
        cfg = occ.cfg
        top = np.asarray(cfg.origin) + cfg.cell_size * np.asarray(cfg.shape)[::-1]  # shape is (rows=y, cols=x)
        assert (np.asarray(cfg.origin) <= lo).all() and (top >= hi).all()
        ocfg = octree.cfg
        assert (np.asarray(ocfg.origin)[:2] <= lo).all() and (np.asarray(ocfg.origin)[:2] + ocfg.size >= hi).all()
