"""``chronotope memory-demand``: how much each memory task needs memory (``shared/specs/memory-demand.md``).

For every memory task (ObjectRecall, TargetSequence, Ballet, CueRecallPick, CountPress, ButtonSequence,
ColourSequence, RestorePlace, WhereHidden, MultiCueTouch, PairRecall, ShellGame) at its defaults and at each
difficulty knob, the same seeded episodes are run by:

- ``random``: uniform actions (the floor);
- ``memoryless``: the memoryless bound, the Bayes-best policy that sees only the current observation (each task's
  oracle documents its derivation; ObjectRecall also reports the analytic value of its single best STOP);
- ``perfect``: the perfect-memory oracle (the ceiling);
- ``twin``: the memoryless policy on the observability twin (``observability="full"``, the cue never goes off):
  near ``perfect`` when the task is hard only through memory.

Demand = perfect - memoryless bound; ratio = bound / perfect (the defaults keep it <= 0.35). The table also gives
the cue-to-query span each task declares (trainers warn when their gradient window is shorter). A knob that makes
the demand vanish (e.g. ObjectRecall's ``observe_motion="still"``, whose start heading the compass reveals) is
allowed: this table is where it shows.

    chronotope memory-demand                 # >= 200 episodes per cell (a tenth for 1000-step episodes)
    chronotope memory-demand --quick         # a smoke run (numbers mean little)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.agents.runs import atomic_write_text

POLICIES = ("random", "memoryless", "perfect", "twin")


@dataclass(frozen=True)
class Setting:
    """One row group: a task at one knob setting."""

    task: str
    env_id: str
    knob: str
    kwargs: dict
    metric: str = "success"
    family: str = "nav"  # "nav" (batched oracles of envs.nav.oracles) or "arm" (envs.robot.oracles)
    episode_scale: float = 1.0  # fraction of ``episodes`` (long episodes run fewer)


def _arm_rows(task: str, *knobs: dict) -> tuple[Setting, ...]:
    """An arm task's rows: its defaults, then one row per knob setting (one kwarg each, labelled ``name=value``)."""
    env_id = f"chronotope/{task}-v0"
    rows = [Setting(task, env_id, "defaults", {}, family="arm")]
    for kw in knobs:
        ((name, value),) = kw.items()
        rows.append(Setting(task, env_id, f"{name}={value}", kw, family="arm"))
    return tuple(rows)


SETTINGS: tuple[Setting, ...] = (
    Setting("ObjectRecall", "chronotope/ObjectRecall-v0", "defaults", {}),
    Setting("ObjectRecall", "chronotope/ObjectRecall-v0", "delay=40", {"delay": 40}),
    Setting("ObjectRecall", "chronotope/ObjectRecall-v0", "num_distractors=1", {"num_distractors": 1}),
    Setting("ObjectRecall", "chronotope/ObjectRecall-v0", "observe_motion=still", {"observe_motion": "still"}),
    Setting(
        "ObjectRecall",
        "chronotope/ObjectRecall-v0",
        "teleport+pointnav delay",
        {"teleport": True, "delay_task": "pointnav", "delay": 50, "recall_steps": 200},
    ),
    Setting("TargetSequence", "chronotope/TargetSequence-v0", "defaults", {}, "score"),
    Setting("TargetSequence", "chronotope/TargetSequence-v0", "sites=8", {"sites": 8}, "score"),
    Setting(
        "TargetSequence",
        "chronotope/TargetSequence-v0",
        "search (sites=0, observe_steps=0)",
        {"sites": 0, "observe_steps": 0},
        "score",
    ),
    Setting(
        "TargetSequence",
        "chronotope/TargetSequence-v0",
        "1000 steps, 10-12 rooms (the defaults before 128-step episodes)",
        {"max_episode_steps": 1000, "num_rooms": (10, 12)},
        "score",
        episode_scale=0.1,
    ),
    Setting("Ballet", "chronotope/Ballet-v0", "defaults", {}),
    Setting("Ballet", "chronotope/Ballet-v0", "delay=48", {"delay": 48}),
    Setting("Ballet", "chronotope/Ballet-v0", "num_dancers=8", {"num_dancers": 8}),
    Setting("CueRecallPick", "chronotope/CueRecallPick-v0", "defaults", {}, family="arm", episode_scale=0.25),
    Setting("CountPress", "chronotope/CountPress-v0", "defaults", {}, family="arm", episode_scale=0.25),
    *_arm_rows("ButtonSequence", {"length": 2}, {"length": 4}),
    *_arm_rows("ColourSequence", {"length": 2}, {"length": 4}),
    *_arm_rows("RestorePlace", {"tolerance": 0.06}, {"delay_steps": 40}),
    *_arm_rows("WhereHidden", {"num_cups": 3}, {"delay_steps": 40}),
    *_arm_rows("MultiCueTouch", {"num_cued": 2}, {"num_cued": 5}),
    *_arm_rows("PairRecall", {"num_pairs": 2}, {"num_pairs": 6}),
    *_arm_rows("ShellGame", {"num_swaps": 0}, {"num_swaps": 8}, {"num_cups": 3}),
)


@dataclass
class Config:
    """Options of ``chronotope memory-demand``.

    Attributes:
        episodes: finished episodes per (setting, policy), scaled down per setting for long episodes.
        num_envs: navigation environments stepped together.
        seed: base seed (the same episodes for every policy of a setting).
        tasks: only these tasks (empty: all).
        quick: 16 episodes per cell and the default setting of each task only.
        out: JSON file for the results ("" to skip).
    """

    episodes: int = 200
    num_envs: int = 16
    seed: int = 0
    tasks: tuple[str, ...] = ()
    quick: bool = False
    out: str = "runs/memory_demand/results.json"


def _span(setting: Setting) -> int | None:
    """The cue-to-query span the task declares at this setting."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401

    if setting.family == "nav":  # the vector env hands max_episode_steps to the task (the span may depend on it)
        kw = {"obs_mode": "state", **setting.kwargs}
        env = gym.make_vec(setting.env_id, num_envs=1, vectorization_mode="vector_entry_point", **kw)
    else:
        env = gym.make(setting.env_id, **setting.kwargs)
    try:
        owner = env.unwrapped.core.task if setting.family == "nav" else env.unwrapped  # arm envs declare it
        return int(owner.cue_to_query_span())
    except (AttributeError, NotImplementedError):
        return None
    finally:
        env.close()


def measure(setting: Setting, policy: str, episodes: int, num_envs: int, seed: int) -> dict[str, float]:
    """Mean final measures of one policy on one setting (``twin``: the memoryless policy, cue always shown)."""
    kind = "memoryless" if policy == "twin" else policy
    kw = dict(setting.kwargs)
    if policy == "twin":
        kw["observability"] = "full"
    if setting.family == "arm":
        from chronotope.envs.robot.oracles import evaluate as arm_evaluate

        return arm_evaluate(setting.env_id, kind, episodes, seed=seed, **kw)
    from chronotope.envs.nav import oracles

    if setting.task != "ObjectRecall" or kind != "memoryless":
        return oracles.evaluate(setting.env_id, kind, episodes, num_envs=num_envs, seed=seed, obs_mode="state", **kw)
    # ObjectRecall's Bayes policy also reports the analytic value of its best STOP (an upper estimate).
    made = []

    def make(*a, **k):
        made.append(oracles.make_oracle(*a, **k))
        return made[-1]

    r = oracles.evaluate(
        setting.env_id, kind, episodes, num_envs=num_envs, seed=seed, obs_mode="state", make_policy=make, **kw
    )
    if made and made[0].bound:
        r["analytic_bound"] = float(np.mean(made[0].bound))
    return r


def run(cfg: Config) -> dict:
    settings = [s for s in SETTINGS if not cfg.tasks or s.task in cfg.tasks]
    if cfg.quick:
        settings = [s for s in settings if s.knob == "defaults"]
    rows = []
    for s in settings:
        n = 16 if cfg.quick else max(cfg.num_envs, int(round(cfg.episodes * s.episode_scale)))
        span = _span(s)
        vals: dict[str, dict] = {}
        for policy in POLICIES:
            t0 = time.perf_counter()
            vals[policy] = measure(s, policy, n, cfg.num_envs, cfg.seed)
            print(
                f"{s.task:15s} {s.knob:26s} {policy:10s} {s.metric}={vals[policy][s.metric]:.3f} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        perfect, bound = vals["perfect"][s.metric], vals["memoryless"][s.metric]
        analytic = vals["memoryless"].get("analytic_bound")
        if analytic is not None:  # the larger of the two: the spec prefers an over-estimate of the bound
            bound = max(bound, analytic)
        rows.append(
            {
                "task": s.task,
                "knob": s.knob,
                "kwargs": s.kwargs,
                "metric": s.metric,
                "episodes": n,
                "span": span,
                **{p: vals[p][s.metric] for p in POLICIES},
                "analytic_bound": analytic,
                "bound": bound,
                "demand": perfect - bound,
                "ratio": bound / perfect if perfect > 0 else float("nan"),
            }
        )
    table = markdown(rows)
    print(table)
    result = {"rows": rows, "table": table, "seed": cfg.seed}
    if cfg.out:
        p = Path(cfg.out)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps(result, indent=1))
    return result


def markdown(rows: list[dict]) -> str:
    cols = ("task", "setting", "metric", "random", "memoryless bound", "perfect", "twin", "demand", "bound / perfect")
    cols += ("span", "episodes")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        bound = f"{r['bound']:.3f}"
        if r["analytic_bound"] is not None:
            bound += f" (policy {r['memoryless']:.3f}, analytic {r['analytic_bound']:.3f})"
        lines.append(
            f"| {r['task']} | {r['knob']} | {r['metric']} | {r['random']:.3f} | {bound} | {r['perfect']:.3f} | "
            f"{r['twin']:.3f} | {r['demand']:.3f} | {r['ratio']:.2f} | {r['span'] if r['span'] is not None else '-'} "
            f"| {r['episodes']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
