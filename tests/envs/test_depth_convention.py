"""One depth convention in both env families: float32 metres clipped at ``max_depth``; a ray that hits nothing, or
hits beyond ``max_depth``, reads ``max_depth`` (never 0) and is background (id 0) in the segmentation."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)


def _check(depth, seg, space, max_depth):
    assert space.high.max() == np.float32(max_depth) and space.low.min() == 0.0
    assert depth.dtype == np.float32 and all(space.contains(d) for d in depth.reshape(-1, *space.shape))
    far = depth == np.float32(max_depth)
    assert far.any() and (depth > 0).all()  # the cap is reached, and no pixel reads 0 for "no return"
    assert (seg[far] == 0).all()  # capped pixels are background


def test_nav_depth_reads_max_depth_where_nothing_is_hit():
    """Through the env, walls beyond a short ``max_depth``; rays that hit no surface at all (the apartments are
    closed) are checked per backend in tests/render/test_render.py::test_nothing_hit_is_background_at_max_depth."""
    cap = 1.5
    env = gym.make(
        "chronotope/PointNav-v0", obs_mode="depth", semantic=True, num_scenes=2, resolution=(32, 32), max_depth=cap
    )
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for a in (2, 2, 2, 2, 2, 2):  # turn about: some view faces a far wall or an opening
        frames.append(env.step(a)[0])
    space = env.observation_space["depth"]
    depth = np.stack([o["depth"] for o in frames])
    seg = np.stack([o["semantic"] for o in frames])
    _check(depth, seg, space, cap)
    env.close()


@pytest.mark.parametrize("max_depth", [None, 0.8])
def test_arm_depth_reads_max_depth_where_nothing_is_hit(max_depth):
    kw = {} if max_depth is None else {"max_depth": max_depth}
    env = gym.make("chronotope/Reach-v0", obs_mode="rgbd", image_size=64, **kw)
    cap = env.unwrapped.cfg.max_depth
    assert cap == (5.0 if max_depth is None else max_depth)
    obs, _ = env.reset(seed=0)
    # the front camera looks over the table to the floor and past its edge (no surface hit there)
    _check(obs["front_depth"], obs["front_seg"], env.observation_space["front_depth"], cap)
    wrist = obs["wrist_depth"]
    assert env.observation_space["wrist_depth"].contains(wrist) and (wrist > 0).all()
    env.close()


def test_arm_max_depth_is_checked():
    for bad in (0.0, -1.0, float("inf"), True):
        with pytest.raises(ValueError, match="max_depth"):
            gym.make("chronotope/Reach-v0", max_depth=bad)
