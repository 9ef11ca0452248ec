"""NavVectorEnv's info follows gymnasium's SAME_STEP layout: a finished env's row is its reset info."""

import gymnasium as gym
import numpy as np

import chronotope.envs  # noqa: F401


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
    fi = info["final_info"][1]
    np.testing.assert_array_equal(fi["camera_pose"], step_info["camera_pose"])
    assert fi["reward_progress"] == step_info["reward_progress"] and fi["steps"] == step_info["steps"]
    venv.close()
