"""Peers measured side by side: Memory Maze and MiniWorld (each in its own virtual environment) vs TargetSequence-v0.

Memory Maze pins ``gym==0.26.2`` and a ``dm_control`` that needs a particular MuJoCo, which conflict with our
environment; so the suite creates ``runs/peers/memory-maze`` (once, reused while its pins are unchanged) and runs
this same file there as a worker (``python peers.py --worker memory-maze ...``) that prints one JSON line. The
worker imports nothing from Chronotope except ``common.py`` (stdlib only at import time), loaded by file path.

MiniWorld (Gymnasium, rendered with pyglet 1.5's OpenGL, headless on EGL) needs ``pyglet<2``; it gets
``runs/peers/miniworld`` the same way and is timed at our resolution (``obs_width = obs_height = resolution``) on a
few interior tasks, single env and in gymnasium's SyncVectorEnv (it has no batched renderer).

Headlines: our batched env's agent-steps/s at N=64 over Memory Maze's single-process steps/s, both with 64x64
images, measured in the same run (target >= 50x); and the same over MiniWorld's single-env steps/s (the fastest
of its ids measured; target >= 4x).

If the peer cannot be installed or run, its rows carry the exact error and the benchmark still completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEER_JSON_TAG = "CHRONOTOPE_PEER_JSON "


@dataclass(frozen=True)
class PeerSpec:
    """A peer package installed into its own virtual environment."""

    name: str
    """Folder under ``venv_root`` and the ``--worker`` name."""
    requirements: tuple[str, ...]
    """pip requirement strings (exact pins: the venv is rebuilt when they change)."""
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables for the worker process."""


# dm_control 1.0.50 (the newest, which memory-maze 1.0.3 pulls in unpinned) declares mujoco>=3.17.0 but breaks on
# mujoco 4.0.0 ("'MjModel' object has no attribute 'flex_vertedge'"), so MuJoCo is pinned to 3.17.0.
PEERS: dict[str, PeerSpec] = {
    "memory-maze": PeerSpec(
        name="memory-maze",
        requirements=("memory-maze==1.0.3", "dm-control==1.0.50", "mujoco==3.17.0", "gym==0.26.2"),
        env=(("MUJOCO_GL", "egl"),),  # headless rendering; memory_maze itself defaults to egl too
    ),
    # MiniWorld 2.1.0 needs pyglet<2 (1.5's API); gymnasium and numpy are pinned to the versions our own venv has.
    # PYGLET_HEADLESS makes pyglet open an EGL context instead of an X window (the worker sets the option too).
    "miniworld": PeerSpec(
        name="miniworld",
        requirements=("miniworld==2.1.0", "pyglet==1.5.31", "gymnasium==1.4.0", "numpy==2.4.6"),
        env=(("PYGLET_HEADLESS", "true"),),
    ),
}


PEER_TITLES = {"memory-maze": "Memory Maze", "miniworld": "MiniWorld"}
MEMORY_MAZE_TARGET = 50.0
"""Ours at N=64 batched over Memory Maze's single env."""
MINIWORLD_TARGET = 4.0
"""Ours at N=64 batched over MiniWorld's (fastest) single env."""


class PeerUnavailable(RuntimeError):
    """The peer's environment could not be created or its worker failed; the message is the exact error."""


@dataclass
class Config:
    """Peer comparison settings."""

    quick: bool = False
    """Fewer steps and repeats, and fewer sequential Memory Maze envs."""
    peers: tuple[str, ...] = ("memory-maze", "miniworld")
    """Peers to measure (keys of ``PEERS``)."""
    install: bool = True
    """Create a missing (or stale) peer venv; when False a missing venv is reported as an error."""
    venv_root: str = "runs/peers"
    """Where peer virtual environments live (one folder per peer, reused across runs)."""
    env_id: str = "chronotope/TargetSequence-v0"
    """Our environment (falls back to ``fallback_env_id`` when it cannot be made, noted in the table)."""
    fallback_env_id: str = "chronotope/PointNav-v0"
    """Used when ``env_id`` is not registered or fails to build."""
    resolution: int = 64
    """Square image side of both systems (Memory Maze-9x9-v0 renders 64x64 RGB)."""
    num_envs: tuple[int, ...] = (1, 16, 64)
    """Batch sizes of our native vector env."""
    ours_semantic: bool = True
    """Also time our env with the semantic (instance-id) image added to rgbd: a second set of rows."""
    steps: int = 20
    """Our env steps per timing sample."""
    repeat: int = 5
    """Timing samples (median reported)."""
    peer_env_id: str = "MemoryMaze-9x9-v0"
    """Memory Maze gym id."""
    peer_num_envs: tuple[int, ...] = (1, 8)
    """Memory Maze envs stepped one after another in one process (N=1 is the single-env baseline)."""
    peer_vector: tuple[str, ...] = ("sync", "async")
    """gym 0.26 vector envs of Memory Maze to try at the largest ``peer_num_envs`` (async = one process each)."""
    peer_steps: int = 10
    """Memory Maze steps per env per timing sample (it runs ~10-100 steps/s on CPU)."""
    peer_repeat: int = 3
    """Memory Maze timing samples."""
    miniworld_env_ids: tuple[str, ...] = ("MiniWorld-Hallway-v0", "MiniWorld-ThreeRooms-v0", "MiniWorld-Sign-v0")
    """MiniWorld gymnasium ids, each timed as a single env (the headline takes the fastest of them)."""
    miniworld_vector_n: int = 8
    """Size of the gymnasium SyncVectorEnv of the first MiniWorld id (0: not measured)."""
    miniworld_steps: int = 300
    """MiniWorld steps per env per timing sample (it runs ~300-1,500 steps/s at 64x64 on this CPU)."""
    miniworld_repeat: int = 5
    """MiniWorld timing samples."""
    timeout_s: float = 900.0
    """Limit for the worker subprocess (and for pip when creating the venv)."""
    out_dir: str = "runs/bench"
    """Where ``peers.json`` / ``peers.md`` are written."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra kwargs for our env."""

    def __post_init__(self) -> None:
        unknown = [p for p in self.peers if p not in PEERS]
        if unknown:
            raise ValueError(f"unknown peer(s) {unknown!r}; known: {sorted(PEERS)}")


# --------------------------------------------------------------------------------------------- peer venvs


def ensure_venv(spec: PeerSpec, root: str | Path, install: bool = True, timeout_s: float = 900.0) -> Path:
    """Returns the peer venv's python, creating the venv and installing ``spec.requirements`` when needed.

    A marker file records the requirements it was built with; a venv whose marker differs is rebuilt
    (``venv --clear``), one that matches is reused as is.

    Raises:
        PeerUnavailable: the venv is missing and ``install`` is False, or venv creation / pip failed (the
            message carries pip's own error).
    """
    venv = Path(root) / spec.name
    py = venv / "bin" / "python"
    marker = venv / "chronotope-peer.json"
    want = {"requirements": list(spec.requirements)}
    if py.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return py
        except json.JSONDecodeError:
            pass
    if not install:
        raise PeerUnavailable(f"no peer venv at {venv} (run `chronotope bench ... --peers` to create it)")
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter our own venv was made from
    print(f"[peers] creating {venv} with {base} and installing {' '.join(spec.requirements)}", flush=True)
    steps = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec.requirements],
    ]
    for cmd in steps:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise PeerUnavailable(f"`{' '.join(cmd[:4])} ...` timed out after {timeout_s:.0f} s") from e
        if p.returncode != 0:
            raise PeerUnavailable(f"`{' '.join(cmd)}` failed (exit {p.returncode}): {_tail(p.stderr or p.stdout)}")
    marker.write_text(json.dumps(want))
    return py


def run_worker(spec: PeerSpec, py: Path, args: list[str], timeout_s: float) -> dict[str, Any]:
    """Runs this file as ``--worker <spec.name>`` under the peer's python and returns its JSON.

    Raises:
        PeerUnavailable: the worker exited non-zero, timed out or printed no JSON (message: its stderr tail).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(dict(spec.env))
    # -I: the peer's python must not see our scripts folder (its module names) nor our PYTHON* variables.
    cmd = [str(py), "-I", str(Path(__file__).resolve()), "--worker", spec.name, *args]
    # A session of its own, so that a timeout also ends the worker's vector-env subprocesses.
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = p.communicate(timeout=timeout_s)
        failure = f"exit {p.returncode}" if p.returncode != 0 else ""
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
        failure = f"timed out after {timeout_s:.0f} s"
    # The worker prints its cumulative JSON after every measurement: keep what finished before a failure.
    lines = [ln for ln in stdout.splitlines() if ln.startswith(PEER_JSON_TAG)]
    if not lines:
        raise PeerUnavailable(f"{spec.name} worker failed ({failure or 'no output'}): {_tail(stderr or stdout)}")
    out = json.loads(lines[-1][len(PEER_JSON_TAG) :])
    if failure:
        out.setdefault("errors", {})["worker"] = f"{failure} after the rows shown: {_tail(stderr)}"
    return out


def _tail(text: str, n: int = 600) -> str:
    """Last lines of an error output, on one line (the exception is last in a traceback)."""
    text = " | ".join(ln.strip() for ln in text.strip().splitlines() if ln.strip() and "WARNING: Location" not in ln)
    return text[-n:]


# --------------------------------------------------------------------------------------------- worker


def _load_common():
    """``common.py`` loaded by path, so the worker needs neither Chronotope nor its dependencies installed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_common", Path(__file__).with_name("common.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _memory_maze_worker(argv: list[str]) -> dict[str, Any]:
    """Times Memory Maze in the peer venv: single env, N envs in sequence, gym's vector envs.

    Runs under the peer's python (gym 0.26 API through ``memory_maze``'s old-style GymWrapper: ``reset() -> obs``,
    ``step() -> (obs, reward, done, info)``).
    """
    import argparse
    from importlib import metadata

    ap = argparse.ArgumentParser()
    ap.add_argument("--env-id", default="MemoryMaze-9x9-v0")
    ap.add_argument("--ns", default="1,8")
    ap.add_argument("--vector", default="sync,async")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gym
    import memory_maze  # noqa: F401  (registers the MemoryMaze-* ids)
    import numpy as np

    common = _load_common()
    out: dict[str, Any] = {"env_id": a.env_id, "mujoco_gl": os.environ["MUJOCO_GL"], "errors": {}, "rows": []}
    out["versions"] = {}
    for pkg in ("memory-maze", "dm-control", "mujoco", "gym", "numpy"):
        try:
            out["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out["versions"][pkg] = None
    rng = np.random.default_rng(0)

    def emit():  # cumulative: the parent keeps the last line even if a later measurement hangs or crashes
        print(PEER_JSON_TAG + json.dumps(out), flush=True)

    def make():
        return gym.make(a.env_id, disable_env_checker=True)

    ns = [int(x) for x in a.ns.split(",") if x]
    for n in ns:
        try:
            t0 = time.perf_counter()
            envs = [make() for _ in range(n)]
            obs = [e.reset() for e in envs]
            build_s = time.perf_counter() - t0
            out["obs_shape"], out["obs_dtype"] = list(obs[0].shape), str(obs[0].dtype)
            n_act = envs[0].action_space.n

            def step_all(envs=envs, n_act=n_act):
                for _ in range(a.steps):
                    for e in envs:
                        _, _, done, _ = e.step(int(rng.integers(n_act)))
                        if done:
                            e.reset()

            t = common.timeit(step_all, warmup=1, repeat=a.repeat)
            mode = "single env (gym.make)" if n == 1 else "N envs stepped in sequence, 1 process"
            out["rows"].append(
                {"mode": mode, "n": n, "steps_per_s": n * a.steps / t.median, "iqr_rel": t.spread / t.median}
            )
            out["rows"][-1]["build_s"] = build_s
            for e in envs:
                e.close()
        except Exception as e:  # noqa: BLE001 - reported per row, the other measurements still run
            out["errors"][f"sequential N={n}"] = f"{type(e).__name__}: {e}"
        emit()
    n = max(ns)
    for kind in [k for k in a.vector.split(",") if k]:
        try:
            # "module:id" so that spawned processes import memory_maze (which registers the ids) themselves.
            env_id = f"memory_maze:{a.env_id}"
            fns = [lambda i=env_id: gym.make(i, disable_env_checker=True, apply_api_compatibility=True)] * n
            # spawn, not fork: a child forked after the parent made EGL contexts hangs.
            venv = gym.vector.SyncVectorEnv(fns) if kind == "sync" else gym.vector.AsyncVectorEnv(fns, context="spawn")
            venv.reset()  # no seed: the compatibility wrapper would call the old API's env.seed(), which is absent
            acts = [rng.integers(venv.single_action_space.n, size=n) for _ in range(a.steps)]

            def step_vec(venv=venv, acts=acts):
                for act in acts:
                    venv.step(act)

            t = common.timeit(step_vec, warmup=1, repeat=a.repeat)
            mode = f"gym.vector.{'SyncVectorEnv' if kind == 'sync' else 'AsyncVectorEnv (1 process/env)'}"
            out["rows"].append(
                {"mode": mode, "n": n, "steps_per_s": n * a.steps / t.median, "iqr_rel": t.spread / t.median}
            )
            venv.close()
        except Exception as e:  # noqa: BLE001
            out["errors"][f"gym.vector {kind} N={n}"] = f"{type(e).__name__}: {e}"
        emit()
    return out


def _miniworld_worker(argv: list[str]) -> dict[str, Any]:
    """Times MiniWorld in the peer venv: one env per id, then gymnasium's SyncVectorEnv of N envs of the first id.

    Runs under the peer's python (gymnasium API: ``reset() -> (obs, info)``, ``step() -> (obs, r, term, trunc,
    info)``). MiniWorld renders each env with its own pyglet OpenGL context (EGL when headless) and has no batched
    renderer, so a vector env of it steps and renders its envs one after another.
    """
    import argparse
    from importlib import metadata

    ap = argparse.ArgumentParser()
    ap.add_argument("--env-ids", default="MiniWorld-Hallway-v0,MiniWorld-ThreeRooms-v0,MiniWorld-Sign-v0")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--vector-n", type=int, default=8, help="SyncVectorEnv size (0: skip)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    import pyglet

    pyglet.options["headless"] = True  # EGL, no X display; must be set before miniworld imports pyglet.gl
    import gymnasium as gym
    import miniworld  # noqa: F401  (registers the MiniWorld-* ids)
    import numpy as np

    common = _load_common()
    env_ids = [x for x in a.env_ids.split(",") if x]
    out: dict[str, Any] = {"env_id": env_ids[0] if env_ids else "", "env_ids": env_ids, "errors": {}, "rows": []}
    out["resolution"], out["headless"] = a.resolution, bool(pyglet.options["headless"])
    out["versions"] = {}
    for pkg in ("miniworld", "pyglet", "gymnasium", "numpy"):
        try:
            out["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out["versions"][pkg] = None
    try:
        from pyglet import gl

        out["gl_renderer"] = gl.gl_info.get_renderer()  # which OpenGL implementation rendered (llvmpipe: CPU)
    except Exception:  # noqa: BLE001 - context only
        pass
    rng = np.random.default_rng(0)
    kw = {"obs_width": a.resolution, "obs_height": a.resolution}

    def emit():  # cumulative: the parent keeps the last line even if a later measurement hangs or crashes
        print(PEER_JSON_TAG + json.dumps(out), flush=True)

    def row(env_id, mode, n, t, **more):
        r = {"env_id": env_id, "mode": mode, "n": n, "steps_per_s": n * a.steps / t.median}
        out["rows"].append({**r, "iqr_rel": t.spread / t.median, **more})

    for env_id in env_ids:
        try:
            t0 = time.perf_counter()
            env = gym.make(env_id, disable_env_checker=True, **kw)
            obs, _ = env.reset(seed=0)
            build_s = time.perf_counter() - t0
            img = obs["obs"] if isinstance(obs, dict) else obs  # Sign: {"obs": image, "goal": int}
            out.setdefault("obs_shape", list(img.shape))
            acts = rng.integers(env.action_space.n, size=a.steps)
            state = {"episodes": 0}

            def step_single(env=env, acts=acts, state=state):
                for act in acts:
                    _, _, term, trunc, _ = env.step(int(act))
                    if term or trunc:
                        env.reset()
                        state["episodes"] += 1

            t = common.timeit(step_single, warmup=1, repeat=a.repeat)
            row(env_id, "single env (gym.make)", 1, t, build_s=build_s, resets=state["episodes"])
            env.close()
        except Exception as e:  # noqa: BLE001 - reported per row, the other measurements still run
            out["errors"][f"{env_id} single"] = f"{type(e).__name__}: {e}"
        emit()
    if a.vector_n > 0 and env_ids:
        env_id, n = env_ids[0], a.vector_n
        try:
            fns = [lambda: gym.make(env_id, disable_env_checker=True, **kw)] * n
            venv = gym.vector.SyncVectorEnv(fns)  # autoreset: an ended env resets on its next step
            venv.reset(seed=0)
            acts = rng.integers(venv.single_action_space.n, size=(a.steps, n))

            def step_vec(venv=venv, acts=acts):
                for act in acts:
                    venv.step(act)

            t = common.timeit(step_vec, warmup=1, repeat=a.repeat)
            row(env_id, "gymnasium SyncVectorEnv", n, t)
            venv.close()
        except Exception as e:  # noqa: BLE001
            out["errors"][f"{env_id} SyncVectorEnv N={n}"] = f"{type(e).__name__}: {e}"
        emit()
    return out


WORKERS = {"memory-maze": _memory_maze_worker, "miniworld": _miniworld_worker}


# --------------------------------------------------------------------------------------------- ours


def _ours(cfg: Config, semantic: bool = False) -> dict[str, Any]:
    """Our env at ``cfg.resolution``: single gym.make env and the native vector env at each N (agent-steps/s).

    ``semantic`` adds the instance-id image to the rgbd observation (``obs_mode`` then reads ``rgbd+semantic``).
    """
    import gymnasium as gym
    import numpy as np

    import chronotope.envs  # noqa: F401
    from chronotope.scripts.bench.common import timeit

    kw = {"obs_mode": "rgbd", "resolution": (cfg.resolution, cfg.resolution), **cfg.extra}
    if semantic:
        kw["semantic"] = True
    env_id, note = cfg.env_id, ""
    try:
        single = gym.make(env_id, **kw)
    except Exception as e:  # noqa: BLE001 - fall back and say so in the table
        note = f"{cfg.env_id} unavailable ({type(e).__name__}: {e}); measured {cfg.fallback_env_id} instead"
        print(f"[peers] {note}")
        env_id = cfg.fallback_env_id
        single = gym.make(env_id, **kw)
    rng = np.random.default_rng(0)
    acts = rng.integers(1, 4, (cfg.steps, max(cfg.num_envs)))  # no STOP (0): keeps episodes running
    rows = []
    single.reset(seed=0)

    def step_single():
        for a in acts[:, 0]:
            _, _, term, trunc, _ = single.step(int(a))
            if term or trunc:
                single.reset()

    t = timeit(step_single, warmup=1, repeat=cfg.repeat)
    rows.append({"mode": "single env (gym.make)", "n": 1, "steps_per_s": cfg.steps / t.median})
    rows[-1]["iqr_rel"] = t.spread / t.median
    single.close()
    for n in cfg.num_envs:
        venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
        venv.reset(seed=0)

        def step_vec(venv=venv, n=n):
            for a in acts:
                venv.step(a[:n])

        t = timeit(step_vec, warmup=1, repeat=cfg.repeat)
        rows.append({"mode": "native vector env (make_vec)", "n": n, "steps_per_s": n * cfg.steps / t.median})
        rows[-1]["iqr_rel"] = t.spread / t.median
        venv.close()
    return {"env_id": env_id, "obs_mode": "rgbd+semantic" if semantic else "rgbd", "note": note, "rows": rows}


# --------------------------------------------------------------------------------------------- run


def _peer_args(name: str, cfg: Config) -> list[str]:
    """The worker's command-line arguments for peer ``name`` under ``cfg``."""
    if name == "miniworld":
        args = ["--env-ids", ",".join(cfg.miniworld_env_ids), "--resolution", str(cfg.resolution)]
        args += ["--vector-n", str(cfg.miniworld_vector_n), "--steps", str(cfg.miniworld_steps)]
        return args + ["--repeat", str(cfg.miniworld_repeat)]
    args = ["--env-id", cfg.peer_env_id, "--ns", ",".join(map(str, cfg.peer_num_envs))]
    args += ["--vector", ",".join(cfg.peer_vector), "--steps", str(cfg.peer_steps)]
    return args + ["--repeat", str(cfg.peer_repeat)]


def peer_baseline(name: str, res: dict[str, Any]) -> tuple[float | None, str]:
    """(single-env steps/s, env id) a peer's ratios are taken against; (None, "") when it has no single-env row.

    Memory Maze: its N=1 row. MiniWorld: the fastest single env among the ids measured (the comparison most
    favourable to MiniWorld).
    """
    singles = [r for r in (res or {}).get("rows", []) if r["n"] == 1]
    if not singles:
        return None, ""
    best = max(singles, key=lambda r: r["steps_per_s"]) if name == "miniworld" else singles[0]
    return best["steps_per_s"], best.get("env_id") or res.get("env_id", "")


def _top(ours: dict[str, Any] | None, n: int) -> float | None:
    """Our native vector env's agent-steps/s at N=n."""
    rows = (ours or {}).get("rows", [])
    return next((r["steps_per_s"] for r in rows if r["n"] == n and "vector" in r["mode"]), None)


def run(cfg: Config) -> dict[str, Any]:
    """Measures our env, then each peer in its venv, and writes the side-by-side table with ratios."""
    from chronotope.scripts.bench.common import print_table, write_results

    if cfg.quick:
        cfg.steps, cfg.repeat = min(cfg.steps, 10), min(cfg.repeat, 3)
        cfg.peer_num_envs = tuple(sorted({1, min(4, max(cfg.peer_num_envs))}))
        cfg.peer_steps, cfg.peer_repeat = min(cfg.peer_steps, 5), min(cfg.peer_repeat, 3)
        cfg.miniworld_steps, cfg.miniworld_repeat = min(cfg.miniworld_steps, 100), min(cfg.miniworld_repeat, 3)
        cfg.miniworld_vector_n = min(cfg.miniworld_vector_n, 4)
    load_start = os.getloadavg()[0]
    ours = _ours(cfg)
    ours_sem = _ours(cfg, semantic=True) if cfg.ours_semantic else None
    peers: dict[str, Any] = {}
    for name in cfg.peers:
        spec = PEERS[name]
        t0 = time.perf_counter()
        try:
            py = ensure_venv(spec, cfg.venv_root, cfg.install, cfg.timeout_s)
            peers[name] = run_worker(spec, py, _peer_args(name, cfg), cfg.timeout_s)
        except PeerUnavailable as e:
            peers[name] = {"error": str(e), "rows": [], "errors": {}}
        peers[name]["seconds"] = time.perf_counter() - t0
        print(f"[peers] {name}: {peers[name].get('error') or 'ok'} ({peers[name]['seconds']:.0f} s)", flush=True)

    bases = {name: peer_baseline(name, res) for name, res in peers.items()}
    table = []
    for o in (ours, ours_sem):
        for r in (o or {}).get("rows", []):
            ratios = [r["steps_per_s"] / b if b else "-" for b, _ in bases.values()]
            table.append([f"ours {o['env_id']} ({o['obs_mode']})", r["mode"], r["n"], r["steps_per_s"], *ratios])
    default_ids = {"memory-maze": cfg.peer_env_id, "miniworld": ",".join(cfg.miniworld_env_ids)}
    for name, res in peers.items():
        dash = ["-"] * len(bases)
        for r in res.get("rows", []):
            ratios = [r["steps_per_s"] / b if b else "-" for b, _ in bases.values()]
            label = f"{name} {r.get('env_id') or res.get('env_id', default_ids[name])} (rgb)"
            table.append([label, r["mode"], r["n"], r["steps_per_s"], *ratios])
        label = f"{name} {res.get('env_id') or default_ids[name]} (rgb)"
        if res.get("error"):
            table.append([label, f"ERROR: {res['error']}", "-", "-", *dash])
        for what, err in res.get("errors", {}).items():
            table.append([label, f"{what}: ERROR {err}", "-", "-", *dash])
    res_px = f"{cfg.resolution}x{cfg.resolution}"
    columns = ["system", "mode", "N", "agent-steps/s"]
    for n, (_, e) in bases.items():
        columns.append(f"x {PEER_TITLES[n]} single" + (f" ({e})" if n == "miniworld" and e else ""))
    names = " and ".join(PEER_TITLES[n] for n in cfg.peers) or "no peer"
    title = f"Env steps/s at {res_px}: ours vs {names} (each in its own venv), same machine, same run"
    md = print_table(title, columns, table)
    n_top = max(cfg.num_envs)
    top, top_sem = _top(ours, n_top), _top(ours_sem, n_top)
    headline: dict[str, Any] = {}
    lines = []
    mm_base = bases.get("memory-maze", (None, ""))[0]
    if "memory-maze" in peers:
        if mm_base and top:
            headline.update(ours_n=n_top, ours_over_memory_maze_single=top / mm_base, target=MEMORY_MAZE_TARGET)
            lines.append(
                f"ours N={n_top} batched / Memory Maze single-process: {top / mm_base:.1f}x "
                f"(target >= {MEMORY_MAZE_TARGET:.0f}x: {'met' if top / mm_base >= MEMORY_MAZE_TARGET else 'not met'})"
            )
        else:
            err = peers["memory-maze"].get("error") or "no single-env row"
            lines.append(f"ours N={n_top} / Memory Maze: not available ({err})")
    mw_base, mw_id = bases.get("miniworld", (None, ""))
    if "miniworld" in peers:
        if mw_base and top:
            ratio = top / mw_base
            headline.update(ours_n=n_top, ours_over_miniworld_single=ratio, miniworld_target=MINIWORLD_TARGET)
            headline.update(miniworld_env_id=mw_id, miniworld_single_steps_per_s=mw_base)
            headline["miniworld_met"] = ratio >= MINIWORLD_TARGET
            if top_sem:
                headline["ours_semantic_over_miniworld_single"] = top_sem / mw_base
            sem = f"; with semantics {top_sem / mw_base:.1f}x" if top_sem else ""
            met = "met" if ratio >= MINIWORLD_TARGET else "not met"
            lines.append(
                f"ours N={n_top} batched (rgbd) / MiniWorld single env ({mw_id}, the fastest id measured): "
                f"{ratio:.1f}x{sem} (target >= {MINIWORLD_TARGET:.0f}x: {met})"
            )
        else:
            err = peers["miniworld"].get("error") or "no single-env row"
            lines.append(f"ours N={n_top} / MiniWorld: not available ({err})")
    md += "".join(f"\n{ln}\n" for ln in lines)
    for o in (ours, ours_sem):
        if o and o["note"]:
            md += f"\nNote ({o['obs_mode']}): {o['note']}\n"
    for name, res in peers.items():
        if res.get("versions"):
            md += f"\n{PEER_TITLES[name]} venv: " + ", ".join(f"{k}=={v}" for k, v in res["versions"].items())
            md += f" (OpenGL renderer: {res['gl_renderer']})\n" if res.get("gl_renderer") else "\n"
    load = [load_start, os.getloadavg()[0]]
    md += f"\nLoad average (1 min) {load[0]:.1f} at start, {load[1]:.1f} at end, on {os.cpu_count()} cores.\n"
    how = {
        "memory-maze": "Memory Maze renders with MuJoCo's OpenGL (EGL) renderer",
        "miniworld": "MiniWorld with pyglet's OpenGL (headless, EGL), one context per env",
    }
    md += (
        "\nOurs renders RGB **and** depth (rgbd; no RGB-only mode exists; the rgbd+semantic rows add the "
        "instance-id image), the peers RGB only."
    )
    md += f" {', '.join(how[n] for n in peers)}; on CPU here (no GPU).\n" if peers else "\n"
    for ln in lines:
        print(ln)
    results = {"config": cfg, "ours": ours, "ours_semantic": ours_sem, "peers": peers, "headline": headline}
    results["load_avg_1min"] = load
    write_results("peers", results, md, cfg.out_dir)
    return results


def _memory_maze_reading(h: dict, mm: dict) -> str:
    if "ours_over_memory_maze_single" not in h:
        return f"Memory Maze was not measured: {mm.get('error') or mm.get('errors')}."
    base = next(x["steps_per_s"] for x in mm["rows"] if x["n"] == 1)
    s = (
        f"Memory Maze single env: {base:,.1f} steps/s; ours at N={h['ours_n']} batched: "
        f"{h['ours_over_memory_maze_single']:.1f}x that (target >= 50x: "
        f"{'met' if h['ours_over_memory_maze_single'] >= 50 else 'not met on this CPU'}). "
        "Each Memory Maze step runs 50 MuJoCo physics substeps (4 Hz control, 5 ms timestep) and renders its "
        "camera with OpenGL, in software on this GPU-less machine; ours moves agents kinematically on a grid and "
        "casts all cameras in one Embree call (and renders depth too). Its vector envs only spread the same per-env "
        "work over processes (2 cores here), so they gain little. Ours and Memory Maze were timed one after the "
        "other, so load changes between the two move this ratio."
    )
    if mm.get("errors"):
        s += f" Not measured: {'; '.join(f'{k}: {v}' for k, v in mm['errors'].items())}."
    return s


def _miniworld_reading(h: dict, mw: dict) -> str:
    if "ours_over_miniworld_single" not in h:
        return f"MiniWorld was not measured: {mw.get('error') or mw.get('errors')}."
    ratio, target = h["ours_over_miniworld_single"], h.get("miniworld_target", MINIWORLD_TARGET)
    s = (
        f"MiniWorld single env: {h['miniworld_single_steps_per_s']:,.0f} steps/s on {h['miniworld_env_id']} (the "
        f"fastest of the ids measured); ours at N={h['ours_n']} batched (rgbd): {ratio:.1f}x that (target >= "
        f"{target:.0f}x: {'met' if ratio >= target else 'not met'})"
    )
    if h.get("ours_semantic_over_miniworld_single") is not None:
        s += f", {h['ours_semantic_over_miniworld_single']:.1f}x with the semantic image as well"
    s += "."
    rows = mw.get("rows", [])
    others = [r for r in rows if r["n"] == 1 and r.get("env_id") != h["miniworld_env_id"]]
    if others:
        s += " Its other single envs: " + ", ".join(f"{r['env_id']} {r['steps_per_s']:,.0f}" for r in others) + "."
    vec = next((r for r in rows if r["n"] > 1), None)
    if vec:
        single = next((r["steps_per_s"] for r in rows if r["n"] == 1 and r.get("env_id") == vec.get("env_id")), None)
        rel = f" ({vec['steps_per_s'] / single:.2f}x its single env)" if single else ""
        s += (
            f" Its {vec['mode']} of N={vec['n']}: {vec['steps_per_s']:,.0f} steps/s{rel}: MiniWorld has no batched "
            "renderer, so a vector env renders each env's OpenGL frame in turn."
        )
    gl = f" ({mw['gl_renderer']})" if mw.get("gl_renderer") else ""
    s += (
        f" MiniWorld moves its agent kinematically like ours and rasterises each frame with OpenGL{gl}, one env at "
        "a time; ours casts all cameras of the batch in one Embree call and renders depth too. The two were timed "
        "one after the other, so load changes between them move this ratio."
    )
    if mw.get("errors"):
        s += f" Not measured: {'; '.join(f'{k}: {v}' for k, v in mw['errors'].items())}."
    return s


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: ours batched against each peer's single env, and why.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    h = result.get("headline") or {}
    peers = result.get("peers") or {}
    parts = []
    if "memory-maze" in peers or not peers:
        parts.append(_memory_maze_reading(h, peers.get("memory-maze") or {}))
    if "miniworld" in peers:
        parts.append(_miniworld_reading(h, peers["miniworld"]))
    return " ".join(parts)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        # Runs under a peer's python: prints tagged JSON lines on stdout (the last one is complete).
        result = WORKERS[sys.argv[2]](sys.argv[3:])
        print(PEER_JSON_TAG + json.dumps(result), flush=True)
    else:
        import tyro

        run(tyro.cli(Config))
