"""A positive control of the trainer itself: PPO teaches a GRU to hold a cue across a delay (MemoryLength), and the
memoryless core, trained the same way, stays at the bound. If memory gradients stop reaching the cue (truncation,
state handling, episode starts off by one), the GRU falls to the bound as well."""

import json

import pytest

from chronotope.agents.config import TrainConfig
from chronotope.agents.evaluate import EvalConfig, evaluate
from chronotope.scripts.train import train


@pytest.mark.parametrize("agent,lo,hi", [("gru", 0.9, 1.0), ("none", 0.0, 0.65)])
def test_ppo_learns_a_delayed_cue_with_memory_only(tmp_path, agent, lo, hi):
    # 16k steps, 10 epochs x 8 minibatches (the gradient steps per rollout decide how soon a GRU picks up the cue:
    # with 4 x 4 it needs ~45k steps here; scripts/experiments/memory_length measures it)
    cfg = TrainConfig(
        env="chronotope/MemoryLength-v0",
        env_kwargs=json.dumps({"delay": 6}),
        agent=agent,
        algo="ppo",
        steps=16_384,
        seed=0,
        num_envs=16,
        rollout_len=64,
        bptt_len=64,
        epochs=10,
        minibatches=8,
        lr=3e-4,
        hidden=64,
        memory_cfg=json.dumps({"hidden_size": 64} if agent == "gru" else {}),
        out_dir=tmp_path,
        name=agent,
        device="cpu",
        torch_threads=1,
        progress=False,
    )
    train(cfg)
    s = evaluate(EvalConfig(run=cfg.run_dir(), episodes=200, num_envs=16, seed=10_000, out=tmp_path / "eval"))
    assert lo <= s["success"]["mean"] <= hi
