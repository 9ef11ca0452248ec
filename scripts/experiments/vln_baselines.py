"""VLN-v0 reference scores on a generated val_unseen split: expert, random, forward-then-stop, random landmark.

- ``expert``: :class:`~chronotope.envs.tasks.vln.VLNExpert`, the shortest-path expert on the goal's geodesic field
  (the reference path is that geodesic), calling STOP within 0.25 m of the goal.
- ``random``: uniform over the four actions (STOP included), as a floor.
- ``forward_then_stop``: MOVE_FORWARD for K steps then STOP, K = the train split's mean geodesic distance / 0.25
  m (VLN-CE's hand-crafted baseline without the random initial turns).
- ``random_landmark``: an oracle that ignores the instruction: it picks a random object of the scene and walks
  the geodesic shortest path to it, then STOPs. Its gap to the expert measures how much the instruction matters.

Every agent runs on the same episodes (replayed in order from the dataset file, batched ``NavVectorEnv``,
``obs_mode="state"``); each episode is counted once. Writes ``<out>/vln_baselines.json`` and ``.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.envs.vector_info import final_info_row, finished_rows

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
    """Mean measures of ``make_policy(venv)`` (a callable ``() -> actions [N]``) over the file's first episodes."""
    import gymnasium as gym

    venv = gym.make_vec("chronotope/VLN-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    venv.reset(seed=0)
    policy = make_policy(venv.unwrapped)
    done: dict[int, dict] = {}
    while len(done) < episodes:
        _, _, _, _, info = venv.step(policy())
        for i in finished_rows(info):
            fi = final_info_row(info, i)
            eid = int(fi["episode_id"])
            if eid < episodes and eid not in done:
                done[eid] = fi
    venv.close()
    return {k: float(np.mean([d[k] for d in done.values()])) for k in METRICS}


def expert_policy(venv):
    from chronotope.envs.tasks.vln import VLNExpert

    core = venv.core
    expert = VLNExpert(stop_distance=0.25)
    return lambda: expert.act(core)


def random_policy(seed: int):
    def make(venv):
        rng = np.random.default_rng(seed)
        return lambda: rng.integers(0, 4, venv.num_envs)

    return make


def forward_then_stop_policy(k: int):
    def make(venv):
        core = venv.core
        return lambda: np.where(core.elapsed < k, 1, 0).astype(np.int64)

    return make


def random_landmark_policy(seed: int):
    def make(venv):
        from chronotope.envs.nav.expert import ShortestPathExpert
        from chronotope.envs.tasks.vln_dataset import approach_masks

        core = venv.core
        rng = np.random.default_rng(seed)
        view = _FieldTarget(core, stop_within=0.25)
        expert = ShortestPathExpert()
        current: list[object] = [None] * core.n
        masks: dict[int, dict[int, np.ndarray]] = {}

        def act():
            for i, ep in enumerate(core.episodes):
                if ep is current[i]:
                    continue
                current[i] = ep
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
