"""Evaluation of a trained run: per-episode measures, a mean +- 95% CI summary, and trajectories.

Writes ``<run>/eval/episodes.jsonl`` (one object per episode: every scalar measure in ``info`` and ``return``),
``summary.json`` (measure -> {mean, std, ci95, n}; identifiers such as ``scene_id`` (:data:`ID_FIELDS`) stay in
the episodes but are not averaged), ``summary.md`` and ``trajectories.npz`` (format: :mod:`chronotope.envs.trajectory`).
An earlier evaluation in the same folder is moved to ``previous/<time>/`` first, never overwritten. Episodes are run
by the one evaluation loop, :mod:`chronotope.envs.rollout`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from chronotope.agents.checkpoint import load_checkpoint
from chronotope.agents.config import TrainConfig, _json_object
from chronotope.agents.envs import make_vector_env, scalar_info
from chronotope.agents.policy import ActorCritic, obs_to_torch
from chronotope.agents.runs import atomic_write_text
from chronotope.agents.stats import summarize
from chronotope.envs.rollout import EpisodeRecord, iter_episodes
from chronotope.envs.trajectory import save_trajectories


@dataclass
class EvalConfig:
    """Options of ``chronotope eval``."""

    run: Path
    """Run folder (holds config.json and checkpoint.pt)."""
    episodes: int = 100
    """Episodes to evaluate."""
    num_envs: int = 8
    """Environments stepped together."""
    seed: int = 10_000
    """Seed of the evaluation episodes (kept apart from training seeds): episode k is reset with ``seed + k`` and
    samples its actions from a generator seeded ``seed + k``, so it is the same whatever ``num_envs``."""
    deterministic: bool = False
    """Greedy actions instead of sampling from the policy."""
    env_kwargs: str = "{}"
    """JSON object overriding env keyword arguments (e.g. a longer delay to test extrapolation)."""
    out: Path | None = None
    """Output folder (default: <run>/eval); an earlier evaluation there is kept in ``previous/<time>/``."""
    progress: bool | None = None
    """Progress bar over the episodes on stderr; default: when stderr is a terminal."""

    def validate(self) -> None:
        for k in ("episodes", "num_envs"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"{k} must be a positive integer, got {getattr(self, k)!r}")
        _json_object("env_kwargs", self.env_kwargs)


ID_FIELDS = frozenset(
    {"scene_id", "target_instance", "phase", "instructed_dancer", "target_index", "episode_id", "truncated"}
)
"""Scalar info entries that identify an episode or a phase rather than measure it: kept per episode, never
averaged into the summary."""


def episode_progress(total: int, enabled: bool | None = None):
    """A tqdm bar over ``total`` evaluation episodes on stderr (``enabled=None``: only when stderr is a terminal);
    ``update(1)`` per finished episode, ``close()`` at the end."""
    import sys

    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc="eval", unit="episode", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def summarize_episodes(episodes: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """measure -> :func:`summarize` over the episodes that report it; :data:`ID_FIELDS` are left out."""
    keys = sorted(set().union(*episodes)) if episodes else []
    return {k: summarize([e[k] for e in episodes if k in e]) for k in keys if k not in ID_FIELDS}


def write_results(out: Path, episodes: list[dict[str, Any]], summary: dict[str, dict[str, float]]) -> Path:
    """Writes episodes.jsonl, summary.json and summary.md into ``out`` (each atomically), after moving an earlier
    evaluation there to ``out/previous/<time>/``. Returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    archive_previous(out)
    atomic_write_text(out / "episodes.jsonl", "".join(json.dumps(e) + "\n" for e in episodes))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    md = ["| measure | mean | ± 95% CI | n |", "|---|---|---|---|"]
    md += [f"| {k} | {v['mean']:.4f} | {v['ci95']:.4f} | {v['n']} |" for k, v in summary.items()]
    atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
    return out


RESULT_FILES = ("episodes.jsonl", "summary.json", "summary.md", "trajectories.npz")


def archive_previous(out: Path) -> Path | None:
    """Moves the result files of an earlier evaluation in ``out`` to ``out/previous/<time>/``; returns that folder
    (None when there was nothing to keep)."""
    present = [out / f for f in RESULT_FILES if (out / f).exists()]
    if not present:
        return None
    ref = out / "summary.json" if (out / "summary.json").exists() else present[0]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ref.stat().st_mtime))  # when that evaluation was made
    dest = out / "previous" / stamp
    k = 1
    while dest.exists():
        k += 1
        dest = out / "previous" / f"{stamp}-{k}"
    dest.mkdir(parents=True)
    for f in present:
        os.replace(f, dest / f.name)
    return dest


def load_policy(run: Path, device: str = "cpu") -> tuple[TrainConfig, dict[str, Any], None]:
    """A run folder's config and its checkpoint contents (``data["model"]``: the state dict of the model that
    ``ActorCritic.from_config(cfg, ...)`` builds for the env's spaces); the third value is always None (kept
    for callers that unpack three)."""
    run = Path(run)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"{str(run)!r} is not a run folder: no config.json")
    cfg = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
    data = load_checkpoint(run / "checkpoint.pt", expect={"agent": cfg.agent, "env": cfg.env})
    return cfg, data, None


def evaluate(ecfg: EvalConfig) -> dict[str, dict[str, float]]:
    """Evaluates ``ecfg.run`` (a PPO / imitation run, or an SB3 one through
    :func:`chronotope.agents.sb3.evaluate_sb3`) and writes the results; returns the summary."""
    ecfg.validate()
    cfg_path = Path(ecfg.run) / "config.json"
    if cfg_path.is_file() and json.loads(cfg_path.read_text()).get("algo") in ("sb3-ppo", "recurrent-ppo"):
        from chronotope.agents.sb3 import evaluate_sb3

        return evaluate_sb3(
            ecfg.run,
            ecfg.episodes,
            ecfg.num_envs,
            ecfg.seed,
            ecfg.deterministic,
            ecfg.out,
            ecfg.env_kwargs,
            progress=ecfg.progress,
        )
    cfg, data, _ = load_policy(ecfg.run)
    kw = {**cfg.env_kwargs_dict(), **json.loads(ecfg.env_kwargs)}
    venv = make_vector_env(cfg.env, ecfg.num_envs, kw, cfg.wrappers, cfg.seed)  # the training run's wrappers
    model = ActorCritic.from_config(cfg, venv.single_observation_space, venv.single_action_space)
    model.load_state_dict(data["model"])
    model.eval()
    # Episode k is fixed by the evaluation seed alone: its env is reset with seed + k and its actions are drawn
    # from a generator seeded with seed + k, whichever environment runs it (chronotope.envs.rollout).
    seeds = [ecfg.seed + k for k in range(ecfg.episodes)]
    trajectories = TrajectoryObserver()
    bar = episode_progress(ecfg.episodes, ecfg.progress)
    records = []
    for r in iter_episodes(venv, ModelPolicy(model, "cpu", ecfg.deterministic), seeds, trajectories):
        records.append(r)
        bar.update(1)
    bar.close()
    venv.close()
    records.sort(key=lambda r: r.index)
    episodes = [episode_record(r) for r in records]
    finished_traj = [trajectories.pop(r.index, r.info) for r in records]
    out = Path(ecfg.out or (Path(ecfg.run) / "eval"))
    summary = summarize_episodes(episodes)
    write_results(out, episodes, summary)
    save_trajectories(out / "trajectories.npz", finished_traj)
    return summary


def episode_record(r: EpisodeRecord) -> dict[str, Any]:
    """The line of ``episodes.jsonl`` of one finished episode: every scalar measure of its last info, ``return``
    and ``truncated`` (ended by the time limit)."""
    rec = scalar_info(r.info)
    rec["return"] = r.ret
    rec["truncated"] = bool(r.truncated and not r.terminated)
    return rec


class ModelPolicy:
    """An :class:`ActorCritic` as a rollout policy (:mod:`chronotope.envs.rollout`): its memory state carried across
    steps and cleared at episode starts; actions greedy (``deterministic``) or sampled from a generator seeded with
    the episode's seed, so an episode's actions do not depend on the other lanes. With a Box action space (the
    model's) the actions are clipped to its bounds, as the PPO trainer clips what it sends to the env (a Normal
    sample, or its mean, may leave them; the arm envs refuse such actions)."""

    def __init__(self, model: ActorCritic, device: str | torch.device = "cpu", deterministic: bool = False) -> None:
        self.model, self.device, self.deterministic = model, device, deterministic
        space = model.action_space
        self.bounds = (space.low, space.high) if isinstance(space, gym.spaces.Box) else None
        self.state = None
        self.gens: list[torch.Generator | None] = []

    @torch.no_grad()
    def __call__(self, obs, starts: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        if self.state is None:
            self.state = self.model.initial_state(len(starts), self.device)
            self.gens = [None] * len(starts)
        for i, s in enumerate(seeds):
            if s is not None:
                self.gens[i] = _generator(s)
        o1 = obs_to_torch(obs, self.device, time_dim=True)
        start = torch.as_tensor(np.asarray(starts), device=self.device)[:, None]
        dist, _, self.state = self.model(o1, self.state, start)
        if self.deterministic:
            a = dist.probs.argmax(-1) if hasattr(dist, "probs") else dist.mean
        else:
            a = _sample_rows(dist, self.gens)
        a = a[:, 0].cpu().numpy()
        return a if self.bounds is None else np.clip(a, *self.bounds)


class TrajectoryObserver:
    """Collects each recorded episode's poses (``info["agent_pose"]`` of every observation, first and last
    included), actions and rewards, for :func:`save_trajectories`."""

    def __init__(self) -> None:
        self.trajs: dict[int, dict[str, list]] = {}

    def start(self, episode: int, lane: int, obs, info: dict) -> None:
        self.trajs[episode] = {"poses": [], "actions": [], "rewards": []}
        _record_pose(self.trajs[episode], info)

    def step(self, episode: int, lane: int, action, reward: float, terminated, truncated, obs, info: dict) -> None:
        t = self.trajs[episode]
        t["actions"].append(int(action) if np.ndim(action) == 0 else np.asarray(action).tolist())
        t["rewards"].append(float(reward))
        _record_pose(t, info)

    def pop(self, episode: int, final_info: dict) -> dict[str, Any]:
        return _finish_traj(self.trajs.pop(episode), episode, final_info)


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _sample_rows(dist, gens: list[torch.Generator]) -> torch.Tensor:
    """A sample of ``dist`` [N, 1, ...] whose row i is drawn from ``gens[i]`` alone (so it does not depend on the
    other rows): inverse-CDF for a Categorical, ``mean + std * noise`` for a Normal."""
    if hasattr(dist, "probs"):
        cdf = dist.probs[:, 0].cumsum(-1)  # [N, n]
        u = torch.stack([torch.rand((), generator=g) for g in gens]).to(cdf.device)  # [N]
        return (cdf < u[:, None] * cdf[:, -1:]).sum(-1).clamp(max=cdf.shape[-1] - 1)[:, None]  # [N, 1]
    noise = torch.stack([torch.randn(dist.mean.shape[1:], generator=g) for g in gens]).to(dist.mean.device)
    return dist.mean + dist.stddev * noise  # [N, 1, D]


def _record_pose(traj: dict, info: dict) -> None:
    pose = info.get("agent_pose")
    if pose is not None:
        traj["poses"].append(np.asarray(pose, float).tolist())


def _finish_traj(traj: dict, episode: int, final_info: dict) -> dict[str, np.ndarray]:
    return {
        "episode": episode,
        "poses": np.asarray(traj["poses"], float).reshape(-1, 3),
        "actions": np.asarray(traj["actions"]),
        "rewards": np.asarray(traj["rewards"], float),
        "scene_id": int(final_info.get("scene_id", -1)) if final_info else -1,
    }
