import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from chronotope.agents.checkpoint import load_checkpoint, save_checkpoint
from chronotope.agents.config import TrainConfig
from chronotope.agents.ppo.loss import gae, policy_loss, value_loss
from chronotope.agents.ppo.trainer import PPOTrainer


def test_gae_hand_computed():
    r = torch.tensor([[1.0], [1.0], [1.0]])
    v = torch.tensor([[0.5], [0.5], [0.5]])
    d = torch.tensor([[0.0], [0.0], [1.0]])
    adv, ret = gae(r, v, d, torch.tensor([0.7]), gamma=0.9, lam=0.8)
    assert adv[:, 0].tolist() == pytest.approx([1.8932, 1.31, 0.5])
    assert torch.allclose(ret, adv + v)
    # without the terminal flag the last value is bootstrapped: delta_2 = 1 + 0.9 * 0.7 - 0.5
    adv2, _ = gae(r, v, torch.zeros(3, 1), torch.tensor([0.7]), gamma=0.9, lam=0.8)
    assert float(adv2[2, 0]) == pytest.approx(1.13)


def test_ppo_loss_pieces():
    adv = torch.tensor([1.0, -1.0])
    old = torch.zeros(2)
    # ratio e^0.5 > 1 + 0.2: the positive-advantage term is clipped, the negative one is not
    new = torch.tensor([0.5, 0.5])
    expected = -((1.2 * 1.0) + (np.exp(0.5) * -1.0)) / 2
    assert float(policy_loss(new, old, adv, 0.2)) == pytest.approx(expected)
    # value clipping: old 0, new 1, target 1 -> unclipped error 0, clipped (0.2 - 1)^2 -> max is clipped
    assert float(value_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2)) == pytest.approx(
        0.5 * 0.64
    )
    assert float(value_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), None)) == 0.5


def _cfg(tmp_path, name, agent="lstm", updates=2, **kw):
    return TrainConfig(
        env="chronotope/PointNav-v0",
        agent=agent,
        steps=4 * 16 * updates,
        num_envs=4,
        rollout_len=16,
        bptt_len=8,
        epochs=2,
        minibatches=2,
        env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}),
        name=name,
        out_dir=tmp_path,
        progress=False,
        checkpoint_every=1,
        memory_cfg="{}",
        **kw,
    )


def test_sequences_keep_episodes_intact(tmp_path):
    tr = PPOTrainer(_cfg(tmp_path, "seq"))
    x = torch.arange(16 * 4).reshape(16, 4)  # [T, N]: value = t * N + n
    seq = tr._sequences(x)  # [C * N, L]
    assert seq.shape == (2 * 4, 8)
    for i in range(8):
        c, n = divmod(i, 4)
        assert seq[i].tolist() == [(c * 8 + t) * 4 + n for t in range(8)]  # one env, consecutive steps


def _params(tr):
    return torch.cat([p.detach().flatten() for p in tr.model.parameters()])


def test_seeded_runs_match_and_resume_is_exact(tmp_path):
    a = PPOTrainer(_cfg(tmp_path, "a", updates=3))
    a.train()
    b = PPOTrainer(_cfg(tmp_path, "b", updates=3))
    b.train()
    assert torch.equal(_params(a), _params(b))
    c = PPOTrainer(_cfg(tmp_path, "c", updates=3))
    c.train(stop_after=1)
    d = PPOTrainer(_cfg(tmp_path, "c", updates=3))
    d.restore(tmp_path / "c" / "checkpoint.pt")
    assert d.update == 1
    d.train()
    assert torch.equal(_params(a), _params(d))


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        load_checkpoint(bad)
    assert bad.read_bytes() == b"\x00garbage"  # untouched
    good = save_checkpoint(tmp_path / "ok.pt", {"agent": "lstm", "env": "x"})
    with pytest.raises(ValueError, match="agent='lstm'"):
        load_checkpoint(good, expect={"agent": "hcam"})
    tr = PPOTrainer(_cfg(tmp_path, "mismatch", agent="gru"))
    with pytest.raises(ValueError, match="agent"):
        tr.restore(good)


@pytest.mark.parametrize("agent", ["none", "gru", "hcam", "trxl"])
def test_memory_cores_train(tmp_path, agent):
    tr = PPOTrainer(_cfg(tmp_path, f"core-{agent}", agent=agent, updates=1))
    before = _params(tr).clone()
    hist = tr.train()
    assert len(hist) == 1 and np.isfinite(hist[0]["pg"])
    assert not torch.equal(before, _params(tr))


def test_unknown_names_list_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        PPOTrainer(_cfg(tmp_path, "bad", agent="nosuchcore"))
    with pytest.raises(ValueError, match="unknown environment id"):
        PPOTrainer(TrainConfig(env="chronotope/Nope-v0", out_dir=tmp_path, progress=False))


def test_cli_train_then_eval(tmp_path):
    cmd = [sys.executable, "-m", "chronotope.scripts.cli"]
    env_kw = json.dumps({"obs_mode": "state", "num_scenes": 1})
    subprocess.run(
        cmd
        + [
            "train",
            "--env",
            "chronotope/PointNav-v0",
            "--agent",
            "gru",
            "--steps",
            "128",
            "--num-envs",
            "4",
            "--rollout-len",
            "16",
            "--bptt-len",
            "8",
            "--name",
            "smoke",
            "--out-dir",
            str(tmp_path),
            "--env-kwargs",
            env_kw,
            "--no-progress",
        ],
        check=True,
    )
    subprocess.run(cmd + ["eval", "--run", str(tmp_path / "smoke"), "--episodes", "4", "--num-envs", "2"], check=True)
    summary = json.loads((tmp_path / "smoke" / "eval" / "summary.json").read_text())
    assert summary["success"]["n"] == 4 and {"mean", "std", "ci95", "n"} <= set(summary["return"])
    traj = np.load(tmp_path / "smoke" / "eval" / "trajectories.npz")
    assert len(traj["pose_index"]) == 5 and traj["poses"].shape[1] == 3
