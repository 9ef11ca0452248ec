"""Training memory agents: gradients reach as far back as the task's cue-to-query span (across rollout
boundaries), scripted steps carry no policy gradient, and the optional auxiliary loss trains with the model."""

import copy
import json
import warnings

import numpy as np
import pytest
import torch

from chronotope.agents.config import TrainConfig
from chronotope.agents.ppo.loss import policy_loss
from chronotope.agents.ppo.trainer import PPOTrainer

RECALL = {"obs_mode": "state", "num_scenes": 1, "observe_steps": 4, "delay": 3, "recall_steps": 9}  # span 16


def _cfg(tmp_path, name, **kw):
    base = dict(
        env="chronotope/ObjectRecall-v0",
        agent="gru",
        steps=2 * 8 * 3,
        num_envs=2,
        rollout_len=8,
        bptt_len=4,
        epochs=1,
        minibatches=2,
        env_kwargs=json.dumps(RECALL),
        name=name,
        out_dir=tmp_path,
        progress=False,
        checkpoint_every=1,
        memory_cfg=json.dumps({"hidden_size": 16}),
        hidden=16,
    )
    return TrainConfig(**{**base, **kw})


def test_short_truncation_warns_with_the_numbers(tmp_path):
    with pytest.warns(UserWarning, match=r"span of 16 steps.*bptt_len 4 \+ bptt_overlap 0 = 4"):
        PPOTrainer(_cfg(tmp_path, "w", bptt_overlap=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr = PPOTrainer(_cfg(tmp_path, "ok", rollout_len=16, bptt_len=4))  # auto overlap: span - 1 = 15
        assert tr.overlap == 15
        PPOTrainer(
            _cfg(tmp_path, "none", agent="none", bptt_overlap=0, memory_cfg="{}")
        )  # no memory, nothing to truncate
    assert PPOTrainer(_cfg(tmp_path, "none2", agent="none", memory_cfg="{}")).overlap == 0


def test_windows_hold_the_steps_before_each_sequence(tmp_path):
    tr = PPOTrainer(_cfg(tmp_path, "win", bptt_overlap=3))
    x = torch.arange(11 * 2).reshape(11, 2)  # [P + T, N] with P = 3, T = 8: value = ext_t * N + n
    win = tr._windows(x)  # [C * N, P + L]
    assert win.shape == (2 * 2, 3 + 4)
    for i in range(4):
        c, n = divmod(i, 2)
        assert win[i].tolist() == [(c * 4 + t) * 2 + n for t in range(7)]


def _loss_grad_on_previous_rollout(tr) -> torch.Tensor:
    tr.rollout()
    batch = tr.rollout()  # the second rollout's windows start inside the first
    p = tr.overlap
    obs = {k: v.float().clone().requires_grad_(True) for k, v in batch["obs"].items()}
    win = {k: tr._windows(v) for k, v in obs.items()}
    starts = tr._windows(batch["starts"])
    dist, _, _ = tr.model(win, batch["states"], starts)
    logp = tr.window_log_prob(dist, tr._sequences(batch["actions"]))
    logp[:2].sum().backward()  # the decisions of the first sequence of each env (steps 0..L-1 of this rollout)
    return sum(v.grad[:p].abs().sum() for v in obs.values()) if p else torch.tensor(0.0)


def test_gradient_reaches_the_previous_rollout(tmp_path):
    torch.manual_seed(0)
    g = _loss_grad_on_previous_rollout(PPOTrainer(_cfg(tmp_path, "g", bptt_overlap=6)))
    assert g > 0  # observations of the previous rollout shape this rollout's first decisions


def test_resume_is_exact_with_overlap(tmp_path):
    def params(tr):
        return torch.cat([q.detach().flatten() for q in tr.model.parameters()])

    a = PPOTrainer(_cfg(tmp_path, "a", bptt_overlap=6))
    a.train()
    c = PPOTrainer(_cfg(tmp_path, "c", bptt_overlap=6))
    c.train(stop_after=1)
    d = PPOTrainer(_cfg(tmp_path, "c", bptt_overlap=6))
    d.restore(tmp_path / "c" / "checkpoint.pt")
    d.train()
    assert torch.equal(params(a), params(d))


def test_auxiliary_loss_trains_a_head_on_the_memory(tmp_path):
    tr = PPOTrainer(_cfg(tmp_path, "aux", aux_coef=1.0, rollout_len=16, bptt_len=8))
    hist = tr.train()
    assert all(np.isfinite(h["aux"]) for h in hist)
    head = tr.aux_head.weight.detach().clone()
    tr2 = PPOTrainer(_cfg(tmp_path, "aux", aux_coef=1.0, rollout_len=16, bptt_len=8))
    tr2.restore(tmp_path / "aux" / "checkpoint.pt")
    assert torch.equal(tr2.aux_head.weight, head)  # the head is checkpointed with the model


def test_auxiliary_loss_needs_the_label(tmp_path):
    with pytest.raises(ValueError, match="info key 'memory_target'.*PointNav"):
        PPOTrainer(
            _cfg(
                tmp_path,
                "nolabel",
                env="chronotope/PointNav-v0",
                env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}),
                aux_coef=0.5,
            )
        )


def test_scripted_steps_carry_no_policy_gradient(tmp_path):
    tr = PPOTrainer(_cfg(tmp_path, "mask", rollout_len=16, bptt_len=8, bptt_overlap=8))
    batch = tr.rollout()
    task = tr.venv.unwrapped.core.task
    ctrl = batch["controllable"]  # [T, N]
    assert not ctrl.all() and ctrl.any()  # observe (4) + delay (3) steps are scripted, recall steps are not
    assert not ctrl[0].any()  # the first step of every episode is the scripted look-around
    assert task.controllable(tr.venv.unwrapped.core).dtype == bool
    # The masked policy loss ignores the advantages of scripted steps.
    logp = torch.randn(16, 2)
    adv = torch.randn(16, 2)
    base = policy_loss(logp, logp.detach() * 0.9, adv, 0.2, ctrl)
    noisy = policy_loss(logp, logp.detach() * 0.9, torch.where(ctrl, adv, 100 * torch.randn(16, 2)), 0.2, ctrl)
    assert torch.allclose(base, noisy)


def test_replay_without_grad_gives_the_same_update_for_a_stop_gradient_memory(tmp_path):
    """HCAM declares ``gradient_horizon`` 0, so the trainer replays its overlap under ``no_grad``: one update from
    the same batch gives the same parameters as replaying the overlap with autograd."""
    torch.manual_seed(0)
    tr = PPOTrainer(
        _cfg(
            tmp_path,
            "h",
            agent="hcam",
            bptt_overlap=6,
            memory_cfg='{"hidden_size": 16, "num_heads": 2, "chunk_size": 2}',
        )
    )
    assert tr._replay_without_grad() == tr.overlap == 6
    tr.rollout()
    batch = tr.rollout()
    start = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    opt_start = copy.deepcopy(tr.opt.state_dict())
    rng = torch.get_rng_state()
    tr.train_step(batch)
    fast = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    tr.model.load_state_dict(start)
    tr.opt.load_state_dict(opt_start)
    torch.set_rng_state(rng)
    tr.model.memory.gradient_horizon = None  # as an undeclared memory: the whole overlap with autograd
    assert tr._replay_without_grad() == 0
    tr.train_step(batch)
    moved = 0
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, fast[k], rtol=1e-4, atol=1e-5)
        moved += int(not torch.equal(v, start[k]))
    assert moved > 0


def test_gradient_replay_starts_hcam_windows_from_the_rollouts_states(tmp_path):
    """``replay="gradient"``: a core with gradient horizon 0 replays nothing and each window starts from the state
    the rollout stored at its first step. In the first minibatch the parameters are the rollout's, so the window's
    log-probabilities must equal the rollout's exactly (KL 0); a wrong starting state would change them. Recurrent
    cores keep their replay."""
    hcam = '{"hidden_size": 16, "num_heads": 2, "chunk_size": 2}'
    tr = PPOTrainer(_cfg(tmp_path, "g", agent="hcam", replay="gradient", minibatches=1, memory_cfg=hcam))
    assert tr.overlap == 0 and tr._replay_without_grad() == 0
    tr.rollout()  # the second rollout's windows start inside episodes that began in the first
    batch = tr.rollout()
    assert not batch["starts"][0].all()
    start = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    opt_start = copy.deepcopy(tr.opt.state_dict())
    # control: the same windows started from fresh states give other log-probabilities
    fresh = tr.batcher.cat([tr.model.initial_state(2, "cpu")] * (tr.cfg.rollout_len // tr.cfg.bptt_len))
    assert tr.train_step({**batch, "states": fresh})["kl"] > 1e-6
    tr.model.load_state_dict(start)
    tr.opt.load_state_dict(opt_start)
    stats = tr.train_step(batch)
    assert stats["kl"] < 1e-9 and stats["clipfrac"] == 0.0
    full = PPOTrainer(_cfg(tmp_path, "f", agent="hcam", memory_cfg=hcam))
    assert full.overlap == 8  # the declared span - 1, capped at the rollout
    gru = PPOTrainer(_cfg(tmp_path, "r", replay="gradient"))
    assert gru.overlap == 8
