"""An external env no one here wrote, through the same training CLI: MiniGrid-MemoryS7-v0 (the ``minigrid`` package).

The agent starts in a small room with a cue object (key or ball), walks down a hallway and must step next to the
matching object at the split; success = a positive episode reward (the wrong object ends the episode with 0).
Without memory the best policy is a coin flip at the split (success 0.5).

Compared, on the same env-step budget and seeds: our sequence PPO with ``--agent none`` (reactive) and ``--agent
gru`` (both with the recipe of :class:`Config`), and sb3-contrib's RecurrentPPO (``--algo recurrent-ppo``: its
LSTM policy with its defaults, our num_envs / rollout_len / lr / ent_coef / epochs / minibatches). Every run is the
equivalent of one ``chronotope train`` command (printed); every agent is evaluated on the same seeded episodes
with sampled and greedy actions (:func:`chronotope.agents.evaluate.evaluate`; RecurrentPPO through
:func:`chronotope.agents.sb3.evaluate_sb3`, its mirror for SB3 models). Observations: MiniGrid's ``mission`` text
is dropped (a constant sentence here) and the 7x7x3 symbolic view is embedded, as for any env made by
:func:`chronotope.agents.envs.make_vector_env`.

Runs are resumable: a (policy, seed) whose evaluations exist is skipped, whatever recipe it was trained with (use
another ``--out`` for another recipe); an unfinished one starts again (its wall-clock time is part of the result).
Results: ``<out>/results.json`` and ``<out>/results.md``.

    python -m chronotope.scripts.experiments.minigrid_memory                      # 3 policies x 3 seeds
    python -m chronotope.scripts.experiments.minigrid_memory --seeds 0            # one seed each
    python -m chronotope.scripts.experiments.minigrid_memory --quick              # smoke run (seconds)
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POLICIES = {
    "none": ("ppo", "none"),
    "gru": ("ppo", "gru"),
    "hcam": ("ppo", "hcam"),
    "recurrent-ppo": ("recurrent-ppo", "none"),
}
"""Policy name -> (--algo, --agent)."""


@dataclass
class Config:
    """MiniGrid Memory: memory cores vs a reactive agent vs sb3-contrib RecurrentPPO.

    Attributes:
        env: a MiniGrid memory env id.
        env_kwargs: JSON object of env keyword arguments (training and evaluation), e.g. '{"agent_view_size": 3}':
            with the default 7x7 view a reactive agent can solve S7 (facing back at the split it sees the cue
            and both objects at once); a 3x3 view makes the cue invisible from the split, so only memory helps.
        policies: keys of ``POLICIES``.
        seeds: training seeds (evaluation episodes are the same for every policy and seed).
        steps: environment steps of training per run (the same budget for every policy).
        num_envs: environments stepped together.
        rollout_len: steps per environment between updates.
        bptt_len: training sequence length of our PPO; rollout_len covers several whole episodes of a trained
            agent (about 10 steps; 245 at most), and bptt_len = rollout_len lets the gradient reach the cue.
        epochs: PPO epochs per update.
        minibatches: minibatches per epoch. 10 x 8 = 80 gradient steps per rollout (SB3's PPO defaults take 10
            epochs of 64-sample batches): with 4 x 4 neither our GRU (lr 1e-3 or 3e-4) left the coin-flip level
            in 250k-300k steps; with 10 x 8 it did (see scripts/experiments/memory_length for the same effect
            on a bare delayed cue).
        lr: Adam learning rate (our PPO anneals it to 0; SB3 keeps it constant).
        ent_coef: entropy bonus.
        gamma: discount.
        hidden: width of our encoder output / memory input.
        memory_cfgs: memory config per core.
        eval_episodes: evaluation episodes per run and action selection.
        out: output folder (runs go to ``out/runs``).
        quick: a tiny run that exercises every stage; its numbers mean nothing.
    """

    env: str = "MiniGrid-MemoryS7-v0"
    env_kwargs: str = "{}"
    policies: tuple[str, ...] = ("none", "gru", "recurrent-ppo")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 300_000
    num_envs: int = 16
    rollout_len: int = 128
    bptt_len: int = 128
    epochs: int = 10
    minibatches: int = 8
    lr: float = 3e-4
    ent_coef: float = 0.01
    gamma: float = 0.99
    hidden: int = 128
    memory_cfgs: dict = field(
        default_factory=lambda: {
            "gru": {"hidden_size": 128},
            "hcam": {"hidden_size": 128, "num_heads": 4, "chunk_size": 4},
        }
    )
    eval_episodes: int = 200
    out: Path = Path("runs/minigrid_memory")
    quick: bool = False


def train_config(cfg: Config, policy: str, seed: int):
    """The :class:`~chronotope.agents.config.TrainConfig` of one run (what ``chronotope train`` would parse)."""
    from chronotope.agents.config import TrainConfig

    algo, agent = POLICIES[policy]
    run = Path(cfg.out) / "runs" / f"{policy}-s{seed}"
    return TrainConfig(
        env=cfg.env,
        agent=agent,
        algo=algo,
        steps=cfg.steps,
        seed=seed,
        name=run.name,
        out_dir=run.parent,
        num_envs=cfg.num_envs,
        rollout_len=cfg.rollout_len,
        bptt_len=cfg.bptt_len,
        epochs=cfg.epochs,
        minibatches=cfg.minibatches,
        lr=cfg.lr,
        ent_coef=cfg.ent_coef,
        gamma=cfg.gamma,
        hidden=cfg.hidden,
        env_kwargs=cfg.env_kwargs,
        memory_cfg=json.dumps(cfg.memory_cfgs.get(agent, {})),
        device="cpu",
        torch_threads=1,
        progress=False,
    )


def command(tcfg) -> str:
    """The ``chronotope train`` command line of a run."""
    args = ["chronotope", "train", "--algo", tcfg.algo, "--env", tcfg.env, "--agent", tcfg.agent]
    for k in ("steps", "seed", "num_envs", "rollout_len", "bptt_len", "epochs", "minibatches", "lr", "ent_coef"):
        args += [f"--{k.replace('_', '-')}", str(getattr(tcfg, k))]
    args += ["--gamma", str(tcfg.gamma), "--hidden", str(tcfg.hidden), "--memory-cfg", tcfg.memory_cfg]
    if tcfg.env_kwargs_dict():
        args += ["--env-kwargs", tcfg.env_kwargs]
    args += ["--out-dir", str(tcfg.out_dir), "--name", tcfg.name, "--device", "cpu", "--no-progress"]
    return shlex.join(args)


def _episodes(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines() if line]


def train_and_evaluate(cfg: Config, policy: str, seed: int) -> dict:
    """Trains one run (skipped when done) and evaluates it with sampled and greedy actions.

    Returns ``{"train": {wall_s, cpu_s, steps}, "sampled": {success, return, n}, "greedy": {...}}``.
    """
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.sb3 import evaluate_sb3
    from chronotope.scripts.train import train

    tcfg = train_config(cfg, policy, seed)
    run = tcfg.run_dir()
    done = run / "done.json"
    if not done.is_file():
        if run.exists():  # an interrupted run starts again, so that its wall-clock time is one run's
            shutil.rmtree(run)
        print(f"[minigrid_memory] {command(tcfg)}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        train(tcfg)
        info = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "command": command(tcfg)}
        info["steps"] = _trained_steps(tcfg)
        done.write_text(json.dumps(info, indent=2))
    out = {"train": json.loads(done.read_text())}
    for mode in ("sampled", "greedy"):
        folder = run / f"eval_{mode}"
        if not (folder / "summary.json").is_file():
            greedy = mode == "greedy"
            if tcfg.algo == "ppo":
                ecfg = EvalConfig(run=run, episodes=cfg.eval_episodes, num_envs=8, seed=10_000, deterministic=greedy)
                ecfg.out = folder
                evaluate(ecfg)
            else:
                evaluate_sb3(run, cfg.eval_episodes, num_envs=8, seed=10_000, deterministic=greedy, out=folder)
        eps = _episodes(folder)
        ret = np.array([e["return"] for e in eps], float)
        out[mode] = {"success": float((ret > 0).mean()), "return": float(ret.mean()), "n": len(eps)}
    return out


def _trained_steps(tcfg) -> int:
    """Env steps the run took: our PPO's checkpoint counter, SB3's ``num_timesteps`` (a multiple of the rollout)."""
    run = tcfg.run_dir()
    if tcfg.algo == "ppo":
        from chronotope.agents.checkpoint import load_checkpoint

        return int(load_checkpoint(run / "checkpoint.pt")["global_step"])
    from sb3_contrib import RecurrentPPO

    return int(RecurrentPPO.load(run / "sb3_model.zip", device="cpu").num_timesteps)


def aggregate(per_seed: dict[int, dict], mode: str, key: str) -> dict:
    """Mean ± 95% CI (t) over seeds of the per-seed value ``per_seed[s][mode][key]``."""
    from chronotope.agents.stats import summarize

    vals = [per_seed[s][mode][key] for s in sorted(per_seed)]
    s = summarize(vals)
    s["per_seed"] = vals
    return s


def _fmt(s: dict, digits: int = 3) -> str:
    if s["n"] == 0:
        return "-"
    if s["n"] > 1 and np.isfinite(s["ci95"]):
        return f"{s['mean']:.{digits}f} ± {s['ci95']:.{digits}f}"
    return f"{s['mean']:.{digits}f}"


def main(cfg: Config) -> dict:
    import torch

    torch.set_num_threads(1)
    for p in cfg.policies:
        if p not in POLICIES:
            raise ValueError(f"unknown policy {p!r}; valid: {sorted(POLICIES)}")
    if cfg.quick:
        cfg.steps, cfg.num_envs, cfg.rollout_len, cfg.bptt_len, cfg.eval_episodes = 2 * 4 * 32, 4, 32, 32, 8
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    runs: dict[str, dict[int, dict]] = {}
    for policy in cfg.policies:
        for seed in cfg.seeds:
            r = train_and_evaluate(cfg, policy, seed)
            runs.setdefault(policy, {})[seed] = r
            print(
                f"[minigrid_memory] {policy} seed {seed}: success sampled {r['sampled']['success']:.3f}, "
                f"greedy {r['greedy']['success']:.3f}; train {r['train']['wall_s']:.0f} s wall, "
                f"{r['train']['cpu_s']:.0f} s CPU, {r['train']['steps']} steps",
                flush=True,
            )
    table = {}
    for policy, per_seed in runs.items():
        table[policy] = {
            f"{mode}_{key}": aggregate(per_seed, mode, key)
            for mode in ("sampled", "greedy")
            for key in ("success", "return")
        }
        for key in ("wall_s", "cpu_s", "steps"):
            table[policy][key] = aggregate({s: {"t": r["train"]} for s, r in per_seed.items()}, "t", key)
    seeds = len(cfg.seeds)
    kw_text = f" {cfg.env_kwargs}" if json.loads(cfg.env_kwargs) else ""
    md = [
        f"### {cfg.env}{kw_text}: {seeds} seed(s), {cfg.eval_episodes} evaluation episodes per run and action "
        "selection (mean ± 95% CI over seeds; env steps: what each run trained)",
        "",
        "| policy | success (sampled) | success (greedy) | return (sampled) | return (greedy) | wall-clock s | "
        "CPU s | env steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for policy, row in table.items():
        md.append(
            f"| {policy} | {_fmt(row['sampled_success'])} | {_fmt(row['greedy_success'])} | "
            f"{_fmt(row['sampled_return'])} | {_fmt(row['greedy_return'])} | {_fmt(row['wall_s'], 0)} | "
            f"{_fmt(row['cpu_s'], 0)} | {int(row['steps']['mean'])} |"
        )
    md += ["", "Commands:", ""] + [f"    {runs[p][s]['train']['command']}" for p in runs for s in sorted(runs[p])]
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    results = {"config": {**cfg.__dict__, "out": str(cfg.out)}, "table": table, "runs": runs}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out / "results.json")
    print("\n" + text)
    print(f"[minigrid_memory] finished in {time.perf_counter() - t_start:.0f} s; results in {out.resolve()}")
    return results


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
