"""Dataset recording benchmark: transitions/s of ``chronotope dataset`` and the size of what it writes.

For each case (an env id and an observation mode) the task's expert records ``episodes`` episodes into a Minari
dataset in a temporary data folder, end to end (env build, policy, copies, HDF5 writes, metadata), and the same
episodes are collected once without writing (the baseline: env + policy + per-episode buffers; timed first, after
an untimed warm-up episode), so the ratio says what writing costs. Size: the dataset folder's bytes per 10^5
stored steps (observations, actions, rewards, flags and every step's infos; Minari's HDF5 layout, uncompressed, one
group per episode).

    chronotope bench dataset            # 64 episodes per case
    chronotope bench dataset --quick    # 16
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CASES = {
    "state": {"obs_mode": "state"},
    "rgbd": {"obs_mode": "rgbd", "resolution": [64, 64]},
    "rgbd+jpeg": {"obs_mode": "rgbd", "resolution": [64, 64]},
}
"""Observation modes of nav cases -> env kwargs (``+jpeg``: Minari's lossy JPEG encoding of uint8 images)."""


@dataclass
class Config:
    """Dataset benchmark options."""

    quick: bool = False
    """Fewer episodes (16 per case)."""
    cases: tuple[str, ...] = (
        "chronotope/ObjectRecall-v0|state",
        "chronotope/ObjectRecall-v0|rgbd",
        "chronotope/ObjectRecall-v0|rgbd+jpeg",
        "chronotope/CueRecallPick-v0|state",
    )
    """``env_id|mode`` with mode state, rgbd (64 x 64) or rgbd+jpeg; arm ids record state only."""
    episodes: int = 64
    """Episodes recorded per case (16 with ``quick``)."""
    num_envs: int = 8
    """Batched nav environments while recording."""
    num_scenes: int = 4
    """Scenes in the nav envs' pool (fewer: less set-up in a short timing)."""
    out_dir: str = "runs/bench"
    """Where ``dataset.json`` / ``dataset.md`` are written."""


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(cfg: Config) -> dict:
    import gymnasium as gym

    from chronotope.agents import datasets as ds
    from chronotope.agents.envs import resolve_env_id
    from chronotope.envs import NAV_VECTOR_ENTRY
    from chronotope.scripts.bench.common import print_table, write_results

    episodes = 16 if cfg.quick and cfg.episodes == Config.episodes else cfg.episodes
    rows, results = [], {}
    previous = os.environ.get("MINARI_DATASETS_PATH")
    with tempfile.TemporaryDirectory(prefix="chronotope-bench-dataset-") as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp  # never touch the user's own datasets
        try:
            for i, case in enumerate(cfg.cases):
                env_id, mode = case.split("|")
                # The arm ids have a batched env too; the nav ones are those of the nav vector env.
                nav = gym.registry[resolve_env_id(env_id)].vector_entry_point == NAV_VECTOR_ENTRY
                if nav:
                    kw = {**CASES[mode], "num_scenes": cfg.num_scenes}
                elif mode == "state":
                    kw = {}
                else:
                    raise ValueError(f"case {case!r}: arm tasks record state observations only (their oracles)")
                dcfg = ds.DatasetConfig(
                    env=env_id,
                    policy="expert",
                    episodes=episodes,
                    name=f"bench/case{i}-v0",
                    env_kwargs=json.dumps(kw),
                    num_envs=cfg.num_envs,
                    jpeg=mode.endswith("+jpeg"),
                    demand_episodes=0,
                    progress=False,
                )
                for _ in ds.collect_episodes(dcfg, [10**6]):  # warm-up: scene generation, first renderer build
                    pass
                t0 = time.perf_counter()
                steps = sum(len(ep) for ep in ds.collect_episodes(dcfg, list(range(episodes))))
                collect_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                dataset = ds.record_dataset(dcfg)
                record_s = time.perf_counter() - t0
                assert dataset.total_steps == steps, (dataset.total_steps, steps)
                size = _bytes(ds.dataset_dir(dcfg.name))
                r = {
                    "env_id": env_id,
                    "mode": mode,
                    "env_kwargs": kw,
                    "episodes": episodes,
                    "steps": steps,
                    "record_s": record_s,
                    "collect_s": collect_s,
                    "record_steps_per_s": steps / record_s,
                    "collect_steps_per_s": steps / collect_s,
                    "record_over_collect_time": record_s / collect_s,
                    "bytes": size,
                    "mb_per_1e5_steps": size / steps * 1e5 / 1e6,
                }
                results[case] = r
                rows.append(
                    [
                        env_id.split("/")[-1],
                        mode,
                        episodes,
                        steps,
                        r["record_steps_per_s"],
                        r["collect_steps_per_s"],
                        r["record_over_collect_time"],
                        r["mb_per_1e5_steps"],
                    ]
                )
        finally:
            if previous is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = previous
    md = print_table(
        "Dataset recording (expert policy; end to end incl. env build; baseline: the same episodes, not written)",
        ["task", "obs", "episodes", "steps", "recorded steps/s", "collect-only steps/s", "time x", "MB / 1e5 steps"],
        rows,
    )
    write_results("dataset", {"config": cfg, "results": results}, md, cfg.out_dir)
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: recording rate, its cost over collecting alone, and size on disk.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    res = result["results"]
    parts = [
        f"{v['env_id'].split('/')[-1]} {v['mode']}: {v['record_steps_per_s']:,.0f} transitions/s recorded "
        f"({v['record_over_collect_time']:.2f}x the time of collecting the same episodes unwritten), "
        f"{v['mb_per_1e5_steps']:,.0f} MB per 10^5 steps"
        for v in res.values()
    ]
    return (
        "; ".join(parts) + ". Times include building the env, so short runs understate the steady rate. Minari's "
        "HDF5 layout is uncompressed with one group of chunked datasets per episode: with state observations that "
        "per-episode overhead, not the data, dominates the size of short episodes; with pixels, the float32 depth "
        "is most of it (JPEG encodes the RGB only)."
    )


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
