"""Scripted oracles on every robot task: with the cue (perfect memory) and without it (memoryless).

Prints a table of success rates over ``episodes`` seeded episodes per task and writes it to
``runs/bench/robot_oracles.{json,md}``. The memoryless controller is the same script with its cue memory wiped
every step, so on the memory tasks it must guess (chance: 1/num_colors and 1/max_count).

    python -m chronotope.scripts.robot_oracles --episodes 100
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Config:
    """Oracle evaluation options."""

    episodes: int = 100
    """Episodes per task and controller (seeds seed .. seed + episodes - 1)."""
    seed: int = 0
    """First episode seed; the guessing generator of the memoryless controller uses the same seed."""
    out_dir: str = "runs/bench"
    """Where ``robot_oracles.json`` / ``.md`` are written."""


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def run(cfg: Config) -> dict:
    import gymnasium as gym

    from chronotope.envs.robot.oracles import Oracle, run_episode
    from chronotope.envs.robot.registration import register_robot_envs
    from chronotope.scripts.bench.common import print_table, write_results

    chance = {"chronotope/CueRecallPick-v0": 1 / 3, "chronotope/CountPress-v0": 1 / 5}
    rows, results = [], {}
    for env_id in register_robot_envs():
        env = gym.make(env_id)
        for memory in (True, False):
            oracle = Oracle(env_id, memory=memory, seed=cfg.seed)
            t0 = time.perf_counter()
            eps = [run_episode(env, oracle, seed=cfg.seed + i) for i in range(cfg.episodes)]
            wall = time.perf_counter() - t0
            k = sum(bool(e["success"]) for e in eps)
            lo, hi = _wilson(k, cfg.episodes)
            steps = float(np.mean([e["steps"] for e in eps]))
            name = "with cue (memory)" if memory else "without cue (memoryless)"
            c = f"{chance[env_id]:.3f}" if (not memory and env_id in chance) else "-"
            rows.append([env_id, name, cfg.episodes, k / cfg.episodes, f"[{lo:.2f}, {hi:.2f}]", c, steps, wall])
            results[f"{env_id}|{'memory' if memory else 'memoryless'}"] = {
                "success_rate": k / cfg.episodes,
                "ci95": [lo, hi],
                "episodes": cfg.episodes,
                "mean_steps": steps,
                "wall_s": wall,
            }
        env.close()
    md = print_table(
        "Scripted oracles (state obs, ee_delta control)",
        ["task", "controller", "episodes", "success", "95% CI", "chance", "mean steps", "wall s"],
        rows,
    )
    write_results("robot_oracles", {"config": cfg, "results": results}, md, cfg.out_dir)
    return results


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
