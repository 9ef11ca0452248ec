"""Peers measured side by side: Memory Maze (in its own virtual environment) vs our TargetSequence-v0.

Memory Maze pins ``gym==0.26.2`` and a ``dm_control`` that needs a particular MuJoCo, which conflict with our
environment; so the suite creates ``runs/peers/memory-maze`` (once, reused while its pins are unchanged) and runs
this same file there as a worker (``python peers.py --worker memory-maze ...``) that prints one JSON line. The
worker imports nothing from Chronotope except ``common.py`` (stdlib only at import time), loaded by file path.

Headline: our batched env's agent-steps/s at N=64 over Memory Maze's single-process steps/s, both with 64x64
images, measured in the same run (target >= 50x).

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
}


class PeerUnavailable(RuntimeError):
    """The peer's environment could not be created or its worker failed; the message is the exact error."""


@dataclass
class Config:
    """Peer comparison settings."""

    quick: bool = False
    """Fewer steps and repeats, and fewer sequential Memory Maze envs."""
    peers: tuple[str, ...] = ("memory-maze",)
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


WORKERS = {"memory-maze": _memory_maze_worker}


# --------------------------------------------------------------------------------------------- ours


def _ours(cfg: Config) -> dict[str, Any]:
    """Our env at ``cfg.resolution``: single gym.make env and the native vector env at each N (agent-steps/s)."""
    import gymnasium as gym
    import numpy as np

    import chronotope.envs  # noqa: F401
    from chronotope.scripts.bench.common import timeit

    kw = {"obs_mode": "rgbd", "resolution": (cfg.resolution, cfg.resolution), **cfg.extra}
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
    return {"env_id": env_id, "obs_mode": "rgbd", "note": note, "rows": rows}


# --------------------------------------------------------------------------------------------- run


def run(cfg: Config) -> dict[str, Any]:
    """Measures our env, then each peer in its venv, and writes the side-by-side table with ratios."""
    from chronotope.scripts.bench.common import print_table, write_results

    if cfg.quick:
        cfg.steps, cfg.repeat = min(cfg.steps, 10), min(cfg.repeat, 3)
        cfg.peer_num_envs = tuple(sorted({1, min(4, max(cfg.peer_num_envs))}))
        cfg.peer_steps, cfg.peer_repeat = min(cfg.peer_steps, 5), min(cfg.peer_repeat, 3)
    ours = _ours(cfg)
    peers: dict[str, Any] = {}
    for name in cfg.peers:
        spec = PEERS[name]
        t0 = time.perf_counter()
        try:
            py = ensure_venv(spec, cfg.venv_root, cfg.install, cfg.timeout_s)
            args = ["--env-id", cfg.peer_env_id, "--ns", ",".join(map(str, cfg.peer_num_envs))]
            args += ["--vector", ",".join(cfg.peer_vector), "--steps", str(cfg.peer_steps)]
            args += ["--repeat", str(cfg.peer_repeat)]
            peers[name] = run_worker(spec, py, args, cfg.timeout_s)
        except PeerUnavailable as e:
            peers[name] = {"error": str(e), "rows": [], "errors": {}}
        peers[name]["seconds"] = time.perf_counter() - t0
        print(f"[peers] {name}: {peers[name].get('error') or 'ok'} ({peers[name]['seconds']:.0f} s)", flush=True)

    mm = peers.get("memory-maze", {})
    base = next((r["steps_per_s"] for r in mm.get("rows", []) if r["n"] == 1), None)
    table = []
    for r in ours["rows"]:
        ratio = r["steps_per_s"] / base if base else "-"
        table.append([f"ours {ours['env_id']} ({ours['obs_mode']})", r["mode"], r["n"], r["steps_per_s"], ratio])
    for name, res in peers.items():
        label = f"{name} {res.get('env_id', cfg.peer_env_id)} (rgb)"
        for r in res.get("rows", []):
            ratio = r["steps_per_s"] / base if base else "-"
            table.append([label, r["mode"], r["n"], r["steps_per_s"], ratio])
        if res.get("error"):
            table.append([label, f"ERROR: {res['error']}", "-", "-", "-"])
        for what, err in res.get("errors", {}).items():
            table.append([label, f"{what}: ERROR {err}", "-", "-", "-"])
    res_px = f"{cfg.resolution}x{cfg.resolution}"
    md = print_table(
        f"Env steps/s at {res_px}: ours vs Memory Maze (its own venv), same machine, same run",
        ["system", "mode", "N", "agent-steps/s", "x Memory Maze single"],
        table,
    )
    headline: dict[str, Any] = {}
    n_top = max(cfg.num_envs)
    top = next((r["steps_per_s"] for r in ours["rows"] if r["n"] == n_top and "vector" in r["mode"]), None)
    if base and top:
        headline = {"ours_n": n_top, "ours_over_memory_maze_single": top / base, "target": 50.0}
        line = f"ours N={n_top} batched / Memory Maze single-process: {top / base:.1f}x (target >= 50x)"
    else:
        line = f"ours N={n_top} / Memory Maze: not available ({mm.get('error') or 'peer not measured'})"
    md += f"\n{line}\n"
    if ours["note"]:
        md += f"\nNote: {ours['note']}\n"
    versions = mm.get("versions")
    if versions:
        md += "\nMemory Maze venv: " + ", ".join(f"{k}=={v}" for k, v in versions.items()) + "\n"
    md += (
        "\nOurs renders RGB **and** depth (rgbd; no RGB-only mode exists), Memory Maze RGB only. "
        "Memory Maze renders with MuJoCo's OpenGL (EGL) renderer, on CPU here (no GPU).\n"
    )
    print(line)
    results = {"config": cfg, "ours": ours, "peers": peers, "headline": headline}
    write_results("peers", results, md, cfg.out_dir)
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: ours batched against a single Memory Maze env, and why.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    h = result.get("headline") or {}
    mm = (result.get("peers") or {}).get("memory-maze") or {}
    if not h:
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


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        # Runs under a peer's python: prints tagged JSON lines on stdout (the last one is complete).
        result = WORKERS[sys.argv[2]](sys.argv[3:])
        print(PEER_JSON_TAG + json.dumps(result), flush=True)
    else:
        import tyro

        run(tyro.cli(Config))
