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


@pytest.mark.parametrize("action_space", ["discrete", "box"])
def test_act_draws_what_the_distribution_draws(action_space):
    """``ActorCritic.act`` (the rollout's per-step call) = ``forward`` + ``dist.sample()`` + ``log_prob``, draw
    for draw from the same RNG state, for the identity ``none`` core (which ``act`` does not call) and a real one."""
    from gymnasium import spaces

    from chronotope.agents.policy import ActorCritic

    obs_space = spaces.Dict({"a": spaces.Box(-1, 1, (3,), np.float32), "b": spaces.Box(0, 5, (2, 2), np.float32)})
    act_space = spaces.Discrete(5) if action_space == "discrete" else spaces.Box(-1, 1, (2,), np.float32)
    g = torch.Generator().manual_seed(0)
    obs = {"a": torch.rand(6, 1, 3, generator=g) * 2 - 1, "b": torch.rand(6, 1, 2, 2, generator=g) * 5}
    starts = torch.tensor([True, False, True, False, False, True])[:, None]
    for core in ("none", "gru"):
        torch.manual_seed(1)
        model = ActorCritic(obs_space, act_space, core, {}, 16)
        state = model.initial_state(6)
        torch.manual_seed(2)
        a, logp, v, s_act = model.act(obs, state, starts)
        torch.manual_seed(2)
        with torch.no_grad():
            dist, v_ref, s_ref = model(obs, state, starts)
            a_ref = dist.sample()
            logp_ref = model.log_prob(dist, a_ref)
        assert torch.equal(a, a_ref) and torch.equal(logp, logp_ref) and torch.equal(v, v_ref)
        assert a.shape == ((6, 1) if action_space == "discrete" else (6, 1, 2)) and logp.shape == (6, 1)
        assert type(s_act) is type(s_ref)


def test_none_core_is_skipped_only_when_it_is_the_identity():
    from gymnasium import spaces

    from chronotope.agents.policy import ActorCritic

    obs_space = spaces.Box(-1, 1, (4,), np.float32)
    plain = ActorCritic(obs_space, spaces.Discrete(3), "none", {}, 8)
    mlp = ActorCritic(obs_space, spaces.Discrete(3), "none", {"hidden_sizes": (8,)}, 8)
    assert plain._identity_memory and not mlp._identity_memory
    x = torch.rand(2, 3, 4)
    starts = torch.zeros(2, 3, dtype=torch.bool)
    for model in (plain, mlp):  # the heads see exactly what the core returns, beside the features it read
        z = model.proj(model.encoder(x.reshape(6, 4))).reshape(2, 3, -1)
        y, _ = model.memory(z, model.initial_state(2), starts)
        _, v, _ = model(x, model.initial_state(2), starts)
        h = model.trunk(z if model is plain else torch.cat([y, z], -1))
        torch.testing.assert_close(v, model.v(h).squeeze(-1), atol=0, rtol=0)


@pytest.mark.parametrize("core", ["lstm", "hcam", "none"])
def test_state_narrow_equals_index_of_the_same_rows(core):
    """``StateBatcher.narrow`` (minibatch slices of a shuffled state) picks what ``index`` picks, as views."""
    from chronotope.agents.state_utils import StateBatcher
    from chronotope.memory import make_memory

    torch.manual_seed(0)
    mem = make_memory(core, 6)
    batcher = StateBatcher(mem)
    with torch.no_grad():
        _, state = mem(torch.randn(5, 11, 6), mem.initial_state(5))
    leaves = lambda s: [v for _, v in sorted(_flat(s).items())]  # noqa: E731
    got = leaves(batcher.narrow(state, 1, 3))
    want = leaves(batcher.index(state, torch.arange(1, 4)))
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    with pytest.raises(RuntimeError):
        batcher.narrow(state, 4, 3)  # past the batch: torch names the bad range


def _flat(state, prefix=""):
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    items = state.items() if isinstance(state, dict) else enumerate(state)
    return {k2: v2 for k, v in items for k2, v2 in _flat(v, f"{prefix}/{k}").items()}


def test_entity_readout_reads_the_addressed_row():
    """The readout is the rows, scaled to [-1, 1] by the space's bounds, summed with the address head's weights:
    a one-hot address hands back exactly that row; the policy gradient does not reach the address head (only the
    auxiliary loss teaches it); a bad key or shape is refused naming it."""
    from gymnasium import spaces

    from chronotope.agents.policy import ActorCritic

    lo, hi = np.array([[0, -4, 0]] * 3, np.float32), np.array([[1, 4, 8]] * 3, np.float32)
    rows_space = spaces.Box(lo, hi, dtype=np.float32)
    obs_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "rows": rows_space})
    model = ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="rows")
    rows = torch.tensor([[1.0, -4.0, 2.0], [0.0, 2.0, 8.0], [1.0, 0.0, 0.0]])
    with torch.no_grad():
        model.address.weight.zero_()
        model.address.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))  # every step addresses row 1
    obs = {"pos": torch.zeros(2, 4, 2), "rows": rows.expand(2, 4, 3, 3)}
    y = torch.randn(2, 4, model.memory.output_size)
    torch.testing.assert_close(model.read_rows(obs, y), torch.tensor([-1.0, 0.5, 1.0]).expand(2, 4, 3))
    dist, value, _ = model(obs, model.initial_state(2), torch.zeros(2, 4, dtype=torch.bool))
    (dist.logits.sum() + value.sum()).backward()
    assert model.address.weight.grad is None and model.trunk[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="'nope' is not a key"):
        ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="nope")
    with pytest.raises(ValueError, match="readout_key 'pos' must name a \\[K, F\\] Box"):
        ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="pos")


def test_readout_query_reads_the_row_whose_table_entry_matches_the_query():
    """With ``readout_query`` the address head predicts a [K, Q] table and the readout weights row k by its table
    row dotted with the observed query: a memory that keeps "row 2 did pattern 1, row 0 did pattern 3" reads row 2
    when the query names pattern 1, row 0 when it names pattern 3, nothing before the query shows."""
    from gymnasium import spaces

    from chronotope.agents.policy import ActorCritic

    rows_space = spaces.Box(-2.0, 2.0, (3, 2), np.float32)
    obs_space = spaces.Dict({"rows": rows_space, "query": spaces.Box(0.0, 1.0, (4,), np.float32)})
    model = ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="rows", readout_query="query")
    assert model.address.out_features == 3 * 4
    table = torch.zeros(3, 4)
    table[2, 1] = table[0, 3] = 1.0
    with torch.no_grad():
        model.address.weight.zero_()
        model.address.bias.copy_(table.flatten())
    rows = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 1.0]]).expand(1, 3, 3, 2)
    query = torch.zeros(1, 3, 4)
    query[0, 0, 1] = query[0, 1, 3] = 1.0  # step 2: no query yet
    y = torch.randn(1, 3, model.memory.output_size)
    got = model.read_rows({"rows": rows, "query": query}, y)
    torch.testing.assert_close(got, torch.tensor([[[-1.0, 0.5], [1.0, 0.0], [0.0, 0.0]]]))
    with pytest.raises(ValueError, match="readout_query 'rows' must name a \\[Q\\] Box"):
        ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="rows", readout_query="rows")
    with pytest.raises(ValueError, match="readout_query 'nope' is not a key"):
        ActorCritic(obs_space, spaces.Discrete(3), "gru", {}, 8, readout_key="rows", readout_query="nope")


def test_readout_match_reads_the_row_showing_the_remembered_colour():
    """ColourSequence: with the address head's output set to the true ``memory_sequence`` table, the readout by
    ``next_element`` (query) and ``pad_colour`` (match) returns the ``object_pose`` row the env's ``memory_slot``
    names, at every step of every episode (the pads change rows at the go lamp), and a table of the wrong size is
    refused by name."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.policy import ActorCritic

    env = gym.make("chronotope/ColourSequence-v0", obs_mode="state")
    kw = dict(readout_key="object_pose", readout_query="next_element", readout_match="pad_colour")
    model = ActorCritic(env.observation_space, env.action_space, "gru", {}, 8, **kw)
    k, length = env.observation_space["pad_colour"].shape[0], env.observation_space["next_element"].shape[0]
    assert model.address.out_features == length * k
    checked = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
            if not obs["next_element"].any():  # the sequence is complete: nothing to look for
                continue
            with torch.no_grad():
                model.address.weight.zero_()
                model.address.bias.copy_(torch.as_tensor(info["memory_sequence"]))
            o = {key: torch.as_tensor(v)[None, None] for key, v in obs.items()}
            got = model.read_rows(o, torch.zeros(1, 1, model.memory.output_size))[0, 0]
            rows = (o["object_pose"][0, 0].float() - model.row_center) / model.row_half
            torch.testing.assert_close(got, rows[int(np.argmax(info["memory_slot"]))])
            checked += 1
    assert checked > 30
    with pytest.raises(ValueError, match="readout_match 'next_element' must name a \\[K, P\\] Box"):
        ActorCritic(env.observation_space, env.action_space, "gru", {}, 8, readout_key="object_pose",
                    readout_match="next_element")  # fmt: skip
    with pytest.raises(ValueError, match="readout_match 'pad_colour' .* needs readout_key"):
        TrainConfig(readout_match="pad_colour", aux_coef=1.0).validate()


def test_ballet_readout_query_trains_its_table_head_on_the_pattern_labels(ballet_cfg):
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.ppo.trainer import PPOTrainer

    with pytest.raises(ValueError, match="readout_query 'instruction' .* needs readout_key"):
        TrainConfig(readout_query="instruction", aux_coef=1.0).validate()
    with pytest.raises(ValueError, match="addresses 64 values \\(rows x query values\\).*'memory_slot' has 8"):
        PPOTrainer(ballet_cfg("bad", readout_query="instruction", aux_key="memory_slot"))
    tr = PPOTrainer(ballet_cfg("ok", readout_query="instruction", aux_key="memory_patterns"))
    assert tr.aux_head is tr.model.address
    before = tr.model.address.weight.detach().clone()
    tr.train()
    assert not torch.equal(tr.model.address.weight, before) and np.isfinite(tr.history[-1]["aux"])
    tr.venv.close()


def test_readout_needs_the_auxiliary_loss_on_labels_of_its_rows(tmp_path):
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.ppo.trainer import PPOTrainer

    with pytest.raises(ValueError, match="readout_key 'candidates' needs the auxiliary loss"):
        TrainConfig(readout_key="candidates").validate()
    kw = dict(
        env="chronotope/ObjectRecall-v0",
        env_kwargs='{"obs_mode": "state"}',
        agent="gru",
        num_envs=2,
        rollout_len=8,
        bptt_len=8,
        steps=16,
        out_dir=tmp_path,
        readout_key="candidates",
        aux_coef=1.0,
        progress=False,
    )
    with pytest.raises(ValueError, match="auxiliary label 'memory_target' has 2:"):
        PPOTrainer(TrainConfig(**kw, aux_key="memory_target", name="bad"))
    trainer = PPOTrainer(TrainConfig(**kw, aux_key="memory_slot", name="ok"))
    assert trainer.aux_head is trainer.model.address  # one head: what the aux loss teaches is what the policy reads
    assert sum(len(g["params"]) for g in trainer.opt.param_groups) == len(list(trainer.model.parameters()))
    trainer.venv.close()


def test_several_auxiliary_keys_get_a_head_each_and_resume_with_them(ballet_cfg):
    """``aux_key="memory_slot,memory_patterns"``: the readout's head predicts the first key, a head of its own each
    later key (Ballet's per-dancer patterns, 64 values); all train, and a checkpoint restores every head."""
    from chronotope.agents.ppo.trainer import PPOTrainer

    kw = dict(steps=64, aux_key="memory_slot,memory_patterns")
    with pytest.raises(ValueError, match="aux_key must name info keys"):
        PPOTrainer(ballet_cfg("bad", aux_key="memory_slot,"))
    tr = PPOTrainer(ballet_cfg("two", **kw))
    assert tr.aux_head is tr.model.address and [h.out_features for h in tr.aux_extra] == [64]
    assert tr.label.shape == (2, 8 + 64)
    before = tr.aux_extra[0].weight.detach().clone()
    tr.train()
    assert not torch.equal(tr.aux_extra[0].weight, before)  # the pattern head learns
    assert all(np.isfinite(r["aux"]) for r in tr.history)
    path = tr.save()
    tr.venv.close()
    tr2 = PPOTrainer(ballet_cfg("two-b", **kw))
    tr2.restore(path)
    assert torch.equal(tr2.aux_extra[0].weight, tr.aux_extra[0].weight)
    tr2.venv.close()


def test_model_policy_keeps_box_actions_inside_the_action_space():
    """The rollout policy clips continuous actions to the model's Box bounds, as the trainer does before env.step
    (the arm envs refuse actions outside [-1, 1]); sampled and greedy actions alike."""
    from gymnasium import spaces

    from chronotope.agents.evaluate import ModelPolicy
    from chronotope.agents.policy import ActorCritic

    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    model = ActorCritic(spaces.Box(-1.0, 1.0, (4,), np.float32), box, "gru", {"hidden_size": 8}, hidden=8)
    with torch.no_grad():
        model.pi.bias.copy_(torch.tensor([5.0, -5.0, 0.0]))  # the mean far outside the bounds on two axes
    obs = np.zeros((2, 4), np.float32)
    for deterministic in (True, False):
        a = ModelPolicy(model, deterministic=deterministic)(obs, np.ones(2, bool), [0, 1])
        assert a.shape == (2, 3) and (a >= -1).all() and (a <= 1).all()
        np.testing.assert_array_equal(a[:, 0], 1.0)
        np.testing.assert_array_equal(a[:, 1], -1.0)
