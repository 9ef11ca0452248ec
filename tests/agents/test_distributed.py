"""DDP equivalence: one update on 2 ranks x B/2 samples equals one update on 1 rank x B samples.

Both setups train on the same fixed rollout (made once here with 4 envs, then split 2 + 2 across ranks), with one
minibatch per epoch so that the mean of the per-rank gradients is the gradient of the mean loss over B; the
advantages are normalised with global (all-reduced) statistics. The 2-rank part runs under torchrun (gloo,
127.0.0.1, a free port) in a subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from chronotope.agents.config import TrainConfig
from chronotope.agents.distributed import DistContext, global_mean_std, init_distributed, split_rollout
from chronotope.agents.ppo.trainer import PPOTrainer

WORKER = textwrap.dedent(
    """
    import sys, torch
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.distributed import destroy_distributed, init_distributed, split_rollout
    from chronotope.agents.ppo.trainer import PPOTrainer

    cfg_json, data_path, out_dir = sys.argv[1:4]
    ctx = init_distributed("cpu")
    assert ctx.world_size == 2 and ctx.backend == "gloo", ctx
    cfg = TrainConfig.from_dict(__import__("json").loads(cfg_json))
    cfg.num_envs = 2  # B / 2 per rank
    tr = PPOTrainer(cfg, dist=ctx)
    data = torch.load(data_path, weights_only=False)
    tr.model.load_state_dict(data["model"])
    tr.train_step(split_rollout(data["batch"], tr.batcher, ctx.rank, ctx.world_size))
    p1 = torch.cat([p.detach().flatten() for p in tr.model.parameters()])
    # then one more update on each rank's own envs (different data): ranks must stay identical
    tr.train_step(tr.rollout())
    p2 = torch.cat([p.detach().flatten() for p in tr.model.parameters()])
    torch.save({"after_split": p1, "after_own": p2, "obs0": tr.obs}, f"{out_dir}/rank{ctx.rank}.pt")
    destroy_distributed(ctx)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(tmp_path, name: str, agent: str = "lstm") -> TrainConfig:
    return TrainConfig(
        env="chronotope/PointNav-v0", agent=agent, steps=512, num_envs=4, rollout_len=16, bptt_len=8,
        epochs=2, minibatches=1, env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}), name=name,
        out_dir=tmp_path, progress=False, device="cpu",
    )  # fmt: skip


def _params(tr: PPOTrainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in tr.model.parameters()])


def _torchrun(tmp_path, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_ranks_half_batch_equal_one_rank_full_batch(tmp_path):
    cfg = _cfg(tmp_path, "single")
    single = PPOTrainer(cfg)
    batch = single.rollout()  # fixed data: B = 4 envs x 16 steps, lstm states stored every 8 steps
    torch.save({"batch": batch, "model": single.model.state_dict()}, tmp_path / "data.pt")
    before = _params(single).clone()
    single.train_step(batch)
    after = _params(single)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _torchrun(tmp_path, [str(script), json.dumps(cfg.to_dict()), str(tmp_path / "data.pt"), str(tmp_path)])
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    moved = (after - before).abs().max().item()
    assert moved > 1e-4  # the update does something, so the comparison below can fail
    print(f"max |2 ranks - 1 rank| = {(r0['after_split'] - after).abs().max().item():.3e}, step size {moved:.3e}")
    assert torch.allclose(r0["after_split"], after, atol=1e-6, rtol=1e-5), (r0["after_split"] - after).abs().max()
    assert torch.equal(r0["after_split"], r1["after_split"])
    # ranks stepped different envs (seed + 1000 * rank) yet hold identical parameters: gradients were averaged
    assert not all(np.array_equal(r0["obs0"][k], r1["obs0"][k]) for k in r0["obs0"])
    assert torch.equal(r0["after_own"], r1["after_own"])
    assert not torch.equal(r0["after_own"], r0["after_split"])


def test_split_rollout_keeps_env_rows(tmp_path):
    tr = PPOTrainer(_cfg(tmp_path, "split"))
    batch = tr.rollout()
    part = split_rollout(batch, tr.batcher, 1, 2)
    assert torch.equal(part["actions"], batch["actions"][:, 2:4])
    assert torch.equal(part["obs"]["pose"], batch["obs"]["pose"][:, 2:4])
    # states: 2 chunks x 4 envs, chunk-major; rank 1 keeps envs 2, 3 of each chunk
    h = batch["states"]["h"]  # [layers, C * N, H]
    assert torch.equal(part["states"]["h"], h[:, [2, 3, 6, 7]])
    with pytest.raises(ValueError, match="world_size=3"):
        split_rollout(batch, tr.batcher, 0, 3)


def test_single_process_context(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("cpu") == DistContext()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="'two'"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="RANK is not set"):
        init_distributed("cpu")
    x = torch.tensor([1.0, 2.0, 4.0])
    m, s = global_mean_std(x, DistContext())
    assert m == x.mean() and s == x.std()
    assert DistContext(rank=3, world_size=4).seed(7) == 3007


@pytest.mark.slow  # ~20 s here: two fresh interpreters importing torch, tensorboard and the envs
def test_torchrun_train_module(tmp_path):
    """``torchrun -m chronotope.scripts.train``: rank 0 alone writes the run; steps count both ranks."""
    env_kw = json.dumps({"obs_mode": "state", "num_scenes": 1})
    _torchrun(tmp_path, ["-m", "chronotope.scripts.train", "--env", "chronotope/PointNav-v0", "--agent", "gru",
                         "--steps", "256", "--num-envs", "2", "--rollout-len", "16", "--bptt-len", "8",
                         "--name", "ddp", "--out-dir", str(tmp_path), "--env-kwargs", env_kw, "--no-progress",
                         "--device", "cpu"])  # fmt: skip
    run = tmp_path / "ddp"
    lines = [json.loads(x) for x in (run / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [64, 128, 192, 256]  # 2 ranks x 2 envs x 16 steps per update
    data = torch.load(run / "checkpoint.pt", weights_only=False)
    assert data["update"] == 4 and data["global_step"] == 256
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "progress.jsonl", "tb"]
