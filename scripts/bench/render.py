"""Renderer throughput: agent-frames/s of each backend against the raw Embree ``cast_rays`` limit.

For each resolution and camera count N it times, on the same scene and poses:

* ``raw cast``: ``RaycastingScene.cast_rays`` on the already-built rays, nothing else: the limit here;
* ``open3d``: the full batched render (rays, cast, depth, ids, shading) and its ratio to the raw cast;
* ``mjwarp``: MuJoCo Warp's batch renderer (one world per camera; warp CPU kernels are single-threaded);
* ``mujoco``: MuJoCo's own OpenGL ``mujoco.Renderer`` (EGL), camera by camera: the single-camera reference.

Timings on a shared machine are noisy: compare the ratios measured in the same run, not absolute numbers.
Run: ``python -m chronotope.scripts.bench.render [--quick]``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
from chronotope.envs.scene.mesh import SceneMesh
from chronotope.scripts.bench.common import lead, machine_info, print_table, timeit, write_results


@dataclass
class Config:
    """Renderer benchmark settings."""

    quick: bool = False
    """Smoke-test size: 64x64 only, N in {1, 4}, fewer repeats."""
    backends: tuple[str, ...] = ("open3d", "mjwarp", "mujoco")
    """Backends to time besides the raw cast (which is always timed)."""
    sizes: tuple[int, ...] = (64, 128)
    """Square resolutions (pixels per side)."""
    ns: tuple[int, ...] = (1, 16, 64)
    """Camera counts N rendered per call."""
    repeat: int = 15
    """Timed samples per measurement (median reported); slow backends use fewer."""
    seed: int = 0
    """Scene and pose seed."""
    max_depth: float = 10.0
    """Depth clip in metres."""
    hfov_deg: float = 90.0
    """Horizontal field of view."""
    out_dir: str = "runs/bench"
    """Where ``render.json`` / ``render.md`` are written."""


def box_room(seed: int = 0, size: float = 8.0, height: float = 2.6, n_objects: int = 12) -> SceneMesh:
    """A square room (floor, ceiling, four walls) with ``n_objects`` random boxes of furniture size."""
    rng = np.random.default_rng(seed)
    h, t = size / 2, 0.1
    parts = [
        SceneMesh.box([-h - t, -h - t, -t], [h + t, h + t, 0.0], 1, (170, 160, 150)),
        SceneMesh.box([-h - t, -h - t, height], [h + t, h + t, height + t], 2, (235, 235, 230)),
        SceneMesh.box([-h - t, -h - t, 0], [-h, h + t, height], 3, (200, 190, 170)),
        SceneMesh.box([h, -h - t, 0], [h + t, h + t, height], 4, (190, 200, 170)),
        SceneMesh.box([-h, -h - t, 0], [h, -h, height], 5, (180, 180, 210)),
        SceneMesh.box([-h, h, 0], [h, h + t, height], 6, (210, 180, 180)),
    ]
    for k in range(n_objects):
        c = rng.uniform(-h + 1, h - 1, 2)
        s = rng.uniform(0.2, 0.6, 2)
        z = rng.uniform(0.3, 1.8)
        col = tuple(int(x) for x in rng.integers(30, 255, 3))
        parts.append(SceneMesh.box([c[0] - s[0], c[1] - s[1], 0], [c[0] + s[0], c[1] + s[1], z], 10 + k, col))
    return SceneMesh.concatenate(parts)


def bench_scene(seed: int = 0) -> tuple[SceneMesh, str]:
    """The benchmark scene: a generated apartment when the generator exists, else :func:`box_room`.

    Returns:
        (mesh, name of the scene kind).
    """
    try:
        from chronotope.envs.scene.generator import generate_apartment
    except ImportError:
        return box_room(seed), "box_room"
    return generate_apartment(seed).to_mesh(), "apartment"


def _poses(mesh: SceneMesh, n: int, seed: int) -> np.ndarray:
    """N eye-height cameras spread over the scene's bounds (away from its outer walls), random yaw."""
    rng = np.random.default_rng(seed)
    lo, hi = mesh.bounds
    margin = np.minimum(0.5, (hi[:2] - lo[:2]) / 4)
    xy = rng.uniform(lo[:2] + margin, hi[:2] - margin, (n, 2))
    return camera_poses(np.c_[xy, np.full(n, 1.25)], rng.uniform(-np.pi, np.pi, n))


def _paired(fn_a, fn_b, repeat: int, warmup: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per call of ``fn_a`` and ``fn_b`` [repeat] each, timed alternately."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = np.empty(repeat), np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        b[i] = time.perf_counter() - t1
        a[i] = t1 - t0
    return a, b


def run(cfg: Config) -> dict:
    """Times every backend at every (resolution, N) and prints / writes the table.

    Columns: agent-frames/s (cameras rendered per second) of the raw cast and of each backend; ``o3d/raw`` is
    the open3d render's throughput over the raw cast's (median of alternating pairs) and ``IQR`` its spread.
    """
    from chronotope.envs.render.base import make_renderer

    if cfg.quick:
        sizes, ns, repeat = (64,), (1, 4), 3
    else:
        sizes, ns, repeat = cfg.sizes, cfg.ns, cfg.repeat
    mesh, scene_kind = bench_scene(cfg.seed)
    rows, records = [], []
    for size in sizes:
        intr = CameraIntrinsics(size, size, cfg.hfov_deg)
        renderers = {}
        for b in ("open3d", *[b for b in cfg.backends if b != "open3d"]):
            try:
                t0 = time.perf_counter()
                renderers[b] = make_renderer(b, [mesh], intr, max_depth=cfg.max_depth)
                print(f"[{size}x{size}] built {b} in {time.perf_counter() - t0:.2f} s")
            except (ImportError, RuntimeError) as e:
                print(f"[{size}x{size}] backend {b} unavailable: {e}")
        o3d = renderers["open3d"]
        for n in ns:
            poses = _poses(mesh, n, cfg.seed + n)
            ids = np.zeros(n, dtype=np.int64)
            o3d.world_rays(poses, ids)
            # Raw cast and full open3d render are timed in alternation, so that the load of a shared machine
            # drifts over both alike; the ratio is the median of the per-pair ratios.
            raw_t, full_t = _paired(o3d.cast, functools.partial(o3d.render, poses), repeat)
            rec = {"size": size, "n": n, "raw_cast_s": float(np.median(raw_t)), "raw_fps": n / np.median(raw_t)}
            rec["open3d_s"] = float(np.median(full_t))
            rec["open3d_fps"] = n / rec["open3d_s"]
            rec["open3d_over_raw"] = float(np.median(raw_t / full_t))
            rec["open3d_over_raw_iqr"] = [float(q) for q in np.percentile(raw_t / full_t, [25, 75])]
            for b, r in renderers.items():
                if b == "open3d":
                    continue
                t = timeit(lambda r=r, poses=poses: r.render(poses), warmup=1, repeat=max(3, repeat // 2))
                rec[f"{b}_s"] = t.median
                rec[f"{b}_fps"] = n / t.median
            records.append(rec)
            rows.append(
                [
                    f"{size}x{size}",
                    n,
                    rec["raw_fps"],
                    rec["open3d_fps"],
                    rec["open3d_over_raw"],
                    "{:.2f}-{:.2f}".format(*rec["open3d_over_raw_iqr"]),
                    rec.get("mjwarp_fps", "-"),
                    rec.get("mujoco_fps", "-"),
                ]
            )
        for r in renderers.values():
            r.close()
    cols = ["res", "N", "raw cast fps", "open3d fps", "o3d/raw", "IQR", "mjwarp fps", "GL fps"]
    title = f"Renderer agent-frames/s ({scene_kind}, {mesh.num_faces} triangles; shared CPU: timings noisy)"
    md = print_table(title, cols, rows)
    info = machine_info()
    print(f"machine: {info}")
    results = {"config": cfg, "scene": scene_kind, "triangles": mesh.num_faces, "records": records}
    path = write_results("render", results, md, cfg.out_dir)
    print(f"wrote {path}")
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: the open3d render against the raw cast at the largest size, and against
    MuJoCo GL / MuJoCo Warp where they were timed.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    recs = result["records"]
    big = max(recs, key=lambda x: (x["size"], x["n"]))
    ratio = big["open3d_over_raw"]
    s = (
        f"At {big['size']}x{big['size']}, N={big['n']}, the full open3d render (Embree ray cast + shading) keeps "
        f"{ratio:.2f}x the raw cast's throughput (IQR {big['open3d_over_raw_iqr'][0]:.2f}-"
        f"{big['open3d_over_raw_iqr'][1]:.2f}); the rest is shading and copying out images. "
    )
    if ratio > 1:
        s += "A ratio above 1 is noise between alternating samples: the render contains the cast. "
    if big.get("mujoco_fps"):
        s += (
            f"Against MuJoCo's OpenGL renderer on the same scene ({big['mujoco_fps']:,.0f} frames/s; EGL with no GPU, "
            f"so software rasterisation) {lead(big['open3d_fps'], big['mujoco_fps'], 'GL')}: Embree casts all "
            "cameras of a batch in one call on both cores, GL draws one camera at a time. With a GPU, GL and "
            "mjwarp on CUDA would change this picture. "
        )
    if big.get("mjwarp_fps"):
        s += (
            f"MuJoCo Warp on Warp's CPU device ({big['mjwarp_fps']:,.0f} frames/s) is the slowest backend here; "
            "it exists for CUDA."
        )
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
