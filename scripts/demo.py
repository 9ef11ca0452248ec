"""``chronotope demo`` / ``make demo``: the project's main job, end to end on a CPU in about 10 minutes.

1. Renders a first-person RGB / depth / instance-id strip of a generated apartment.
2. Trains three agents on ``chronotope/ObjectRecall-v0`` (``state`` observations) with the same budget:
   no memory, an LSTM and HCAM. Training is imitation (behaviour cloning then DAgger) of the task's
   perfect-memory oracle: the oracle knows which object was cued, the learner only sees what the agent saw,
   so only a memory can reproduce the oracle's choices.
3. Evaluates each agent and, for reference, the random policy and the memoryless / perfect-memory oracles;
   prints a table (success, SPL, return: mean ± 95% CI) and writes it as Markdown and JSON.
4. Writes the learning curves, an Open3D picture of the best agent's trajectory and a short episode video.

Everything goes under ``runs/demo/``; the last lines printed say where.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEMO_ENV = "chronotope/ObjectRecall-v0"
# The cued object is in the agent's room; the agent is turned in place while the cue is on, then waits out the
# delay where it stands (actions ignored), then must STOP within 1 m of the object it was shown. Starts are at
# least 3 m from the target so that stopping on the spot never succeeds.
DEMO_ENV_KWARGS = {
    "obs_mode": "state",
    "delay": 10,
    "teleport": False,
    "delay_task": "wait",
    "recall_steps": 60,
    "min_start_distance": 3.0,
    "num_scenes": 8,
}


@dataclass
class DemoConfig:
    """Options of ``chronotope demo``."""

    out: Path = Path("runs/demo")
    """Output folder."""
    agents: tuple[str, ...] = ("none", "lstm", "hcam")
    """Memory cores to train and compare."""
    steps: int = 80_000
    """Environment steps of training per agent (the same budget for every agent)."""
    dagger_iters: int = 4
    """DAgger iterations after behaviour cloning."""
    memory_cfgs: dict = field(default_factory=lambda: {"hcam": {"hidden_size": 128, "num_heads": 4, "chunk_size": 4}})
    """Memory config per agent (HCAM at the LSTM's width of 128; chunks of 4 steps)."""
    eval_episodes: int = 100
    """Evaluation episodes per agent and per reference policy."""
    seed: int = 0
    """Seed of training and evaluation."""
    scene_seed: int = 3
    """Apartment of the first-person strip."""
    env_kwargs: dict = field(default_factory=lambda: dict(DEMO_ENV_KWARGS))
    """Keyword arguments of the ObjectRecall env."""
    quick: bool = False
    """A tiny run (seconds) that exercises every stage; its numbers mean nothing."""


def render_strip(out: Path, scene_seed: int = 3, views: int = 4, resolution: int = 160) -> Path:
    """Renders ``views`` first-person views (RGB / depth / semantic rows) of a generated apartment to a PNG."""
    from PIL import Image

    from chronotope.envs.render.base import make_renderer
    from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
    from chronotope.envs.render.colorize import colorize_depth, colorize_semantic, grid_image
    from chronotope.envs.scene.generator import generate_apartment

    spec = generate_apartment(scene_seed)
    grid = spec.navgrid()
    rng = np.random.default_rng(scene_seed)
    main = grid.largest_component()
    # Views from well-clear spots, looking towards the farthest free space, so furniture and doors show.
    clear = main & (grid.clearance > 0.6)
    xy = grid.sample_navigable(rng, views, clear if clear.any() else main)
    yaw = np.array([_open_heading(grid, p) for p in xy])
    poses = camera_poses(np.concatenate([xy, np.full((views, 1), 1.25)], 1), yaw)
    renderer = make_renderer("open3d", [spec.to_mesh()], CameraIntrinsics(resolution, resolution, 90.0))
    img = renderer.render(poses, np.zeros(views, np.int64))
    n_ids = max(spec.instance_categories()) + 1
    rows = [
        list(img.rgb.numpy()),
        list(colorize_depth(img.depth.numpy(), 10.0)),
        list(colorize_semantic(img.semantic.numpy(), n_ids)),
    ]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "strip.png"
    Image.fromarray(grid_image(rows)).save(path)
    return path


def _open_heading(grid, p: np.ndarray) -> float:
    """Heading (rad) from ``p`` with the longest free straight line of sight on the nav grid."""
    best, best_len = 0.0, -1.0
    for a in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        d = np.array([np.cos(a), np.sin(a)])
        steps = np.arange(1, 200) * grid.cell_size
        free = grid.is_navigable(p[None] + steps[:, None] * d[None])
        length = steps[np.argmin(free)] if not free.all() else steps[-1]
        if length > best_len:
            best, best_len = float(a), float(length)
    return best


def _fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['ci95']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"


def reference_policies(cfg: DemoConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Random policy, memoryless and perfect-memory oracles on the demo task (same episodes as the agents)."""
    import gymnasium as gym

    from chronotope.agents.evaluate import summarize
    from chronotope.envs.nav.oracles import make_oracle

    out = {}
    for kind in ("random", "memoryless", "perfect"):
        venv = gym.make_vec(DEMO_ENV, num_envs=8, vectorization_mode="vector_entry_point", **cfg.env_kwargs)
        venv.reset(seed=cfg.seed + 10_000)
        policy = make_oracle("object_recall", kind, seed=cfg.seed)
        core = venv.unwrapped.core
        ret = np.zeros(8)
        eps: list[dict] = []
        while len(eps) < cfg.eval_episodes:
            _, r, term, trunc, info = venv.step(policy.act(core))
            ret += r
            for i in np.flatnonzero(np.asarray(term) | np.asarray(trunc)):
                eps.append(
                    {"success": info["final_info"][i]["success"], "spl": info["final_info"][i]["spl"], "return": ret[i]}
                )
                ret[i] = 0.0
        eps = eps[: cfg.eval_episodes]
        out[kind] = {k: summarize([e[k] for e in eps]) for k in ("success", "spl", "return")}
        venv.close()
    return out


def main(cfg: DemoConfig) -> dict:
    import torch

    from chronotope.agents.config import TrainConfig
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.imitation import train_imitation

    torch.set_num_threads(1)
    if cfg.quick:
        cfg.steps, cfg.dagger_iters, cfg.eval_episodes = 2 * 8 * 32, 1, 8
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    strip = render_strip(out, cfg.scene_seed)
    print(f"[demo] first-person strip: {strip}")
    runs: dict[str, Path] = {}
    results: dict[str, dict] = {}
    for agent in cfg.agents:
        t0 = time.perf_counter()
        tcfg = TrainConfig(
            env=DEMO_ENV,
            agent=agent,
            algo="dagger",
            steps=cfg.steps,
            seed=cfg.seed,
            name=f"objectrecall-{agent}",
            out_dir=out,
            num_envs=8 if cfg.quick else 16,
            rollout_len=32 if cfg.quick else 64,
            bptt_len=32 if cfg.quick else 64,
            dagger_iters=cfg.dagger_iters,
            bc_epochs=8,
            lr=1e-3,
            env_kwargs=json.dumps(cfg.env_kwargs),
            progress=False,
            learner_eval_episodes=8 if cfg.quick else 32,
            memory_cfg=json.dumps(cfg.memory_cfgs.get(agent, {})),
        )
        run = tcfg.run_dir()
        if run.exists():  # a fresh run each time: the demo compares equal budgets
            import shutil

            shutil.rmtree(run)
        print(f"[demo] training {agent!r} by BC + DAgger for {cfg.steps} steps ...", flush=True)
        train_imitation(tcfg)
        summary = evaluate(EvalConfig(run=run, episodes=cfg.eval_episodes, num_envs=8, seed=cfg.seed + 10_000))
        results[agent] = {k: summary[k] for k in ("success", "spl", "return")}
        results[agent]["train_seconds"] = time.perf_counter() - t0
        runs[agent] = run
        print(f"[demo] {agent}: success {_fmt(summary['success'])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    refs = reference_policies(cfg)
    lines = [
        f"ObjectRecall-v0 ({', '.join(f'{k}={v}' for k, v in cfg.env_kwargs.items())}), {cfg.eval_episodes} "
        f"evaluation episodes each, {cfg.steps} training steps per agent",
        "",
        "| policy | success | SPL | return |",
        "|---|---|---|---|",
    ]
    rows = [(f"agent: {a}", results[a]) for a in cfg.agents] + [(f"reference: {k}", v) for k, v in refs.items()]
    for name, res in rows:
        lines.append(f"| {name} | {_fmt(res['success'])} | {_fmt(res['spl'])} | {_fmt(res['return'])} |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(
        json.dumps({"agents": results, "references": refs, "config": {**cfg.__dict__, "out": str(cfg.out)}}, indent=2)
    )
    print("\n" + table)
    artifacts = _pictures(out, runs, results)
    print(f"[demo] finished in {time.perf_counter() - t_start:.0f} s. Outputs:")
    for name, path in [("strip", strip), ("results", out / "results.md")] + artifacts:
        print(f"  {name:>16s}: {Path(path).resolve()}")
    return {"agents": results, "references": refs}


def _pictures(out: Path, runs: dict[str, Path], results: dict[str, dict]) -> list[tuple[str, Path]]:
    """Learning curves, the best agent's trajectory in Open3D and an episode video."""
    from chronotope.scripts.viz import VizConfig, viz
    from chronotope.scripts.viz.plots import learning_curves

    written: list[tuple[str, Path]] = []
    curves = out / "learning_curves.png"
    learning_curves(
        {k: [v] for k, v in runs.items()},
        metric="learner_success",
        path=curves,
        title="ObjectRecall-v0: learner success during BC + DAgger",
    )
    written.append(("learning curves", curves))
    best = max(results, key=lambda a: results[a]["success"]["mean"])
    traj = runs[best] / "eval" / "trajectories.npz"
    ep = _successful_episode(runs[best])
    png = viz(VizConfig(target=traj, what="scene", episode=ep, save=out / f"trajectory_{best}.png", camera="top"))
    written.append((f"trajectory ({best})", png))
    try:
        gif = viz(VizConfig(target=traj, what="video", episode=ep, save=out / f"episode_{best}.gif"))
        written.append((f"video ({best})", gif))
    except Exception as e:  # a missing video writer must not cost the whole demo
        print(f"[demo] video skipped: {e}")
    return written


def _successful_episode(run: Path) -> int:
    path = run / "eval" / "episodes.jsonl"
    eps = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, e in enumerate(eps):
        if e.get("success", 0) > 0:
            return i
    return 0
