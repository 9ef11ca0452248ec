"""The benchmark suite: runs benchmark modules in turn, gathers their tables and writes the results page.

Each module (``scripts/bench/<name>.py``) already does its own warm-up and repeated timing and writes
``<out_dir>/<name>.json`` / ``.md``; the suite runs them with settings chosen here (``quick``: the modules' own
quick modes within a time budget each; ``tiny``: one timing of the smallest size, for the smoke test), records
the wall time of each, collects their JSON and Markdown, the machine and the load on it, checks the headline
targets, and writes ``<out_dir>/suite.json`` and, when asked, the Markdown results page (``docs/BENCHMARKS.md``).
Above a module's tables the page shows that module's ``reading(results) -> str``, prose generated from the numbers
and kept in the module next to the code that writes the JSON keys it reads.

A module that raises does not stop the suite: its error is recorded and shown on the page.

    chronotope bench all --quick --peers --out docs/BENCHMARKS.md
    python -m chronotope.scripts.bench.suite --quick --peers --out docs/BENCHMARKS.md
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Suite order: cheap, broad modules first so that a failure shows early.
ALL_MODULES: tuple[str, ...] = (
    "render", "nav", "memory", "maps", "splat", "robot", "train", "pixel_train", "dataset",
)  # fmt: skip

# Modules run only when named: peers (peer venvs created on first use; also added by --peers), learn (time to
# threshold: training runs of up to budget_s per learner and task, hours at its defaults) and memory_suite (the memory
# leaderboard: every core x every memory task trained by PPO; 1-2 h quick, hundreds of CPU-hours in full).
OPT_IN_MODULES: tuple[str, ...] = ("peers", "learn", "memory_suite")

# Seconds each module may take in quick mode on this 2-core machine when it is not shared; measured quick runs
# took (under a load average of ~7 on 2 cores) render 14 s, nav 54 s, memory 4 s, maps 112 s, splat 32 s,
# robot 24 s, train 6 s, peers 130 s of which ~110 s is the one-time venv creation. pixel_train's quick run (4 encoder
# cases x 2 updates of 4 envs x 16 rgbd steps, plus building 4 trainers) took 16 s under a load average of ~2.3.
# Adding MiniWorld to peers (quick: 100 steps x 3 repeats per id, SyncVectorEnv of 4) added its worker (10 s), its
# one-time venv (11 s) and our rgbd+semantic rows (~15 s) under a load average of ~3.4, hence peers' 190 s.
# The budgets sum to more than 10 minutes (735 s); a quick suite on an idle machine takes far less than its budgets.
QUICK_BUDGET_S: dict[str, float] = {
    "render": 45,
    "nav": 90,
    "memory": 20,
    "maps": 150,
    "splat": 45,
    "robot": 60,
    "train": 30,
    "pixel_train": 45,
    "dataset": 60,
    "peers": 190,
    "learn": 120,  # its quick run (3 tasks x 4 learners x 2 tiny updates and evaluations) took 40 s under load ~3.6
    "memory_suite": 3600,  # ~4,750 CPU-s in two processes (its Config docstring): the quick leaderboard's hour
}

# Overrides for quick mode, passed as module Config values. Every module's own quick mode already fits its
# budget, so none is shrunk further; peers keeps the batch sizes of the headline (N in {1, 16, 64}).
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {name: {} for name in (*ALL_MODULES, *OPT_IN_MODULES)}

# The smoke run: one timing of the smallest size of each module (quick=False so that the values given here
# are not replaced by a module's quick defaults). Optional comparisons that need slow builds are left out.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "render": {"sizes": (16,), "ns": (1,), "repeat": 1, "backends": ()},
    "nav": {
        "num_envs": (2,),
        "resolutions": (16,),
        "steps": 2,
        "repeat": 1,
        "sync": False,
        "backends": ("open3d",),
        "mujoco_gl": False,
    },  # fmt: skip
    "memory": {"lengths": (16,), "memories": ("hcam", "full_attention"), "repeat": 1, "number": 1},
    "maps": {
        "max_points": 10**4,
        "n_queries": 4,
        "open3d_max_points": 10**4,
        "ppo_num_envs": 2,
        "ppo_rollout_len": 4,
        "ppo_rounds": 1,
        "ppo_env_kwargs": '{"obs_mode": "depth", "num_scenes": 1, "resolution": [16, 16]}',
    },  # fmt: skip
    "splat": {"resolutions": (16,), "counts": (20,), "repeat": 1},
    "robot": {"n_worlds": (1,), "image_sizes": (), "env_steps": 2, "batch_env_steps": 1, "repeat": 1},
    "train": {
        "cases": ("ours-none", "sb3-ppo"),
        "num_envs": 2,
        "n_steps": 4,
        "epochs": 1,
        "minibatches": 1,
        "bptt_len": 4,
        "hidden": 8,
        "rounds": 1,
    },  # fmt: skip
    "pixel_train": {
        "cases": ("nature", "fused-small"),
        "num_envs": (2,),
        "rollout_len": 4,
        "bptt_len": 4,
        "epochs": 1,
        "minibatches": 1,
        "rounds": 1,
    },  # fmt: skip
    "peers": {
        "num_envs": (2,),
        "steps": 2,
        "repeat": 1,
        "resolution": 16,
        "peer_num_envs": (1,),
        "peer_vector": (),
        "miniworld_env_ids": ("MiniWorld-Hallway-v0",),
        "miniworld_vector_n": 0,
        "miniworld_steps": 2,
        "miniworld_repeat": 1,
    },  # fmt: skip
    "dataset": {
        "cases": ("chronotope/ObjectRecall-v0|state", "chronotope/CueRecallPick-v0|state"),
        "episodes": 2,
        "num_envs": 2,
        "num_scenes": 1,
    },  # fmt: skip
    # learn: its quick mode (the tiny recipe it sets has no Config fields) on MiniGrid, one learner of each side
    "learn": {"quick": True, "tasks": ("minigrid",), "learners": ("ours-gru", "recurrent-ppo")},
    # memory_suite: two cores on MiniGrid (analytic references) for two updates of 4 envs x 32 steps, in this process
    "memory_suite": {
        "cores": ("none", "gru"),
        "tasks": ("minigrid",),
        "seeds": (0,),
        "steps": 256,
        "num_envs": 4,
        "rollout_len": 32,
        "epochs": 1,
        "minibatches": 1,
        "eval_episodes": 4,
        "eval_num_envs": 4,
        "jobs": 1,
        "grid_dir": "runs/bench/memory_suite_tiny",
    },  # fmt: skip
}

# What each target means, where its value lives in a module's results, and which way it must go.
TARGETS: tuple[dict[str, Any], ...] = (
    {"id": "nav_over_raw", "module": "nav", "what": "nav env rgbd 64x64 N=64 / raw ray cast", "op": ">=", "goal": 0.7},
    {
        "id": "vs_memory_maze",
        "module": "peers",
        "what": "ours N=64 batched / Memory Maze single",
        "op": ">=",
        "goal": 50,
    },
    {
        "id": "vs_miniworld",
        "module": "peers",
        "what": "ours N=64 batched / MiniWorld fastest single env",
        "op": ">=",
        "goal": 4,
    },
    {"id": "ppo_vs_sb3", "module": "train", "what": "our PPO / SB3 PPO env steps/s", "op": ">=", "goal": 1.0},
    {
        "id": "pixel_ppo_speedup",
        "module": "pixel_train",
        "what": "fused-small / nature env steps/s at N=16",
        "op": ">=",
        "goal": 2.0,
    },
    {
        "id": "octree_vs_open3d",
        "module": "maps",
        "what": "octree insertion of 10^6 pts / Open3D",
        "op": ">=",
        "goal": 10,
    },
    {"id": "hcam_vs_full", "module": "memory", "what": "HCAM step / full attention at T=10^4", "op": "<=", "goal": 0.1},
    {
        "id": "maps_ppo_ratio",
        "module": "maps",
        "what": "PPO env steps/s with --wrappers occupancy,octree / without, N=16",
        "op": ">=",
        "goal": 0.7,
    },
)


def available_modules() -> tuple[str, ...]:
    """The benchmark modules present in this checkout (``train`` and ``peers`` are optional files)."""
    return tuple(m for m in ALL_MODULES if importlib.util.find_spec(f"chronotope.scripts.bench.{m}") is not None)


@dataclass
class Config:
    """Suite settings."""

    modules: tuple[str, ...] = ALL_MODULES
    """Benchmark modules to run, in order (names of ``scripts/bench/<name>.py``); missing optional ones are noted."""
    quick: bool = False
    """Each module's quick mode (the whole suite fits in 10 minutes on 2 idle cores)."""
    tiny: bool = False
    """Smoke run: one timing of the smallest size per module (used by the test; numbers mean nothing)."""
    peers: bool = False
    """Also run the peer comparison (creates ``runs/peers/<peer>`` virtual environments on first use)."""
    install_peers: bool = True
    """Create missing peer venvs; when False a missing venv is recorded as the peer's error."""
    out: str | None = None
    """Write the Markdown results page here (e.g. ``docs/BENCHMARKS.md``); None: only ``suite.json``."""
    out_dir: str = "runs/bench"
    """Where modules and the suite write their JSON / Markdown (nav always uses ``runs/bench``)."""
    command: str = ""
    """The command line recorded on the page (default: this process's own)."""
    page_only: bool = False
    """Measure nothing: re-render ``out`` from ``<out_dir>/suite.json`` (after editing a module's ``reading``)."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.modules if m not in (*ALL_MODULES, *OPT_IN_MODULES)]
        if unknown:
            raise ValueError(f"unknown benchmark module(s) {unknown!r}; known: {[*ALL_MODULES, *OPT_IN_MODULES]}")
        if self.quick and self.tiny:
            raise ValueError("quick and tiny are exclusive; got quick=True, tiny=True")


def module_config(name: str, cfg: Config):
    """The ``Config`` a module runs with under the suite's mode (fields a module lacks are not passed)."""
    mod = importlib.import_module(f"chronotope.scripts.bench.{name}")
    have = {f.name for f in fields(mod.Config)}
    kw: dict[str, Any] = {"quick": cfg.quick}
    if cfg.tiny:
        kw.update(TINY_OVERRIDES.get(name, {}))
    elif cfg.quick:
        kw.update(QUICK_OVERRIDES.get(name, {}))
    if name == "peers":
        kw["install"] = cfg.install_peers
    kw["out_dir"] = cfg.out_dir
    return mod, mod.Config(**{k: v for k, v in kw.items() if k in have})


def _read(path: Path, since: float) -> str | None:
    """A file's text if it was written after ``since`` (so a crashed module's stale results are not shown)."""
    try:
        return path.read_text() if path.stat().st_mtime >= since - 1 else None
    except OSError:
        return None


def run(cfg: Config) -> dict[str, Any]:
    """Runs every module, writes ``<out_dir>/suite.json`` (and ``cfg.out``), returns the suite record."""
    from chronotope.scripts.bench.common import machine_info

    if cfg.page_only:
        record = json.loads((Path(cfg.out_dir) / "suite.json").read_text())
        record["targets"] = check_targets(record["modules"])
        _write_page(record, cfg)
        return record
    present = available_modules()
    names = [m for m in cfg.modules if m in present or m in OPT_IN_MODULES]
    if cfg.peers and "peers" not in names:
        names.append("peers")
    missing = [m for m in cfg.modules if m not in names]
    mode = "tiny" if cfg.tiny else "quick" if cfg.quick else "full"
    record: dict[str, Any] = {
        "command": cfg.command or " ".join(["python -m chronotope.scripts.bench.suite", *sys.argv[1:]]),
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "load_start": os.getloadavg(),
        "missing": missing,
        "modules": {},
    }
    t_suite = time.perf_counter()
    for name in names:
        print(f"\n=== bench {name} ({mode}) ===", flush=True)
        t_wall, t0 = time.time(), time.perf_counter()
        entry: dict[str, Any] = {"ok": True, "error": None}
        try:
            mod, mcfg = module_config(name, cfg)
            mod.run(mcfg)
        except Exception as e:  # noqa: BLE001 - one module's failure is recorded; the others still run
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()[-3000:]
            print(f"[suite] {name} failed: {entry['error']}", flush=True)
        entry["seconds"] = time.perf_counter() - t0
        entry["load"] = os.getloadavg()[0]
        if mode == "quick" and name in QUICK_BUDGET_S:
            entry["budget_s"] = QUICK_BUDGET_S[name]
            entry["over_budget"] = entry["seconds"] > entry["budget_s"]
            if entry["over_budget"]:
                print(f"[suite] {name} took {entry['seconds']:.0f} s, over its {entry['budget_s']:.0f} s budget")
        quick = " --quick" if cfg.quick else ""
        entry["command"] = f"chronotope bench {name}{quick}"
        # nav has no out_dir and always writes runs/bench (relative to the working directory).
        for d in dict.fromkeys([Path(cfg.out_dir), Path("runs/bench")]):
            js = _read(d / f"{name}.json", t_wall)
            if js is not None:
                entry["results"] = json.loads(js)
                entry["markdown"] = _read(d / f"{name}.md", t_wall) or ""
                break
        else:
            if entry["ok"]:
                entry["ok"], entry["error"] = False, f"{name} wrote no {name}.json under {cfg.out_dir}"
        record["modules"][name] = entry
    record["total_s"] = time.perf_counter() - t_suite
    record["load_end"] = os.getloadavg()
    record["targets"] = check_targets(record["modules"])
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(record, indent=2, default=str))
    _write_page(record, cfg)
    failed = [n for n, e in record["modules"].items() if not e["ok"]]
    print(f"[suite] {len(names)} module(s) in {record['total_s']:.0f} s; failed: {failed or 'none'}")
    return record


def _write_page(record: dict[str, Any], cfg: Config) -> None:
    page = render_page(record)
    (Path(cfg.out_dir) / "suite.md").write_text(page)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(page)
        print(f"[suite] wrote {cfg.out}")


# --------------------------------------------------------------------------------------------- targets


def _target_value(tid: str, res: dict[str, Any]) -> tuple[float | None, str]:
    """(value, note) of one target from its module's results JSON; None when that run did not measure it."""
    if tid == "nav_over_raw":
        row = next((r for r in res.get("rows", []) if r["resolution"] == 64 and r["num_envs"] == 64), None)
        return (row["native_open3d"] / row["raw_cast"], res.get("config", {}).get("env_id", "")) if row else (None, "")
    if tid == "vs_memory_maze":
        h = res.get("headline") or {}
        err = (res.get("peers", {}).get("memory-maze") or {}).get("error")
        return h.get("ours_over_memory_maze_single"), err or res.get("ours", {}).get("env_id", "")
    if tid == "vs_miniworld":
        h = res.get("headline") or {}
        err = (res.get("peers", {}).get("miniworld") or {}).get("error")
        return h.get("ours_over_miniworld_single"), err or h.get("miniworld_env_id", "")
    if tid == "ppo_vs_sb3":
        return (res.get("cases", {}).get("ours-none") or {}).get("ratio"), ""
    if tid == "pixel_ppo_speedup":
        by_n = res.get("by_num_envs") or {}
        if "16" not in by_n:
            return None, f"N=16 not run (N={', '.join(by_n) or 'none'})"
        ratio = (by_n["16"].get("fused-small") or {}).get("ratio")
        return ratio, "" if ratio is not None else "fused-small or nature not run"
    if tid == "octree_vs_open3d":
        return res.get("speedup_vs_open3d_1e6"), ""
    if tid == "maps_ppo_ratio":
        n = (res.get("config") or {}).get("ppo_num_envs")
        if n is not None and n != 16:
            return None, f"N=16 not run (N={n})"
        return res.get("ppo_wrappers_ratio"), ""
    if tid == "hcam_vs_full":
        h = res.get("headline") or {}
        at = h.get("hcam_over_full_at_T")
        if at is not None and at != 10_000:
            return None, f"T=10^4 not run (largest T: {at:,})"
        return h.get("hcam_over_full"), ""
    raise ValueError(f"unknown target id {tid!r}")


def check_targets(modules: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each headline target with its measured value and whether it is met (None: not measured in this run)."""
    out = []
    for t in TARGETS:
        res = (modules.get(t["module"]) or {}).get("results")
        value, note = _target_value(t["id"], res) if res else (None, "module not run")
        met = None if value is None else (value >= t["goal"] if t["op"] == ">=" else value <= t["goal"])
        out.append({**t, "value": value, "met": met, "note": note})
    return out


# --------------------------------------------------------------------------------------------- the page

ANCHORS = """## Published anchors (not measured here)

For context only: these numbers come from the peers' papers and documentation, on their hardware, and were **not
measured on this machine or in this run**; they are not comparable one-to-one with the tables above.

| system | reported throughput | conditions |
|---|---|---|
| Habitat-Sim | 2,050 RGB-D frames/s | 128x128, 1 process, GPU (not measured here) |
| Habitat-Sim | ~10,000 RGB frames/s | multi-process, GPU (not measured here) |
| ManiSkill3 | 30,000+ RGBD frames/s | GPU-parallel simulation + rendering on an RTX 4090 (not measured here) |
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def module_reading(name: str) -> Callable[[dict[str, Any]], str] | None:
    """A module's ``reading(results) -> str``, the prose the page shows above its tables; None when the module is
    not in this checkout or gives no reading.

    Each module writes its reading next to the code that writes the JSON keys it reads, so that the two change
    together; the suite keeps no table of them.
    """
    if importlib.util.find_spec(f"chronotope.scripts.bench.{name}") is None:
        return None
    return getattr(importlib.import_module(f"chronotope.scripts.bench.{name}"), "reading", None)


def _demote(md: str) -> str:
    """Module tables use ``###`` titles; on the page they sit under a ``###`` module heading."""
    return "\n".join("#" + ln if ln.startswith("###") else ln for ln in md.splitlines())


def render_page(record: dict[str, Any]) -> str:
    """The Markdown results page of a suite record (``docs/BENCHMARKS.md``)."""
    m = record["machine"]
    cores = m.get("cores") or 1
    la0, la1 = record["load_start"][0], record["load_end"][0]
    # The suite itself keeps both cores busy, so only the load found before it started says "other jobs".
    busy = la0 > 0.5 * cores
    lines = [
        "# Benchmarks",
        "",
        f"Generated {record['started']} by `{record['command']}` ({record['mode']} mode, "
        f"{record['total_s'] / 60:.1f} min in all). Regenerate this page with that one command; raw results are in "
        "`runs/bench/*.json` and `runs/bench/suite.json`.",
        "",
        "**Headline figures are ratios against a baseline measured in the same run; absolute rates are context.**",
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu')}, {cores} cores; Python {m.get('python')}; torch {m.get('torch')} "
        f"({m.get('torch_threads')} torch threads in the suite process; memory, splat, train and pixel_train pin 1 "
        "thread)",
        f"- GPU: {m.get('cuda') or 'none (CPU only)'}",
        f"- Load average (1 min) at start {la0:.1f}, at end {la1:.1f}, on {cores} cores.",
    ]
    if busy:
        lines += [
            "",
            f"> **This run shared the machine with other jobs** (load averages up to "
            f"{max(la0, la1, *(e.get('load', 0.0) for e in record['modules'].values())):.1f} on {cores} cores): "
            "absolute numbers are depressed and noisy, and ratios between things timed at different moments carry "
            "that noise too. Re-run the command above on a quiet machine for publishable numbers.",
        ]
    lines += ["", "## Targets", "", "| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    for t in record["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['what']} | {t['op']} {t['goal']} | {_fmt(t['value'])} | {met} | {t['note']} |")
    lines += ["", "## Time per module", "", "| module | seconds | budget (quick) | status |", "|---|---|---|---|"]
    for name, e in record["modules"].items():
        status = ("ok" if e["ok"] else f"FAILED: {e['error']}") + (" (over budget)" if e.get("over_budget") else "")
        lines.append(
            f"| {name} | {e['seconds']:.0f} | {_fmt(e.get('budget_s')) if e.get('budget_s') else '-'} | {status} |"
        )
    if record["missing"]:
        lines.append(f"\nNot in this checkout, skipped: {', '.join(record['missing'])}.")
    for name, e in record["modules"].items():
        lines += ["", f"## {name}", "", f"Command: `{e['command']}` ({e['seconds']:.0f} s in this run)", ""]
        reading = module_reading(name)
        if e.get("results") and reading:
            try:
                lines += ["**Reading.** " + reading(e["results"]), ""]
            except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration) as err:
                lines += [f"(no reading: results lack {err!r})", ""]
        if not e["ok"]:
            lines += [f"**Failed:** `{e['error']}`", ""]
        lines.append(_demote(e.get("markdown", "")).strip())
    lines += ["", ANCHORS]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
