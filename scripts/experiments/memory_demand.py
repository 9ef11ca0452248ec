"""Memory demand of the 3D memory tasks: random vs memoryless oracle vs perfect-memory oracle.

For each task and knob value (ObjectRecall delay, TargetSequence targets, Ballet level) it runs the three
policies of :mod:`chronotope.envs.nav.oracles` on ``episodes`` episodes (state observations, batched vector env)
and prints one Markdown table. The gap between the perfect-memory and the memoryless oracle is what memory buys.

    python -m chronotope.scripts.experiments.memory_demand            # >= 200 episodes per setting
    python -m chronotope.scripts.experiments.memory_demand --quick    # a smoke run
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Config:
    """Memory-demand experiment.

    Attributes:
        quick: few episodes and settings (smoke run).
        episodes: finished episodes per (task, knob, policy); TargetSequence uses a tenth (each lasts 1000 steps).
        num_envs: environments stepped together.
        seed: base seed (the same episodes for every policy of a setting).
        recall_delays: ObjectRecall delays (steps).
        ballet_levels: Ballet (num_dancers, delay) levels.
        sequence_targets: TargetSequence K values.
        out: JSON file for the results ("" to skip).
    """

    quick: bool = False
    episodes: int = 200
    num_envs: int = 16
    seed: int = 0
    recall_delays: tuple[int, ...] = (0, 100, 500)
    ballet_levels: tuple[tuple[int, int], ...] = ((2, 16), (4, 16), (8, 16), (8, 48))
    sequence_targets: tuple[int, ...] = (3, 6)
    out: str = "runs/memory_demand/results.json"
    kinds: tuple[str, ...] = field(default=("random", "memoryless", "perfect"))


def recall_chance(episodes: int = 100, seed: int = 0, **env_kwargs) -> float:
    """Success of guessing one object of the apartment uniformly at random in ObjectRecall (chance level).

    For sampled episodes: over the scene's reachable objects, the mean fraction of each object's goal region
    (its navigable surroundings, where a guesser would STOP) that lies within the success radius of the target's
    region, averaged over episodes.
    """
    import gymnasium as gym

    import chronotope.envs  # noqa: F401

    env = gym.make("chronotope/ObjectRecall-v0", obs_mode="state", **env_kwargs)
    core = env.unwrapped.core
    task = core.task
    vals = []
    for k in range(episodes):
        env.reset(seed=seed + k)
        scene = int(core.sim.scene[0])
        target = task.object_field(core, scene, int(task.target[0]))
        fracs = []
        for o in core.scenes[scene].objects:
            f = task.object_field(core, scene, o.instance_id)
            if f is not None:
                fracs.append(float(np.mean(target[f == 0] <= task.success_radius)))
        vals.append(float(np.mean(fracs)) if fracs else 0.0)
    env.close()
    return float(np.mean(vals))


def run(cfg: Config) -> dict:
    from chronotope.envs.nav.oracles import evaluate

    n_eps = 16 if cfg.quick else cfg.episodes
    delays = cfg.recall_delays[:2] if cfg.quick else cfg.recall_delays
    levels = cfg.ballet_levels[::2] if cfg.quick else cfg.ballet_levels
    rows: list[dict] = []

    def add(task: str, knob: str, env_id: str, metric: str, episodes: int, **kw) -> None:
        for kind in cfg.kinds:
            t0 = time.perf_counter()
            r = evaluate(env_id, kind, episodes, num_envs=cfg.num_envs, seed=cfg.seed, obs_mode="state", **kw)
            rows.append(
                {
                    "task": task,
                    "knob": knob,
                    "policy": kind,
                    "metric": metric,
                    "value": r[metric],
                    "spl": r.get("spl", float("nan")),
                    "time_to_target": r["time_to_target"],
                    "return": r["return"],
                    "episodes": int(r["episodes"]),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(f"{task:15s} {knob:16s} {kind:10s} {metric}={r[metric]:.3f}", flush=True)

    chance = recall_chance(20 if cfg.quick else 100, cfg.seed)
    for d in delays:
        add("ObjectRecall", f"delay={d}", "chronotope/ObjectRecall-v0", "success", n_eps, delay=d)
    for k in cfg.sequence_targets[:1] if cfg.quick else cfg.sequence_targets:
        add(
            "TargetSequence",
            f"K={k}",
            "chronotope/TargetSequence-v0",
            "score",
            max(cfg.num_envs, n_eps // 10),
            num_targets=k,
            max_episode_steps=1000,
        )
    for nd, dl in levels:
        add("Ballet", f"dancers={nd},delay={dl}", "chronotope/Ballet-v0", "success", n_eps, num_dancers=nd, delay=dl)

    header = ["task", "knob", "policy", "metric", "value", "spl", "time_to_target", "return", "episodes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r[h]:.3f}" if isinstance(r[h], float) else str(r[h]) for h in header]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    print(f"ObjectRecall chance level (random object guess): {chance:.3f}")
    print("Ballet chance level: 1 / num_dancers")
    result = {"rows": rows, "object_recall_chance": chance, "table": table}
    if cfg.out:
        p = Path(cfg.out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
