"""Navigation env throughput: the full batched step against its engine's raw ray casting and against gymnasium's
``SyncVectorEnv`` of single envs, all measured in the same run.

Full step = motion + collisions + measures + reward + ray generation + ``cast_rays`` + shading + depth +
semantics + observation assembly. "raw cast" = Open3D's ``cast_rays`` on the same rays and nothing else: the
ceiling of the open3d backend on this machine. ``mujoco GL`` = MuJoCo's own OpenGL ``mujoco.Renderer``
rendering the same scene camera by camera (the single-camera reference).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from chronotope.scripts.bench.common import lead, machine_info, print_table, timeit, write_results


@dataclass
class Config:
    """Options of the nav benchmark."""

    quick: bool = False
    """Fewer sizes and repeats (N in {1, 16, 64} at 64x64 only)."""
    num_envs: tuple[int, ...] = (1, 16, 64)
    """Batch sizes."""
    resolutions: tuple[int, ...] = (64, 128)
    """Square image sides."""
    steps: int = 20
    """Env steps per timing sample."""
    repeat: int = 5
    """Timing samples (median reported)."""
    sync: bool = True
    """Also time gymnasium's SyncVectorEnv of single envs."""
    backends: tuple[str, ...] = ("open3d", "mjwarp")
    """Renderer backends of the native vector env."""
    mujoco_gl: bool = True
    """Time MuJoCo's OpenGL renderer as the single-camera reference."""
    env_id: str = "chronotope/PointNav-v0"
    """Environment id."""
    extra: dict = field(default_factory=dict)
    """Extra env kwargs."""


def _actions(n: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 4, n) for _ in range(steps)]  # no STOP: keeps episodes running


def _time_env(env, n: int, cfg: Config) -> float:
    acts = _actions(n, cfg.steps)
    env.reset(seed=0)

    def run():
        for a in acts:
            env.step(a if n > 1 or hasattr(env, "num_envs") else int(a[0]))

    t = timeit(run, warmup=1, repeat=cfg.repeat)
    return n * cfg.steps / t.median


def run(cfg: Config) -> dict:
    import gymnasium as gym

    import chronotope.envs  # noqa: F401

    if cfg.quick:
        cfg.resolutions = (64,)
        cfg.repeat = min(cfg.repeat, 3)
        cfg.steps = min(cfg.steps, 10)
    rows, results = [], []
    for res in cfg.resolutions:
        kw = {"obs_mode": "rgbd", "resolution": (res, res), **cfg.extra}
        for n in cfg.num_envs:
            row = {"resolution": res, "num_envs": n}
            venv = gym.make_vec(cfg.env_id, num_envs=n, vectorization_mode="vector_entry_point", backend="open3d", **kw)
            row["native_open3d"] = _time_env(venv, n, cfg)
            core = venv.unwrapped.core
            r = core.renderer
            r.world_rays(core.camera_poses(), core.sim.scene)
            row["raw_cast"] = n / timeit(r.cast, warmup=2, repeat=max(cfg.repeat, 5), number=5).median
            venv.close()
            if "mjwarp" in cfg.backends:
                try:
                    venv = gym.make_vec(
                        cfg.env_id, num_envs=n, vectorization_mode="vector_entry_point", backend="mjwarp", **kw
                    )
                    row["native_mjwarp"] = _time_env(venv, n, cfg)
                    venv.close()
                except Exception as e:  # reported, not hidden: the backend is optional
                    row["native_mjwarp"] = float("nan")
                    row["mjwarp_error"] = f"{type(e).__name__}: {e}"[:200]
            if cfg.sync and n > 1:
                senv = gym.vector.SyncVectorEnv(
                    [lambda kw=kw: gym.make(cfg.env_id, backend="open3d", **kw) for _ in range(n)]
                )
                row["sync_open3d"] = _time_env(senv, n, cfg)
                senv.close()
            results.append(row)
            rows.append(
                [
                    f"{res}x{res}",
                    n,
                    row["native_open3d"],
                    row["raw_cast"],
                    row["native_open3d"] / row["raw_cast"],
                    row.get("native_mjwarp", float("nan")),
                    row.get("sync_open3d", float("nan")),
                    row["native_open3d"] / row["sync_open3d"] if "sync_open3d" in row else float("nan"),
                ]
            )
    md = print_table(
        f"{cfg.env_id} rgbd: agent-steps/s (full step incl. rendering) vs raw cast and SyncVectorEnv",
        ["res", "N", "native open3d", "raw cast_rays", "native/raw", "native mjwarp", "SyncVectorEnv", "native/sync"],
        rows,
    )
    gl = {}
    if cfg.mujoco_gl:
        gl = _mujoco_gl_reference(cfg)
        if gl:
            md += print_table(
                "MuJoCo OpenGL renderer (EGL), same scene, one camera at a time: frames/s",
                ["res", "mujoco.Renderer frames/s", "open3d N=1 render frames/s"],
                [[f"{k}x{k}", v["mujoco_gl"], v["open3d_render"]] for k, v in gl.items()],
            )
    out = {"config": cfg.__dict__, "rows": results, "mujoco_gl": gl}
    write_results("nav", out, md)
    return out


def _mujoco_gl_reference(cfg: Config) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from chronotope.envs.render.base import make_renderer
    from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
    from chronotope.envs.scene.generator import generate_apartment

    spec = generate_apartment(0)
    grid = spec.navgrid()
    rng = np.random.default_rng(0)
    xy = grid.sample_navigable(rng, 16, grid.largest_component())
    poses = camera_poses(np.concatenate([xy, np.full((16, 1), 1.25)], 1), rng.uniform(-3, 3, 16))
    out = {}
    for res in cfg.resolutions:
        intr = CameraIntrinsics(res, res, 90.0)
        row = {}
        for name, key in (("mujoco", "mujoco_gl"), ("open3d", "open3d_render")):
            try:
                r = make_renderer(name, [spec.to_mesh()], intr)
            except Exception as e:
                print(f"[bench nav] {name} renderer unavailable: {e}")
                row[key] = float("nan")
                continue
            i = [0]

            def one(r=r, i=i):
                r.render(poses[i[0] % 16][None], np.zeros(1, np.int64))
                i[0] += 1

            row[key] = 1.0 / timeit(one, warmup=3, repeat=cfg.repeat, number=10).median
            r.close()
        out[res] = row
    return out


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: full env steps against the raw ray cast at the largest size, and the
    N=1, SyncVectorEnv, mjwarp and MuJoCo GL comparisons where they were timed.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    rows = result["rows"]
    top = max(rows, key=lambda x: (x["resolution"], x["num_envs"]))
    ratio = top["native_open3d"] / top["raw_cast"]
    s = (
        f"Full env steps (motion, task, rgbd render) at {top['resolution']}x{top['resolution']}, "
        f"N={top['num_envs']}: {top['native_open3d']:,.0f} agent-steps/s, {ratio:.2f}x the raw ray-cast "
        "throughput of the same renderer (target >= 0.7: "
        + ("met; the cast dominates a step). " if ratio >= 0.7 else "not met). ")
    )
    one = next((x for x in rows if x["num_envs"] == 1), None)
    if one:
        s += (
            f"At N=1 the ratio is {one['native_open3d'] / one['raw_cast']:.2f}: per-step Python work (task, "
            "observations, wrappers) is not amortised over a batch. "
        )
    sync = [x for x in rows if "sync_open3d" in x]
    if sync:
        x = max(sync, key=lambda x: x["num_envs"])
        s += (
            f"The native batched env is {x['native_open3d'] / x['sync_open3d']:.1f}x gymnasium's SyncVectorEnv of "
            f"single envs at N={x['num_envs']} (one Embree call for all cameras instead of N). "
        )
    mj = [x for x in rows if x.get("native_mjwarp") == x.get("native_mjwarp") and x.get("native_mjwarp")]
    if mj:
        x = max(mj, key=lambda x: x["num_envs"])
        s += (
            f"The open3d backend steps {x['native_open3d'] / x['native_mjwarp']:.1f}x as fast as the mjwarp backend "
            f"(Warp's CPU device) at N={x['num_envs']}. "
        )
    for res, v in (result.get("mujoco_gl") or {}).items():
        if v.get("mujoco_gl") and v.get("open3d_render"):
            s += (
                f"One camera at a time at {res}x{res}, open3d renders {v['open3d_render']:,.0f} frames/s vs "
                f"MuJoCo GL's {v['mujoco_gl']:,.0f}: {lead(v['open3d_render'], v['mujoco_gl'], 'GL')} "
                "without batching."
            )
    return s


if __name__ == "__main__":
    import tyro

    info = machine_info()
    print(f"machine: {info}")
    run(tyro.cli(Config))
