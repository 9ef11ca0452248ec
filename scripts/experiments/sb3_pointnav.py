"""stable-baselines3 PPO (MultiInputPolicy) on PointNav-v0 in ``state`` mode, on our batched vector env.

Prints the success rate / SPL of the trained policy and of a uniformly random policy over the same
evaluation episodes, and writes the learning curve (success of finished training episodes) as CSV and PNG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.envs.rollout import run_episodes


@dataclass
class Config:
    """Options of the SB3 PointNav experiment."""

    steps: int = 150_000
    """Training environment steps."""
    num_envs: int = 16
    """Batched environments."""
    seed: int = 0
    """Seed of training and evaluation."""
    eval_episodes: int = 100
    """Evaluation episodes per policy."""
    max_distance: float = 6.0
    """Largest start-goal geodesic distance (m)."""
    success_reward: float = 5.0
    """Success bonus (habitat uses 2.5; a larger one makes STOP-at-once a worse local optimum on short budgets)."""
    ent_coef: float = 0.02
    """PPO entropy bonus."""
    n_steps: int = 64
    """Steps per environment between PPO updates (short rollouts: more updates in a small budget)."""
    batch_size: int = 256
    """PPO minibatch size."""
    success_radius: float = 0.5
    """STOP distance counted as success (habitat: 0.2 m; 0.5 m lets a few-minute budget find STOP)."""
    out: Path = Path("runs/sb3_pointnav")
    """Output folder."""


def evaluate(policy, env_kwargs: dict, episodes: int, seed: int) -> dict[str, float]:
    """Mean success / spl / steps of ``policy(obs) -> actions`` on the episodes ``seed + k``, each run to its end
    (:func:`chronotope.envs.rollout.run_episodes`)."""
    import gymnasium as gym

    venv = gym.make_vec("chronotope/PointNav-v0", num_envs=8, vectorization_mode="vector_entry_point", **env_kwargs)
    try:
        records = run_episodes(venv, lambda obs, starts, seeds: policy(obs), [seed + k for k in range(episodes)])
    finally:
        venv.close()
    return {k: float(np.mean([r.info[k] for r in records])) for k in ("success", "spl", "steps")}


def main(cfg: Config) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    import chronotope.envs  # noqa: F401
    from chronotope.agents.sb3 import SB3VecEnv, sb3_logger

    torch.set_num_threads(1)
    env_kwargs = {
        "obs_mode": "state",
        "task_kwargs": {
            "max_distance": cfg.max_distance,
            "success_reward": cfg.success_reward,
            "success_radius": cfg.success_radius,
        },
        "max_episode_steps": 200,
    }
    venv = SB3VecEnv(
        gym.make_vec(
            "chronotope/PointNav-v0", num_envs=cfg.num_envs, vectorization_mode="vector_entry_point", **env_kwargs
        )
    )
    venv.seed(cfg.seed)
    curve: list[tuple[int, float]] = []

    class Curve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.recent: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if info.get("episode_measures"):
                    self.recent.append(info["success"])
            if len(self.recent) >= 50:
                curve.append((self.num_timesteps, float(np.mean(self.recent))))
                self.recent = []
            return True

    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        learning_rate=3e-4,
        ent_coef=cfg.ent_coef,
        seed=cfg.seed,
        verbose=0,
        device="cpu",
    )
    model.set_logger(sb3_logger(None))  # the curve is recorded by the callback; SB3's default litters $TMPDIR
    model.learn(cfg.steps, callback=Curve(), progress_bar=False)

    def trained(obs):  # the stochastic policy PPO trained (greedy actions can loop: reported separately)
        return model.predict(obs, deterministic=False)[0]

    def greedy(obs):
        return model.predict(obs, deterministic=True)[0]

    rng = np.random.default_rng(cfg.seed)

    def random_policy(obs):
        return rng.integers(0, 4, len(obs["pose"]))

    eval_kwargs = {**env_kwargs, "scene_seeds": list(range(8))}
    eval_kwargs.pop("max_episode_steps")
    result = {
        "ppo": evaluate(trained, eval_kwargs, cfg.eval_episodes, cfg.seed + 1000),
        "ppo_greedy": evaluate(greedy, eval_kwargs, cfg.eval_episodes, cfg.seed + 1000),
        "random": evaluate(random_policy, eval_kwargs, cfg.eval_episodes, cfg.seed + 1000),
        "curve": curve,
        "steps": cfg.steps,
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "result.json").write_text(json.dumps(result, indent=2))
    if curve:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x, y = zip(*curve)
        plt.figure(figsize=(5, 3))
        plt.plot(x, y)
        plt.xlabel("environment steps")
        plt.ylabel("training success (last 50 episodes)")
        plt.title("SB3 PPO on PointNav-v0 (state)")
        plt.tight_layout()
        plt.savefig(cfg.out / "curve.png", dpi=100)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
