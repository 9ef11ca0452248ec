"""Memory-demand references of every robot task: random policy, memoryless bound, perfect-memory oracle, twin.

For each task it runs :func:`chronotope.envs.robot.oracles.evaluate` for the kinds ``random``, ``memoryless`` and
``perfect`` on ``episodes`` seeded episodes (episode i: env and policy seed ``seed + i``), and, for the memory
tasks, the memoryless oracle on the observability twin (``observability="full"``). It prints a table with the
success rate, its 95% Wilson interval, the mean return, the declared memoryless bound (exact Bayes-guess success
with perfect motor skill), the demand (perfect - memoryless) and the declared cue-to-query span, and writes it to
``runs/bench/robot_oracles.{json,md}``. Result keys: ``"<env_id>|<policy>"`` with policy ``random``,
``memoryless``, ``memory`` (the perfect-memory oracle) and ``memoryless_twin``.

    python -m chronotope.scripts.robot_oracles --episodes 100
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chronotope.agents.stats import wilson_interval


@dataclass
class Config:
    """Oracle evaluation options."""

    episodes: int = 100
    """Episodes per task and policy (seeds seed .. seed + episodes - 1)."""
    seed: int = 0
    """First episode seed; episode i seeds the env and the policy's generator with ``seed + i``."""
    out_dir: str = "runs/bench"
    """Where ``robot_oracles.json`` / ``.md`` are written."""


def run(cfg: Config) -> dict:
    import gymnasium as gym

    from chronotope.envs.robot.oracles import evaluate
    from chronotope.envs.robot.registration import register_robot_envs
    from chronotope.envs.robot.tasks.common import MemoryTaskConfig
    from chronotope.scripts.bench.common import print_table, write_results

    rows, results = [], {}
    for env_id in register_robot_envs():
        env = gym.make(env_id)
        bound, span = env.unwrapped.memoryless_bound(), env.unwrapped.cue_to_query_span()
        is_memory_task = isinstance(env.unwrapped.cfg, MemoryTaskConfig)  # it has the observability twin
        env.close()
        runs = [("random", "random", {}), ("memoryless", "memoryless", {}), ("memory", "perfect", {})]
        if is_memory_task:
            runs.append(("memoryless_twin", "memoryless", {"observability": "full"}))
        perfect = memoryless = None
        for key, kind, kw in runs:
            t0 = time.perf_counter()
            r = evaluate(env_id, kind, cfg.episodes, seed=cfg.seed, **kw)
            wall = time.perf_counter() - t0
            k = int(round(r["success"] * cfg.episodes))
            lo, hi = wilson_interval(k, cfg.episodes)
            if key == "memory":
                perfect = r["success"]
            elif key == "memoryless":
                memoryless = r["success"]
            name = {"memory": "perfect memory", "memoryless_twin": "memoryless on twin (full)"}.get(key, key)
            rows.append(
                [
                    env_id,
                    name,
                    cfg.episodes,
                    r["success"],
                    f"[{lo:.2f}, {hi:.2f}]",
                    r["return"],
                    f"{bound:.3f}" if key == "memoryless" else "-",
                    r["steps"],
                    wall,
                ]
            )
            results[f"{env_id}|{key}"] = {
                "success_rate": r["success"],
                "ci95": [lo, hi],
                "return": r["return"],
                "episodes": cfg.episodes,
                "mean_steps": r["steps"],
                "wall_s": wall,
                **({"declared_bound": bound} if key == "memoryless" else {}),
                **({"env_kwargs": kw} if kw else {}),
            }
        results[f"{env_id}|demand"] = {
            "demand": perfect - memoryless,
            "memoryless_over_perfect": memoryless / perfect if perfect else float("nan"),
            "declared_bound": bound,
            "cue_to_query_span": span,
        }
    md = print_table(
        "Robot task references (state obs, ee_delta control)",
        ["task", "policy", "episodes", "success", "95% CI", "return", "declared bound", "mean steps", "wall s"],
        rows,
    )
    demand_rows = [
        [k.split("|")[0], v["demand"], v["memoryless_over_perfect"], v["declared_bound"], v["cue_to_query_span"]]
        for k, v in results.items()
        if k.endswith("|demand")
    ]
    md += "\n" + print_table(
        "Memory demand (perfect - memoryless; spec: memoryless <= 0.35 x perfect)",
        ["task", "demand", "memoryless / perfect", "declared bound", "cue-to-query span"],
        demand_rows,
    )
    write_results("robot_oracles", {"config": cfg, "results": results}, md, cfg.out_dir)
    return results


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
