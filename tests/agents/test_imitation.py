import json

import numpy as np
import pytest

from chronotope.agents.config import TrainConfig
from chronotope.agents.imitation import expert_for, train_imitation


def test_bc_then_dagger_lowers_the_imitation_loss(tmp_path):
    cfg = TrainConfig(
        env="chronotope/PointNav-v0",
        agent="gru",
        algo="dagger",
        steps=4 * 32 * 3,
        num_envs=4,
        rollout_len=32,
        bptt_len=16,
        dagger_iters=2,
        bc_epochs=3,
        lr=3e-3,
        out_dir=tmp_path,
        name="dagger",
        progress=False,
        env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}),
    )
    hist = train_imitation(cfg)
    assert [h["beta"] for h in hist] == [1.0, 0.5, 0.25]  # BC first, then DAgger with a decaying expert share
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert (tmp_path / "dagger" / "checkpoint.pt").is_file()


def test_expert_needs_an_oracle():
    import gymnasium as gym

    venv = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="oracle"):
        expert_for(venv)


def test_memory_task_expert_is_the_perfect_oracle():
    import gymnasium as gym

    venv = gym.make_vec(
        "chronotope/ObjectRecall-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        obs_mode="state",
        delay=2,
        num_scenes=2,
    )
    venv.reset(seed=0)
    act = expert_for(venv)
    a = act()
    assert a.shape == (2,) and np.isin(a, [0, 1, 2, 3]).all()
