"""Running scaling of unbounded observation entries (``obs_norm``): the statistics are those of the data shown,
rows of an entity set share one, bounded entries keep their bounds' map, and a PPO run saves and resumes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.encoders import ObservationEncoder

OBS = spaces.Dict(
    {
        "pose": spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 2.0]), dtype=np.float32),
        "rows": spaces.Box(-np.inf, np.inf, (3, 2), np.float32),
    }
)


def _batch(rng, n):
    return {
        "pose": torch.as_tensor(np.stack([rng.normal(5.0, 0.1, n), rng.uniform(0, 2, n)], 1), dtype=torch.float32),
        "rows": torch.as_tensor(rng.normal([0.5, -3.0], [0.05, 2.0], (n, 3, 2)), dtype=torch.float32),
    }


def test_scaling_is_the_running_mean_and_std_of_what_was_shown():
    rng = np.random.default_rng(0)
    enc = ObservationEncoder(OBS, entity_keys=("rows",), normalize=True)
    pose_enc, rows_enc = enc.encoders["pose"], enc.encoders["entities:rows"]
    torch.testing.assert_close(pose_enc.center, torch.tensor([0.0, 1.0]))  # before data: unbounded entry 0 / 1
    a, b = _batch(rng, 300), _batch(rng, 700)
    for batch in (a, b):
        enc.merge_normalizer(enc.normalizer_moments({k: v[None] for k, v in batch.items()}))  # a [T=1, N] batch
    pose = torch.cat([a["pose"], b["pose"]]).double()
    rows = torch.cat([a["rows"], b["rows"]]).double().reshape(-1, 2)  # the 3 rows share one statistic
    assert pose_enc.center[0].item() == pytest.approx(pose[:, 0].mean().item(), rel=1e-5)
    assert pose_enc.halfwidth[0].item() == pytest.approx(pose[:, 0].std(unbiased=False).item(), rel=1e-4)
    assert pose_enc.center[1].item() == 1.0 and pose_enc.halfwidth[1].item() == 1.0  # bounded: [0, 2] -> [-1, 1]
    expected_c = rows.mean(0).float().expand(3, 2)
    torch.testing.assert_close(rows_enc.center, expected_c)
    torch.testing.assert_close(rows_enc.halfwidth, rows.std(0, unbiased=False).float().expand(3, 2), rtol=1e-4, atol=0)
    # Off (the default): no statistics, unbounded entries unscaled, the state dict as before.
    plain = ObservationEncoder(OBS, entity_keys=("rows",))
    assert plain.normalizer_moments(a) == [] and not any("norm" in k for k in plain.state_dict())


def test_ppo_run_updates_saves_and_resumes_the_statistics(tmp_path):
    """On an arm env, whose pickled worlds hold MuJoCo structs (resuming an arm run was refused before them)."""
    from chronotope.agents.ppo.trainer import PPOTrainer

    kw = dict(
        env="chronotope/WhereHidden-v0",
        agent="gru",
        steps=2 * 4 * 32,
        num_envs=4,
        rollout_len=32,
        bptt_len=32,
        epochs=1,
        minibatches=1,
        obs_norm=True,
        out_dir=tmp_path,
        name="run",
        progress=False,
    )
    tr = PPOTrainer(TrainConfig(**kw))
    norm = tr.model.encoder.encoders["object_pose"].norm
    tr.train(stop_after=1)
    assert norm.count.item() == 4 * 32  # one rollout's frames: 4 envs x 32 steps (the flat key: one per entry)
    centre = tr.model.encoder.encoders["object_pose"].center.clone()
    assert 0.3 < centre[0].item() < 0.65  # a cup's x in metres
    resumed = PPOTrainer(TrainConfig(**kw))
    resumed.restore(tmp_path / "run" / "checkpoint.pt")
    torch.testing.assert_close(resumed.model.encoder.encoders["object_pose"].center, centre)
    with pytest.raises(ValueError, match="obs_norm .* needs --algo ppo, got 'bc'"):
        TrainConfig(env="x", algo="bc", obs_norm=True).validate()


def test_readout_rows_take_the_running_scaling():
    from chronotope.agents.policy import ActorCritic

    space = spaces.Dict({"rows": spaces.Box(-np.inf, np.inf, (3, 2), np.float32)})
    model = ActorCritic(space, spaces.Discrete(2), "gru", {}, 8, readout_key="rows", obs_norm=True)
    rng = np.random.default_rng(1)
    data = {"rows": torch.as_tensor(rng.normal([0.5, -3.0], [0.05, 2.0], (500, 3, 2)), dtype=torch.float32)}
    model.encoder.merge_normalizer(model.encoder.normalizer_moments(data))
    with torch.no_grad():
        model.address.weight.zero_()
        model.address.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))  # read row 2
    rows = data["rows"][:4, None]  # [B=4, T=1, 3, 2]
    out = model.read_rows({"rows": rows}, torch.zeros(4, 1, model.memory.output_size))
    enc = model.encoder.encoders["rows"]
    expected = (rows[:, :, 2] - enc.center.view(3, 2)[2]) / enc.halfwidth.view(3, 2)[2]
    torch.testing.assert_close(out, expected)
    assert out.abs().max() < 5  # standardised, where the raw second column spreads over +-6
