"""NavVectorEnv's info follows gymnasium's SAME_STEP layout: a finished env's row is its reset info."""

import gymnasium as gym
import numpy as np

import chronotope.envs  # noqa: F401
from chronotope.envs.vector_info import final_info_row, finished_rows, info_row


def test_finished_rows_of_the_info_belong_to_the_new_episode():
    n = 3
    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        obs_mode="state", num_scenes=2)  # fmt: skip
    single = gym.make("chronotope/PointNav-v0", obs_mode="state", num_scenes=2)
    venv.reset(seed=4)
    acts = np.array([1, 0, 2])  # env 1 STOPs
    _, _, term, _, info = venv.step(acts)
    assert term.tolist() == [False, True, False]
    _, reset_info = single.reset(seed=5)
    o, _, t, _, step_info = single.step(0)
    assert t
    _, next_info = single.reset()  # the single env's next episode: what the vector env auto-reset to
    np.testing.assert_array_equal(info["camera_pose"][1], next_info["camera_pose"])
    np.testing.assert_array_equal(info["agent_pose"][1], next_info["agent_pose"])
    assert info["success"][1] == next_info["success"] and info["steps"][1] == 0
    # reward terms exist for the rows that stepped only
    assert info["_reward_progress"].tolist() == [True, False, True]
    # the finished episode's step info is in final_info
    fi = final_info_row(info, 1)
    np.testing.assert_array_equal(fi["camera_pose"], step_info["camera_pose"])
    assert fi["reward_progress"] == step_info["reward_progress"] and fi["steps"] == step_info["steps"]
    venv.close()


def _assert_batched_equal(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), (where, sorted(set(got) ^ set(want)))
    for k, w in want.items():
        g = got[k]
        if isinstance(w, dict):
            _assert_batched_equal(g, w, f"{where}.{k}")
        elif w.dtype == object:  # final_obs: None or an observation dict per row
            for a, b in zip(g, w):
                assert (a is None) == (b is None), (where, k)
                if b is not None:
                    assert set(a) == set(b) and all(np.array_equal(a[o], b[o]) for o in b), (where, k)
        else:
            assert g.dtype == w.dtype and g.shape == w.shape, (where, k, g.dtype, w.dtype, g.shape, w.shape)
            np.testing.assert_array_equal(g, w, err_msg=f"{where}.{k}")


def test_final_info_is_gymnasium_same_step_layout():
    """The batched env's final_obs / final_info equal, key for key (masks, dtypes, values), what gymnasium's
    SyncVectorEnv(SAME_STEP) of single envs gives for the same seeds: terminations (STOP) and truncations."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    n, seed, kw = 3, 7, {"obs_mode": "state", "num_scenes": 2, "max_episode_steps": 6}
    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)
    sync = SyncVectorEnv([lambda: gym.make("chronotope/PointNav-v0", **kw) for _ in range(n)],
                         autoreset_mode=AutoresetMode.SAME_STEP)  # fmt: skip
    venv.reset(seed=seed)
    sync.reset(seed=seed)
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(20):
        acts = rng.integers(0, 4, n)
        o1, r1, te1, tr1, i1 = venv.step(acts)
        o2, r2, te2, tr2, i2 = sync.step(acts)
        np.testing.assert_array_equal(te1, te2)
        np.testing.assert_array_equal(tr1, tr2)
        _assert_batched_equal(o1, o2, f"obs t={t}")
        assert ("final_info" in i1) == ("final_info" in i2)
        if "final_info" in i2:
            ended += len(finished_rows(i2))
            np.testing.assert_array_equal(finished_rows(i1), finished_rows(i2))
            for k in ("final_info", "_final_info", "final_obs", "_final_obs"):
                if isinstance(i2[k], dict):
                    _assert_batched_equal(i1[k], i2[k], f"{k} t={t}")
                else:
                    _assert_batched_equal({k: i1[k]}, {k: i2[k]}, f"t={t}")
            for i in finished_rows(i2):
                row = final_info_row(i1, i)
                assert row.keys() == info_row(i2["final_info"], i).keys() and "success" in row
    assert ended >= n  # both kinds of ending happened (time limit 6, random STOPs)
    venv.close()
    sync.close()


def test_a_stop_on_the_last_allowed_step_is_terminated_and_truncated_as_time_limit_says():
    """Gymnasium's TimeLimit (what gym.make adds to the single env) truncates at the limit whether or not the
    step also terminates; the native batched env reports the same pair."""
    kw = {"obs_mode": "state", "num_scenes": 2, "max_episode_steps": 3}
    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=2, vectorization_mode="vector_entry_point", **kw)
    single = gym.make("chronotope/PointNav-v0", **kw)
    venv.reset(seed=3)
    single.reset(seed=3)
    for a in (2, 2, 0):  # turn, turn, STOP on step 3 of 3
        *_, te, tr, _ = venv.step(np.array([a, 1]))
        *_, te1, tr1, _ = single.step(a)
    assert (te1, tr1) == (True, True)
    assert te.tolist() == [True, False] and tr.tolist() == [True, True]
    venv.close()
