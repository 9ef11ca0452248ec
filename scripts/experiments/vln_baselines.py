"""VLN-v0 reference scores on a generated val_unseen split: expert, random, forward-then-stop, random landmark.

- ``expert``: :class:`~chronotope.envs.tasks.vln.VLNExpert`, the shortest-path expert on the goal's geodesic field
  (the reference path is that geodesic), calling STOP within 0.25 m of the goal.
- ``random``: uniform over the four actions (STOP included), as a floor.
- ``forward_then_stop``: MOVE_FORWARD for K steps then STOP, K = the train split's mean geodesic distance / 0.25
  m (VLN-CE's hand-crafted baseline without the random initial turns).
- ``random_landmark``: an oracle that ignores the instruction: it picks a random object of the scene and walks
  the geodesic shortest path to it, then STOPs. Its gap to the expert measures how much the instruction matters.

Every agent runs on the same episodes, the dataset file's, each once and to its end: the episode list ``range(n)``
of :func:`chronotope.envs.rollout.run_episodes` on a batched ``NavVectorEnv`` (``obs_mode="state"``) replaying the
file with ``episode_order="seed"`` (episode k is the file's k-th, whichever environment runs it). The random agents
draw from a generator seeded with ``(seed, episode)``, so their numbers do not depend on ``num_envs`` either.
Writes ``<out>/vln_baselines.json`` and ``.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.envs.rollout import run_episodes

METRICS = ("success", "oracle_success", "spl", "ndtw", "sdtw", "distance_to_goal", "path_length", "steps")
METRICS += ("task_completion", "spd")


@dataclass
class Config:
    """Options of the VLN baseline experiment."""

    episodes: int = 100
    """val_unseen episodes to evaluate."""
    num_scenes: int = 20
    """Scenes per split."""
    train_episodes: int = 100
    """train episodes used to set the forward-only agent's step count."""
    num_envs: int = 8
    """Batched environments."""
    seed: int = 0
    """Seed of dataset generation and of the random agents."""
    quick: bool = False
    """Small sizes (20 episodes, 4 scenes) for a smoke run."""
    out: Path = Path("runs/vln_baselines")
    """Output folder (datasets and results)."""


class _FieldTarget:
    """A view of the core whose goal field is replaced, so the shortest-path expert walks to another target."""

    def __init__(self, core, stop_within: float) -> None:
        self.core = core
        self.sim = core.sim
        self.fields = np.full_like(core.fields, np.inf)
        self.success_radius = stop_within

    @property
    def distance_to_goal(self) -> np.ndarray:
        row, col, inside = self.sim.stack.cells(self.sim.scene, self.sim.position)
        d = self.fields[np.arange(self.sim.n), row, col].astype(np.float64)
        return np.where(inside, d, np.inf)


def evaluate(env_kwargs: dict, make_policy, episodes: int, num_envs: int) -> dict[str, float]:
    """Mean measures of ``make_policy(venv)`` (a rollout policy ``(obs, starts, seeds) -> actions [N]``,
    :mod:`chronotope.envs.rollout`) over the file's first ``episodes`` episodes, each run once to its end."""
    import gymnasium as gym

    kw = {**env_kwargs, "task_kwargs": {**env_kwargs.get("task_kwargs", {}), "episode_order": "seed"}}
    venv = gym.make_vec("chronotope/VLN-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    records = run_episodes(venv, make_policy(venv.unwrapped), range(episodes))
    venv.close()
    ids = [int(r.info["episode_id"]) for r in records]
    if ids != list(range(episodes)):
        raise RuntimeError(f"episode k of the list is not the file's k-th: episode ids {ids}")
    return {k: float(np.mean([r.info[k] for r in records])) for k in METRICS}


def expert_policy(venv):
    from chronotope.envs.tasks.vln import VLNExpert

    core = venv.core
    expert = VLNExpert(stop_distance=0.25)
    return lambda obs, starts, seeds: expert.act(core)


class _EpisodeRngs:
    """One generator per lane, re-seeded with ``(seed, episode seed)`` at each recorded episode start (a lane running
    an unrecorded episode keeps drawing from its previous generator)."""

    def __init__(self, seed: int, n: int) -> None:
        self.seed = seed
        self.gens = [np.random.default_rng(seed) for _ in range(n)]

    def update(self, seeds: list[int | None]) -> list[np.random.Generator]:
        for i, s in enumerate(seeds):
            if s is not None:
                self.gens[i] = np.random.default_rng([self.seed, s])
        return self.gens


def random_policy(seed: int):
    def make(venv):
        rngs = _EpisodeRngs(seed, venv.num_envs)

        def act(obs, starts, seeds):
            return np.array([g.integers(0, 4) for g in rngs.update(seeds)], np.int64)

        return act

    return make


def forward_then_stop_policy(k: int):
    """MOVE_FORWARD while the episode has taken fewer than ``k`` steps, then STOP (reads the core's step count)."""

    def make(venv):
        core = venv.core
        return lambda obs, starts, seeds: np.where(core.elapsed < k, 1, 0).astype(np.int64)

    return make


def random_landmark_policy(seed: int):
    def make(venv):
        from chronotope.envs.nav.expert import ShortestPathExpert
        from chronotope.envs.tasks.vln_dataset import approach_masks

        core = venv.core
        rngs = _EpisodeRngs(seed, core.n)
        view = _FieldTarget(core, stop_within=0.25)
        expert = ShortestPathExpert()
        masks: dict[int, dict[int, np.ndarray]] = {}

        def act(obs, starts, seeds):
            gens = rngs.update(seeds)
            for i in np.flatnonzero(starts):
                rng, ep = gens[i], core.episodes[i]
                scene = ep.scene
                if scene not in masks:
                    grid, main = core.grids[scene], core.main_component(scene)
                    masks[scene] = approach_masks(core.scenes[scene], grid, main, core.agent.radius + 0.4)
                ids = sorted(masks[scene])
                mask = masks[scene][ids[int(rng.integers(len(ids)))]]
                f = core.grids[scene].distance_field(goal_mask=mask)
                view.fields[i] = np.inf
                view.fields[i, : f.shape[0], : f.shape[1]] = f
            return expert.act(view)

        return act

    return make


def run(cfg: Config) -> dict:
    import chronotope.envs  # noqa: F401
    from chronotope.envs.tasks.vln_dataset import DatasetConfig, generate_dataset, save_dataset
    from chronotope.scripts.bench.common import print_table, write_results

    episodes, scenes, train_eps = (20, 4, 20) if cfg.quick else (cfg.episodes, cfg.num_scenes, cfg.train_episodes)
    cfg.out.mkdir(parents=True, exist_ok=True)
    train = generate_dataset(DatasetConfig("train", train_eps, scenes, cfg.seed))
    val = generate_dataset(DatasetConfig("val_unseen", episodes, scenes, cfg.seed))
    val_file = save_dataset(val, cfg.out / "val_unseen.json.gz")
    save_dataset(train, cfg.out / "train.json.gz")
    train_scenes = {e["scene_id"] for e in train["episodes"]}
    assert not train_scenes & {e["scene_id"] for e in val["episodes"]}, "val_unseen shares scenes with train"
    mean_d = float(np.mean([e["info"]["geodesic_distance"] for e in train["episodes"]]))
    k = int(round(mean_d / 0.25))
    env_kwargs = {"obs_mode": "state", "task_kwargs": {"episodes_file": str(val_file)}, "max_episode_steps": 500}
    agents = {
        "expert": expert_policy,
        "random": random_policy(cfg.seed),
        f"forward_then_stop (K={k})": forward_then_stop_policy(k),
        "random_landmark": random_landmark_policy(cfg.seed),
    }
    results = {name: evaluate(env_kwargs, make, episodes, cfg.num_envs) for name, make in agents.items()}
    cols = ("SR", "OSR", "SPL", "nDTW", "SDTW", "NE", "TL", "steps", "TC", "SPD")
    rows = [[name, *(r[m] for m in METRICS)] for name, r in results.items()]
    md = print_table(
        f"VLN-v0 val_unseen ({episodes} episodes, {scenes} unseen scenes; train mean geodesic {mean_d:.2f} m)",
        ("agent", *cols),
        rows,
    )
    payload = {"episodes": episodes, "scenes": scenes, "train_mean_geodesic": mean_d, "results": results}
    write_results("vln_baselines", payload, md, out_dir=cfg.out)
    return payload


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
