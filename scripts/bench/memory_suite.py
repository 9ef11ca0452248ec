"""The memory leaderboard: every memory core x every memory task x seeds, trained by our sequence PPO with one recipe
per task, scored against the task's memoryless bound and its perfect-memory oracle.

**Grid.** Cores (``--cores``; default every core registered with :func:`chronotope.memory.make_memory` that passes a
forward / backward check through the memory interface the PPO trainer uses; a core that fails it is listed as
skipped with the error). Tasks (``--tasks``; default every memory task at run time): the default setting of every
task of :mod:`chronotope.scripts.experiments.memory_demand` whose env id is registered (the nav tasks ObjectRecall,
Ballet and TargetSequence in ``state`` mode, the arm tasks CueRecallPick, CountPress and any other arm memory task
given a memory-demand setting, e.g. ButtonSequence and ColourSequence), plus one external Gymnasium memory env,
``MiniGrid-MemoryS7-v0`` (when the ``minigrid`` package is installed).

**One recipe per task**, tuned once on the GRU and the same for every core: a task with a preset of
:mod:`chronotope.scripts.experiments.memory_rl` of its name takes it (ObjectRecall and Ballet: their auxiliary loss
and readout included, 600k steps; TargetSequence likewise, 500k steps; the arm's WhereHidden, ShellGame,
PairRecall, ColourSequence and ButtonSequence: the approach shaping, their labels and readouts, 300k steps,
PairRecall 600k), MiniGrid the recipe of :mod:`chronotope.scripts.experiments.minigrid_memory` (16 envs, rollout =
bptt 128, 10 epochs x 8 minibatches, 300k steps; its default 7x7 view). CueRecallPick keeps its default answer (a
lift) here, so its preset (``cuerecalltouch``, answered by a touch) is not its recipe. The others (the remaining arm
tasks) get the plain recipe of :func:`untuned_recipe` (state observations, the trainer's PPO defaults in the shape
of memory_rl's: 32 envs, rollout = bptt 128, 8 epochs x 4 minibatches, no auxiliary loss, 600k steps), marked *not
tuned* on the page.
Memory configs (:data:`MEMORY_CFGS`): each core's small CPU defaults, its width set to 128 (the GRU's) where the
core has one width knob; HCAM takes the presets' config; Janus keeps its defaults (policy width 64: one update of
the recipe already takes ~350 CPU-s at 64).

**A cell** (task, core, seed): train with :class:`~chronotope.agents.ppo.trainer.PPOTrainer` (one torch thread on
the CPU), then evaluate with :func:`chronotope.agents.evaluate.evaluate` on the same seeded episodes for every core
(episode k reset with ``eval_seed + k``; sampled actions, the training-time rule, unless ``--greedy``). Its value is
the task's measure: ``success`` (ObjectRecall, Ballet, arm tasks), ``score`` (TargetSequence: targets reached per
episode) or the success rate ``return > 0`` (MiniGrid). **Normalised score** = (value - memoryless bound) / (perfect -
memoryless bound): 0 is what a policy without memory can reach, 1 perfect memory. The references come from
:func:`chronotope.scripts.experiments.memory_demand.measure` at the training env kwargs (random, memoryless bound,
perfect-memory oracle; the bound is the larger of the measured memoryless policy and an analytic value where the task
gives one), measured once per task and cached in ``<grid_dir>/references.json``. MiniGrid has no oracle here: its
bound is the analytic 0.5 (a policy that does not recall the cue picks the matching object at the split by a coin
flip, docs/RESULTS.md 1a) and perfect is 1.0. The 7x7 view of the recipe lets a *sampling* reactive policy beat
that coin flip (``none`` reached 0.705 and 0.895 on two of three seeds in RESULTS 1a; its greedy actions stayed at
0.47-0.51), so on MiniGrid the ``none`` row of the same table is the empirical memoryless level, and a core uses
memory there only where it beats ``none``. Each cell also reports training env steps/s and the core's state bytes
per env (from ``initial_state``, and after 100 steps for cores whose state grows).

**Resumable.** Runs live in ``<grid_dir>/runs/<task>/<core>-s<seed>``; a finished cell's result is written atomically
to ``<grid_dir>/cells/<task>/<core>-s<seed>.json``. A rerun skips finished cells and continues unfinished runs from
their checkpoints (the trainer checkpoints every 10 updates and every 10 minutes); a cell or run made with another
recipe or evaluation is refused (use another ``--grid-dir``). Several processes may share one grid folder with
disjoint ``--cores`` / ``--tasks`` / ``--seeds``; ``--report`` only writes the page from the cells found (a cell
made with an earlier recipe of its task is left out and counted on the page; an option added to the trainer since
a cell was made counts at its default).

**Output**: ``--out`` (default ``<grid_dir>/LEADERBOARD.md``) with the core x task table (mean normalised score ± 95%
CI over seeds where >= 2, seeds count), env steps/s and state bytes columns, a heat map and per-task learning curves
(PNG files in ``<out folder>/<out stem, lower case>/``), a generated reading, the command and the CPU-hours of the
cells; cells not run are marked "not run". ``<out_dir>/memory_suite.json`` / ``.md`` are the suite's record.

**Cost.** Measured CPU seconds per 1,000 training env steps of the recipes (one update, one torch thread, on this
machine's Xeon cores under a load of ~4 on 2 cores; Ballet, whose per-step cost is about the median task's): none
0.5, lru 1.0, lstm 1.0, gru 1.1, ffm 1.2, mingru 1.3, hcam 1.4, trxl 1.4, full_attention 1.5, s6 4.0, titans 5.6,
memoryvla 14.9, sat 17.1, janus 85 (5.7 GB resident). Per task, for the GRU: ObjectRecall ~1.9x Ballet,
TargetSequence ~1.8x, MiniGrid ~2.1x (~2.3x for the heavy cores: 10 x 8 epochs over 2,048 steps; sat 35), the arm
tasks 1.1-1.9x. Over the 13 tasks registered when this was written (7 nav / arm tasks named above, RestorePlace,
WhereHidden, MultiCueTouch, PairRecall, ShellGame and MiniGrid) that is ~860 CPU-s per 1,000 steps for the 13 cores
other than Janus, ~1,100 for each Janus core. **Full grid** (15 cores x 13 tasks x 3 seeds at the recipes' budgets,
600k steps, MiniGrid 300k): ~1,700 CPU-hours, ~1,300 of them the two Janus cores (~400 without them). **The issue's
full 3-seed ObjectRecall and Ballet columns**: ~60 CPU-hours without the Janus pair, ~260 with it. The page of a run
states the CPU-hours its cells took and extrapolates the full budget of the pairs it ran from their measured CPU per
step.

    chronotope bench memory-suite --quick                                              # 1-2 h on 2 idle cores
    python -m chronotope.scripts.bench.memory_suite --tasks objectrecall ballet        # the full 3-seed columns
    python -m chronotope.scripts.bench.memory_suite                                    # the full grid, 3 seeds
    python -m chronotope.scripts.bench.memory_suite --report --out docs/LEADERBOARD.md # the page only
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from chronotope.agents.runs import atomic_write_text
from chronotope.scripts.bench.common import machine_info, quick_settings, write_results

UNTUNED_STEPS = 600_000
"""Step budget of the tasks without a tuned recipe (the memory_rl presets')."""

MEMORY_CFGS: dict[str, dict[str, Any]] = {
    "hcam": {"hidden_size": 128, "num_heads": 4, "chunk_size": 4},  # the memory_rl / minigrid_memory presets'
    "trxl": {"hidden_size": 128},
    "full_attention": {"hidden_size": 128},
    "s6": {"hidden_size": 128},
    "titans": {"hidden_size": 128},
    "sat": {"hidden_size": 128, "head_dim": 64, "mlp_size": 128},  # 2 heads x 64: the released code's width
}
"""Memory config per core (a core not named here: its defaults, which are 128 wide for gru, lstm, lru, mingru, ffm
and memoryvla, 64 for janus and janus_reencode)."""

QUICK_NOT_RUN: dict[str, str] = {
    "janus": "one update of the recipe (4,096 steps) took 347 CPU-s and 5.7 GB on Ballet: one update per task would "
    "outlast the quick hour alone",
    "janus_reencode": "as costly as janus (one Ballet update ran > 6 min at 5.8 GB): left out of the quick hour",
}
"""Cores left out of ``--quick`` by default (with the measured reason); name them in ``--cores`` to run them."""

COST_HINT: dict[str, float] = {
    "none": 0.5, "lru": 1.0, "lstm": 1.0, "gru": 1.1, "ffm": 1.2, "mingru": 1.3, "hcam": 1.4, "trxl": 1.4,
    "full_attention": 1.5, "s6": 4.0, "titans": 5.6, "memoryvla": 14.9, "sat": 17.1, "janus": 85.0,
    "janus_reencode": 85.0,
}  # fmt: skip
"""CPU seconds per 1,000 Ballet training steps measured for each core (module docstring); cells are started
heaviest first so that parallel jobs end together."""

FAMILIES: dict[str, str] = {
    "none": "memoryless",
    "gru": "gated RNN",
    "lstm": "gated RNN",
    "mingru": "gated RNN",
    "lru": "linear recurrence / SSM",
    "s6": "linear recurrence / SSM",
    "ffm": "linear recurrence / SSM",
    "trxl": "attention over the past",
    "full_attention": "attention over the past",
    "hcam": "episodic memory bank",
    "sat": "episodic memory bank",
    "memoryvla": "episodic memory bank",
    "janus": "episodic memory bank",
    "janus_reencode": "episodic memory bank",
    "titans": "test-time-learned memory",
}
"""Family of each core, for the reading (a core not named: "other")."""

MEMORY_TYPES: dict[str, str] = {
    "objectrecall": "object",
    "cuerecallpick": "object",
    "minigrid": "external (cue object)",
    "ballet": "sequence",
    "buttonsequence": "sequence",
    "coloursequence": "sequence",
    "targetsequence": "spatial",
    "countpress": "counting",
    "restoreplace": "spatial",
    "wherehidden": "spatial",
    "multicuetouch": "capacity",
    "pairrecall": "capacity",
    "shellgame": "object",
}
"""What each task asks the memory to keep (the type its task sheet names); a task not named here is "other"."""

MINIGRID_ENV = "MiniGrid-MemoryS7-v0"
MINIGRID_REFS = {"bound": 0.5, "perfect": 1.0, "source": "analytic: coin flip at the split without the cue"}


@dataclass(frozen=True)
class Task:
    """One column of the leaderboard."""

    name: str
    """Lower-case task name (``objectrecall``, ``minigrid``, ...)."""
    env: str
    env_kwargs: dict[str, Any]
    """Training (and evaluation) env kwargs."""
    metric: str
    """``success``, ``score`` or ``return>0`` (the success rate of a positive episode return)."""
    tuned: bool
    """Whether the recipe was tuned (on the GRU) for this task."""
    recipe: str
    """Where the recipe comes from."""
    setting: Any = None
    """The :class:`~chronotope.scripts.experiments.memory_demand.Setting` measuring the references (None: MiniGrid)."""
    eval_scale: float = 1.0
    """Fraction of ``eval_episodes`` evaluated (a setting of long episodes, e.g. 1,000 steps: its ``episode_scale``)."""
    mtype: str = "other"
    """What the memory must keep (object, sequence, spatial, counting, ...; :data:`MEMORY_TYPES`)."""


def discover_tasks() -> dict[str, Task]:
    """Every memory task registered now (see the module docstring), in memory-demand order, MiniGrid last."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401 - registers the chronotope ids (the arm ones too)
    from chronotope.scripts.experiments import memory_demand, memory_rl, minigrid_memory

    tasks: dict[str, Task] = {}
    for s in memory_demand.SETTINGS:
        name = s.task.lower()
        if s.knob != "defaults" or s.env_id not in gym.registry or name in tasks:
            continue
        preset = memory_rl.PRESETS.get(name)
        if preset is not None and preset.get("tuned", True):
            kw = dict(preset["env_kwargs"])
            tuned, recipe = True, f"scripts/experiments/memory_rl preset {name!r}"
        else:
            kw = {"obs_mode": "state", **s.kwargs} if s.family == "nav" else dict(s.kwargs)
            tuned, recipe = False, "untuned plain recipe (UNTUNED_RECIPE)"
        setting = replace(s, kwargs={**s.kwargs, **{k: v for k, v in kw.items() if k != "obs_mode"}})
        scale = s.episode_scale if s.episode_scale < 0.25 else 1.0  # only the long episodes are evaluated fewer
        mtype = MEMORY_TYPES.get(name, "other")
        tasks[name] = Task(name, s.env_id, kw, s.metric, tuned, recipe, setting, scale, mtype)
    if importlib.util.find_spec("minigrid") is not None:
        mg = minigrid_memory.Config()
        kw = json.loads(mg.env_kwargs)
        recipe = "scripts/experiments/minigrid_memory"
        tasks["minigrid"] = Task("minigrid", mg.env, kw, "return>0", True, recipe, mtype=MEMORY_TYPES["minigrid"])
    return tasks


def untuned_recipe() -> dict[str, Any]:
    """memory_rl's recipe shape without its task-specific auxiliary loss: 32 envs, rollout = bptt 128, 8 epochs x 4
    minibatches, replay "gradient"; every other setting the trainer's default."""
    from chronotope.scripts.experiments import memory_rl

    return {k: v for k, v in memory_rl._RECIPE.items() if k != "aux_key"}


@dataclass
class Config:
    """The memory leaderboard (see the module docstring).

    ``--quick`` runs 1 seed x 4,096 training steps per cell (one update of the 4,096-step recipes, two of MiniGrid's
    2,048), 16 evaluation and 16 reference episodes, every core but the Janus pair (:data:`QUICK_NOT_RUN`), two cells
    at a time. Estimate for the 13 tasks x 13 cores registered when it was sized: **~45 min on this machine's 2 cores
    when idle**, ~4,750 CPU-s: the cores' training CPU per step summed over the tasks (~860 CPU-s per 1,000 steps,
    from one update of every core timed on Ballet, of sat and memoryvla on MiniGrid, of the GRU on every task) x
    4,096, plus ~1,000 CPU-s of env building and evaluation (~6 CPU-s per cell, from 13 quick cells timed end to end:
    gru on 9 tasks, sat and gru on CountPress and MiniGrid), ~170 of references (TargetSequence's alone 90) and ~70
    of core checks. The timings were taken under a load of ~4 on the 2 cores; a shared machine takes about twice as
    long. Every task or core registered later adds its share. Measured since: a first quick run on the idle 2 cores
    (2026-12-02; cells heaviest first) trained 22 of 169 cells in 13.5 min, so the whole grid takes longer than that
    estimate, on the order of 1-2 hours.
    """

    quick: bool = False
    """1 seed, 4,096 steps per cell, 16 evaluation and reference episodes, no Janus (see the class docstring)."""
    cores: tuple[str, ...] = ()
    """Memory cores to train (empty: every registered core that fits the trainer; quick: less QUICK_NOT_RUN)."""
    tasks: tuple[str, ...] = ()
    """Tasks to train (empty: every memory task found; names as ``objectrecall``, ``countpress``, ``minigrid``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (quick: 0)."""
    steps: int = 0
    """Training env steps per cell (0: each recipe's own, 300k-600k) (quick: 4096)."""
    num_envs: int = 0
    """Override of the recipes' envs per update (0: the recipe's)."""
    rollout_len: int = 0
    """Override of the recipes' rollout length (0: the recipe's; the training sequences are cut to it)."""
    epochs: int = 0
    """Override of the recipes' PPO epochs (0: the recipe's)."""
    minibatches: int = 0
    """Override of the recipes' minibatches per epoch (0: the recipe's)."""
    eval_episodes: int = 200
    """Evaluation episodes per cell (fewer for long episodes, at least ``eval_num_envs``) (quick: 16)."""
    eval_num_envs: int = 16
    """Environments stepped together in an evaluation."""
    eval_seed: int = 10_000
    """Evaluation episode k is reset with ``eval_seed + k`` (the same episodes for every core and seed)."""
    greedy: bool = False
    """Evaluate greedy actions instead of sampling (the training-time rule, which the score uses by default)."""
    reference_episodes: int = 200
    """Episodes per reference policy, scaled as ``chronotope memory-demand`` scales them (quick: 16)."""
    jobs: int = 2
    """Cells trained at once, each in its own process with one torch thread (1: in this process, one at a time;
    a Janus cell holds ~6 GB)."""
    grid_dir: str = ""
    """Runs, cells, references and figures ("": runs/memory_suite, or runs/memory_suite_quick with --quick)."""
    out: str | None = None
    """The leaderboard Markdown (None: ``<grid_dir>/LEADERBOARD.md``); figures go to ``<its folder>/<its stem>/``."""
    out_dir: str = "runs/bench"
    """Where the suite's record ``memory_suite.json`` / ``.md`` is written."""
    report: bool = False
    """Train nothing: write the page from the cells in ``grid_dir``."""
    command: str = ""
    """The command recorded on the page (default: this process's own)."""

    def resolved(self) -> Config:
        """The effective settings (``quick`` fills the defaults it names; an empty ``grid_dir`` gets its folder)."""
        cfg = self
        if self.quick:
            pick = {"seeds": (0,), "steps": 4096, "eval_episodes": 16, "reference_episodes": 16}
            cfg = quick_settings(self, pick)
        if not cfg.grid_dir:
            cfg = replace(cfg, grid_dir="runs/memory_suite_quick" if cfg.quick else "runs/memory_suite")
        return cfg

    def validate(self) -> None:
        for k in ("eval_episodes", "eval_num_envs", "reference_episodes", "jobs"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)!r}")
        for k in ("steps", "num_envs", "rollout_len", "epochs", "minibatches"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0 (0: the recipe's), got {getattr(self, k)!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")

    @property
    def grid(self) -> Path:
        return Path(self.grid_dir)

    def page_path(self) -> Path:
        return Path(self.out) if self.out else self.grid / "LEADERBOARD.md"


# --------------------------------------------------------------------------------------------- scores


def normalised_score(value: float, bound: float, perfect: float) -> float:
    """(value - bound) / (perfect - bound): 0 at the memoryless bound, 1 at perfect memory; nan without demand."""
    gap = perfect - bound
    return float((value - bound) / gap) if gap > 0 else float("nan")


def aggregate(scores: list[float]) -> dict[str, float]:
    """Mean, std, 95% CI half-width (Student t over seeds; nan below 2) and n of a cell's per-seed scores."""
    from chronotope.agents.stats import summarize

    return summarize(scores)


def format_score(agg: dict[str, float] | None) -> str:
    """``0.42 ± 0.10 (3)`` (95% CI over 3 seeds), ``0.42 (1)`` for one seed, ``not run`` for none."""
    if not agg or not agg.get("n"):
        return "not run"
    ci = f" ± {agg['ci95']:.2f}" if agg["n"] >= 2 and math.isfinite(agg["ci95"]) else ""
    return f"{agg['mean']:.2f}{ci} ({agg['n']})"


# --------------------------------------------------------------------------------------------- references and cores


def _atomic_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


def reference_episodes(cfg: Config, task: Task) -> int:
    """Episodes per reference policy: ``reference_episodes`` scaled down for long episodes as memory-demand scales
    them (at least 16 when ``reference_episodes`` is)."""
    return max(min(16, cfg.reference_episodes), int(round(cfg.reference_episodes * task.setting.episode_scale)))


def reference_key(cfg: Config, task: Task) -> dict[str, Any]:
    """What a cached reference row must have been measured at: env kwargs, episodes and seed."""
    return {"kwargs": task.setting.kwargs, "episodes": reference_episodes(cfg, task), "seed": cfg.eval_seed}


def cached_reference(cfg: Config, task: Task) -> dict[str, Any] | None:
    """The task's references: MiniGrid's analytic ones, else the row cached in ``<grid>/references.json`` when it was
    measured at :func:`reference_key` (None: not measured yet)."""
    if task.setting is None:
        return {"metric": "success", **MINIGRID_REFS}
    path = cfg.grid / "references.json"
    hit = (json.loads(path.read_text()) if path.is_file() else {}).get(task.name)
    return hit if hit is not None and all(hit.get(k) == v for k, v in reference_key(cfg, task).items()) else None


def measure_references(cfg: Config, task: Task) -> dict[str, Any]:
    """The task's random / memoryless bound / perfect values of its measure, by
    :func:`~chronotope.scripts.experiments.memory_demand.measure` on the same episodes (the bound is the larger of
    the memoryless policy's value and the task's analytic one, where it gives one)."""
    from chronotope.scripts.experiments.memory_demand import measure

    t0, c0 = time.perf_counter(), time.process_time()
    key = reference_key(cfg, task)
    row: dict[str, Any] = {**key, "metric": task.setting.metric}
    for policy in ("random", "memoryless", "perfect"):
        r = measure(task.setting, policy, key["episodes"], min(16, key["episodes"]), seed=cfg.eval_seed)
        row[policy] = float(r[task.setting.metric])
        if policy == "memoryless" and r.get("analytic_bound") is not None:
            row["analytic_bound"] = float(r["analytic_bound"])
    row["bound"] = max(row["memoryless"], row.get("analytic_bound", -math.inf))
    row["source"] = "measured: chronotope.scripts.experiments.memory_demand.measure"
    row["seconds"], row["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return row


def store_reference(cfg: Config, name: str, row: dict[str, Any]) -> None:
    """Adds a task's references to ``<grid>/references.json`` (written by the main process only)."""
    path = cfg.grid / "references.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    cached[name] = row
    _atomic_json(path, cached)


def check_core(core: str, hidden: int = 128) -> str | None:
    """None when ``core`` works through the interface our PPO trainer uses (built at its config on ``hidden``
    features, a [2, 4] sequence with episode starts forward and backward, outputs of ``output_size``); else why not."""
    import torch

    from chronotope.memory import make_memory

    try:
        m = make_memory(core, input_size=hidden, **MEMORY_CFGS.get(core, {}))
        x = torch.randn(2, 4, hidden, requires_grad=True)
        starts = torch.zeros(2, 4, dtype=torch.bool)
        starts[:, 0] = starts[1, 2] = True
        y, _ = m(x, m.initial_state(2, "cpu"), starts)
        if tuple(y.shape) != (2, 4, m.output_size):
            return f"output shape {tuple(y.shape)} != (2, 4, output_size {m.output_size})"
        y.square().mean().backward()
    except Exception as e:  # noqa: BLE001 - the reason a core cannot be trained is the result
        return f"{type(e).__name__}: {e}"
    return None


def core_profile(core: str, hidden: int = 128, steps: int = 100) -> dict[str, Any]:
    """Parameters and state bytes per env of ``core`` at its leaderboard config: from ``initial_state`` and after
    ``steps`` steps of one sequence (bounded cores stay the same; a growing cache shows)."""
    import torch

    from chronotope.memory import make_memory, state_nbytes

    torch.manual_seed(0)
    m = make_memory(core, input_size=hidden, **MEMORY_CFGS.get(core, {})).eval()
    state = m.initial_state(1, "cpu")
    b0 = state_nbytes(state)
    with torch.no_grad():
        _, state = m(torch.randn(1, steps, hidden), state, torch.zeros(1, steps, dtype=torch.bool))
    return {
        "params": sum(p.numel() for p in m.parameters()),
        "output_size": m.output_size,
        "state_bytes": b0,
        "state_bytes_after": state_nbytes(state),
        "after_steps": steps,
    }


def core_profiles(cfg: Config, cores: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`core_profile` of every core, cached in ``<grid>/cores.json`` (keyed by core and its config)."""
    path = cfg.grid / "cores.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    out = {}
    for core in cores:
        mem_cfg = MEMORY_CFGS.get(core, {})
        hit = cached.get(core)
        if hit is None or hit.get("memory_cfg") != mem_cfg:
            hit = cached[core] = {"memory_cfg": mem_cfg, **core_profile(core)}
            _atomic_json(path, cached)
        out[core] = hit
    return out


# --------------------------------------------------------------------------------------------- one cell


def train_config(cfg: Config, task: Task, core: str, seed: int):
    """The :class:`~chronotope.agents.config.TrainConfig` of one cell: the task's recipe, the core and its memory
    config, ``cfg``'s overrides, one torch thread on the CPU, its run folder under the grid."""
    from chronotope.agents.config import TrainConfig
    from chronotope.scripts.experiments import memory_rl, minigrid_memory

    if task.name == "minigrid":
        tc = minigrid_memory.train_config(minigrid_memory.Config(), "gru", seed)
    elif task.tuned:
        tc = memory_rl.train_config(memory_rl.Config(task=task.name), "gru", seed)
    else:
        kw = json.dumps(task.env_kwargs)
        tc = TrainConfig(env=task.env, algo="ppo", seed=seed, steps=UNTUNED_STEPS, env_kwargs=kw, **untuned_recipe())
    over: dict[str, Any] = {
        "agent": core,
        "memory_cfg": json.dumps(MEMORY_CFGS.get(core, {})),
        "name": f"{core}-s{seed}",
        "out_dir": cfg.grid / "runs" / task.name,
        "device": "cpu",
        "torch_threads": 1,
        "progress": False,
    }
    for k in ("steps", "num_envs", "rollout_len", "epochs", "minibatches"):
        if getattr(cfg, k):
            over[k] = getattr(cfg, k)
    if cfg.rollout_len:
        over["bptt_len"] = min(tc.bptt_len, cfg.rollout_len)
        if tc.bptt_overlap is not None:
            over["bptt_overlap"] = min(tc.bptt_overlap, cfg.rollout_len)
    return replace(tc, **over)


_VOLATILE = ("out_dir", "name", "resume", "overwrite", "progress")


def _recipe_key(tc) -> dict[str, Any]:
    """What must match for a run or cell to be reused: the train config without where it lives."""
    return {k: v for k, v in tc.to_dict().items() if k not in _VOLATILE}


def _eval_key(cfg: Config, task: Task) -> dict[str, Any]:
    return {"episodes": eval_episodes(cfg, task), "seed": cfg.eval_seed, "greedy": cfg.greedy}


def eval_episodes(cfg: Config, task: Task) -> int:
    return max(cfg.eval_num_envs, int(round(cfg.eval_episodes * task.eval_scale)))


def cell_path(cfg: Config, task: str, core: str, seed: int) -> Path:
    return cfg.grid / "cells" / task / f"{core}-s{seed}.json"


def _train_defaults() -> dict[str, Any]:
    from chronotope.agents.config import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ, a key missing on one side counting as the trainer's default (an option added
    since a cell was made, at its default, changes nothing)."""
    d = _train_defaults()
    return sorted(k for k in set(a) | set(b) if a.get(k, d.get(k)) != b.get(k, d.get(k)))


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    d = _train_defaults()
    return ", ".join(f"{k}: {a.get(k, d.get(k))!r} there vs {b.get(k, d.get(k))!r} now" for k in _differing(a, b)[:4])


def stale_field(cfg: Config, task: Task, core: str, seed: int, cell: dict[str, Any]) -> tuple[str, str] | None:
    """(field, differences) where a cell was made with another recipe or evaluation than ``cfg`` asks for now (the
    task's recipe changed since, say); None when it matches."""
    want = {"recipe": _recipe_key(train_config(cfg, task, core, seed)), "eval": _eval_key(cfg, task)}
    for k, v in want.items():
        if _differing(cell[k], v):
            return k, _differences(cell[k], v)
    return None


def load_cell(cfg: Config, task: Task, core: str, seed: int) -> dict[str, Any] | None:
    """The finished cell's result, None when it has not finished; a ValueError when it was made with another
    recipe or evaluation than ``cfg`` asks for."""
    path = cell_path(cfg, task.name, core, seed)
    if not path.is_file():
        return None
    cell = json.loads(path.read_text())
    stale = stale_field(cfg, task, core, seed, cell)
    if stale is not None:
        raise ValueError(f"cell {str(path)!r} was made with another {stale[0]} ({stale[1]}): use another "
                         "--grid-dir or remove it")  # fmt: skip
    return cell


def training_curve(run: Path, metric: str) -> dict[str, Any]:
    """Training success / score / return (mean of the last 100 finished episodes) against env steps, from the
    run's log; the key used is ``metric`` where logged, else ``return``."""
    path = run / "progress.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    key = metric if any(metric in r for r in rows) else "return"
    pts = [(r["step"], r[key]) for r in rows if key in r]
    return {"metric": key, "steps": [p[0] for p in pts], "values": [float(p[1]) for p in pts]}


def run_cell(cfg: Config, task: Task, core: str, seed: int, refs: dict[str, Any]) -> dict[str, Any]:
    """Trains (or continues, or skips) one cell and evaluates it; writes and returns its result."""
    done = load_cell(cfg, task, core, seed)
    if done is not None:
        return done
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.ppo.trainer import PPOTrainer
    from chronotope.scripts.experiments.memory_rl import training_seconds

    tc = train_config(cfg, task, core, seed)
    run = tc.run_dir()
    ckpt = run / "checkpoint.pt"
    if ckpt.is_file():
        there = _recipe_key(TrainConfig.from_dict(json.loads((run / "config.json").read_text())))
        if _differing(there, _recipe_key(tc)):
            raise ValueError(f"run {str(run)!r} was made with another recipe ({_differences(there, _recipe_key(tc))}): "
                             "use another --grid-dir or remove it")  # fmt: skip
    elif run.exists():  # died before its first checkpoint: its log would be appended to
        shutil.rmtree(run)
    t_cell = time.perf_counter()
    trainer = PPOTrainer(tc)
    resumed_at, before_s = None, 0.0
    if ckpt.is_file():
        trainer.restore(ckpt)
        resumed_at = trainer.global_step
        before_s = training_seconds(run) or 0.0  # the log is cut back to the checkpoint: earlier sessions' time
    c0 = time.process_time()
    if trainer.update < trainer.num_updates:
        trainer.train()
    train_cpu = time.process_time() - c0 + before_s  # earlier sessions counted at their (1-thread) wall time
    steps = trainer.global_step
    trainer.venv.close()
    train_s = training_seconds(run) or 0.0
    c1, t1 = time.process_time(), time.perf_counter()
    ecfg = EvalConfig(run=run, episodes=eval_episodes(cfg, task), num_envs=cfg.eval_num_envs, seed=cfg.eval_seed,
                      deterministic=cfg.greedy, out=run / "eval", progress=False)  # fmt: skip
    summary = evaluate(ecfg)
    if task.metric == "return>0":
        eps = [json.loads(line) for line in (run / "eval" / "episodes.jsonl").read_text().splitlines() if line]
        value = float(np.mean([e["return"] > 0 for e in eps]))
    else:
        value = float(summary[task.metric]["mean"])
    cell = {
        "task": task.name,
        "core": core,
        "seed": seed,
        "env": task.env,
        "env_kwargs": task.env_kwargs,
        "tuned": task.tuned,
        "recipe": _recipe_key(tc),
        "eval": _eval_key(cfg, task),
        "memory_cfg": MEMORY_CFGS.get(core, {}),
        "metric": task.metric,
        "value": value,
        "return": float(summary["return"]["mean"]),
        "bound": refs["bound"],
        "perfect": refs["perfect"],
        "score": normalised_score(value, refs["bound"], refs["perfect"]),
        "steps": steps,
        "train_s": train_s,
        "steps_per_s": steps / train_s if train_s > 0 else float("nan"),
        "train_cpu_s": train_cpu,
        "eval_s": time.perf_counter() - t1,
        "eval_cpu_s": time.process_time() - c1,
        "cell_wall_s": time.perf_counter() - t_cell,
        "resumed_at": resumed_at,
        "curve": training_curve(run, "success" if task.metric == "return>0" else task.metric),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _atomic_json(cell_path(cfg, task.name, core, seed), cell)
    return cell


def _cell_job(cfg: Config, task: Task, core: str, seed: int, refs: dict[str, Any]) -> dict[str, Any]:
    """A cell in a worker process: its result, or ``{"error", "traceback"}`` (the other cells still run)."""
    try:
        return run_cell(cfg, task, core, seed, refs)
    except Exception as e:  # noqa: BLE001 - recorded on the page; the cell stays unfinished and a rerun retries it
        return {"task": task.name, "core": core, "seed": seed, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-3000:]}  # fmt: skip


# --------------------------------------------------------------------------------------------- the grid


def plan(cfg: Config, tasks: dict[str, Task]) -> tuple[list[str], list[str], dict[str, str]]:
    """(every core on the page, the cores to train, why each other core is not trained)."""
    from chronotope.memory import available_memories

    registered = available_memories()
    every = ["none", *[c for c in registered if c != "none"]] if "none" in registered else registered
    unknown = [c for c in cfg.cores if c not in registered]
    if unknown:
        raise ValueError(f"unknown core(s) {unknown!r}; registered: {registered}")
    bad = [t for t in cfg.tasks if t not in tasks]
    if bad:
        raise ValueError(f"unknown task(s) {bad!r}; found: {list(tasks)}")
    why: dict[str, str] = {}
    wanted = list(cfg.cores) or every
    for core in wanted:
        err = check_core(core)
        if err is not None:
            why[core] = f"skipped: does not fit the PPO trainer's memory interface ({err})"
    if cfg.quick and not cfg.cores:
        why.update({c: f"not run in --quick: {r}" for c, r in QUICK_NOT_RUN.items() if c in wanted and c not in why})
    for core in every:
        if core not in wanted:
            why.setdefault(core, "not run: not in --cores")
    return every, [c for c in wanted if c not in why], why


def run(cfg: Config) -> dict[str, Any]:
    """Trains and evaluates every cell of the grid not finished yet, then writes the page; returns the record."""
    cfg = cfg.resolved()
    cfg.validate()
    t_run = time.perf_counter()
    command = cfg.command or " ".join(["python -m chronotope.scripts.bench.memory_suite", *sys.argv[1:]])
    tasks = discover_tasks()
    if "minigrid" not in tasks:
        print("[memory_suite] MiniGrid not installed (pip install minigrid): its column is not run", flush=True)
    every, cores, why = plan(cfg, tasks)
    chosen = list(cfg.tasks or tasks)
    errors: list[dict[str, Any]] = []
    if not cfg.report:
        refs = {name: cached_reference(cfg, tasks[name]) for name in chosen}
        missing = [name for name, r in refs.items() if r is None]

        def ref_done(res: dict[str, Any], k: int) -> None:
            name = res["task"]
            if "error" in res:
                errors.append(res)
                print(f"[memory_suite] references {name} failed ({res['error']}): its cells are not run", flush=True)
                return
            store_reference(cfg, name, res["row"])
            refs[name] = res["row"]
            print(f"[memory_suite] references {name}: bound {res['row']['bound']:.3f}, perfect "
                  f"{res['row']['perfect']:.3f} ({res['row']['seconds']:.0f} s)", flush=True)  # fmt: skip

        _execute(cfg, [(_reference_job, (cfg, tasks[name])) for name in missing], ref_done)
        todo = [(tasks[t], c, s) for s in cfg.seeds for t in chosen for c in cores if refs[t] is not None]
        todo = [x for x in todo if load_cell(cfg, *x) is None]
        todo.sort(key=lambda x: -COST_HINT.get(x[1], 5.0))  # heaviest first: parallel jobs end together
        print(f"[memory_suite] {len(todo)} cell(s) to train ({len(cores)} cores x {len(chosen)} tasks x "
              f"{len(cfg.seeds)} seed(s), the rest finished); {cfg.jobs} at a time", flush=True)  # fmt: skip

        def cell_done(res: dict[str, Any], k: int) -> None:
            tag = f"[memory_suite] {k}/{len(todo)} {res['task']} {res['core']} s{res['seed']}"
            if "error" in res:
                errors.append(res)
                print(f"{tag} failed: {res['error']}", flush=True)
            else:
                print(f"{tag}: {res['metric']} {res['value']:.3f}, score {res['score']:.2f}, {res['steps']:,} steps "
                      f"at {res['steps_per_s']:.0f}/s", flush=True)  # fmt: skip

        _execute(cfg, [(_cell_job, (cfg, t, c, s, refs[t.name])) for t, c, s in todo], cell_done)
    record = build_record(cfg, tasks, every, why, command)
    record["errors"] = errors
    record["wall_s"] = time.perf_counter() - t_run
    md = write_page(cfg, record)
    record["markdown"] = md
    suite_md = f"### Memory leaderboard ({record['mode']}; page: {cfg.page_path()})\n\n" + table_markdown(record)
    write_results("memory_suite", record, suite_md, cfg.out_dir)
    print(reading(record))
    return record


def _reference_job(cfg: Config, task: Task) -> dict[str, Any]:
    """:func:`measure_references` in a worker: ``{"task", "row"}`` or ``{"task", "error", "traceback"}``."""
    try:
        return {"task": task.name, "row": measure_references(cfg, task)}
    except Exception as e:  # noqa: BLE001 - recorded on the page; that task's cells are not run
        return {"task": task.name, "core": "references", "seed": "-", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-3000:]}  # fmt: skip


def _execute(cfg: Config, jobs: list[tuple[Any, tuple]], on_done) -> None:
    """Runs each ``(fn, args)`` of ``jobs`` (``cfg.jobs`` at a time in spawned worker processes, or here when 1) and
    calls ``on_done(result, k)`` in this process as each finishes."""
    if not jobs:
        return
    if cfg.jobs == 1:
        for k, (fn, args) in enumerate(jobs, 1):
            on_done(fn(*args), k)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args) for fn, args in jobs]
        for k, fut in enumerate(as_completed(futures), 1):
            on_done(fut.result(), k)


# --------------------------------------------------------------------------------------------- the record


def build_record(cfg: Config, tasks: dict[str, Task], every: list[str], why: dict[str, str], command: str) -> dict:
    """Every cell found in the grid folder for ``cfg.seeds`` (all cores x all tasks), aggregated per (task, core)."""
    ref_path = cfg.grid / "references.json"
    refs = json.loads(ref_path.read_text()) if ref_path.is_file() else {}
    profiles = core_profiles(cfg, [c for c in every if not why.get(c, "").startswith("skipped")])
    table: dict[str, dict[str, Any]] = {}
    cells = []
    stale: dict[str, int] = {}  # per task, cells made with an earlier recipe or evaluation: left out
    for tname, task in tasks.items():
        table[tname] = {}
        for core in every:
            found = []
            for seed in cfg.seeds:
                path = cell_path(cfg, tname, core, seed)
                if path.is_file():
                    cell = json.loads(path.read_text())
                    if stale_field(cfg, task, core, seed, cell) is None:
                        found.append(cell)
                    else:
                        stale[tname] = stale.get(tname, 0) + 1
            cells += found
            if not found:
                table[tname][core] = None
                continue
            agg = aggregate([c["score"] for c in found])
            agg["values"] = [c["value"] for c in found]
            agg["seeds"] = [c["seed"] for c in found]
            agg["steps_per_s"] = float(np.mean([c["steps_per_s"] for c in found]))
            agg["steps"] = int(np.mean([c["steps"] for c in found]))
            agg["curves"] = [c["curve"] for c in found]
            agg["cpu_per_step"] = float(np.mean([c["train_cpu_s"] / max(c["steps"], 1) for c in found]))
            table[tname][core] = agg
    cpu_s = sum(c["train_cpu_s"] + c["eval_cpu_s"] for c in cells) + sum(r.get("cpu_s", 0.0) for r in refs.values())
    task_info = {}
    for tname, task in tasks.items():
        r = cached_reference(cfg, task) if task.setting is not None else MINIGRID_REFS
        task_info[tname] = {
            "env": task.env, "env_kwargs": task.env_kwargs, "metric": task.metric, "tuned": task.tuned,
            "recipe": task.recipe, "type": task.mtype, "refs": r,
        }  # fmt: skip
    core_info = {
        c: {"family": FAMILIES.get(c, "other"), "memory_cfg": MEMORY_CFGS.get(c, {}), "status": why.get(c, "run"),
            **profiles.get(c, {})}
        for c in every
    }  # fmt: skip
    return {
        "mode": "quick" if cfg.quick else "full",
        "quick": cfg.quick,
        "config": asdict(cfg),
        "command": command,
        "machine": machine_info(),
        "tasks": task_info,
        "cores": core_info,
        "table": table,
        "cells": len(cells),
        "stale": stale,
        "cpu_hours": cpu_s / 3600,
        "full_estimate_cpu_hours": full_estimate(cfg, tasks, table),
    }


def full_estimate(cfg: Config, tasks: dict[str, Task], table: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """CPU-hours of training every (task, core) pair measured here at its recipe's own budget for 3 seeds: the
    training CPU seconds per env step measured here times the recipe's steps (evaluation not counted); None when no
    cell was found."""
    total, n = 0.0, 0
    for tname, row in table.items():
        budget = train_config(replace(cfg, steps=0), tasks[tname], "gru", 0).steps
        for agg in row.values():
            if agg and math.isfinite(agg["cpu_per_step"]):
                total += agg["cpu_per_step"] * budget * 3
                n += 1
    return {"cpu_hours": total / 3600, "pairs": n, "seeds": 3} if n else None


# --------------------------------------------------------------------------------------------- the page

CORE_NOTES: dict[str, str] = {
    "sat": "its place signal is columns 0-1 of its input (``pose_columns``): the trainer feeds it the encoder "
    "feature, not the env pose, so its place-centric grouping runs on learned features",
    "janus": "its two encoders are frozen (the paper pretrains them); here they keep their random initialisation",
    "janus_reencode": "frozen encoders at their random initialisation, as janus",
}
"""What a reader must know about how a core runs here."""


def _fmt_bytes(n: float) -> str:
    return f"{n / 1024:,.1f} kB" if n >= 1024 else f"{n:,.0f} B"


def _state(info: dict[str, Any]) -> str:
    if "state_bytes" not in info:
        return "-"
    b0, b1 = info["state_bytes"], info["state_bytes_after"]
    return _fmt_bytes(b0) if b1 == b0 else f"{_fmt_bytes(b0)} -> {_fmt_bytes(b1)} after {info['after_steps']:,} steps"


def _core_sps(record: dict[str, Any], core: str) -> float | None:
    vals = [row[core]["steps_per_s"] for row in record["table"].values() if row.get(core)]
    return float(np.mean(vals)) if vals else None


def _task_label(record: dict[str, Any], task: str) -> str:
    return task + ("" if record["tasks"][task]["tuned"] else " †")


def table_markdown(record: dict[str, Any]) -> str:
    """The core x task table of mean normalised scores, with steps/s and state bytes columns."""
    tasks = list(record["tasks"])
    cols = ["core", "family", *[_task_label(record, t) for t in tasks], "env steps/s (training)", "state bytes / env"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for core, info in record["cores"].items():
        sps = _core_sps(record, core)
        row = [core, info["family"], *[format_score(record["table"][t].get(core)) for t in tasks],
               "-" if sps is None else f"{sps:,.0f}", _state(info)]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _matrix(record: dict[str, Any]) -> tuple[list[str], list[str], np.ndarray]:
    cores, tasks = list(record["cores"]), list(record["tasks"])
    m = np.full((len(cores), len(tasks)), np.nan)
    for j, t in enumerate(tasks):
        for i, c in enumerate(cores):
            agg = record["table"][t].get(c)
            if agg:
                m[i, j] = agg["mean"]
    return cores, tasks, m


def heat_map(record: dict[str, Any], path: Path) -> Path:
    """Mean normalised score per core (rows) and task (columns); cells not run are grey and say so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    cores, tasks, m = _matrix(record)
    finite = m[np.isfinite(m)]
    lo = min(-0.25, float(finite.min()) if finite.size else 0.0)
    hi = max(1.0, float(finite.max()) if finite.size else 1.0)
    fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 2.5, 0.42 * len(cores) + 1.6), dpi=110)
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, norm=TwoSlopeNorm(0.0, lo, hi), aspect="auto")
    for i in range(len(cores)):
        for j in range(len(tasks)):
            ax.text(j, i, "not run" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(tasks)), [_task_label(record, t) for t in tasks], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(cores)), cores, fontsize=8)
    fig.colorbar(im, ax=ax, label="normalised score (0: memoryless bound, 1: perfect)")
    ax.set_title(f"Memory leaderboard ({record['mode']}): mean over seeds", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def curves_plot(record: dict[str, Any], task: str, path: Path) -> Path | None:
    """Training measure against env steps for ``task``, one line per core (mean over its seeds); None when no cell
    of the task logged a finished episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chronotope.scripts.viz.plots import mean_ci

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    drawn, key = 0, None
    for core, agg in record["table"][task].items():
        series = [c for c in (agg or {}).get("curves", []) if c["steps"]]
        if not series:
            continue
        key = series[0]["metric"]
        lo, hi = max(s["steps"][0] for s in series), min(s["steps"][-1] for s in series)
        few = min(len(s["steps"]) for s in series) < 5
        if few:  # a short run logs a few updates: plot them where they are (every seed logs the same steps)
            grid = np.array([x for x in series[0]["steps"] if lo <= x <= hi], float)
        else:
            grid = np.linspace(lo, hi, 50) if hi > lo else np.array([float(lo)])
        mean, _ = mean_ci(np.stack([np.interp(grid, s["steps"], s["values"]) for s in series]))
        ax.plot(grid, mean, marker="." if few else None, label=f"{core} (n={len(series)})")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    refs = record["tasks"][task]["refs"] or {}
    if key != "return" and "bound" in refs:
        ax.axhline(refs["bound"], ls="--", c="grey", lw=1, label="memoryless bound")
        ax.axhline(refs["perfect"], ls=":", c="grey", lw=1, label="perfect memory")
    ax.set_xlabel("training env steps")
    ax.set_ylabel(f"training {key} (last 100 episodes)")
    ax.set_title(f"{record['tasks'][task]['env']}: training curves", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _by_type(record: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t, info in record["tasks"].items():
        out.setdefault(info["type"], []).append(t)
    return out


def reading(record: dict[str, Any]) -> str:
    """The page's reading: which cores and families lead each memory type, how many cells beat the memoryless bound,
    and what the cores cost (training speed, state growth)."""
    table, cores = record["table"], record["cores"]
    s = ""
    if record.get("quick"):
        s += ("Quick run (1 seed, a few thousand steps per cell, far below the recipes' 300k-600k): the scores say "
              "where each core stands after its first updates, not what it can learn. ")  # fmt: skip
    run_cells = [(t, c, a) for t, row in table.items() for c, a in row.items() if a]
    if not run_cells:
        return s + "No cell has finished yet."
    above = sum(a["mean"] > 0 for _, _, a in run_cells)
    s += f"{above} of {len(run_cells)} finished (task, core) pairs are above the memoryless bound on average. "
    for mtype, ts in _by_type(record).items():
        means = {}
        for core in cores:
            vals = [table[t][core]["mean"] for t in ts if table[t].get(core)]
            if vals:
                means[core] = float(np.mean(vals))
        if not means:
            continue
        ranked = sorted(means, key=lambda c: -means[c])
        lead = ranked[0]
        what = f"{mtype} ({', '.join(ts)})"
        s += f"{what}: {lead} ({cores[lead]['family']}) leads at {means[lead]:.2f}"
        if len(ranked) > 1:
            nxt = ranked[1]
            s += f", then {nxt} ({cores[nxt]['family']}) at {means[nxt]:.2f}"
            if len(ts) == 1:
                a, b = table[ts[0]][lead], table[ts[0]][nxt]
                if a["n"] >= 2 and b["n"] >= 2:
                    apart = a["mean"] - a["ci95"] > b["mean"] + b["ci95"]
                    s += "" if apart else " (95% CIs overlap)"
                else:
                    s += " (one seed: no interval)"
        if "none" in means and "none" not in ranked[:2]:
            s += f"; none {means['none']:.2f}"
        s += ". "
    sps = {c: _core_sps(record, c) for c in cores}
    sps = {c: v for c, v in sps.items() if v}
    if len(sps) > 1:
        fast, slow = max(sps, key=sps.get), min(sps, key=sps.get)
        s += (f"Training speed: {fast} fastest at {sps[fast]:,.0f} env steps/s, {slow} slowest at {sps[slow]:,.0f} "
              f"({sps[fast] / sps[slow]:.1f}x slower), mean over the tasks each ran. ")  # fmt: skip
    grow = [c for c, i in cores.items() if i.get("state_bytes_after", 0) > i.get("state_bytes", 0)]
    if grow:
        s += (
            f"State that grows with the episode: {', '.join(f'{c} ({_state(cores[c])})' for c in grow)}; every "
            "other core's state is fixed in size (per-step cost against episode length: chronotope bench memory). "
        )
    not_run = [c for c, i in cores.items() if i["status"] != "run"]
    if not_run:
        s += f"Not run: {', '.join(not_run)} (reasons below the table)."
    return s.strip()


def write_page(cfg: Config, record: dict[str, Any]) -> str:
    """Writes the leaderboard Markdown and its figures; returns the Markdown."""
    page = cfg.page_path()
    figs = page.parent / page.stem.lower()
    rel = os.path.relpath(figs, page.parent)
    tasks = record["tasks"]
    m = record["machine"]
    lines = [
        "# Memory leaderboard",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} from the {record['cells']} finished cells in "
        f"`{cfg.grid_dir}` ({record['mode']} mode). Command: `{record['command']}`. CPU time of these cells "
        f"(training + evaluation) and their references: **{record['cpu_hours']:.2f} CPU-hours**; this "
        f"invocation's wall-clock {record['wall_s'] / 60:.1f} min on {m.get('cpu')}, {m.get('cores')} cores.",
        "",
    ]
    if record.get("stale"):
        left = ", ".join(f"{t} {n}" for t, n in record["stale"].items())
        lines += [f"**Left out** (made with an earlier recipe or evaluation of their task, marked \"not run\"): {left} "
                  "cells. The same command reruns them.", ""]  # fmt: skip
    if record["quick"]:
        seeds = ", ".join(map(str, cfg.seeds))
        quick = f"seed(s) {seeds}, {cfg.steps:,} training steps per cell: the scores are those of barely trained agents"
        lines += [f"**Quick run**: {quick}.", ""]
    est = record.get("full_estimate_cpu_hours")
    if est:
        lines += [f"Training every (task, core) pair measured here at its recipe's own budget for 3 seeds would take "
                  f"~{est['cpu_hours']:,.0f} CPU-hours ({est['pairs']} pairs; CPU per step as measured here; "
                  "evaluation not counted).", ""]  # fmt: skip
    lines += ["## Reading", "", reading(record), ""]
    lines += [
        "## Normalised score",
        "",
        "Mean normalised score over seeds, (value - memoryless bound) / (perfect - memoryless bound), ± 95% CI "
        "(Student t) where >= 2 seeds, seeds in brackets. † : the task's recipe was not tuned (a plain recipe; see "
        "Method). Training env steps/s: mean over the core's cells (one torch thread each).",
        "",
        table_markdown(record),
    ]
    reasons: dict[str, list[str]] = {}
    for c, i in record["cores"].items():
        if i["status"] != "run":
            reasons.setdefault(i["status"], []).append(c)
    notes = [f"- {', '.join(cs)}: {why}" for why, cs in reasons.items()]
    notes += [f"- {c}: {n}" for c, n in CORE_NOTES.items() if c in record["cores"]]
    if notes:
        lines += ["Cores:", "", *notes, ""]
    hm = heat_map(record, figs / "heatmap.png")
    lines += [f"![normalised score heat map]({rel}/{hm.name})", ""]
    lines += ["## Tasks and references", "",
              "| task | memory type | env | measure | random | memoryless bound | perfect | recipe |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t, info in tasks.items():
        r = info["refs"] or {}
        kw = f" `{json.dumps(info['env_kwargs'])}`" if info["env_kwargs"] else ""
        num = [f"{r[k]:.3f}" if isinstance(r.get(k), (int, float)) else "-" for k in ("random", "bound", "perfect")]
        tuned = "tuned: " if info["tuned"] else "NOT tuned: "
        lines.append(f"| {t} | {info['type']} | {info['env']}{kw} | {info['metric']} | {' | '.join(num)} | "
                     f"{tuned}{info['recipe']} |")  # fmt: skip
    lines += ["", "## Raw measure and training speed per cell", "",
              "Mean over seeds of the task's measure (sampled actions unless the command says --greedy) / training "
              "env steps/s.", ""]  # fmt: skip
    cols = ["core", *tasks]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for core in record["cores"]:
        row = [core]
        for t in tasks:
            a = record["table"][t].get(core)
            row.append("not run" if not a else f"{np.mean(a['values']):.3f} / {a['steps_per_s']:,.0f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Learning curves", ""]
    for t in tasks:
        p = curves_plot(record, t, figs / f"curves_{t}.png")
        lines += [f"![{t} training curves]({rel}/{p.name})" if p else f"{t}: no finished training episode logged.", ""]
    lines += ["## Method", "", METHOD, ""]
    if record.get("errors"):
        lines += ["## Failed cells", ""] + [f"- {e['task']} {e['core']} s{e['seed']}: `{e['error']}`"
                                            for e in record["errors"]] + [""]  # fmt: skip
    md = "\n".join(lines).rstrip() + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(page, md)
    print(f"[memory_suite] wrote {page}", flush=True)
    return md


METHOD = (
    "Every cell trains one memory core on one task with our sequence PPO (`chronotope.agents.ppo.trainer`) and the "
    "task's recipe, the same for every core: ObjectRecall, Ballet, TargetSequence and the arm tasks with a preset of "
    "their name (WhereHidden, ShellGame, PairRecall, ColourSequence, ButtonSequence) the "
    "`scripts/experiments/memory_rl` presets (tuned on the GRU: auxiliary loss, readout, approach shaping; 300k-600k "
    "steps), MiniGrid-MemoryS7 the "
    "`minigrid_memory` recipe (300k steps, its default 7x7 view); the other tasks a plain, untuned recipe (state "
    "observations, 32 envs, rollout = bptt 128, 8 epochs x 4 minibatches, no auxiliary loss, 600k steps). Memory "
    "configs: each core's small CPU defaults, 128 wide where the core has one width knob (HCAM: the presets' 128 / 4 "
    "heads / chunks of 4). Each trained agent is evaluated by `chronotope.agents.evaluate` on the same seeded episodes"
    " for every core (episode k reset with seed 10,000 + k). References per task: random, the memoryless bound (the "
    "Bayes-best policy seeing only the current observation, or the task's analytic value when larger) and the "
    "perfect-memory oracle, measured by `scripts/experiments/memory_demand` on the training env kwargs. MiniGrid: "
    "bound 0.5 (a coin flip at the split without the cue; analytic, docs/RESULTS.md 1a) and perfect 1.0; its 7x7 view "
    "lets a sampling reactive policy beat 0.5, so the `none` row is the memoryless level there. CPU-hours: the process"
    " CPU time of each cell's training and evaluation (cells resumed from a checkpoint count the earlier training at "
    "its logged wall-clock)."
)
"""How the leaderboard is made (the page's Method section)."""


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
