"""Records shortest-path-expert episodes of a nav env to a trajectory file (demo data for the viewer).

python -m chronotope.scripts.viz.record --out runs/viz-demo/trajectories.npz --frames
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RecordConfig:
    """Options of the expert recorder."""

    out: Path = Path("runs/viz-demo/trajectories.npz")
    """Trajectory file to write."""
    env: str = "chronotope/PointNav-v0"
    """Nav env id."""
    episodes: int = 2
    """Episodes to record."""
    seed: int = 3
    """Seed of the first episode (episode k uses seed + k)."""
    frames: bool = False
    """Also store RGB / depth / semantic frames (for videos and depth-built octrees)."""
    env_kwargs: str = '{"num_scenes": 1, "resolution": 96, "semantic": true}'
    """JSON keyword arguments of the env."""
    max_steps: int = 300
    """Time limit per episode."""


def record(cfg: RecordConfig) -> Path:
    import gymnasium as gym

    import chronotope.envs  # noqa: F401  (registers the ids)
    from chronotope.envs.nav.expert import ShortestPathExpert
    from chronotope.envs.wrappers.recording import TrajectoryRecorder

    env = gym.make(cfg.env, max_episode_steps=cfg.max_steps, **json.loads(cfg.env_kwargs))
    env = TrajectoryRecorder(env, cfg.out, record_frames=cfg.frames)
    expert = ShortestPathExpert()
    for k in range(cfg.episodes):
        env.reset(seed=cfg.seed + k)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(expert.act(env.unwrapped.core)[0])
            done = term or trunc
    env.close()
    print(f"wrote {cfg.out} ({cfg.episodes} episodes)")
    return cfg.out


if __name__ == "__main__":
    import tyro

    record(tyro.cli(RecordConfig))
