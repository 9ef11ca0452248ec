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


def test_sequence_states_are_recomputed_by_the_current_network():
    """Split sequences replayed from the recomputed states give exactly the whole-rollout outputs of the network
    as it is now (states saved at collection time would belong to an older network)."""
    import gymnasium as gym
    import torch

    import chronotope.envs  # noqa: F401
    from chronotope.agents.imitation import chunk_states
    from chronotope.agents.policy import ActorCritic
    from chronotope.agents.ppo.trainer import _stack_time
    from chronotope.agents.state_utils import StateBatcher, split_sequences

    torch.manual_seed(0)
    cfg = TrainConfig(bptt_len=4, rollout_len=12)
    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        obs_mode="state", num_scenes=1)  # fmt: skip
    model = ActorCritic(venv.single_observation_space, venv.single_action_space, "gru", {}, 16)
    obs, _ = venv.reset(seed=0)
    obs_buf, starts = [], []
    start = np.ones(3, bool)
    for _ in range(12):
        obs_buf.append(obs)
        starts.append(start.copy())
        obs, _, term, trunc, _ = venv.step(np.random.default_rng(len(starts)).integers(0, 4, 3))
        start = term | trunc
    d = {"obs": _stack_time(obs_buf, "cpu"), "starts": torch.as_tensor(np.stack(starts)),
         "labels": torch.zeros(12, 3, dtype=torch.long)}  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():  # "after a fit": the network differs from the one that collected
            p.add_(0.1 * torch.randn_like(p))
        whole = {k: v.transpose(0, 1) for k, v in d["obs"].items()}
        ref, _, _ = model(whole, model.initial_state(3), d["starts"].T)
        states = chunk_states(model, StateBatcher(model.memory), d, cfg, "cpu")
        seq = {k: split_sequences(v, 4) for k, v in d["obs"].items()}
        dist, _, _ = model(seq, states, split_sequences(d["starts"], 4))
    expect = split_sequences(ref.logits.transpose(0, 1), 4)
    assert torch.allclose(dist.logits, expect, atol=1e-6)


def test_online_rollouts_start_at_new_episodes_every_time():
    """Each rollout of the online oracle starts every lane at an episode no earlier rollout started (resetting
    rollout k with seed + k replayed lane i + 1 of rollout k - 1 as lane i)."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401
    from chronotope.agents.imitation import OracleRollouts
    from chronotope.agents.policy import ActorCritic

    cfg = TrainConfig(env="chronotope/ObjectRecall-v0", num_envs=3, rollout_len=2, env_kwargs='{"obs_mode": "state"}')
    venv = gym.make_vec(cfg.env, num_envs=3, vectorization_mode="vector_entry_point", obs_mode="state")
    source = OracleRollouts(venv, cfg, "cpu")
    model = ActorCritic(venv.single_observation_space, venv.single_action_space, "none", {}, 16)
    firsts = []
    for _ in range(3):
        rollout, _ = source.collect(model, beta=1.0)
        firsts += [tuple(rollout["obs"]["pose"][0, i].tolist()) for i in range(3)]
    assert len(set(firsts)) == len(firsts)  # 9 lanes, 9 distinct start poses
    venv.close()


def test_learner_eval_runs_the_same_seeded_episodes_whatever_num_envs():
    """The learner curve goes through the one evaluation loop: its episodes and sampled actions are fixed by the
    seed list, so 2 or 3 lanes give the same numbers; iterations evaluate different episodes."""
    import torch

    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.imitation import _learner_eval
    from chronotope.agents.policy import ActorCritic

    def cfg(n):
        kw = {"obs_mode": "state", "num_scenes": 1, "max_episode_steps": 12}
        return TrainConfig(env="chronotope/PointNav-v0", agent="gru", num_envs=n, learner_eval_episodes=5,
                           env_kwargs=json.dumps(kw), progress=False)  # fmt: skip

    venv = make_vector_env("chronotope/PointNav-v0", 1, json.loads(cfg(1).env_kwargs))
    torch.manual_seed(0)
    model = ActorCritic.from_config(cfg(2), venv.single_observation_space, venv.single_action_space)
    venv.close()
    a, b = _learner_eval(model, cfg(2), "cpu", 0), _learner_eval(model, cfg(3), "cpu", 0)
    assert a == b and {"return", "success", "spl"} <= a.keys()
    assert _learner_eval(model, cfg(2), "cpu", 1) != a
