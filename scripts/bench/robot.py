"""Robot env throughput: env steps/s in ``state`` and ``rgbd`` modes, and batched physics with MuJoCo Warp.

Part 1 steps single ``RobotEnv`` instances with random actions (IK, physics, observations; rgbd adds 2 cameras x
rgb/depth/segmentation, through ``mujoco.Renderer`` (``camera_backend="gl"``) and ``mj_multiRay`` (``raycast``)).
Part 2 steps the PickPlace scene N ways, for N in
``n_worlds``: N ``RobotEnv.step`` calls, N ``MjData`` with ``mujoco.mj_step`` (physics only), and one MuJoCo Warp
``Data`` with N worlds on warp's CPU device (physics only). Ratios are against the N-``MjData`` baseline measured
in the same run; the same table times ``mujoco.rollout`` (MuJoCo's threaded rollout, 1 and 2 threads) stepping
the N worlds, with the state copies into and out of each ``MjData`` a vector env would need, against that baseline
(the measurement behind :mod:`chronotope.envs.robot.vector_env`'s choice of a plain ``mj_step`` loop). Part 3 times
the native batched env (``make_vec(..., vectorization_mode="vector_entry_point")``) against a ``SyncVectorEnv`` of
N single envs (``state`` observations, N in ``n_worlds``), both seeded alike and given the same random actions, so
they play the same episodes; samples alternate between the two; part 3b does the same with rgbd cameras for both
camera backends, at the largest N. Timings on a shared machine are noisy; the
medians over ``repeat`` samples are reported.

    python -m chronotope.scripts.bench.robot --quick
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Config:
    """Robot benchmark options."""

    quick: bool = False
    """Small run for smoke tests: N in (1, 16), few repeats, 64 px only."""
    task: str = "chronotope/PickPlace-v0"
    """Task whose scene is used for the batched comparison (it has a free block and contacts)."""
    n_worlds: tuple[int, ...] = (1, 16, 64)
    """Batch sizes for the batched comparison."""
    image_sizes: tuple[int, ...] = (64, 128)
    """Camera resolutions timed in rgbd mode."""
    env_steps: int = 100
    """Env steps per timing sample in part 1."""
    batch_env_steps: int = 5
    """Env steps (of ``frame_skip`` physics steps) per timing sample in part 2."""
    repeat: int = 5
    """Timing samples (median reported)."""
    vector_tasks: tuple[str, ...] = ()
    """Arm ids timed in part 3 (native vector env vs SyncVectorEnv); empty: every arm id."""
    vector_sample_steps: int = 160
    """Env steps (all worlds together) per timing sample in part 3: each world steps ``ceil(this / N)`` times."""
    warp_device: str = "cpu"
    """Warp device for MuJoCo Warp (``cpu`` here; ``cuda:0`` where a GPU exists)."""
    out_dir: str = "runs/bench"
    """Where ``robot.json`` / ``robot.md`` are written."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes copied into the results file."""


def _env_steps_per_s(env_id: str, steps: int, repeat: int, **kwargs: Any) -> tuple[float, float]:
    import gymnasium as gym

    from chronotope.scripts.bench.common import timeit

    env = gym.make(env_id, **kwargs).unwrapped  # no time limit: we reset on termination ourselves
    env.action_space.seed(0)
    env.reset(seed=0)

    def run_steps() -> None:
        for _ in range(steps):
            _, _, term, _, _ = env.step(env.action_space.sample())
            if term:
                env.reset()

    t = timeit(run_steps, warmup=1, repeat=repeat)
    env.close()
    return steps / t.median, t.spread / t.median


def _rollout_vs_loop(model: Any, datas: list, frame_skip: int, env_steps: int, repeat: int) -> dict[str, float]:
    """``mujoco.rollout`` with 1 and 2 threads stepping the worlds of ``datas`` (env steps/s, including the state
    copies a vector env would need around each call: ``mj_getState`` in, ``mj_setState`` out, the solver warm start
    passed in), and how far its worlds drift from the ``mj_step`` loop's (max |qpos| difference after 10 env
    steps from the same start; the rollout does not hand back the warm start)."""
    import mujoco
    import numpy as np
    from mujoco import rollout

    from chronotope.scripts.bench.common import timeit

    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    n = len(datas)
    state = np.zeros((n, mujoco.mj_stateSize(model, spec)))
    warm = np.zeros((n, model.nv))
    start = [(d.qpos.copy(), d.qvel.copy(), d.act.copy(), d.time, d.qacc_warmstart.copy()) for d in datas]

    def restore() -> None:
        for d, (q, v, a, t, w) in zip(datas, start):
            d.qpos[:], d.qvel[:], d.act[:], d.time, d.qacc_warmstart[:] = q, v, a, t, w
            mujoco.mj_forward(model, d)

    def loop(steps: int) -> None:
        for _ in range(steps):
            for d in datas:
                mujoco.mj_step(model, d, nstep=frame_skip)

    restore()
    loop(10)
    q_loop = np.stack([d.qpos.copy() for d in datas])
    out: dict[str, float] = {}
    for nthread in (1, 2):
        scratch = [mujoco.MjData(model) for _ in range(nthread)]
        with rollout.Rollout(nthread=nthread) as roll:

            def step(steps: int, roll=roll, scratch=scratch) -> None:
                for _ in range(steps):
                    for i, d in enumerate(datas):
                        mujoco.mj_getState(model, d, state[i], spec)
                        warm[i] = d.qacc_warmstart
                    ctrl = np.stack([d.ctrl for d in datas])[:, None, :]
                    traj, _ = roll.rollout(model, scratch, state, ctrl, nstep=frame_skip, initial_warmstart=warm)
                    for i, d in enumerate(datas):  # (the env's own mj_forward after physics follows either way)
                        mujoco.mj_setState(model, d, traj[i, -1], spec)

            restore()
            t = timeit(lambda step=step: step(env_steps), warmup=1, repeat=repeat)
            out[f"rollout{nthread}_env_steps_per_s"] = n * env_steps / t.median
            restore()
            step(10)
            diff = float(np.abs(np.stack([d.qpos for d in datas]) - q_loop).max())
            key = "rollout_vs_loop_qpos_maxdiff_after_10_env_steps"
            out[key] = max(out.get(key, 0.0), diff)
    restore()
    return out


def _vector_vs_sync(env_id: str, n: int, env_steps: int, repeat: int, **kwargs: Any) -> dict[str, float]:
    """Env steps/s (all worlds together) of the native vector env and of a SAME_STEP ``SyncVectorEnv`` of ``n``
    single envs, seeded alike and stepped with the same random actions (so the same episodes, autoresets
    included); timing samples alternate between the two. ``kwargs``: env kwargs of both."""
    import gymnasium as gym
    import numpy as np
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    sync = SyncVectorEnv([lambda: gym.make(env_id, **kwargs) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"native": [], "sync": []}
    try:
        native.reset(seed=0)
        sync.reset(seed=0)
        for sample in range(repeat + 1):  # the first round is a warm-up
            acts = rng.uniform(-1, 1, size=(env_steps, *native.action_space.shape)).astype(np.float32)
            for name, venv in (("native", native), ("sync", sync)):
                t0 = time.perf_counter()
                for a in acts:
                    venv.step(a)
                if sample:
                    times[name].append(time.perf_counter() - t0)
    finally:
        native.close()
        sync.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    q25, q75 = np.percentile(times["native"], [25, 75])
    return {
        "vector_env_steps_per_s": n * env_steps / med["native"],
        "sync_env_steps_per_s": n * env_steps / med["sync"],
        "ratio": med["sync"] / med["native"],
        "rel": float((q75 - q25) / med["native"]),
    }


def run(cfg: Config) -> dict:
    # Imported first: the package sets MUJOCO_GL=egl, which must precede the first ``import mujoco``.
    from chronotope.envs.robot.registration import register_robot_envs  # isort: skip
    import mujoco
    import numpy as np

    from chronotope.scripts.bench.common import machine_info, print_table, timeit, write_results

    ids = register_robot_envs()
    if cfg.quick:
        cfg.n_worlds = tuple(n for n in cfg.n_worlds if n <= 16) or (1,)
        cfg.image_sizes = (64,)
        cfg.env_steps, cfg.repeat, cfg.batch_env_steps = 30, 3, 2
    results: dict[str, Any] = {"config": cfg, "machine": machine_info()}
    md = ""

    # ---------------------------------------------------------------- part 1: single env steps/s
    rows, single = [], {}
    base = None
    for env_id in ids:
        sps, rel = _env_steps_per_s(env_id, cfg.env_steps, cfg.repeat)
        base = base or sps
        rows.append([env_id, "state", "-", sps, sps / base, rel])
        single[f"{env_id}|state"] = sps
    for size in cfg.image_sizes:
        for backend in ("gl", "raycast"):
            sps, rel = _env_steps_per_s(
                cfg.task, max(10, cfg.env_steps // 5), cfg.repeat, obs_mode="rgbd", image_size=size,
                camera_backend=backend,
            )  # fmt: skip
            rows.append([cfg.task, f"rgbd ({backend})", size, sps, sps / base, rel])
            single[f"{cfg.task}|rgbd{size}" + ("" if backend == "gl" else f"|{backend}")] = sps
    md += print_table(
        "Robot env steps/s (one env, random actions, 25 Hz control = 20 physics steps)",
        ["task", "obs", "px", "env steps/s", f"x vs {ids[0]} state", "IQR/median"],
        rows,
    )
    results["single_env_steps_per_s"] = single

    # ---------------------------------------------------------------- part 2: batched physics
    import gymnasium as gym

    env = gym.make(cfg.task).unwrapped
    env.reset(seed=0)
    mjm, frame_skip = env.model, env.cfg.frame_skip
    rng = np.random.default_rng(0)
    batch_rows, batch = [], {}
    warp_error: str | None = None
    try:
        import mujoco_warp as mjw
        import warp as wp

        from chronotope.envs.render.quiet import init_warp_quietly

        init_warp_quietly(wp, cpu_only=False)  # no banner (warp.config.quiet is gone since Warp 1.10)
    except ImportError as e:  # pragma: no cover - reported, not hidden
        warp_error = f"import failed: {e}"

    for n in cfg.n_worlds:
        ctrls = np.repeat(env.data.ctrl[None], n, 0)
        ctrls[:, :6] += rng.uniform(-0.3, 0.3, size=(n, 6))  # each world swings its arm differently

        # (a) N full envs (IK + physics + observations)
        envs = [gym.make(cfg.task).unwrapped for _ in range(n)]
        for i, e in enumerate(envs):
            e.reset(seed=i)
        acts = rng.uniform(-1, 1, size=(n, 4)).astype(np.float32)

        def step_envs(envs=envs, acts=acts) -> None:
            for _ in range(cfg.batch_env_steps):
                for e, a in zip(envs, acts):
                    _, _, term, _, _ = e.step(a)
                    if term:
                        e.reset()

        t_env = timeit(step_envs, warmup=1, repeat=cfg.repeat)

        # (b) N MjData stepped by mujoco (physics only): the baseline
        datas = []
        for i in range(n):
            d = mujoco.MjData(mjm)
            d.qpos[:], d.qvel[:], d.ctrl[:] = env.data.qpos, env.data.qvel, ctrls[i]
            mujoco.mj_forward(mjm, d)
            datas.append(d)

        def step_mujoco(datas=datas) -> None:
            for _ in range(cfg.batch_env_steps):
                for d in datas:
                    mujoco.mj_step(mjm, d, nstep=frame_skip)

        t_mj = timeit(step_mujoco, warmup=1, repeat=cfg.repeat)
        mj_sps = n * cfg.batch_env_steps / t_mj.median
        row_env = n * cfg.batch_env_steps / t_env.median
        entry: dict[str, Any] = {"env_loop_env_steps_per_s": row_env, "mujoco_env_steps_per_s": mj_sps}
        entry.update(_rollout_vs_loop(mjm, datas, frame_skip, cfg.batch_env_steps, cfg.repeat))

        # (c) MuJoCo Warp, N worlds in one Data
        warp_sps = float("nan")
        if warp_error is None:
            try:
                with wp.ScopedDevice(cfg.warp_device):
                    m_w = mjw.put_model(mjm)
                    d0 = mujoco.MjData(mjm)
                    d0.qpos[:], d0.qvel[:] = env.data.qpos, env.data.qvel
                    mujoco.mj_forward(mjm, d0)
                    d_w = mjw.put_data(mjm, d0, nworld=n, nconmax=64 * n, njmax=256)
                    d_w.ctrl.assign(wp.array(ctrls.astype(np.float32), dtype=float))
                    t0 = time.perf_counter()
                    mjw.step(m_w, d_w)  # compiles the kernels on first use (cached on disk afterwards)
                    wp.synchronize()
                    entry["warp_first_step_s"] = time.perf_counter() - t0

                    def step_warp(m_w=m_w, d_w=d_w) -> None:
                        for _ in range(cfg.batch_env_steps * frame_skip):
                            mjw.step(m_w, d_w)
                        wp.synchronize()

                    t_w = timeit(step_warp, warmup=1, repeat=cfg.repeat)
                    warp_sps = n * cfg.batch_env_steps / t_w.median
                    # Agreement check: world 0 against mujoco stepping the same state and control.
                    d_ref = mujoco.MjData(mjm)
                    d_ref.qpos[:], d_ref.qvel[:], d_ref.ctrl[:] = env.data.qpos, env.data.qvel, ctrls[0]
                    d_chk = mjw.put_data(mjm, d_ref, nworld=1, nconmax=64, njmax=256)
                    for _ in range(frame_skip * 10):
                        mjw.step(m_w, d_chk)
                    mujoco.mj_step(mjm, d_ref, nstep=frame_skip * 10)
                    wp.synchronize()
                    arm = slice(0, 6)
                    entry["warp_vs_mujoco_arm_qpos_maxdiff_after_10_env_steps"] = float(
                        np.abs(d_chk.qpos.numpy()[0, arm] - d_ref.qpos[arm]).max()
                    )
            except Exception as e:  # noqa: BLE001 - the benchmark reports why the batched path did not run
                warp_error = f"{type(e).__name__}: {e}"
        entry["warp_env_steps_per_s"] = warp_sps
        batch[n] = entry
        batch_rows.append(
            [
                n,
                row_env,
                mj_sps,
                entry["rollout1_env_steps_per_s"] / mj_sps,
                entry["rollout2_env_steps_per_s"] / mj_sps,
                entry["rollout_vs_loop_qpos_maxdiff_after_10_env_steps"],
                warp_sps,
                warp_sps / mj_sps,
                row_env / mj_sps,
                entry.get("warp_first_step_s", float("nan")),
                entry.get("warp_vs_mujoco_arm_qpos_maxdiff_after_10_env_steps", float("nan")),
            ]
        )
    md += print_table(
        f"Batched {cfg.task} scene, env steps/s over all worlds (1 env step = {frame_skip} physics steps); "
        f"MuJoCo Warp on '{cfg.warp_device}'",
        [
            "N",
            "N RobotEnv.step",
            "N mujoco MjData (baseline)",
            "rollout 1 thread / baseline",
            "rollout 2 threads / baseline",
            "rollout qpos diff",
            "mjwarp N worlds",
            "mjwarp / baseline",
            "RobotEnv / baseline",
            "mjwarp 1st step s",
            "arm qpos diff",
        ],
        batch_rows,
    )
    if warp_error:
        md += f"\nMuJoCo Warp did not run: {warp_error}\n"
        print("MuJoCo Warp did not run:", warp_error)
    results["batched"] = batch
    results["warp_error"] = warp_error

    # ---------------------------------------------------------------- part 3: native vector env vs SyncVectorEnv
    vec_rows, vec = [], {}
    for env_id in cfg.vector_tasks or ids:
        for n in cfg.n_worlds:
            r = _vector_vs_sync(env_id, n, -(-cfg.vector_sample_steps // n), cfg.repeat)
            vec[f"{env_id}|{n}"] = r
            vec_rows.append([env_id, n, r["sync_env_steps_per_s"], r["vector_env_steps_per_s"], r["ratio"], r["rel"]])
    md += print_table(
        "Native batched arm env vs SyncVectorEnv of N single envs (state obs, same seeds and actions), env steps/s",
        ["task", "N", "SyncVectorEnv", "native vector env", "native / sync", "IQR/median (native)"],
        vec_rows,
    )
    results["vector_vs_sync"] = vec

    # ------------------------------------------------- part 3b: batched rgbd cameras (front + wrist, 64 x 64)
    rgbd_rows, rgbd_vec = [], {}
    n = max(cfg.n_worlds)
    steps = -(-max(16, cfg.vector_sample_steps // 4) // n)
    for backend in ("gl", "raycast"):
        r = _vector_vs_sync(cfg.task, n, steps, cfg.repeat, obs_mode="rgbd", image_size=64, camera_backend=backend)
        rgbd_vec[backend] = r
        rgbd_rows.append(
            [cfg.task, backend, n, r["sync_env_steps_per_s"], r["vector_env_steps_per_s"], r["ratio"], r["rel"]]
        )
    gl_sync = rgbd_vec["gl"]["sync_env_steps_per_s"]
    for row in rgbd_rows:
        row.insert(6, row[4] / gl_sync)
    md += print_table(
        "Batched rgbd cameras (front + wrist, 64 x 64): native vector env vs SyncVectorEnv of N single envs, env "
        "steps/s (the ray-cast native env renders its worlds on a thread pool)",
        ["task", "camera backend", "N", "SyncVectorEnv", "native vector env", "native / sync",
         "native / SyncVectorEnv (gl)", "IQR/median (native)"],
        rgbd_rows,
    )  # fmt: skip
    results["rgbd_vector_vs_sync"] = rgbd_vec
    results["extra"] = cfg.extra
    md += (
        "\nTimings were taken on a machine shared with other jobs (2 cores); medians of "
        f"{cfg.repeat} samples. Ratios compare runs measured in this same process.\n"
    )
    write_results("robot", results, md, cfg.out_dir)
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: single-env rates by observation mode, and the batched RobotEnv
    loop against raw MuJoCo (and MuJoCo Warp) stepping.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    single = result.get("single_env_steps_per_s", {})
    state = [v for k, v in single.items() if k.endswith("|state")]
    rgbd = {k: v for k, v in single.items() if "|rgbd" in k}
    s = f"One arm env steps at {min(state):,.0f}-{max(state):,.0f} steps/s with state observations" if state else ""
    if rgbd:
        k, v = next(iter(rgbd.items()))
        s += f" and {v:,.0f} steps/s with rgbd cameras ({k.split('|')[1]}; MuJoCo GL on CPU dominates)"
        ray = {kk: vv for kk, vv in rgbd.items() if kk.endswith("|raycast")}
        if ray:
            kr, vr = next(iter(ray.items()))
            s += f", {vr:,.0f} steps/s ({vr / v:.1f}x) with the ray-cast cameras"
    s += ". "
    rv = result.get("rgbd_vector_vs_sync", {})
    if rv.get("raycast") and rv.get("gl"):
        gl_sync = rv["gl"]["sync_env_steps_per_s"]
        ray_sps = rv["raycast"]["vector_env_steps_per_s"]
        s += (
            f"Batched rgbd: the native vector env with ray-cast cameras steps {ray_sps:,.0f}"
            f" env steps/s, {ray_sps / gl_sync:.1f}x a SyncVectorEnv of GL-rendered "
            f"single envs and {rv['raycast']['ratio']:.2f}x one of ray-cast single envs (its worlds' casts run on a "
            "thread pool). "
        )
    b = result.get("batched", {})
    if b:
        n = max(b, key=int)
        e = b[n]
        s += (
            f"At N={n}, our RobotEnv loop reaches {e['env_loop_env_steps_per_s'] / e['mujoco_env_steps_per_s']:.2f}x "
            "raw MuJoCo stepping of the same worlds (IK and observations cost the rest); "
        )
        if e.get("warp_env_steps_per_s") == e.get("warp_env_steps_per_s"):  # not NaN
            s += "MuJoCo Warp on the CPU device trails raw MuJoCo by far here: it is built for CUDA."
    if result.get("warp_error"):
        s += f" MuJoCo Warp did not run: {result['warp_error']}"
    vs = result.get("vector_vs_sync", {})
    if vs:
        n = max(int(k.rsplit("|", 1)[1]) for k in vs)
        rows = {k.rsplit("|", 1)[0]: v for k, v in vs.items() if int(k.rsplit("|", 1)[1]) == n}
        ratios = [v["ratio"] for v in rows.values()]
        s += (
            f" The native batched arm env (make_vec, vector_entry_point) runs {min(ratios):.2f}-{max(ratios):.2f}x "
            f"the env steps/s of a SyncVectorEnv of N={n} single envs over {len(rows)} task(s) "
            "(same episodes; each world's IK, task logic and physics are the same work, so the gain is the "
            "per-env wrapper, batching and copying overhead it saves)."
        )
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
