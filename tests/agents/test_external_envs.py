"""External Gymnasium envs (MiniGrid) through the training CLI, PPO and SB3: observation adapters and encoders."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.checkpoint import load_checkpoint
from chronotope.agents.encoders import CategoricalGridEncoder, DiscreteEncoder, ObservationEncoder
from chronotope.agents.envs import DropTextObservations, MiniGridSymbolicGrid, adapt_observations, make_vector_env
from chronotope.agents.policy import ActorCritic

ENV = "MiniGrid-MemoryS7-v0"
SHORT = '{"max_steps": 24}'  # MemoryEnv's own time limit (245 by default): short evaluation episodes


class _TextEnv(gym.Env):
    """A Dict observation with a Text entry, a vector and a Discrete."""

    observation_space = spaces.Dict(
        {"note": spaces.Text(12), "pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "dir": spaces.Discrete(4)}
    )
    action_space = spaces.Discrete(2)

    def _obs(self):
        return {"note": "hello", "pos": np.zeros(2, np.float32), "dir": 1}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, True, False, {}


def test_minigrid_ppo_gru_trains_through_the_cli_and_evaluates(tmp_path):
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.scripts.cli import main

    args = ["train", "--algo", "ppo", "--env", ENV, "--agent", "gru", "--steps", "64", "--num-envs", "2"]
    args += ["--rollout-len", "16", "--bptt-len", "16", "--env-kwargs", SHORT]
    args += ["--out-dir", str(tmp_path), "--name", "mg"]
    main([*args, "--no-progress", "--device", "cpu"])
    run = tmp_path / "mg"
    ckpt = load_checkpoint(run / "checkpoint.pt", expect={"agent": "gru", "env": ENV})
    assert ckpt["update"] == 2 and ckpt["global_step"] == 64
    keys = set(ckpt["model"])
    assert "encoder.encoders.image.embed.weight" in keys  # the symbolic view is embedded, not read as pixels
    assert not any("mission" in k for k in keys)  # the text field was dropped before the policy
    assert json.loads((run / "config.json").read_text())["env"] == ENV
    summary = evaluate(EvalConfig(run=run, episodes=2, num_envs=2, deterministic=True))
    assert summary["return"]["n"] == 2
    assert 0.0 <= summary["return"]["mean"] <= 1.0


def test_minigrid_text_is_dropped_and_the_view_is_a_categorical_grid():
    venv = make_vector_env(ENV, 2)
    space = venv.single_observation_space
    assert set(space) == {"direction", "image"}
    assert isinstance(space["image"], spaces.MultiDiscrete)
    assert space["image"].shape == (7, 7, 3)
    np.testing.assert_array_equal(space["image"].nvec[0, 0], [11, 6, 4])  # objects, colours, states
    obs, _ = venv.reset(seed=0)
    assert set(obs) == {"direction", "image"} and obs["image"].dtype == np.uint8
    assert (obs["image"] < space["image"].nvec).all()
    model = ActorCritic(space, venv.single_action_space, "gru")
    enc = model.encoder
    assert enc.keys == ["direction", "image"]
    assert isinstance(enc.encoders["image"], CategoricalGridEncoder)
    assert isinstance(enc.encoders["direction"], DiscreteEncoder)
    assert enc.out_dim == 128 + 4
    venv.close()


def test_text_entries_of_any_dict_env_are_dropped():
    env = adapt_observations(_TextEnv())
    assert isinstance(env, DropTextObservations) and env.dropped == ["note"]
    assert set(env.observation_space) == {"pos", "dir"}
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pos", "dir"}
    plain = gym.make("CartPole-v1")
    assert adapt_observations(plain) is plain  # nothing to adapt: the env itself


def test_minigrid_rgb_images_stay_images():
    from minigrid.wrappers import RGBImgPartialObsWrapper

    env = RGBImgPartialObsWrapper(gym.make(ENV))
    assert not MiniGridSymbolicGrid.applies(env)
    assert isinstance(adapt_observations(env).observation_space["image"], spaces.Box)
    assert MiniGridSymbolicGrid.applies(gym.make(ENV))


def test_categorical_grid_encoder_embeds_indices():
    space = spaces.MultiDiscrete(np.broadcast_to(np.array([11, 6, 4], np.uint8), (7, 7, 3)).copy(), dtype=np.uint8)
    enc = CategoricalGridEncoder(space, out_dim=32)
    x = torch.zeros(3, 7, 7, 3, dtype=torch.uint8)
    x[1, 3, 3, 0] = 5  # a key in front of the agent
    x[2, 3, 3, 0] = 200  # out of range: clamped to the last object index, no index error
    y = enc(x)
    assert y.shape == (3, 32) and torch.isfinite(y).all()
    assert not torch.allclose(y[0], y[1])


def test_unencodable_spaces_name_the_key_and_the_space():
    bad = spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,)), "pair": spaces.Tuple((spaces.Discrete(2),) * 2)})
    with pytest.raises(ValueError, match=r"observation key 'pair'.*Tuple\(Discrete\(2\), Discrete\(2\)\)"):
        ObservationEncoder(bad)
    with pytest.raises(ValueError, match=r"observation key 'note'.*Text.*DropTextObservations"):
        ObservationEncoder(_TextEnv.observation_space)  # text not dropped first: refused, with the remedy
    with pytest.raises(ValueError, match=r"the observation.*Graph"):
        ObservationEncoder(spaces.Graph(spaces.Box(0.0, 1.0, (2,)), None))


def test_recurrent_ppo_trains_and_evaluates_on_minigrid(tmp_path):
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.sb3 import SB3VecEnv, evaluate_sb3, train_sb3

    venv = SB3VecEnv(make_vector_env(ENV, 2))
    assert set(venv.observation_space.spaces) == {"direction", "image"}
    one_hot = venv.observation_space["image"]  # SB3 gets the 7x7x3 grid one-hot encoded: 49 cells x (11 + 6 + 4)
    assert isinstance(one_hot, spaces.MultiBinary) and one_hot.shape == (49 * 21,)
    venv.seed(0)
    obs = venv.reset()
    assert obs["image"].shape == (2, 49 * 21)
    np.testing.assert_array_equal(obs["image"].sum(1), [147, 147])  # one value per cell and channel
    grid, _ = make_vector_env(ENV, 2).reset(seed=0)
    first_cell = grid["image"][0, 0, 0]  # its object index sets one of the first 11 entries
    assert obs["image"][0, first_cell[0]] == 1 and obs["image"][0, 11 + first_cell[1]] == 1
    venv.close()
    cfg = TrainConfig(
        env=ENV,
        algo="recurrent-ppo",
        steps=64,
        num_envs=2,
        rollout_len=32,
        bptt_len=32,
        env_kwargs=SHORT,
        out_dir=tmp_path,
        name="rppo",
        progress=False,
        device="cpu",
    )
    train_sb3(cfg)
    assert (tmp_path / "rppo" / "sb3_model.zip").is_file()
    summary = evaluate_sb3(tmp_path / "rppo", episodes=2, num_envs=2, deterministic=True)
    assert summary["return"]["n"] == 2
    assert (tmp_path / "rppo" / "eval" / "summary.json").is_file()
