"""Batched map wrappers (VectorMapWrapper over NavVectorEnv) against N single envs wrapped one by one."""

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)
from chronotope.agents.envs import make_vector_env, nav_cores
from chronotope.maps.octree import OctreeConfig, SparseOctree
from chronotope.maps.wrappers import VectorMapWrapper, apply_vector_wrappers, apply_wrappers

KW = {"obs_mode": "depth", "semantic": True, "resolution": (24, 24), "num_scenes": 2}
LIMIT = 9  # time limit: truncations as well as STOPs end episodes within the test


def _pair(names: str, n: int, seed: int):
    venv = apply_vector_wrappers(
        gym.make_vec("chronotope/PointNav-v0", num_envs=n, vectorization_mode="vector_entry_point",
                     max_episode_steps=LIMIT, **KW),
        names,
    )  # fmt: skip
    make = lambda: gym.make("chronotope/PointNav-v0", max_episode_steps=LIMIT, **KW)  # noqa: E731
    singles = [apply_wrappers(make(), names) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    return venv, singles, vobs, sobs


def _assert_row_equal(vobs: dict, i: int, obs: dict, where) -> None:
    assert set(vobs) == set(obs), where
    for k in obs:
        np.testing.assert_array_equal(vobs[k][i], obs[k], err_msg=f"{where} key {k}")


@pytest.mark.parametrize("names", ["occupancy,octree", "topology,mem4nav"])
def test_batched_maps_equal_single_env_maps_across_resets(names):
    n, seed = 3, 7
    venv, singles, vobs, sobs = _pair(names, n, seed)
    assert venv.single_observation_space == singles[0].observation_space
    for i in range(n):
        _assert_row_equal(vobs, i, sobs[i], ("reset", i))
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(2 * LIMIT + 3):
        acts = rng.integers(1, 4, n)
        acts[rng.random(n) < 0.08] = 0  # an occasional STOP: terminations at different steps per env
        vobs, _, vterm, vtrunc, vinfo = venv.step(acts)
        for i, e in enumerate(singles):
            o, _, term, trunc, _ = e.step(int(acts[i]))
            # (TimeLimit truncates a STOP on the last step too; the vector env calls that terminated only)
            assert vterm[i] == term and (vterm[i] or vtrunc[i]) == (term or trunc), (t, i)
            if term or trunc:
                ended += 1
                # the finished episode's last frame, with its map features, as the single wrapper gave it
                _assert_row_equal({k: v[None] for k, v in vinfo["final_obs"][i].items()}, 0, o, ("final", t, i))
                o, _ = e.reset()
            _assert_row_equal(vobs, i, o, ("step", t, i))
            assert venv.observation_space.contains(vobs)
    assert ended >= n  # every env went through at least one reset


def test_masked_reset_renews_only_the_masked_maps():
    n = 2
    venv, singles, vobs, _ = _pair("octree", n, 3)
    for _ in range(3):
        vobs, *_ = venv.step(np.array([1, 2]))
    before = vobs["octree_knn"].copy()
    leaves = len(venv.maps["octree_knn"][0])
    vobs, _ = venv.reset(seed=[None, 20], options={"reset_mask": np.array([False, True])})
    np.testing.assert_array_equal(vobs["octree_knn"][0], before[0])  # untouched row: same features, same map
    assert len(venv.maps["octree_knn"][0]) == leaves
    ref, _ = singles[1].reset(seed=20)
    np.testing.assert_array_equal(vobs["octree_knn"][1], ref["octree_knn"])


def test_make_vector_env_keeps_the_batched_env():
    venv = make_vector_env("chronotope/PointNav-v0", 2, KW, "occupancy,octree")
    assert isinstance(venv, VectorMapWrapper)
    assert len(nav_cores(venv)) == 1  # one batched core, not one per sub-env
    obs, _ = venv.reset(seed=0)
    assert obs["occupancy"].shape == (2, 3, 64, 64) and obs["octree_knn"].shape == (2, 16, 6)
    venv.close()


def test_batched_maps_refuse_the_depth_wrapper_and_depthless_envs():
    state = gym.make_vec("chronotope/PointNav-v0", num_envs=1, vectorization_mode="vector_entry_point",
                         obs_mode="state", num_scenes=1)  # fmt: skip
    with pytest.raises(ValueError, match="single-env only"):
        apply_vector_wrappers(state, "depth,octree")
    with pytest.raises(ValueError, match="depth"):
        apply_vector_wrappers(state, "octree")


def test_knn_search_equals_brute_force_with_ties():
    rng = np.random.default_rng(0)
    cfg = OctreeConfig(origin=(0.0, 0.0, 0.0), size=6.4, depth=7)  # 5 cm voxels
    tree = SparseOctree(cfg)
    tree.insert(rng.uniform(0.0, 6.4, (3000, 3)))
    tree.insert(rng.uniform(2.0, 2.6, (500, 3)))  # a dense cluster
    centres = tree.centers(tree.keys)
    for q in np.vstack([rng.uniform(-0.5, 6.9, (30, 3)), centres[:5], [[2.3, 2.3, 2.3]]]):
        for k in (1, 7, 40):
            slots, dist = tree.query_knn(q, k)
            d = np.linalg.norm(centres - q, axis=1)
            ref = np.lexsort((tree.keys, np.round(d, 9)))[:k]  # nearest first, equal distances by key
            np.testing.assert_allclose(dist, d[ref], atol=1e-9)
            np.testing.assert_allclose(np.sort(d)[:k], dist, atol=1e-9)
            # ties may be ordered by key only among exactly equal distances
            assert (np.diff(dist) >= -1e-9).all()
            assert set(tree.slot_keys(slots)) == set(tree.keys[ref]) or np.isclose(dist[-1], np.sort(d)[k])
