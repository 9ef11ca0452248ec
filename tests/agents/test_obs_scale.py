"""Observation scaling of the float-vector encoder (``TrainConfig.obs_scale``): "bounds" maps [low, high] to
[-1, 1]; "magnitude" divides by max(|low|, |high|), so absent (zero) entries of sparse rows stay zero."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.encoders import ObservationEncoder, VectorEncoder
from chronotope.agents.evaluate import load_policy
from chronotope.agents.policy import ActorCritic
from chronotope.agents.ppo.trainer import PPOTrainer

ROWS = spaces.Box(np.array([0.0, -16.0, 0.0]), np.array([1.0, 16.0, 3.0]), dtype=np.float32)


def _scaled(enc: VectorEncoder, x: np.ndarray) -> np.ndarray:
    return ((torch.as_tensor(x, dtype=torch.float32) - enc.center) / enc.halfwidth).numpy()


def test_magnitude_keeps_zero_at_zero_and_the_bounds_within_unit_range():
    lo, hi = ROWS.low, ROWS.high
    mag, bnd = VectorEncoder(ROWS, scale="magnitude"), VectorEncoder(ROWS, scale="bounds")
    zero = np.zeros((1, 3), np.float32)
    assert np.array_equal(_scaled(mag, zero), zero)  # an absent row stays absent
    assert np.allclose(_scaled(bnd, zero), [[-1.0, 0.0, -1.0]])  # the [-1, 1] map moves it to the low bound
    for enc in (mag, bnd):  # both keep the whole box within [-1, 1] and reach it at the widest bound
        ends = _scaled(enc, np.stack([lo, hi]))
        assert np.abs(ends).max() == pytest.approx(1.0) and (np.abs(ends) <= 1.0 + 1e-6).all()
    assert np.allclose(_scaled(mag, hi[None]), [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="'unit'"):
        VectorEncoder(ROWS, scale="unit")
    unbounded = spaces.Box(-np.inf, np.inf, (2,), np.float32)  # unbounded features pass unscaled either way
    assert np.array_equal(_scaled(VectorEncoder(unbounded, scale="magnitude"), np.ones((1, 2))), np.ones((1, 2)))
    obs = ObservationEncoder(spaces.Dict({"rows": ROWS}), scale="magnitude")
    assert obs.encoders["rows"].halfwidth.tolist() == [1.0, 16.0, 3.0]


def test_a_run_trained_with_magnitude_scaling_reloads_with_it(tmp_path):
    cfg = TrainConfig(
        env="chronotope/PointNav-v0",
        agent="gru",
        steps=4 * 16,
        num_envs=4,
        rollout_len=16,
        bptt_len=8,
        epochs=1,
        minibatches=2,
        env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}),
        name="mag",
        out_dir=tmp_path,
        progress=False,
        memory_cfg="{}",
        obs_scale="magnitude",
    )
    tr = PPOTrainer(cfg)
    tr.train()
    loaded_cfg, data, _ = load_policy(tmp_path / "mag")
    assert loaded_cfg.obs_scale == "magnitude"  # the run's config says how its encoders scale
    venv = tr.venv
    model = ActorCritic.from_config(loaded_cfg, venv.single_observation_space, venv.single_action_space)
    model.load_state_dict(data["model"])
    for k, enc in model.encoder.encoders.items():
        if isinstance(enc, VectorEncoder):
            assert torch.equal(enc.center, tr.model.encoder.encoders[k].center)
            assert torch.equal(enc.halfwidth, tr.model.encoder.encoders[k].halfwidth)
            assert not enc.center.any()  # magnitude scaling: no shift
