"""Pixel training benchmark: env steps per second of the whole PPO loop with a GRU from rgbd 64 x 64, and where the
time of an update goes.

One update of our sequence PPO (:class:`~chronotope.agents.ppo.trainer.PPOTrainer`: batched env, CNN encoder,
GRU core, gradient phase) on ``ObjectRecall-v0`` in the pixel setting of the ``objectrecall_rgbd`` preset of
:mod:`chronotope.scripts.experiments.memory_rl` (rgbd 64 x 64, candidate rows without their cue column), with
that preset's recipe (8 epochs x 4 minibatches of 128-step sequences, replay "gradient", the auxiliary
``memory_slot`` loss at weight 1 teaching the ``candidates`` readout) at ``N`` envs in one batch. The cases
differ only in the image encoder, each one change further from the baseline:

* ``nature`` (the baseline of the ratio columns): the trainer's default, one Nature-DQN CNN (32-64-64 channels)
  per image key, so rgb and depth each get their own.
* ``fused``: one Nature CNN over rgb + depth stacked as one [64, 64, 4] image (``fuse_images``).
* ``fused-small``: the same over the 2013 DQN CNN (16-32 channels; ``image_encoder="small"``).
* ``fused-small-rows``: plus ``row_vision`` (the candidate rows attend over that CNN's feature map), the
  preset's earlier encoder: what the task's learning needs costs on top of the cheapest CNN.
* ``pool-glimpse``: the preset's encoder now: no CNN (8 x 8 channel means, ``image_encoder="pool"``), each row
  reading the pixel column where its object projects (``row_glimpse``); nothing before the learned layers has
  parameters, so the update computes those inputs once per frame (``ObservationEncoder.derive``).

All cases keep the readout and auxiliary loss, so the encoder is the only difference, and none of them changes
the env's work per step: the sim column should be about equal across the cases at one N. Only resets differ:
a STOP in ObjectRecall's recall phase ends the episode, so how often the envs reset follows what each
(untrained, differently initialised) policy happens to do; the ``episodes`` column (episodes ended per update)
shows it.

An update splits into three parts that add up to its time: **sim** (inside the vector env's ``step``,
auto-resets included), **inference** (the rest of ``rollout()``: the policy's forward at each step, the torch
<-> numpy crossings, the buffers and GAE) and **learn** (``train_step``: the epochs of minibatch gradients).
On CPU the encoder is most of both inference and learn, which is why the cases change those and not sim.

Each case is built and warmed up (one update) at each N, then the cases are timed round-robin, one update each
per round, so drifting load on the shared cores hits them alike; the split shown is that of each case's median
update (the lower median of the update times, so its parts add up to the total shown). Ratios are against
``nature`` at the same N, as speed (> 1: faster). Absolute rates are context only (2 shared, noisy cores).

    python -m chronotope.scripts.bench.pixel_train --quick
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from chronotope.scripts.bench.common import machine_info, print_table, quick_settings, write_results
from chronotope.scripts.experiments.memory_rl import PRESETS

_PRESET = PRESETS["objectrecall_rgbd"]
_RECIPE = _PRESET["recipe"]

BASELINE = "nature"
"""The case every ratio is taken against (the trainer's default encoders)."""

CASES: dict[str, dict[str, Any]] = {
    "nature": {},
    "fused": {"fuse_images": True},
    "fused-small": {"fuse_images": True, "image_encoder": "small"},
    "fused-small-rows": {"fuse_images": True, "image_encoder": "small", "row_vision": True},
    "pool-glimpse": {"fuse_images": True, "image_encoder": "pool", "row_vision": True, "row_glimpse": "1,2,90"},
}
"""TrainConfig fields of each case (the encoder alone; everything else is the shared recipe)."""

TARGET_N = 16
"""The N of the headline target (fused-small / nature env steps/s), the preset's per-core batch size scale."""


@dataclass
class Config:
    quick: bool = False
    """One small N, short rollouts, one epoch and one timed round (a smoke run; ratios are noisy)."""
    cases: tuple[str, ...] = tuple(CASES)
    """Cases to time (see the module docstring); ratios need ``nature`` among them."""
    num_envs: tuple[int, ...] = (16, 64)
    """Batch sizes N, each timed separately (quick: 16, the size the suite's target is stated at)."""
    env: str = _PRESET["env"]
    """Environment id (the ``objectrecall_rgbd`` preset's)."""
    env_kwargs: str = json.dumps(_PRESET["env_kwargs"])
    """JSON object of env keyword arguments (the preset's: rgbd 64 x 64, candidates without their cue column)."""
    rollout_len: int = _RECIPE["rollout_len"]
    """Rollout length per env and update (quick: 16)."""
    bptt_len: int = _RECIPE["bptt_len"]
    """Training sequence length (quick: 16)."""
    epochs: int = _RECIPE["epochs"]
    """PPO epochs per update (quick: 1)."""
    minibatches: int = _RECIPE["minibatches"]
    """Minibatches per epoch (quick: 1)."""
    replay: Literal["full", "gradient"] = _RECIPE["replay"]
    """How a training window's memory state is rebuilt (TrainConfig.replay; the preset's)."""
    readout_key: str = _RECIPE["readout_key"]
    """Rows read through the auxiliary head (needed by ``row_vision``; kept in every case so only encoders differ)."""
    aux_key: str = _RECIPE["aux_key"]
    """Info key of the auxiliary loss that teaches the readout."""
    aux_coef: float = 1.0
    """Weight of the auxiliary loss (memory_rl's default)."""
    rounds: int = 3
    """Timed updates per case and N, round-robin (quick: 1)."""
    threads: int = 1
    """torch threads (1: the trainer's CPU default)."""
    seed: int = 0
    """Seed of every case."""
    device: str = "cpu"
    """torch device of the policies (and of the env's renderer where it takes one)."""
    out_dir: str = "runs/bench"
    """Where ``pixel_train.json`` / ``pixel_train.md`` are written."""

    def resolved(self) -> Config:
        """The effective settings (``quick`` shrinks the defaults it names; values given explicitly stay)."""
        if not self.quick:
            return self
        pick = {
            "num_envs": (16,), "rollout_len": 16, "bptt_len": 16, "epochs": 1, "minibatches": 1, "rounds": 1,
        }  # fmt: skip
        return quick_settings(self, pick)


class _Case:
    """One trainer of one case at one N, in its own temporary run folder, with ``venv.step`` timed."""

    def __init__(self, cfg: Config, name: str, num_envs: int) -> None:
        from chronotope.agents.config import TrainConfig
        from chronotope.agents.ppo.trainer import PPOTrainer

        self._tmp = tempfile.TemporaryDirectory(prefix="chronotope-pixel-train-")
        tc = TrainConfig(
            env=cfg.env, agent="gru", steps=10**9, seed=cfg.seed, name=f"{name}-n{num_envs}",
            out_dir=Path(self._tmp.name), num_envs=num_envs, rollout_len=cfg.rollout_len, bptt_len=cfg.bptt_len,
            epochs=cfg.epochs, minibatches=cfg.minibatches, replay=cfg.replay, readout_key=cfg.readout_key,
            aux_key=cfg.aux_key, aux_coef=cfg.aux_coef, env_kwargs=cfg.env_kwargs, device=cfg.device,
            torch_threads=cfg.threads, progress=False, **CASES[name],
        )  # fmt: skip
        try:
            with warnings.catch_warnings():
                # quick runs train on sequences shorter than the task's cue-to-query span, which the trainer warns
                # about; that matters to learning, not to the time of an update
                warnings.filterwarnings("ignore", message=".*cue-to-query span", category=UserWarning)
                self.trainer = PPOTrainer(tc)
        except BaseException:
            self._tmp.cleanup()
            raise
        self.params = sum(p.numel() for p in self.trainer.model.parameters())
        self.sim_s = 0.0
        self.episodes = 0
        inner = self.trainer.venv.step

        def timed_step(actions):  # instrumentation only: the time inside the vector env (auto-resets included)
            t0 = time.perf_counter()
            out = inner(actions)
            self.sim_s += time.perf_counter() - t0
            self.episodes += int((out[2] | out[3]).sum())
            return out

        self.trainer.venv.step = timed_step

    def update(self) -> dict[str, float]:
        """One PPO update (rollout + gradient phase), as seconds: total and its sim / inference / learn split, and
        the episodes it ended."""
        tr = self.trainer
        self.sim_s = 0.0
        self.episodes = 0
        t0 = time.perf_counter()
        batch = tr.rollout()
        t1 = time.perf_counter()
        tr.train_step(batch)
        t2 = time.perf_counter()
        tr.update += 1
        return {
            "total_s": t2 - t0, "sim_s": self.sim_s, "inference_s": t1 - t0 - self.sim_s, "learn_s": t2 - t1,
            "episodes": self.episodes,
        }  # fmt: skip

    def close(self) -> None:
        self.trainer.venv.close()
        self._tmp.cleanup()


def _time_n(cfg: Config, num_envs: int) -> dict[str, dict[str, Any]]:
    """Builds and warms up every case at ``num_envs``, times ``cfg.rounds`` round-robin updates, closes them."""
    built: dict[str, _Case] = {}
    try:
        for name in cfg.cases:
            built[name] = case = _Case(cfg, name, num_envs)
            case.update()  # warm-up (first rollout, optimiser state, lazy inits)
            torch.set_num_threads(cfg.threads)  # a trainer may have changed it
        samples: dict[str, list[dict[str, float]]] = {n: [] for n in cfg.cases}
        for _ in range(cfg.rounds):
            for name, case in built.items():
                samples[name].append(case.update())
    finally:
        for case in built.values():
            case.close()
    steps = num_envs * cfg.rollout_len
    out: dict[str, dict[str, Any]] = {}
    for name in cfg.cases:
        s = samples[name]
        # The median update itself (lower median when even), so that its sim + inference + learn is its total.
        mid = statistics.median_low(u["total_s"] for u in s)
        u = next(u for u in s if u["total_s"] == mid)
        out[name] = {
            **u, "sps": steps / u["total_s"], "params": built[name].params, "samples_s": [v["total_s"] for v in s],
        }  # fmt: skip
    base = out.get(BASELINE)
    if base is not None:
        for r in out.values():
            r["ratio"] = r["sps"] / base["sps"]
            r["inference_ratio"] = base["inference_s"] / r["inference_s"]
            r["learn_ratio"] = base["learn_s"] / r["learn_s"]
    return out


def run(cfg: Config) -> dict:
    """Times every case at every N and prints env steps/s, the sim / inference / learn split and ratios to nature."""
    cfg = cfg.resolved()
    for k in ("rollout_len", "bptt_len", "epochs", "minibatches", "rounds", "threads"):
        if getattr(cfg, k) <= 0:
            raise ValueError(f"{k} must be positive, got {getattr(cfg, k)!r}")
    if not cfg.num_envs or any(n <= 0 for n in cfg.num_envs):
        raise ValueError(f"num_envs must be a non-empty tuple of positive sizes, got {cfg.num_envs!r}")
    if not cfg.cases:
        raise ValueError("cases is empty")
    unknown = [c for c in cfg.cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s) {unknown!r}; valid: {list(CASES)}")
    torch.set_num_threads(cfg.threads)
    results: dict[str, Any] = {"config": cfg, "baseline": BASELINE, "by_num_envs": {}}
    rows = []
    for n in cfg.num_envs:
        res = _time_n(cfg, n)
        results["by_num_envs"][str(n)] = res
        for name, r in res.items():
            rows.append([n, name, r["params"], r["sps"], r["episodes"], r["total_s"], r["sim_s"], r["inference_s"],
                         r["learn_s"], r.get("ratio", "-"), r.get("inference_ratio", "-"),
                         r.get("learn_ratio", "-")])  # fmt: skip
    info = machine_info()
    title = (
        f"Pixel PPO training throughput, GRU, {cfg.env} {cfg.env_kwargs}, N envs x {cfg.rollout_len} steps, "
        f"{cfg.epochs} epochs x {cfg.minibatches} minibatches of {cfg.bptt_len}-step sequences "
        f"({info['cpu']}, {cfg.threads} torch thread(s))"
    )
    cols = ["N", "case", "params", "env steps/s", "episodes", "update s", "sim s", "inference s", "learn s",
            "ratio steps/s", "ratio inference", "ratio learn"]  # fmt: skip
    md = print_table(title, cols, rows)
    md += (
        f"\nThe median of {cfg.rounds} round-robin update(s) per case and N, seconds per update: sim is the time "
        "inside the vector env's step (auto-resets included; episodes: those ended in the update), inference the "
        "rest of the rollout (the policy at each step, buffers, GAE), learn the gradient phase; they add up to the "
        "update. Ratios are against "
        f"{BASELINE} at the same N, as speed (>1: faster). Shared, noisy CPU: absolute numbers are context only.\n"
    )
    print(md.splitlines()[-1])
    head = results["by_num_envs"].get(str(TARGET_N), {}).get("fused-small", {})
    results["headline"] = {"fused_small_over_nature": head.get("ratio"), "num_envs": TARGET_N}
    results["markdown"] = md
    write_results("pixel_train", results, md, cfg.out_dir)
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: each encoder change against nature at every N, where nature's
    update goes, and the fused-small target.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    s = ""
    for n, res in result["by_num_envs"].items():
        base = res.get(BASELINE)
        if base is None:
            parts = [f"{name} {r['sps']:,.0f}" for name, r in res.items()]
            s += f"At N={n} ({BASELINE} not run): {', '.join(parts)} env steps/s. "
            continue
        total = base["sim_s"] + base["inference_s"] + base["learn_s"]
        sim, inf, learn = (100 * base[k] / total for k in ("sim_s", "inference_s", "learn_s"))
        s += (
            f"At N={n}, {BASELINE} trains at {base['sps']:,.0f} env steps/s, its update {sim:.0f}% sim, "
            f"{inf:.0f}% inference, {learn:.0f}% learn"
        )
        others = [
            f"{name} {r['ratio']:.2f}x (inference {r['inference_ratio']:.2f}x, learn {r['learn_ratio']:.2f}x)"
            for name, r in res.items()
            if name != BASELINE
        ]
        s += f"; against it {'; '.join(others)}. " if others else ". "
    s += (
        "The encoders change inference and learn only (the env does the same work per step for every case; resets "
        "follow each untrained policy's STOPs), so the sim share of an update bounds what any encoder can gain. "
    )
    v = (result.get("headline") or {}).get("fused_small_over_nature")
    if v is not None:
        s += f"Target fused-small >= 2.0x nature at N={TARGET_N}: {'met' if v >= 2.0 else 'not met'} ({v:.2f}x)."
    else:
        s += f"Target fused-small >= 2.0x nature: not measured (N={TARGET_N} or one of the two cases not run)."
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
