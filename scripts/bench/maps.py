"""Sparse octree benchmark: insertion and query throughput vs Open3D's octree and brute force, same run.

Clouds are uniform in a 10 m cube; every structure uses the same depth, so leaves are ~the same voxels
(Open3D fits its cube to the cloud's bounds, ours is given the same cube). Baselines:

* insertion: ``open3d.geometry.Octree.convert_from_point_cloud``; brute force = ``np.unique`` of voxel rows;
* point queries: Open3D ``locate_leaf_node`` (one Python call per point) vs our batched lookup;
* radius / k-nearest queries: a linear scan over leaf centres (Open3D's octree has no such query).

Map wrappers in training (``ppo``): our PPO's env steps/s with ``--wrappers occupancy,octree`` (one
``VectorMapWrapper`` over the batched env) against the same PPO without wrappers, same env, N, rollout and seed,
timed round-robin one update each per round (target >= 0.7). Also the env alone: batched steps/s with the maps
against without.

Timings on a shared machine are noisy: read the ratios (measured in the same run), not absolute times.
"""

# The timed closures are defined and called within one loop iteration, so late binding is harmless.
# ruff: noqa: B023

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronotope.scripts.bench.common import print_table, timeit, write_results


@dataclass
class Config:
    """Benchmark sizes."""

    quick: bool = False
    """Up to 10^6 points instead of 10^7."""
    depth: int = 8
    """Tree depth for every structure (10 m / 2^8 = 3.9 cm voxels)."""
    max_points: int = 10**7
    """Largest cloud of the 10^4 ... 10^7 ladder (the suite's smoke run uses 10^4; quick stops at 10^6 anyway)."""
    open3d_max_points: int = 10**7
    """Skip Open3D above this many points (its insertion of 10^7 points takes minutes)."""
    n_queries: int = 200
    """Radius / kNN queries per measurement (point lookups use 50x as many)."""
    radius_voxels: float = 4.0
    """Radius of the radius queries, in voxels."""
    k: int = 8
    """Neighbours per kNN query."""
    seed: int = 0
    """Seed of the clouds and queries."""
    out_dir: str = "runs/bench"
    """Where results go."""
    ppo: bool = True
    """Also time PPO training with map wrappers against without (the ``ppo`` table)."""
    ppo_env: str = "chronotope/TargetSequence-v0"
    """Env of the PPO comparison (its episodes never end early, so both cases pay the same env work per step)."""
    ppo_env_kwargs: str = '{"obs_mode": "depth", "num_scenes": 1}'
    """JSON env keyword arguments (a depth observation: the maps read it)."""
    ppo_wrappers: str = "occupancy,octree"
    """Map wrappers of the wrapped case."""
    ppo_num_envs: int = 16
    """Environments stepped in one batch."""
    ppo_rollout_len: int = 128
    """Rollout length per update (the trainer's default; quick: 32)."""
    ppo_rounds: int = 3
    """Timed updates per case, round-robin (quick: 5 of the shorter updates: the median of 2 was the mean of two
    noisy samples, which moved the ratio by +-0.05 between runs on this 2-core machine)."""


def _open3d_insert(pts: np.ndarray, depth: int):
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    tree = o3d.geometry.Octree(max_depth=depth)
    tree.convert_from_point_cloud(pcd, size_expand=0.0)
    return tree


def _ppo_case(cfg: Config, wrappers: str):
    import time

    from chronotope.agents.config import TrainConfig
    from chronotope.agents.ppo.trainer import PPOTrainer

    tc = TrainConfig(
        env=cfg.ppo_env, steps=10**9, seed=cfg.seed, num_envs=cfg.ppo_num_envs, rollout_len=cfg.ppo_rollout_len,
        bptt_len=min(32, cfg.ppo_rollout_len),
        env_kwargs=cfg.ppo_env_kwargs, wrappers=wrappers, device="cpu", progress=False,
    )  # fmt: skip
    trainer = PPOTrainer(tc)
    env_s = [0.0]
    inner = trainer.venv.step

    def timed_step(actions):
        t0 = time.perf_counter()
        out = inner(actions)
        env_s[0] += time.perf_counter() - t0
        return out

    trainer.venv.step = timed_step

    def update() -> tuple[float, float]:
        env_s[0] = 0.0
        t0 = time.perf_counter()
        trainer.train_step(trainer.rollout())
        trainer.update += 1
        return time.perf_counter() - t0, env_s[0]

    return trainer, update


def run_ppo(cfg: Config) -> tuple[dict, str]:
    """PPO env steps/s with map wrappers over without, measured round-robin in one run."""
    import statistics

    import torch

    names = {"none": "", cfg.ppo_wrappers: cfg.ppo_wrappers}
    cases = {}
    for label, wrappers in names.items():
        trainer, update = _ppo_case(cfg, wrappers)
        update()  # warm-up: first rollout, optimiser state, lazy inits
        cases[label] = (trainer, update)
    threads = torch.get_num_threads()
    wall: dict[str, list[float]] = {k: [] for k in cases}
    env: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(cfg.ppo_rounds):
        for label, (_, update) in cases.items():
            w, e = update()
            wall[label].append(w)
            env[label].append(e)
    steps = cfg.ppo_num_envs * cfg.ppo_rollout_len
    out: dict = {"steps_per_update": steps, "cases": {}}
    for label in cases:
        w, e = statistics.median(wall[label]), statistics.median(env[label])
        out["cases"][label] = {
            "sps": steps / w, "env_sps": steps / e, "update_s": w, "env_s": e, "samples_s": wall[label],
        }  # fmt: skip
    base, wrapped = out["cases"]["none"], out["cases"][cfg.ppo_wrappers]
    out["ratio"] = wrapped["sps"] / base["sps"]
    out["env_ratio"] = wrapped["env_sps"] / base["env_sps"]
    rows = [
        [label, c["sps"], c["env_sps"], c["env_s"], c["update_s"] - c["env_s"], c["sps"] / base["sps"]]
        for label, c in out["cases"].items()
    ]
    md = print_table(
        f"PPO with map wrappers, {cfg.ppo_env} {cfg.ppo_env_kwargs}, N={cfg.ppo_num_envs} x {cfg.ppo_rollout_len} "
        f"steps ({threads} torch thread(s))",
        ["wrappers", "env steps/s (PPO)", "steps per env-second", "env s", "learner s", "ratio steps/s"],
        rows,
    )
    met = "met" if out["ratio"] >= 0.7 else "not met"
    md += (
        f"\nPPO with --wrappers {cfg.ppo_wrappers}: {out['ratio']:.2f} of the no-wrapper env steps/s (target >= 0.7: "
        f"{met}); inside the env step (maps included): {out['env_ratio']:.2f} of the bare env's steps per second. "
        "Medians of "
        f"{cfg.ppo_rounds} round-robin updates; env s: time in the (wrapped) vector env's step per update.\n"
    )
    for trainer, _ in cases.values():
        trainer.venv.close()
    return out, md


def run(cfg: Config) -> dict:
    from chronotope.maps.octree import OctreeConfig, SparseOctree

    if cfg.quick:
        from dataclasses import replace

        d = Config()
        pick = {"ppo_rollout_len": 32, "ppo_rounds": 5}
        cfg = replace(cfg, **{k: v for k, v in pick.items() if getattr(cfg, k) == getattr(d, k)})

    rng = np.random.default_rng(cfg.seed)
    sizes = [n for n in [10**4, 10**5, 10**6] + ([] if cfg.quick else [10**7]) if n <= cfg.max_points]
    side = 10.0
    rows_ins, rows_q, results = [], [], []
    for n in sizes:
        pts = rng.uniform(0.0, side, size=(n, 3))
        ocfg = OctreeConfig(origin=(0.0, 0.0, 0.0), size=side, depth=cfg.depth)
        rep = 5 if n <= 10**5 else (3 if n <= 10**6 else 1)
        warm = 1 if n <= 10**6 else 0

        def ours(pts=pts, ocfg=ocfg):
            SparseOctree(ocfg).insert(pts)

        def brute(pts=pts, ocfg=ocfg):
            np.unique(np.floor(pts / (side / 2**cfg.depth)).astype(np.int64), axis=0, return_counts=True)

        t_ours = timeit(ours, warmup=warm, repeat=rep)
        t_brute = timeit(brute, warmup=warm, repeat=rep)
        t_o3d = None
        if n <= cfg.open3d_max_points:
            t_o3d = timeit(lambda pts=pts: _open3d_insert(pts, cfg.depth), warmup=0, repeat=max(1, rep // 2))
        tree = SparseOctree(ocfg)
        tree.insert(pts)
        row = {
            "points": n,
            "leaves": len(tree),
            "ours_pts_per_s": n / t_ours.median,
            "brute_pts_per_s": n / t_brute.median,
            "open3d_pts_per_s": None if t_o3d is None else n / t_o3d.median,
            "speedup_vs_open3d": None if t_o3d is None else t_o3d.median / t_ours.median,
            "speedup_vs_brute": t_brute.median / t_ours.median,
        }
        rows_ins.append(
            [
                n,
                len(tree),
                row["ours_pts_per_s"],
                row["open3d_pts_per_s"] or "-",
                row["brute_pts_per_s"],
                row["speedup_vs_open3d"] or "-",
                row["speedup_vs_brute"],
            ]  # fmt: skip
        )

        # ---- queries
        centres = tree.centers(tree.keys)
        qs = rng.uniform(0.0, side, size=(cfg.n_queries, 3))
        qp = pts[rng.integers(0, n, 50 * cfg.n_queries)]
        r = cfg.radius_voxels * tree.voxel_size
        tree.query_knn(qs[0], 1)  # build the k-d tree outside the timing (lazy, once per geometry change)

        def q_radius():
            for q in qs:
                tree.query_radius(q, r)

        nb = max(1, cfg.n_queries // 10) if len(tree) > 10**5 else cfg.n_queries  # the scan is slow

        def q_radius_brute():
            for q in qs[:nb]:
                np.flatnonzero(((centres - q) ** 2).sum(axis=1) <= r * r)

        def q_knn():
            for q in qs:
                tree.query_knn(q, cfg.k)

        def q_knn_brute():
            for q in qs[:nb]:
                np.argpartition(((centres - q) ** 2).sum(axis=1), cfg.k)[: cfg.k]

        def q_points():
            tree.query_points(qp)

        t = {
            "radius": timeit(q_radius, warmup=1, repeat=3),
            "radius_brute": timeit(q_radius_brute, warmup=0, repeat=3),
            "knn": timeit(q_knn, warmup=1, repeat=3),
            "knn_brute": timeit(q_knn_brute, warmup=0, repeat=3),
            "point": timeit(q_points, warmup=1, repeat=3),
        }
        qps = {
            "radius": cfg.n_queries / t["radius"].median,
            "radius_brute": nb / t["radius_brute"].median,
            "knn": cfg.n_queries / t["knn"].median,
            "knn_brute": nb / t["knn_brute"].median,
            "point": len(qp) / t["point"].median,
        }
        if n <= cfg.open3d_max_points:
            o3 = _open3d_insert(pts, cfg.depth)
            few = qp[:1000]
            t_o3 = timeit(lambda: [o3.locate_leaf_node(p) for p in few], warmup=0, repeat=3)
            qps["point_open3d"] = len(few) / t_o3.median
        row["qps"] = qps
        results.append(row)
        rows_q.append(
            [
                n,
                len(tree),
                qps["point"],
                qps.get("point_open3d", "-"),
                qps["radius"],
                qps["radius_brute"],
                qps["knn"],
                qps["knn_brute"],
            ]  # fmt: skip
        )

    md = print_table(
        "Octree insertion (points/s; speedup = time ratio in the same run)",
        ["points", "leaves", "ours", "open3d", "brute (np.unique rows)", "x open3d", "x brute"],
        rows_ins,
    )
    md += "\n" + print_table(
        "Octree queries (queries/s)",
        ["points", "leaves", "point (ours, batched)", "point (open3d)", "radius", "radius brute", "knn", "knn brute"],
        rows_q,
    )
    target = next((r["speedup_vs_open3d"] for r in results if r["points"] == 10**6), None)
    shown = "not measured" if target is None else f"{target:.1f}x"
    md += f"\nInsertion of 10^6 points vs Open3D: {shown} (target >= 10x). Shared, noisy CPU: ratios only.\n"
    print(md.splitlines()[-1])
    payload = {"config": cfg, "results": results, "speedup_vs_open3d_1e6": target}
    if cfg.ppo:
        ppo, ppo_md = run_ppo(cfg)
        print(ppo_md.splitlines()[-1])
        md += "\n" + ppo_md
        payload["ppo"] = ppo
        payload["ppo_wrappers_ratio"] = ppo["ratio"]
    write_results("maps", payload, md, cfg.out_dir)
    return payload


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: octree insertion and point lookups against Open3D, and the PPO
    cost of the map wrappers when it was run.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    rows = result["results"]
    s = ""
    if result.get("speedup_vs_open3d_1e6") is not None:
        v = result["speedup_vs_open3d_1e6"]
        s += f"Inserting 10^6 points: {v:.1f}x Open3D's octree (target >= 10x: {'met' if v >= 10 else 'not met'}). "
    s += (
        "Ours (one `insert` call) sorts the Morton codes of the whole cloud in numpy; Open3D inserts point by point "
        "from the root in C++. The map wrappers' per-step updates (`insert_batch`, `query_knn_batch`, the "
        "occupancy evidence and crops, the back-projection) run compiled numba loops instead "
        "(`chronotope.maps.kernels`). "
    )
    q = rows[-1].get("qps", {})
    if q.get("point_open3d"):
        s += f"Point lookups are {q['point'] / q['point_open3d']:.0f}x Open3D's at {rows[-1]['points']:,} points "
        s += "(batched vs one Python call per point). "
    s += (
        "Radius queries (and kNN once a tree is built) go one per call through a scipy k-d tree over leaf centres; "
        "kNN right after an insertion searches the sorted Morton index around the point instead of rebuilding it. "
    )
    p = result.get("ppo")
    if p:
        v = p["ratio"]
        s += (
            f"PPO with map wrappers keeps {v:.2f} of the no-wrapper env steps/s (target >= 0.7: "
            f"{'met' if v >= 0.7 else 'not met'}); inside the env step the maps leave {p['env_ratio']:.2f} of the "
            "bare env's rate, and the learner also encodes the map keys."
        )
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
