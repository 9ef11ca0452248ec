"""Does the trainer carry memory gradients? Steps to learn chronotope/MemoryLength-v0, per core and PPO recipe.

MemoryLength (a cue at step 0, ``delay`` blank steps, then name the cue; see
:class:`chronotope.envs.diagnostic.MemoryLengthEnv`) has nothing to perceive and nothing to navigate, so what it
measures is how fast our sequence PPO teaches a memory core to hold one bit-sized cue for ``delay`` steps: the
environment steps until the training success (last 100 episodes) first reaches ``threshold``, and the evaluation
success at the end (sampled actions, 200 seeded episodes), against the memoryless bound ``1 / num_cues``.

Compared: recipes that differ only in the gradient steps taken per batch of experience (``epochs`` x
``minibatches``), for each core, over seeds (mean and 95% CI over seeds, Student t). Every run is one
``chronotope train`` command (printed); finished runs are skipped, so the script resumes.

    python -m chronotope.scripts.experiments.memory_length --delay 30
    python -m chronotope.scripts.experiments.memory_length --report       # table from the runs found
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.agents.runs import atomic_write_text

RECIPES: dict[str, tuple[int, int]] = {"e4xm4": (4, 4), "e10xm8": (10, 8)}
"""Recipe name -> (epochs, minibatches): 16 and 80 gradient steps per rollout of 16 x 64 steps."""


MEMORY_CFGS: dict[str, dict] = {
    "gru": {"hidden_size": 64},
    "lstm": {"hidden_size": 64},
    "hcam": {"hidden_size": 64, "num_heads": 4, "chunk_size": 4},
}


@dataclass
class Config:
    """MemoryLength: steps to learn a delayed cue, per memory core and PPO recipe.

    Attributes:
        delay: blank steps between the cue and the query.
        num_cues: cues to choose from (the memoryless bound is 1 / num_cues).
        agents: memory cores.
        recipes: keys of ``RECIPES``.
        control: the memoryless core, trained with the last recipe only (it can only reach the bound).
        seeds: training seeds.
        steps: environment steps per run.
        threshold: training success (last 100 episodes) that counts as learned.
        eval_episodes: evaluation episodes per run (sampled actions).
        report: only write the table from the runs found in ``out``.
        out: output folder.
    """

    delay: int = 30
    num_cues: int = 2
    agents: tuple[str, ...] = ("gru", "hcam")
    recipes: tuple[str, ...] = ("e4xm4", "e10xm8")
    control: str = "none"
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 60_000
    threshold: float = 0.9
    eval_episodes: int = 200
    report: bool = False
    out: Path = Path("runs/memory_length")


def train_config(cfg: Config, agent: str, recipe: str, seed: int):
    from chronotope.agents.config import TrainConfig

    epochs, minibatches = RECIPES[recipe]
    return TrainConfig(
        env="chronotope/MemoryLength-v0",
        env_kwargs=json.dumps({"delay": cfg.delay, "num_cues": cfg.num_cues}),
        agent=agent,
        algo="ppo",
        steps=cfg.steps,
        seed=seed,
        num_envs=16,
        rollout_len=64,
        bptt_len=64,
        epochs=epochs,
        minibatches=minibatches,
        lr=3e-4,
        hidden=64,
        memory_cfg=json.dumps(MEMORY_CFGS.get(agent, {})),
        out_dir=cfg.out / "runs",
        name=f"d{cfg.delay}-{agent}-{recipe}-s{seed}",
        device="cpu",
        torch_threads=1,
        progress=False,
    )


def steps_to(progress: Path, threshold: float) -> int | None:
    """First logged env step whose training success (last 100 episodes) is >= threshold; None if never."""
    for line in progress.read_text().splitlines():
        r = json.loads(line)
        if r.get("success", 0.0) >= threshold:
            return int(r["step"])
    return None


def run_one(cfg: Config, agent: str, recipe: str, seed: int) -> dict:
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.scripts.train import train

    tcfg = train_config(cfg, agent, recipe, seed)
    run = tcfg.run_dir()
    path = run / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    tcfg.overwrite = True  # an unfinished run starts again: its wall-clock time is one run's
    t0 = time.perf_counter()
    train(tcfg)
    wall = time.perf_counter() - t0
    s = evaluate(EvalConfig(run=run, episodes=cfg.eval_episodes, num_envs=16, seed=10_000, out=run / "eval"))
    result = {
        "agent": agent,
        "recipe": recipe,
        "seed": seed,
        "success": s["success"]["mean"],
        "steps_to_threshold": steps_to(run / "progress.jsonl", cfg.threshold),
        "train_s": wall,
    }
    atomic_write_text(path, json.dumps(result, indent=1))
    return result


def _plan(cfg: Config) -> list[tuple[str, str]]:
    return [(a, r) for a in cfg.agents for r in cfg.recipes] + [(cfg.control, cfg.recipes[-1])]


def _mean_ci(s: dict, digits: int) -> str:
    """``mean ± ci95`` of a :func:`~chronotope.agents.stats.summarize` result (the mean alone for one value)."""
    ci = f" ± {s['ci95']:.{digits}f}" if np.isfinite(s["ci95"]) else ""
    return f"{s['mean']:.{digits}f}{ci}"


def report(cfg: Config) -> str:
    from chronotope.agents.stats import summarize

    results = [json.loads(p.read_text()) for p in sorted((cfg.out / "runs").glob(f"d{cfg.delay}-*/result.json"))]
    lines = [
        f"chronotope/MemoryLength-v0, delay {cfg.delay}, {cfg.num_cues} cues (memoryless bound "
        f"{1 / cfg.num_cues:.2f}, perfect 1.00); {cfg.steps} env steps per run; threshold {cfg.threshold}",
        "",
        "| core | recipe (epochs x minibatches) | seeds | success (eval, sampled) | runs reaching threshold | "
        "env steps to threshold (those runs) | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for agent, recipe in _plan(cfg):
        rs = [r for r in results if r["agent"] == agent and r["recipe"] == recipe]
        if not rs:
            continue
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        success = _mean_ci(summarize([r["success"] for r in rs]), 3)
        steps = _mean_ci(summarize(reached), 0) if reached else "-"
        e, m = RECIPES[recipe]
        lines.append(
            f"| {agent} | {e} x {m} | {len(rs)} | {success} | {len(reached)}/{len(rs)} | {steps} | "
            f"{np.mean([r['train_s'] for r in rs]):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (cfg.out / f"results_d{cfg.delay}.md").write_text(text)
    print(text)
    return text


def main(cfg: Config) -> str:
    import torch

    torch.set_num_threads(1)
    for r in cfg.recipes:
        if r not in RECIPES:
            raise ValueError(f"unknown recipe {r!r}; valid: {sorted(RECIPES)}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    if not cfg.report:
        for seed in cfg.seeds:
            for agent, recipe in _plan(cfg):
                r = run_one(cfg, agent, recipe, seed)
                print(f"[memory_length] {r}", flush=True)
    return report(cfg)


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
