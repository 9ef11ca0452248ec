"""HCAM's claims with learned agents: memory cores across delays, >= 3 seeds, and extrapolation to longer delays.

Lampinen et al. (2021) report that HCAM beats an LSTM at long delays and keeps working at delays longer than
it was trained on. This experiment trains every memory core (``none``, ``lstm``, ``trxl``, ``hcam``) on each
memory task with the same budget and the same recipe, for several seeds, then evaluates each agent at the
training delay and at longer ones (``eval_delays``; the last is 4x the training delay). Training is imitation
of the task's perfect-memory oracle (behaviour cloning then DAgger, :mod:`chronotope.agents.imitation`): the
oracle knows what was cued, the learner only sees what the agent saw, so only a memory can copy its choices.
References in the same table: the random policy, the memoryless oracle and the perfect-memory oracle at each
delay (:mod:`chronotope.envs.nav.oracles`), which makes it the learned-agent row of the memory-demand table.

Runs are resumable: a (task, agent, seed) whose evaluations exist is skipped, so an interrupted experiment
continues where it stopped. Results: ``<out>/results.json``, ``<out>/results.md``, one plot per task
(``<out>/<task>_delays.png``, also copied to ``docs/images/`` with ``--docs``).

    python -m chronotope.scripts.experiments.memory_agents                    # full (about 1 CPU-hour)
    python -m chronotope.scripts.experiments.memory_agents --quick            # smoke run (seconds)
    python -m chronotope.scripts.experiments.memory_agents --tasks ballet     # one task
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chronotope.scripts.demo import DEMO_ENV, DEMO_ENV_KWARGS

# Each task: env id, training kwargs (state observations), the delay knob's training value, evaluation delays,
# imitation hyper-parameters. ObjectRecall is the demo's setting (see scripts/demo.py); Ballet uses 2 dancers
# (HCAM's easiest level: chance 0.5) so that the budget suffices to learn to read the dances.
TASKS: dict[str, dict] = {
    "objectrecall": {
        "env": DEMO_ENV,
        "env_kwargs": {**DEMO_ENV_KWARGS, "delay": 10},
        "eval_delays": (10, 20, 40),
        "rollout_len": 64,
        "steps": 60_000,
    },
    "ballet": {
        "env": "chronotope/Ballet-v0",
        "env_kwargs": {"obs_mode": "state", "num_dancers": 2, "delay": 16, "num_scenes": 8},
        "eval_delays": (16, 32, 64),
        "rollout_len": 128,
        "steps": 60_000,
    },
    # Memory Maze-like: the knob is the number of targets K (trained at 3); the measure is targets reached in a
    # 250-step episode. trxl is left out here to fit the CPU budget (its 64-step window is the shortest memory).
    "targetsequence": {
        "env": "chronotope/TargetSequence-v0",
        # the scene pool's 3-6 room apartments, as when it was run (the task's defaults are 10-12 rooms since)
        "env_kwargs": {
            "obs_mode": "state",
            "num_targets": 3,
            "num_scenes": 8,
            "max_episode_steps": 250,
            "num_rooms": None,
        },
        "knob": "num_targets",
        "measure": "score",
        "curve_metric": "learner_return",
        "eval_delays": (3, 6),
        "rollout_len": 64,
        "steps": 30_000,
        "agents": ("none", "lstm", "hcam"),
        "eval_episodes": 32,
    },
}
ORACLE_TASK = {"objectrecall": "object_recall", "ballet": "ballet", "targetsequence": "target_sequence"}


def _knob(spec: dict) -> str:
    return spec.get("knob", "delay")


def _measure(spec: dict) -> str:
    return spec.get("measure", "success")


@dataclass
class Config:
    """Memory agents across delays.

    Attributes:
        tasks: task names (keys of ``TASKS``).
        agents: memory cores, all trained with the same budget.
        seeds: training seeds (evaluation episodes are the same for every agent and seed).
        steps: environment steps of training per (task, agent, seed); 0 takes each task's default.
        dagger_iters: DAgger iterations after behaviour cloning.
        eval_episodes: evaluation episodes per agent, seed and delay.
        reference_episodes: episodes per reference policy and delay.
        memory_cfgs: memory config per core (HCAM at the LSTM's width; trxl window covering the episode).
        out: output folder (runs go to ``out/runs``).
        docs: also copy the plots to ``docs/images/memory_agents_<task>.png``.
        quick: a tiny run that exercises every stage; its numbers mean nothing.
    """

    tasks: tuple[str, ...] = ("objectrecall", "ballet")
    agents: tuple[str, ...] = ("none", "lstm", "trxl", "hcam")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 0
    dagger_iters: int = 4
    eval_episodes: int = 64
    reference_episodes: int = 200
    memory_cfgs: dict = field(
        default_factory=lambda: {
            "hcam": {"hidden_size": 128, "num_heads": 4, "chunk_size": 4},
            "trxl": {"hidden_size": 128, "num_heads": 4, "window": 64},
        }
    )
    out: Path = Path("runs/memory_agents")
    docs: bool = False
    quick: bool = False


def _fmt(s: dict) -> str:
    if s["n"] == 0:
        return "-"
    return f"{s['mean']:.3f} ± {s['ci95']:.3f}" if s["n"] > 1 and np.isfinite(s["ci95"]) else f"{s['mean']:.3f}"


def train_and_evaluate(cfg: Config, task: str, agent: str, seed: int) -> dict[int, dict]:
    """Trains one agent (skipped if already trained) and evaluates it at every delay; {delay: eval summary}."""
    from chronotope.agents.config import TrainConfig
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.imitation import train_imitation

    spec = TASKS[task]
    run = Path(cfg.out) / "runs" / f"{task}-{agent}-s{seed}"
    done = run / "done.json"
    if not done.is_file():
        if run.exists():  # an interrupted run: start it again (imitation data are not checkpointed)
            shutil.rmtree(run)
        t_len = spec["rollout_len"] if not cfg.quick else 32
        tcfg = TrainConfig(
            env=spec["env"],
            agent=agent,
            algo="dagger",
            steps=cfg.steps or spec["steps"],
            seed=seed,
            name=run.name,
            out_dir=run.parent,
            num_envs=8 if cfg.quick else 16,
            rollout_len=t_len,
            bptt_len=t_len,
            dagger_iters=cfg.dagger_iters,
            bc_epochs=8,
            lr=1e-3,
            env_kwargs=json.dumps(spec["env_kwargs"]),
            memory_cfg=json.dumps(cfg.memory_cfgs.get(agent, {})),
            progress=False,
            learner_eval_episodes=8 if cfg.quick else 32,
        )
        t0 = time.perf_counter()
        train_imitation(tcfg)
        done.write_text(json.dumps({"train_seconds": time.perf_counter() - t0}))
    out: dict[int, dict] = {}
    knob = _knob(spec)
    for delay in spec["eval_delays"]:
        folder = run / f"eval_{knob}{delay}"
        summary_path = folder / "summary.json"
        if not summary_path.is_file():
            evaluate(
                EvalConfig(
                    run=run,
                    episodes=spec.get("eval_episodes", cfg.eval_episodes) if not cfg.quick else cfg.eval_episodes,
                    num_envs=8,
                    seed=10_000,
                    env_kwargs=json.dumps({knob: delay}),
                    out=folder,
                )
            )
        out[delay] = json.loads(summary_path.read_text())
    return out


def references(cfg: Config, task: str) -> dict[str, dict[int, dict]]:
    """Random / memoryless / perfect-memory oracles at every evaluation delay: {kind: {delay: {measure: mean}}}."""
    from chronotope.envs.nav.oracles import evaluate as oracle_evaluate

    spec = TASKS[task]
    path = Path(cfg.out) / f"references_{task}.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    out: dict[str, dict[int, dict]] = {}
    for kind in ("random", "memoryless", "perfect"):
        out[kind] = {}
        for delay in spec["eval_delays"]:
            key = f"{kind}/{delay}"
            if key not in cached:
                kw = {**spec["env_kwargs"], _knob(spec): delay}
                cached[key] = oracle_evaluate(spec["env"], kind, cfg.reference_episodes, num_envs=16, seed=10_000, **kw)
                path.write_text(json.dumps(cached, indent=2))
            out[kind][delay] = cached[key]
    return out


def aggregate(per_seed: dict[int, dict[int, dict]], measure: str) -> dict:
    """Mean ± 95% CI across seeds of the per-seed mean of ``measure``, plus the pooled episode count."""
    from chronotope.agents.stats import summarize

    means = [per_seed[s][measure]["mean"] for s in sorted(per_seed)]
    s = summarize(means)
    s["episodes"] = int(sum(per_seed[x][measure]["n"] for x in per_seed))
    s["per_seed"] = means
    return s


def plot_task(task: str, table: dict, refs: dict, path: Path) -> None:
    """The task's measure against the knob (delay), one line per agent (mean ± 95% CI over seeds), oracles dashed."""
    from chronotope.scripts.viz.plots import _plt

    plt = _plt()
    spec = TASKS[task]
    delays, knob, measure = spec["eval_delays"], _knob(spec), _measure(spec)
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    for agent, by_delay in table.items():
        m = np.array([by_delay[d]["mean"] for d in delays])
        ci = np.array([by_delay[d]["ci95"] for d in delays])
        (line,) = ax.plot(delays, m, marker="o", label=agent)
        ax.fill_between(delays, m - ci, m + ci, color=line.get_color(), alpha=0.2, lw=0)
    for kind, style in (("memoryless", ":"), ("perfect", "--")):
        ax.plot(delays, [refs[kind][d][measure] for d in delays], "k" + style, label=f"{kind} oracle", lw=1)
    ax.axvline(spec["env_kwargs"][knob], color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(delays, [str(d) for d in delays])
    ax.set_xlabel(f"{knob}; grey line: training value")
    ax.set_ylabel(measure)
    if measure == "success":
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{task}: {measure} vs {knob} (mean ± 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _agents(cfg: Config, task: str) -> list[str]:
    """The configured cores this task trains (a task may restrict them to fit the budget)."""
    return [a for a in cfg.agents if a in TASKS[task].get("agents", cfg.agents)]


def _curves(cfg: Config, task: str, path: Path) -> None:
    """Learner-only success after each imitation iteration, mean ± 95% CI over seeds, one line per core."""
    from chronotope.scripts.viz.plots import _plt, learning_curves

    metric = TASKS[task].get("curve_metric", "learner_success")
    groups = {a: [Path(cfg.out) / "runs" / f"{task}-{a}-s{s}" for s in cfg.seeds] for a in _agents(cfg, task)}
    fig = learning_curves(groups, metric=metric, path=path, title=f"{task}: {metric} (training)")
    _plt().close(fig)


def main(cfg: Config) -> dict:
    import torch

    torch.set_num_threads(1)
    for t in cfg.tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; valid: {sorted(TASKS)}")
    if cfg.quick:
        cfg.steps, cfg.dagger_iters, cfg.eval_episodes, cfg.reference_episodes = 2 * 8 * 32, 1, 8, 8
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results: dict = {"config": {**cfg.__dict__, "out": str(cfg.out)}, "tasks": {}}
    md: list[str] = []
    for task in cfg.tasks:
        spec = TASKS[task]
        evals: dict[str, dict[int, dict[int, dict]]] = {}
        agents = _agents(cfg, task)
        knob, measure = _knob(spec), _measure(spec)
        for agent in agents:
            for seed in cfg.seeds:
                t0 = time.perf_counter()
                by_delay = train_and_evaluate(cfg, task, agent, seed)
                for d, summ in by_delay.items():
                    evals.setdefault(agent, {}).setdefault(d, {})[seed] = summ
                succ = " ".join(f"{knob}{d}={by_delay[d][measure]['mean']:.2f}" for d in spec["eval_delays"])
                dt = time.perf_counter() - t0
                print(f"[memory_agents] {task} {agent} seed {seed}: {succ} ({dt:.0f} s)", flush=True)
        refs = references(cfg, task)
        table = {a: {d: aggregate(evals[a][d], measure) for d in spec["eval_delays"]} for a in agents}
        spl = {
            a: {d: aggregate(evals[a][d], "spl") for d in spec["eval_delays"]} for a in agents if measure == "success"
        }
        results["tasks"][task] = {measure: table, "spl": spl, "references": refs, "spec": spec, "measure": measure}
        delays = spec["eval_delays"]
        md += [
            f"### {task} ({spec['env']}, {cfg.steps or spec['steps']} steps, trained at "
            f"{knob} {spec['env_kwargs'][knob]}; "
            f"{len(cfg.seeds)} seeds x {spec.get('eval_episodes', cfg.eval_episodes)} episodes per cell)",
            "",
            "| policy | " + " | ".join(f"{measure}, {knob} {d}" for d in delays) + " |",
            "|---|" + "---|" * len(delays),
        ]
        for a in agents:
            md.append(f"| {a} | " + " | ".join(_fmt(table[a][d]) for d in delays) + " |")
        for kind in ("random", "memoryless", "perfect"):
            md.append(f"| {kind} oracle | " + " | ".join(f"{refs[kind][d][measure]:.3f}" for d in delays) + " |")
        md.append("")
        plot = out / f"{task}_delays.png"
        plot_task(task, table, refs, plot)
        curves = out / f"{task}_curves.png"
        _curves(cfg, task, curves)
        if cfg.docs:
            shutil.copy(plot, Path("docs/images") / f"memory_agents_{task}.png")
            shutil.copy(curves, Path("docs/images") / f"memory_agents_{task}_curves.png")
    text = "\n".join(md)
    (out / "results.md").write_text(text)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out / "results.json")
    print("\n" + text)
    print(f"[memory_agents] finished in {time.perf_counter() - t_start:.0f} s; results in {out.resolve()}")
    return results


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
