"""Supervised sanity check of the memories on synthetic key-value recall after a distractor delay.

Each sequence shows ``n_pairs`` key-value pairs (one pair per step, distinct keys), then ``L`` distractor
steps (random symbols from a separate alphabet), then a query step showing one of the keys; the target is
the value paired with it, read from the memory's output at the query step. Chance is ``1 / n_values``.

A memory solves delay L if it keeps the pairs for L + 1 steps: trxl only while the pairs are inside its window
(``n_pairs + L <= window``), HCAM while they are inside its ``capacity * chunk_size`` steps, sat while they are
among its ``capacity`` (64) entries, memoryvla while its merges keep them apart, the recurrent memories (lstm,
gru, mingru, ffm, lru, s6, titans) only if they learn to hold them in their state, which a short training budget
does not give them at long delays.

    python -m chronotope.scripts.experiments.memory_recall            # the accuracy vs L table
    python -m chronotope.scripts.experiments.memory_recall --iters 5  # smoke run
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class Config:
    memories: tuple[str, ...] = (
        "lstm",
        "gru",
        "trxl",
        "hcam",
        "mingru",
        "ffm",
        "lru",
        "s6",
        "titans",
        "memoryvla",
        "sat",
    )
    """Registered memory names to train (see ``chronotope.memory.available_memories``)."""
    delays: tuple[int, ...] = (4, 16, 48, 96)
    """Distractor delays L between the last pair and the query."""
    n_pairs: int = 4
    """Key-value pairs shown per sequence."""
    n_keys: int = 8
    """Key alphabet size (keys of one sequence are distinct, so at least n_pairs)."""
    n_values: int = 8
    """Value alphabet size; chance accuracy is 1 / n_values."""
    n_distractors: int = 8
    """Distractor alphabet size (disjoint from keys and values)."""
    iters: int = 300
    """Adam steps per (memory, delay)."""
    batch_size: int = 32
    """Sequences per training step."""
    eval_size: int = 512
    """Fresh sequences for the reported accuracy."""
    lr: float = 3e-3
    """Adam learning rate."""
    hidden_size: int = 32
    """Width of every memory (hcam/trxl model width, lstm/gru hidden size)."""
    trxl_window: int = 64
    """trxl sliding window (steps); the pairs fall out of it once n_pairs + L > window."""
    hcam: dict[str, int] = field(default_factory=lambda: {"chunk_size": 4, "topk": 4, "capacity": 32})
    """Extra HCAM config (chunk size C, top-k, capacity M)."""
    seed: int = 0
    """Seed of data and initialisation (each run reseeds)."""
    threads: int = 1
    """torch threads (the shared CI machine has 2 cores)."""
    device: str = "cpu"
    """torch device."""
    out: Path | None = None
    """Optional JSON file for the results."""


def input_size(cfg: Config) -> int:
    """One-hot over keys, values, distractors plus three phase flags (pair, distractor, query)."""
    return cfg.n_keys + cfg.n_values + cfg.n_distractors + 3


def make_batch(
    cfg: Config, delay: int, batch: int, gen: torch.Generator, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples recall sequences.

    Returns:
        ``x [B, n_pairs + delay + 1, input_size]`` float one-hots and ``target [B]`` long values.
    """
    if cfg.n_pairs > cfg.n_keys:
        raise ValueError(f"n_pairs {cfg.n_pairs} exceeds n_keys {cfg.n_keys} (keys of a sequence are distinct)")
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay}")
    nk, nv, nd, p = cfg.n_keys, cfg.n_values, cfg.n_distractors, cfg.n_pairs
    t = p + delay + 1
    x = torch.zeros(batch, t, input_size(cfg))
    keys = torch.rand(batch, nk, generator=gen).argsort(dim=1)[:, :p]  # [B, P] distinct keys
    values = torch.randint(nv, (batch, p), generator=gen)  # [B, P]
    rows = torch.arange(batch)
    for i in range(p):
        x[rows, i, keys[:, i]] = 1.0
        x[rows, i, nk + values[:, i]] = 1.0
        x[:, i, -3] = 1.0
    if delay:
        d = torch.randint(nd, (batch, delay), generator=gen)
        x[rows[:, None], torch.arange(p, p + delay)[None, :], nk + nv + d] = 1.0
        x[:, p : p + delay, -2] = 1.0
    which = torch.randint(p, (batch,), generator=gen)
    x[rows, -1, keys[rows, which]] = 1.0
    x[:, -1, -1] = 1.0
    return x.to(device), values[rows, which].to(device)


class RecallModel(nn.Module):
    """A registered memory followed by a linear read-out of the value at the query step."""

    def __init__(self, name: str, cfg: Config) -> None:
        super().__init__()
        from chronotope.memory import make_memory

        kw: dict[str, Any] = {"hidden_size": cfg.hidden_size}
        if name == "trxl":
            kw["window"] = cfg.trxl_window
        if name == "hcam":
            kw.update(cfg.hcam)
        if name == "sat":  # the task has no place: one place holding the whole budget (SAT reduces to T-FIFO)
            kw.update({"num_places": 1, "grid": (1, 1)})
        if name == "none":
            kw = {}
        self.memory = make_memory(name, input_size(cfg), **kw)
        self.head = nn.Linear(self.memory.output_size, cfg.n_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F]`` -> value logits at the last step ``[B, n_values]``."""
        y, _ = self.memory(x, self.memory.initial_state(x.shape[0], x.device))
        return self.head(y[:, -1])


def train_one(name: str, delay: int, cfg: Config) -> dict[str, float]:
    """Trains one memory at one delay; returns final accuracy on fresh sequences, loss and seconds."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * delay)
    model = RecallModel(name, cfg).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for _ in range(cfg.iters):
        x, target = make_batch(cfg, delay, cfg.batch_size, gen, cfg.device)
        loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    eval_gen = torch.Generator().manual_seed(cfg.seed + 7 + 1000 * delay)
    with torch.no_grad():
        x, target = make_batch(cfg, delay, cfg.eval_size, eval_gen, cfg.device)
        acc = (model(x).argmax(-1) == target).float().mean().item()
    return {"accuracy": acc, "final_loss": float(loss.detach()), "seconds": time.perf_counter() - t0}


def run(cfg: Config) -> dict:
    """Trains every memory at every delay and prints the accuracy-vs-L table."""
    from chronotope.scripts.bench.common import machine_info, print_table

    torch.set_num_threads(cfg.threads)
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name in cfg.memories:
        results[name] = {}
        for delay in cfg.delays:
            results[name][delay] = train_one(name, delay, cfg)
    rows = [[name] + [results[name][d]["accuracy"] for d in cfg.delays] for name in cfg.memories]
    md = print_table(
        f"Recall accuracy vs delay L ({cfg.n_pairs} pairs, chance {1 / cfg.n_values:.3f}, {cfg.iters} steps "
        f"x {cfg.batch_size} seqs)",
        ["memory"] + [f"L={d}" for d in cfg.delays],
        rows,
    )
    secs = [[name] + [results[name][d]["seconds"] for d in cfg.delays] for name in cfg.memories]
    md += print_table("Training seconds per run (shared CPU, noisy)", ["memory"] + [f"L={d}" for d in cfg.delays], secs)
    out = {"config": asdict(cfg), "machine": machine_info(), "results": results, "markdown": md}
    if cfg.out is not None:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        cfg.out.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
