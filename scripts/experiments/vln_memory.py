"""Mem4Nav and JanusVLN reproductions on VLN-v0 (issue 13, items 2 and 3), CPU-sized.

One command trains every variant with the same imitation budget (behaviour cloning from the VLN shortest-path
expert, then DAgger) for each seed, evaluates it on unseen scenes and aggregates over seeds (mean ± 95% CI,
Student t over the per-seed means):

- **Mem4Nav ablation** (He et al. 2025): a GRU agent with no map, with the octree features only, with the
  topology-graph features only, and with the full Mem4Nav stack (octree + graph + the LTM/STM retrieval), each
  reaching the policy through its observation wrapper (``chronotope.maps.wrappers``). SR, SPL, nDTW, TC.
- **JanusVLN** (Zeng et al. 2026): the dual implicit memory (``janus``, lambda = 0.2) vs semantic-only
  (``use_spatial=False``, the spec's lambda = 0 model) vs re-encoding the last K frames every step without a
  cache (``janus_reencode``). SR / SPL and per-step cost (ms per memory step at batch 1 after L frames, and the
  state's bytes).

Every agent observes the same thing: the ``state`` observation (pose, rangefinder, nearby objects, instruction
tokens; the VLN task hides the goal) plus a rendered ``depth`` frame (the ``depth`` wrapper), which the maps
read. Writes ``<out>/results.json`` / ``results.md``, per-run folders, and ``docs/images/vln_memory_*.png``.
Finished (variant, seed) runs are skipped when the command is run again (their ``result.json`` is reused).

``python -m chronotope.scripts.experiments.vln_memory`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("success", "spl", "ndtw", "task_completion", "oracle_success", "distance_to_goal", "steps")
BASE_WRAPPERS = "depth"

# name -> (group, memory core, memory config, map wrappers on top of the depth frame, description)
VARIANTS: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    "no_map": ("mem4nav", "gru", {}, "", "GRU, no map"),
    "octree": ("mem4nav", "gru", {}, "octree", "GRU + octree (16 nearest leaves)"),
    "topology": ("mem4nav", "gru", {}, "topology", "GRU + topology graph (current node + 8 successors)"),
    "mem4nav_full": ("mem4nav", "gru", {}, "octree,topology,mem4nav", "GRU + octree + graph + LTM/STM retrieval"),
    "janus_dual": ("janus", "janus", {"fusion_weight": 0.2}, "", "JanusVLN dual implicit memory (lambda 0.2)"),
    "janus_semantic": ("janus", "janus", {"use_spatial": False}, "", "semantic-only (no spatial memory)"),
    "janus_reencode": ("janus", "janus_reencode", {"fusion_weight": 0.2}, "", "re-encode last K frames, no cache"),
}


@dataclass
class Config:
    """Options of the VLN memory experiment (defaults: the full run, about an hour of one CPU core)."""

    quick: bool = False
    """Smoke-run sizes (one seed, a few hundred steps, 4 evaluation episodes)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (model, DAgger sampling and training episodes)."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run (names of VARIANTS)."""
    steps: int = 4096
    """Environment steps of imitation per run (all envs together), the same for every variant."""
    dagger_iters: int = 1
    """DAgger iterations after behaviour cloning (the steps are split evenly over BC and DAgger)."""
    bc_epochs: int = 8
    """Passes over the aggregated dataset per iteration (few steps, so many passes: 3 passes left the
    cross-entropy near its uniform value, 1.2 nats)."""
    minibatches: int = 2
    """Minibatches per collected chunk (each a set of whole sequences)."""
    num_envs: int = 8
    """Environments stepped together in training and evaluation."""
    rollout_len: int = 64
    """Steps per environment per collected chunk."""
    bptt_len: int = 32
    """Training sequence length (truncated BPTT / memory chunk)."""
    lr: float = 1e-3
    """Adam learning rate."""
    hidden: int = 128
    """Encoder output width (memory input)."""
    train_scenes: int = 8
    """Training scenes (generator seeds 0..train_scenes-1)."""
    eval_scenes: int = 8
    """Unseen evaluation scenes (generator seeds 100000..)."""
    eval_episodes: int = 40
    """Evaluation episodes per run."""
    eval_seed: int = 10_000
    """Seed of the evaluation episodes (the same for every run)."""
    resolution: int = 32
    """Side of the rendered depth frame (pixels)."""
    max_distance: float = 6.0
    """Longest geodesic start-goal distance of an episode (m): short routes fit the budget."""
    max_instruction_length: int = 48
    """Instruction tokens in the observation."""
    max_episode_steps: int = 120
    """Time limit (the expert needs about 40 steps at 6 m)."""
    janus_n_init: int = 4
    """Janus sink frames (paper 8; scaled with the ~30-60-step episodes so that eviction happens)."""
    janus_n_window: int = 12
    """Janus sliding window (paper 48)."""
    reencode_frames: int = 8
    """K of the re-encoding baseline (paper compares against 8-32)."""
    cost_lengths: tuple[int, ...] = (16, 64, 256)
    """Episode lengths L at which the per-step cost is measured."""
    cost_reencode: tuple[int, ...] = (8, 16, 32)
    """K values of the re-encoding baseline in the cost table."""
    out: Path = Path("runs/vln_memory")
    """Output folder."""
    images: Path = Path("docs/images")
    """Folder of the plots (vln_memory_mem4nav.png, vln_memory_janus.png)."""
    torch_threads: int = 1
    """Torch threads (1: the machine is shared)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form values recorded with the results."""

    def resolved(self) -> Config:
        """The quick sizes applied (a copy)."""
        if not self.quick:
            return self
        from dataclasses import replace

        return replace(
            self,
            seeds=self.seeds[:1],
            steps=2 * 4 * 32,
            dagger_iters=1,
            bc_epochs=1,
            num_envs=4,
            rollout_len=32,
            bptt_len=16,
            train_scenes=2,
            eval_scenes=2,
            eval_episodes=4,
            max_episode_steps=40,
            janus_n_init=2,
            janus_n_window=4,
            reencode_frames=4,
            cost_lengths=(8,),
            cost_reencode=(4,),
        )


def env_kwargs(cfg: Config, scene_seeds: list[int] | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "obs_mode": "state",
        "resolution": [cfg.resolution, cfg.resolution],
        "num_scenes": cfg.train_scenes,
        "max_episode_steps": cfg.max_episode_steps,
        "task_kwargs": {"max_distance": cfg.max_distance, "max_instruction_length": cfg.max_instruction_length},
    }
    if scene_seeds is not None:
        kw["scene_seeds"] = scene_seeds
    return kw


def eval_scene_seeds(cfg: Config) -> list[int]:
    return [100_000 + i for i in range(cfg.eval_scenes)]


def memory_cfg(cfg: Config, name: str) -> dict[str, Any]:
    _, core, mcfg, _, _ = VARIANTS[name]
    mcfg = dict(mcfg)
    if core.startswith("janus"):
        mcfg.update(n_init=cfg.janus_n_init, n_window=cfg.janus_n_window)
    if core == "janus_reencode":
        mcfg["reencode_frames"] = cfg.reencode_frames
    return mcfg


def wrappers_of(name: str) -> str:
    extra = VARIANTS[name][3]
    return BASE_WRAPPERS + ("," + extra if extra else "")


def train_config(cfg: Config, name: str, seed: int):
    from chronotope.agents.config import TrainConfig

    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; valid: {list(VARIANTS)}")
    return TrainConfig(
        env="chronotope/VLN-v0",
        agent=VARIANTS[name][1],
        algo="dagger",
        steps=cfg.steps,
        seed=seed,
        name=f"{name}-s{seed}",
        out_dir=cfg.out / "runs",
        num_envs=cfg.num_envs,
        rollout_len=cfg.rollout_len,
        bptt_len=cfg.bptt_len,
        minibatches=cfg.minibatches,
        lr=cfg.lr,
        hidden=cfg.hidden,
        memory_cfg=json.dumps(memory_cfg(cfg, name)),
        env_kwargs=json.dumps(env_kwargs(cfg)),
        wrappers=wrappers_of(name),
        device="cpu",
        torch_threads=cfg.torch_threads,
        progress=False,
        bc_epochs=cfg.bc_epochs,
        dagger_iters=cfg.dagger_iters,
    )


def run_one(cfg: Config, name: str, seed: int) -> dict[str, Any]:
    """Trains and evaluates one (variant, seed); reuses ``result.json`` of a finished run."""
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.imitation import train_imitation

    tcfg = train_config(cfg, name, seed)
    run = tcfg.run_dir()
    done = run / "result.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("train_config") == tcfg.to_dict() and saved.get("eval_episodes") == cfg.eval_episodes:
            return saved
    if run.exists():  # a stale or interrupted run: start clean (progress.jsonl appends)
        import shutil

        shutil.rmtree(run)
    c0, w0 = time.process_time(), time.perf_counter()
    history = train_imitation(tcfg)
    c1, w1 = time.process_time(), time.perf_counter()
    ecfg = EvalConfig(
        run=run,
        episodes=cfg.eval_episodes,
        num_envs=cfg.num_envs,
        seed=cfg.eval_seed,
        env_kwargs=json.dumps({"scene_seeds": eval_scene_seeds(cfg)}),
    )
    summary = evaluate(ecfg)
    c2, w2 = time.process_time(), time.perf_counter()
    res = {
        "variant": name,
        "seed": seed,
        "train_config": tcfg.to_dict(),
        "eval_episodes": cfg.eval_episodes,
        "metrics": {k: summary[k]["mean"] for k in METRICS if k in summary},
        "history": history,
        "train_cpu_s": c1 - c0,
        "train_wall_s": w1 - w0,
        "eval_cpu_s": c2 - c1,
        "eval_wall_s": w2 - w1,
    }
    done.write_text(json.dumps(res, indent=2))
    return res


def forward_then_stop(cfg: Config) -> dict[str, float]:
    """VLN-CE's forward-only reference on the evaluation episodes (those of :func:`run_one`'s evaluation: env seeds
    ``eval_seed + k`` on the unseen scenes, each run to its end by :func:`chronotope.envs.rollout.run_episodes`):
    K forward steps then STOP, K = the training scenes' mean start distance / 0.25 m."""
    from chronotope.agents.envs import make_vector_env
    from chronotope.envs.rollout import run_episodes
    from chronotope.scripts.experiments.vln_baselines import forward_then_stop_policy

    venv = make_vector_env("chronotope/VLN-v0", cfg.num_envs, env_kwargs(cfg))
    venv.reset(seed=cfg.eval_seed + 7)
    dists = []
    for _ in range(8):
        dists += list(venv.unwrapped.core.start_distance)
        venv.unwrapped.core.reset_envs(np.arange(cfg.num_envs), venv.unwrapped._rngs)
    venv.close()
    k = max(1, round(float(np.mean(dists)) / 0.25))
    venv = make_vector_env("chronotope/VLN-v0", cfg.num_envs, env_kwargs(cfg, eval_scene_seeds(cfg)))
    seeds = [cfg.eval_seed + i for i in range(cfg.eval_episodes)]
    records = run_episodes(venv, forward_then_stop_policy(k)(venv.unwrapped), seeds)
    venv.close()
    return {m: float(np.mean([float(r.info[m]) for r in records])) for m in METRICS} | {"k": k}


def step_cost(cfg: Config) -> list[dict[str, Any]]:
    """ms per memory step (batch 1, no gradient) after L frames and the state's bytes, per core.

    Cores built with the experiment's sizes (input = ``hidden``); the re-encoding baseline for several K.
    Timings share the machine with other work: read the ratios, not the absolute values.
    """
    import torch

    from chronotope.memory.base import make_memory
    from chronotope.scripts.bench.common import timeit
    from chronotope.scripts.bench.janus import make_step_fn, state_nbytes

    rows = []
    base = {"n_init": cfg.janus_n_init, "n_window": cfg.janus_n_window}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("janus_dual", "janus", {**base, "fusion_weight": 0.2}),
        ("janus_semantic", "janus", {**base, "use_spatial": False}),
        ("janus_dual, paper cache 8+48", "janus", {"n_init": 8, "n_window": 48, "fusion_weight": 0.2}),
    ]
    specs += [(f"janus_reencode K={k}", "janus_reencode", {**base, "reencode_frames": k}) for k in cfg.cost_reencode]
    specs.append(("gru (reference)", "gru", {}))
    for label, core, mcfg in specs:
        torch.manual_seed(0)
        model = make_memory(core, input_size=cfg.hidden, **mcfg).eval()
        for length in cfg.cost_lengths:
            if core == "janus":
                fn, state = make_step_fn(model, 1, length)
            else:
                state = model.initial_state(1)
                with torch.no_grad():
                    _, state = model(torch.randn(1, length, cfg.hidden), state)
                x = torch.randn(1, 1, cfg.hidden)

                def fn(model=model, x=x, state=state):
                    with torch.no_grad():
                        return model(x, state)[0]

            t = timeit(fn, warmup=3, repeat=7, number=10)
            rows.append(
                {"core": label, "length": length, "ms_per_step": 1e3 * t.median, "state_bytes": state_nbytes(state)}
            )
    return rows


def aggregate(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: each metric's mean and 95% CI half-width over the per-seed means
    (:func:`chronotope.agents.stats.summarize`; nan for one seed), mean training CPU time and final loss."""
    from chronotope.agents.stats import summarize

    out: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        rs = [r for r in results if r["variant"] == name]
        if not rs:
            continue
        agg: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
        for m in METRICS:
            vals = [r["metrics"][m] for r in rs if m in r["metrics"]]
            if vals:
                s = summarize(vals)
                agg[m] = {"mean": s["mean"], "ci95": s["ci95"], "per_seed": vals}
        agg["train_cpu_s"] = float(np.mean([r["train_cpu_s"] for r in rs]))
        agg["final_loss"] = float(np.mean([r["history"][-1]["loss"] for r in rs]))
        out[name] = agg
    return out


def _pm(a: dict[str, Any], m: str) -> str:
    if m not in a:
        return "-"
    mean, ci = a[m]["mean"], a[m]["ci95"]
    return f"{mean:.3f}" if math.isnan(ci) else f"{mean:.3f} ± {ci:.3f}"


def tables(agg: dict[str, dict[str, Any]], ref: dict[str, float], cost: list[dict[str, Any]], cfg: Config) -> str:
    from chronotope.scripts.bench.common import print_table

    md = ""
    cols = ["agent", "SR", "SPL", "nDTW", "TC", "OSR", "NE (m)", "train CPU s/run", "final BC loss"]

    def row(name: str) -> list[Any]:
        a = agg[name]
        return (
            [VARIANTS[name][4]]
            + [_pm(a, m) for m in ("success", "spl", "ndtw", "task_completion", "oracle_success", "distance_to_goal")]
            + [a["train_cpu_s"], a["final_loss"]]
        )

    ref_row = (
        [f"forward {ref['k']} steps then stop (reference)"]
        + [f"{ref[m]:.3f}" for m in ("success", "spl", "ndtw", "task_completion", "oracle_success", "distance_to_goal")]
        + ["-", "-"]
    )
    n_seeds = len(cfg.seeds)
    for group, title in (
        ("mem4nav", f"Mem4Nav ablation on VLN-v0 unseen scenes (mean ± 95% CI over {n_seeds} seeds)"),
        ("janus", f"JanusVLN memories on VLN-v0 unseen scenes (mean ± 95% CI over {n_seeds} seeds)"),
    ):
        names = [n for n in VARIANTS if VARIANTS[n][0] == group and n in agg]
        if group == "janus" and "no_map" in agg:
            names = ["no_map"] + names
        if names:
            md += print_table(title, cols, [row(n) for n in names] + [ref_row]) + "\n"
    if cost:
        lengths = sorted({r["length"] for r in cost})
        cores = list(dict.fromkeys(r["core"] for r in cost))
        base = {r["length"]: r["ms_per_step"] for r in cost if r["core"] == "janus_dual"}
        crow = []
        for c in cores:
            rs = {r["length"]: r for r in cost if r["core"] == c}
            cells = []
            for length in lengths:
                r = rs[length]
                ratio = r["ms_per_step"] / base[length] if length in base else float("nan")
                cells.append(f"{r['ms_per_step']:.2f} ms ({ratio:.2f}x)")
            crow.append([c] + cells + [f"{rs[lengths[-1]]['state_bytes']:,}"])
        md += print_table(
            "Memory core cost per step, batch 1, no gradient (x = relative to janus_dual at the same L; shared CPU)",
            ["core"] + [f"L={length}" for length in lengths] + [f"state bytes (L={lengths[-1]})"],
            crow,
        )
    return md


def plot(
    agg: dict[str, dict[str, Any]], cost: list[dict[str, Any]], cfg: Config, ref: dict[str, float] | None = None
) -> list[Path]:
    """Bar charts (mean, 95% CI over seeds) per group, the forward-then-stop reference as dashed marks, and the
    Janus per-step cost against episode length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg.images.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, metrics in (
        ("mem4nav", ("success", "spl", "ndtw", "task_completion")),
        ("janus", ("success", "spl", "ndtw")),
    ):
        names = [n for n in VARIANTS if VARIANTS[n][0] == group and n in agg]
        if not names:
            continue
        if group == "janus" and "no_map" in agg:
            names = ["no_map", *names]
        ncols = 2 if group == "janus" and cost else 1
        fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.0), squeeze=False)
        ax = axes[0, 0]
        width = 0.8 / len(names)
        x = np.arange(len(metrics))
        for j, n in enumerate(names):
            means = [agg[n].get(m, {}).get("mean", np.nan) for m in metrics]
            cis = [np.nan_to_num(agg[n].get(m, {}).get("ci95", 0.0)) for m in metrics]
            ax.bar(x + (j - (len(names) - 1) / 2) * width, means, width, yerr=cis, capsize=3, label=n)
        if ref is not None:
            for i, m in enumerate(metrics):
                label = "forward then stop" if i == 0 else None
                ax.hlines(ref[m], i - 0.45, i + 0.45, colors="k", linestyles="dashed", label=label)
        ax.set_xticks(x, [m.replace("task_completion", "TC") for m in metrics])
        ax.set_ylim(0, 1)
        ax.set_title(f"VLN-v0 unseen scenes, {len(cfg.seeds)} seeds, {cfg.steps} imitation steps each")
        ax.legend(fontsize=8)
        if ncols == 2:
            ax2 = axes[0, 1]
            for c in dict.fromkeys(r["core"] for r in cost):
                rs = sorted((r for r in cost if r["core"] == c), key=lambda r: r["length"])
                ax2.plot([r["length"] for r in rs], [r["ms_per_step"] for r in rs], marker="o", label=c)
            ax2.set_xscale("log")
            ax2.set_xlabel("episode length L (frames)")
            ax2.set_ylabel("ms per memory step (batch 1)")
            ax2.set_title("per-step cost (shared CPU)")
            ax2.legend(fontsize=8)
        fig.tight_layout()
        path = cfg.images / f"vln_memory_{group}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def run(cfg: Config) -> dict[str, Any]:
    import torch

    from chronotope.scripts.bench.common import write_results

    cfg = cfg.resolved()
    for n in cfg.variants:
        if n not in VARIANTS:
            raise ValueError(f"unknown variant {n!r}; valid: {list(VARIANTS)}")
    torch.set_num_threads(max(1, cfg.torch_threads))
    cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    results = []
    for seed in cfg.seeds:
        for name in cfg.variants:
            r = run_one(cfg, name, seed)
            print(json.dumps({"variant": name, "seed": seed, **r["metrics"], "train_cpu_s": r["train_cpu_s"]}))
            results.append(r)
    ref = forward_then_stop(cfg)
    cost = step_cost(cfg) if any(VARIANTS[n][0] == "janus" for n in cfg.variants) else []
    agg = aggregate(results)
    md = tables(agg, ref, cost, cfg)
    images = plot(agg, cost, cfg, ref)
    payload = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "variants": {
            n: {"group": g, "core": c, "memory_cfg": memory_cfg(cfg, n), "wrappers": wrappers_of(n)}
            for n, (g, c, _, _, _) in VARIANTS.items()
            if n in cfg.variants
        },
        "aggregate": agg,
        "forward_then_stop": ref,
        "step_cost": cost,
        "runs": [{k: v for k, v in r.items() if k != "train_config"} for r in results],
        "images": [str(p) for p in images],
        "cpu_s_this_invocation": time.process_time() - t0,
    }
    write_results("results", payload, md, cfg.out)
    print(f"results: {cfg.out / 'results.md'}; plots: {', '.join(map(str, images))}")
    return payload


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
