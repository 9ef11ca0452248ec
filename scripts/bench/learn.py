"""Time to threshold: wall-clock seconds of training until a learner first reaches a success threshold in evaluation,
our sequence PPO against the peers, on the same env, machine, budget and evaluation episodes, in one run.

Learners (``--learners``):

* ``ours-gru``, ``ours-hcam``: our sequence PPO (:class:`~chronotope.agents.ppo.trainer.PPOTrainer`) with that
  memory core, with the task's recipe from the experiment that tuned it (below).
* ``recurrent-ppo``: sb3-contrib's RecurrentPPO (``MultiInputLstmPolicy``: its LSTM policy with its defaults), built
  by :func:`chronotope.agents.sb3.sb3_model` as ``chronotope train --algo recurrent-ppo`` builds it, with the
  task recipe's envs, rollout length, epochs, minibatches, learning rate, discount, clip and coefficients.
* ``ppo-framestack``: SB3 PPO (``MultiInputPolicy``) on the last ``frame_stack`` observations (SB3's
  ``VecFrameStack``; :func:`chronotope.agents.sb3.frame_stacked`), the same hyperparameters: memory by a window.

Tasks (``--tasks``), each with its recipe and threshold (``--<task>-threshold``):

* ``minigrid``: ``MiniGrid-MemoryS7-v0`` (the ``minigrid`` package; success: episode return > 0), the recipe of
  :mod:`chronotope.scripts.experiments.minigrid_memory` (16 envs, rollout = bptt 128, 10 epochs x 8 minibatches,
  300k steps).
* ``objectrecall``: ``chronotope/ObjectRecall-v0`` in ``state`` mode, the ``objectrecall`` preset of
  :mod:`chronotope.scripts.experiments.memory_rl` (32 envs, rollout = bptt 128, 8 x 4, the ``memory_slot``
  auxiliary loss and ``candidates`` readout, 600k steps; success: ``info["success"]``).
* ``objectrecall_rgbd``: the same task from rgbd 64 x 64, the ``objectrecall_rgbd`` preset.

The auxiliary loss, readout and image encoder of a preset are our PPO's (the peers have no such options); every
learner gets the same env-step budget (the recipe's, or ``--max-steps``), the same training wall-clock budget
(``--budget-s``) and the same seed.

Procedure, per task: every learner is built, then the learners take turns (round-robin, so that drifting load on a
shared machine hits them alike), one turn training one evaluation interval (``--eval-every`` env steps, rounded up
to whole updates: an update of ours or one ``learn`` call of SB3's, one rollout each) and then evaluating on the
same seeded episodes (episode k reset with ``eval_seed + k``, through :func:`chronotope.envs.rollout.run_episodes`
with :class:`~chronotope.agents.evaluate.ModelPolicy` for ours and :class:`~chronotope.agents.sb3.SB3Policy` for
the peers, the policies of ``chronotope eval``; sampled actions unless ``--greedy``). A learner stops when an
evaluation reaches the threshold, when its training seconds reach the budget (checked after every update) or when
its env steps reach the step budget; an evaluation closes every stop. Each learner's global random state (torch,
numpy, random) is its own, swapped in for its turns, so it trains as it would alone, and an evaluation does not
touch it.

**Seconds to threshold** are the learner's training seconds (wall-clock of its updates: env stepping, inference,
gradient phase) up to the end of the interval whose evaluation first reached the threshold; evaluation seconds are
counted apart and reported beside them. Both are resolved to one evaluation interval. The speed-up of our learner
over RecurrentPPO is RecurrentPPO's seconds over ours; when RecurrentPPO never reached the threshold it is a lower
bound, its training seconds over ours ("> x"); target: ours >= 10x sooner.

    python -m chronotope.scripts.bench.learn --quick                       # every stage in seconds per task
    python -m chronotope.scripts.bench.learn --tasks minigrid --budget-s 1200
    chronotope bench learn                                                 # all tasks, 20 min per learner
"""

from __future__ import annotations

import json
import random
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chronotope.scripts.bench.common import machine_info, print_table, quick_settings, write_results

LEARNERS: tuple[str, ...] = ("ours-gru", "ours-hcam", "recurrent-ppo", "ppo-framestack")
"""Learner names (see the module docstring)."""

PEER = "recurrent-ppo"
"""The learner every ``ours-*`` learner's speed-up is taken against."""


@dataclass(frozen=True)
class Task:
    """One time-to-threshold task: its env and how an evaluation episode counts as a success."""

    env: str
    env_kwargs: dict[str, Any]
    success: str
    """``"return>0"`` (the episode's return is positive) or the info key of a 0/1 success measure."""
    recipe: str
    """Where our PPO's recipe comes from."""


def _tasks() -> dict[str, Task]:
    from chronotope.scripts.experiments import memory_rl, minigrid_memory

    mg = minigrid_memory.Config()
    tasks = {"minigrid": Task(mg.env, json.loads(mg.env_kwargs), "return>0", "scripts/experiments/minigrid_memory")}
    for name in ("objectrecall", "objectrecall_rgbd"):
        p = memory_rl.PRESETS[name]
        tasks[name] = Task(p["env"], dict(p["env_kwargs"]), "success", f"scripts/experiments/memory_rl {name}")
    return tasks


TASKS: dict[str, Task] = _tasks()

QUICK_RECIPE = {"num_envs": 4, "rollout_len": 16, "bptt_len": 16, "epochs": 2, "minibatches": 2}
"""What ``--quick`` changes in every recipe (tiny updates; the numbers mean nothing)."""


@dataclass
class Config:
    quick: bool = False
    """Tiny budgets and updates that exercise every stage in seconds per task; the numbers mean nothing."""
    tasks: tuple[str, ...] = ("minigrid", "objectrecall", "objectrecall_rgbd")
    """Tasks to run, in order (keys of ``TASKS``)."""
    learners: tuple[str, ...] = LEARNERS
    """Learners to compare (see the module docstring)."""
    minigrid_threshold: float = 0.9
    """Success rate (episode return > 0) that ends a learner's MiniGrid-MemoryS7 run."""
    objectrecall_threshold: float = 0.6
    """Success rate that ends a learner's ObjectRecall (state) run."""
    objectrecall_rgbd_threshold: float = 0.5
    """Success rate that ends a learner's ObjectRecall (rgbd 64 x 64) run."""
    budget_s: float = 1200.0
    """Training wall-clock seconds per learner and task (evaluation not counted) (quick: 20)."""
    max_steps: int = 0
    """Env steps per learner and task; 0: the task recipe's (300k MiniGrid, 600k ObjectRecall) (quick: 128). Our
    PPO anneals its learning rate to 0 over these steps, as in the recipe."""
    eval_every: int = 10_000
    """Env steps of training between evaluations, rounded up to whole updates (quick: 64)."""
    eval_episodes: int = 100
    """Evaluation episodes, the same seeded ones for every learner and evaluation (quick: 4)."""
    eval_num_envs: int = 16
    """Environments stepped together in an evaluation (quick: 4)."""
    eval_seed: int = 10_000
    """Episode k of an evaluation is reset with ``eval_seed + k`` (apart from the training seeds)."""
    greedy: bool = False
    """Evaluate with greedy actions instead of sampling from the policy (the training-time rule)."""
    frame_stack: int = 4
    """Observations stacked for ``ppo-framestack``."""
    seed: int = 0
    """Training seed of every learner."""
    device: str = "cpu"
    """torch device of every learner ("cpu", "cuda", "auto")."""
    threads: int = 1
    """torch threads (1: every learner single-threaded)."""
    goal: float = 10.0
    """Target: ours reaches the threshold at least this many times sooner than RecurrentPPO."""
    out_dir: str = "runs/bench"
    """Where ``learn.json`` / ``learn.md`` and the curves ``learn_<task>.png`` are written."""

    def resolved(self) -> Config:
        """The effective settings (``quick`` shrinks the defaults it names)."""
        if not self.quick:
            return self
        pick = {"budget_s": 20.0, "max_steps": 128, "eval_every": 64, "eval_episodes": 4, "eval_num_envs": 4}
        return quick_settings(self, pick)

    def threshold(self, task: str) -> float:
        return getattr(self, f"{task}_threshold")

    def validate(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad!r}; known: {sorted(TASKS)}")
        bad = [n for n in self.learners if n not in LEARNERS]
        if bad:
            raise ValueError(f"unknown learner(s) {bad!r}; known: {list(LEARNERS)}")
        for k in ("eval_every", "eval_episodes", "eval_num_envs", "frame_stack", "threads"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)!r}")
        if self.max_steps < 0 or not self.budget_s > 0:
            raise ValueError(f"max_steps must be >= 0 and budget_s > 0, got {self.max_steps!r}, {self.budget_s!r}")


# --------------------------------------------------------------------------------------------- pure reading


def first_crossing(curve: list[dict[str, float]], threshold: float) -> dict[str, float] | None:
    """The first evaluation point of ``curve`` (in training order) whose success is >= ``threshold``; None if none."""
    return next((p for p in curve if p["success"] >= threshold), None)


def summarize_run(curve: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    """A learner's row from its evaluation curve (points ``{steps, train_s, eval_s, success}``, training order):
    whether and when (training seconds, env steps) it first reached ``threshold``, its best success, and what it
    ran in all (the last point's training seconds, evaluation seconds and env steps)."""
    hit = first_crossing(curve, threshold)
    last = curve[-1] if curve else {"steps": 0, "train_s": 0.0, "eval_s": 0.0}
    return {
        "reached": hit is not None,
        "seconds_to_threshold": None if hit is None else hit["train_s"],
        "steps_to_threshold": None if hit is None else hit["steps"],
        "best_success": max((p["success"] for p in curve), default=None),
        "train_s": last["train_s"],
        "eval_s": last["eval_s"],
        "steps": last["steps"],
    }


def speedup(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """How many times sooner ``ours`` reached the threshold than ``peer`` (rows of :func:`summarize_run`), as
    ``{kind, value, steps_value}``: ``exact`` when both reached it (peer seconds / ours), ``lower_bound`` when only
    ours did (the peer's training seconds / ours: it would have needed longer than it ran), ``upper_bound`` when only
    the peer did (peer seconds / ours' training seconds), ``none`` when neither did. ``steps_value`` is the same
    in env steps."""
    kind = {(True, True): "exact", (True, False): "lower_bound", (False, True): "upper_bound"}.get(
        (ours["reached"], peer["reached"]), "none"
    )
    if kind == "none":
        return {"kind": kind, "value": None, "steps_value": None}

    def at(row: dict[str, Any]) -> tuple[float, float]:  # when it reached the threshold, else all it ran
        return (
            (row["seconds_to_threshold"], row["steps_to_threshold"])
            if row["reached"]
            else (row["train_s"], row["steps"])
        )

    (ps, pn), (os_, on) = at(peer), at(ours)
    return {
        "kind": kind,
        "value": ps / os_ if os_ > 0 else float("inf"),
        "steps_value": pn / on if on > 0 else float("inf"),
    }


def format_speedup(sp: dict[str, Any], key: str = "value") -> str:
    """``12.3x``, ``> 4.1x`` (lower bound), ``< 0.8x`` (upper bound) or ``-`` (neither reached the threshold)."""
    v = sp[key]
    if v is None:
        return "-"
    return {"exact": "", "lower_bound": "> ", "upper_bound": "< "}[sp["kind"]] + f"{v:.1f}x"


def verdict(sp: dict[str, Any], goal: float) -> str:
    """The target "ours reaches the threshold >= ``goal`` x sooner" read from a :func:`speedup`: ``met``,
    ``met (lower bound)``, ``not met``, or why it is not decided."""
    kind, v = sp["kind"], sp["value"]
    if kind == "exact":
        return "met" if v >= goal else "not met"
    if kind == "lower_bound":
        if v >= goal:
            return "met (lower bound)"
        return f"not decided: lower bound {v:.1f}x < {goal:g}x (the peer did not reach it; a longer budget can tell)"
    if kind == "upper_bound":
        return "not met (ours did not reach it)" if v <= goal else "not decided: ours did not reach it"
    return "not decided: neither reached the threshold"


# --------------------------------------------------------------------------------------------- learners


def train_config(cfg: Config, task: str, learner: str):
    """The :class:`~chronotope.agents.config.TrainConfig` of one learner on one task: the task's recipe (from the
    experiment that tuned it), the step budget, device and threads of ``cfg``; the peers' algo (their agent is
    ``none``: the policy is SB3's)."""
    ours = learner.startswith("ours-")
    if task == "minigrid":
        from chronotope.scripts.experiments import minigrid_memory

        tc = minigrid_memory.train_config(
            minigrid_memory.Config(), learner.removeprefix("ours-") if ours else "recurrent-ppo", cfg.seed
        )
    else:
        from chronotope.scripts.experiments import memory_rl

        tc = memory_rl.train_config(
            memory_rl.Config(task=task), learner.removeprefix("ours-") if ours else "none", cfg.seed
        )
    over: dict[str, Any] = {
        "steps": cfg.max_steps or tc.steps,
        "device": cfg.device,
        "torch_threads": cfg.threads,
        "progress": False,
        "name": f"{task}-{learner}",
        "out_dir": Path(cfg.out_dir) / "learn",  # never written: the bench saves no checkpoint
    }
    if not ours:
        over.update(algo="recurrent-ppo" if learner == "recurrent-ppo" else "sb3-ppo", agent="none")
    if cfg.quick:
        over.update(QUICK_RECIPE)
    return replace(tc, **over)


class _Ours:
    """Our sequence PPO, trained one update at a time."""

    def __init__(self, tc) -> None:
        from chronotope.agents.ppo.trainer import PPOTrainer

        self.trainer = PPOTrainer(tc)

    @property
    def steps(self) -> int:
        return self.trainer.global_step

    def update(self) -> None:
        tr = self.trainer
        if tr.cfg.anneal_lr:  # as PPOTrainer.train: linear to 0 over the step budget
            for g in tr.opt.param_groups:
                g["lr"] = g.get("base_lr", tr.cfg.lr) * (1.0 - tr.update / tr.num_updates)
        tr.train_step(tr.rollout())
        tr.update += 1

    @contextmanager
    def policy(self, deterministic: bool, venv):
        from chronotope.agents.evaluate import ModelPolicy

        model = self.trainer.model
        model.eval()
        try:
            yield ModelPolicy(model, self.trainer.device, deterministic)
        finally:
            model.train()

    def close(self) -> None:
        self.trainer.venv.close()


class _SB3:
    """An SB3 model (RecurrentPPO, or PPO on stacked frames), trained one ``learn`` call (one rollout) at a time."""

    def __init__(self, tc, n_stack: int) -> None:
        from chronotope.agents.envs import make_vector_env
        from chronotope.agents.sb3 import SB3VecEnv, frame_stacked, sb3_logger, sb3_model

        venv = SB3VecEnv(make_vector_env(tc.env, tc.num_envs, tc.env_kwargs_dict(), tc.wrappers, tc.seed))
        venv.seed(tc.seed)
        self.n_stack = n_stack
        self.venv = frame_stacked(venv, n_stack) if n_stack > 1 else venv
        self.model = sb3_model(tc, self.venv)
        self.model.set_logger(sb3_logger(None))  # SB3's default would leave a $TMPDIR/SB3-<date> folder per learn()
        self.per_update = tc.num_envs * tc.rollout_len

    @property
    def steps(self) -> int:
        return int(self.model.num_timesteps)

    def update(self) -> None:
        self.model.learn(self.per_update, reset_num_timesteps=False)

    @contextmanager
    def policy(self, deterministic: bool, venv):
        from chronotope.agents.sb3 import SB3Policy

        yield SB3Policy(self.model, venv, deterministic, self.n_stack)

    def close(self) -> None:
        self.venv.close()


def make_learner(tc, learner: str, frame_stack: int):
    """The learner ``learner`` with the training config ``tc`` (:func:`train_config`)."""
    if learner.startswith("ours-"):
        return _Ours(tc)
    return _SB3(tc, frame_stack if learner == "ppo-framestack" else 1)


class _RngSlot:
    """One learner's own global random state (torch, numpy, random), swapped in for its turns, so that learners
    trained by turns in one process draw what each would draw alone."""

    def __init__(self) -> None:
        self.saved: tuple | None = None

    @contextmanager
    def active(self):
        if self.saved is not None:
            t, c, n, r = self.saved
            torch.set_rng_state(t)
            if c is not None:
                torch.cuda.set_rng_state_all(c)
            np.random.set_state(n)  # noqa: NPY002 - the global generator the learners draw from
            random.setstate(r)
        try:
            yield
        finally:
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            self.saved = (torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())  # noqa: NPY002


def episode_success(rule: str, rec) -> float:
    """1.0 / 0.0: whether an evaluation episode (an :class:`~chronotope.envs.rollout.EpisodeRecord`) succeeded."""
    if rule == "return>0":
        return float(rec.ret > 0)
    return float(rec.info[rule])


def evaluate(learner, venv, seeds: list[int], deterministic: bool, rule: str) -> float:
    """Success rate of ``learner`` on the episodes ``seeds`` of ``venv``; leaves the global random state as it was
    (SB3 samples from torch's global generator: seeded ``seeds[0]`` here, as ``chronotope eval`` does)."""
    from chronotope.envs.rollout import run_episodes

    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        torch.manual_seed(seeds[0])
        with learner.policy(deterministic, venv) as policy:
            records = run_episodes(venv, policy, seeds)
    return float(np.mean([episode_success(rule, r) for r in records]))


# --------------------------------------------------------------------------------------------- the run


def _turn(cfg: Config, learner, rec: dict, threshold: float, max_steps: int, venv, seeds, rule) -> str | None:
    """Trains ``learner`` one evaluation interval (or to a budget), evaluates it, appends the point to
    ``rec["curve"]``; returns why it stops (``threshold``, ``budget_s``, ``max_steps``) or None."""
    target = (learner.steps // cfg.eval_every + 1) * cfg.eval_every
    t0, c0 = time.perf_counter(), time.process_time()
    while learner.steps < min(target, max_steps):
        learner.update()
        if rec["train_s"] + time.perf_counter() - t0 >= cfg.budget_s:
            break
    rec["train_s"] += time.perf_counter() - t0
    rec["train_cpu_s"] += time.process_time() - c0
    t0 = time.perf_counter()
    success = evaluate(learner, venv, seeds, cfg.greedy, rule)
    rec["eval_s"] += time.perf_counter() - t0
    rec["curve"].append(
        {"steps": learner.steps, "train_s": rec["train_s"], "eval_s": rec["eval_s"], "success": success}
    )
    if success >= threshold:
        return "threshold"
    if rec["train_s"] >= cfg.budget_s:
        return "budget_s"
    if learner.steps >= max_steps:
        return "max_steps"
    return None


def run_task(cfg: Config, task: str) -> dict[str, Any]:
    """Every learner of ``cfg`` on ``task`` by turns until each stops; returns the task's results."""
    from chronotope.agents.envs import make_vector_env

    spec, threshold = TASKS[task], cfg.threshold(task)
    rule = "greedy" if cfg.greedy else "sampled"
    venv = make_vector_env(spec.env, cfg.eval_num_envs, spec.env_kwargs, "", cfg.seed)
    seeds = [cfg.eval_seed + k for k in range(cfg.eval_episodes)]
    learners: dict[str, Any] = {}
    slots: dict[str, _RngSlot] = {}
    recs: dict[str, dict[str, Any]] = {}
    max_steps: dict[str, int] = {}
    for name in cfg.learners:
        recs[name] = rec = {"curve": [], "train_s": 0.0, "train_cpu_s": 0.0, "eval_s": 0.0, "error": None}
        slots[name] = _RngSlot()
        t0 = time.perf_counter()
        try:
            tc = train_config(cfg, task, name)
            with slots[name].active():
                learners[name] = make_learner(tc, name, cfg.frame_stack)
            max_steps[name] = tc.steps
            rec["recipe"] = {k: getattr(tc, k) for k in ("num_envs", "rollout_len", "epochs", "minibatches", "lr")}
            rec["steps_per_update"] = tc.num_envs * tc.rollout_len
        except Exception as e:  # noqa: BLE001 - a learner that cannot run is reported as such; the others still run
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc()[-3000:]
            rec["stop"] = "error"
            print(f"[learn] {task} {name} could not be built: {rec['error']}", flush=True)
        rec["build_s"] = time.perf_counter() - t0
        torch.set_num_threads(cfg.threads)  # a trainer may have changed it
    active = list(learners)
    while active:
        for name in list(active):
            rec = recs[name]
            try:
                with slots[name].active():
                    stop = _turn(cfg, learners[name], rec, threshold, max_steps[name], venv, seeds, spec.success)
            except Exception as e:  # noqa: BLE001 - as above: recorded with its traceback
                rec["error"] = f"{type(e).__name__}: {e}"
                rec["traceback"] = traceback.format_exc()[-3000:]
                stop = "error"
                print(f"[learn] {task} {name} failed: {rec['error']}", flush=True)
            if rec["curve"]:
                p = rec["curve"][-1]
                print(
                    f"[learn] {task} {name}: {p['steps']:,} steps, {p['train_s']:.0f} s training, "
                    f"{p['eval_s']:.0f} s eval, success {p['success']:.3f} ({rule})",
                    flush=True,
                )
            if stop is not None:
                rec["stop"] = stop
                active.remove(name)
                learners[name].close()
    venv.close()
    rows = {name: {**summarize_run(rec["curve"], threshold), **rec} for name, rec in recs.items()}
    ratios = {
        f"{name} vs {PEER}": speedup(rows[name], rows[PEER])
        for name in rows
        if name.startswith("ours-") and PEER in rows and not rows[name]["error"] and not rows[PEER]["error"]
    }
    for sp in ratios.values():
        sp["goal"], sp["verdict"] = cfg.goal, verdict(sp, cfg.goal)
    return {
        "env": spec.env,
        "env_kwargs": spec.env_kwargs,
        "success": spec.success,
        "recipe": spec.recipe,
        "threshold": threshold,
        "rule": rule,
        "learners": rows,
        "ratios": ratios,
    }


def _table(cfg: Config, task: str, res: dict[str, Any]) -> str:
    def num(v, fmt="{:,.0f}"):
        return "-" if v is None else fmt.format(v)

    rows = []
    for name, r in res["learners"].items():
        if r["error"] and not r["curve"]:
            rows.append([name, f"error: {r['error']}"] + ["-"] * 8)
            continue
        rows.append([
            name, "yes" if r["reached"] else "no", num(r["seconds_to_threshold"], "{:,.1f}"),
            num(r["steps_to_threshold"]), num(r["best_success"], "{:.3f}"), f"{r['train_s']:,.1f}",
            f"{r['eval_s']:,.1f}", f"{r['train_cpu_s']:,.1f}", f"{r['steps']:,}",
            r["stop"] if not r["error"] else f"error: {r['error']}",
        ])  # fmt: skip
    for label, sp in res["ratios"].items():
        rows.append([f"{label} (time ratio)", "-", format_speedup(sp), format_speedup(sp, "steps_value")]
                    + ["-"] * 5 + [sp["verdict"]])  # fmt: skip
    kw = f" {json.dumps(res['env_kwargs'])}" if res["env_kwargs"] else ""
    what = "return > 0" if res["success"] == "return>0" else f"info[{res['success']!r}]"
    title = (
        f"Time to {res['threshold']:g} success ({what}), {res['env']}{kw}: budget {cfg.budget_s:,.0f} s training per "
        f"learner, {res['rule']} actions on {cfg.eval_episodes} episodes every {cfg.eval_every:,} env steps"
    )
    cols = ["learner", "reached", "s to threshold", "env steps to threshold", "best success", "training s", "eval s",
            "training CPU s", "env steps run", "stop"]  # fmt: skip
    return print_table(title, cols, rows)


def _plot(task: str, res: dict[str, Any], path: Path) -> Path | None:
    """Success against training seconds, one line per learner, the threshold dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in res["learners"].items():
        if r["curve"]:
            ax.plot([p["train_s"] for p in r["curve"]], [p["success"] for p in r["curve"]], marker=".", label=name)
    ax.axhline(res["threshold"], ls="--", c="grey", lw=1)
    ax.set_xlabel("training wall-clock s")
    ax.set_ylabel(f"success ({res['rule']})")
    ax.set_title(f"{res['env']}: time to {res['threshold']:g}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(cfg: Config) -> dict[str, Any]:
    """Runs every task and learner; prints the tables; writes ``learn.json`` / ``learn.md`` (and the curves)."""
    cfg = cfg.resolved()
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    info = machine_info()
    results: dict[str, Any] = {"config": cfg, "quick": cfg.quick, "tasks": {}}
    md = ""
    if cfg.quick:
        md += "**Quick run: tiny budgets and updates that exercise every stage; the numbers mean nothing.**\n\n"
    for task in cfg.tasks:
        print(f"[learn] {task}: {', '.join(cfg.learners)} by turns", flush=True)
        t0 = time.perf_counter()
        res = run_task(cfg, task)
        res["wall_s"] = time.perf_counter() - t0
        results["tasks"][task] = res
        md += _table(cfg, task, res)
        png = _plot(task, res, Path(cfg.out_dir) / f"learn_{task}.png")
        res["plot"] = str(png) if png else None
        md += (
            f"\nRecipe of our PPO: {res['recipe']} (the peers: its envs, rollout, epochs, minibatches, lr, discount, "
            f"clip, coefficients); {cfg.frame_stack} frames for ppo-framestack. Seconds to threshold: training "
            "wall-clock up to the evaluation that first reached it (resolution: one evaluation interval), evaluation "
            f"apart. Seed {cfg.seed}, {info['cpu']}, {cfg.threads} torch thread(s), device {cfg.device}; "
            f"{res['wall_s']:,.0f} s for this task in all.\n\n"
        )
    results["headline"] = {
        task: res["ratios"].get(f"ours-gru vs {PEER}") for task, res in results["tasks"].items()
    }  # fmt: skip
    text = reading(results)
    md += text + "\n"
    print(text)
    results["markdown"] = md
    write_results("learn", results, md, cfg.out_dir)
    return results


def _secs(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: per task, when each learner reached the threshold (or its best), and
    ours against RecurrentPPO with the target's verdict."""
    s = "Quick run: the numbers mean nothing. " if result.get("quick") else ""
    for res in result["tasks"].values():
        parts = []
        for name, r in res["learners"].items():
            if r.get("error") and not r.get("curve"):
                parts.append(f"{name} could not run ({r['error']})")
            elif r["reached"]:
                parts.append(f"{name} in {_secs(r['seconds_to_threshold'])} s ({r['steps_to_threshold']:,} env steps)")
            else:
                best = "-" if r["best_success"] is None else f"{r['best_success']:.2f}"
                parts.append(f"{name} not reached (best {best} in {_secs(r['train_s'])} s, {r['steps']:,} steps)")
        s += (
            f"{res['env']}, threshold {res['threshold']:g} ({res['rule']} actions): " + "; ".join(parts) + ". "
        )  # fmt: skip
        for label, sp in res.get("ratios", {}).items():
            sooner = f"{format_speedup(sp)} sooner, " if sp["value"] is not None else ""
            s += f"{label}: {sooner}target >= {sp['goal']:g}x: {sp['verdict']}. "
    return s.strip()


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
