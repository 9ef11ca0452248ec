"""Memory benchmark: per-step time and state bytes as the episode grows (T = 10^2 .. 10^5).

Every memory runs step by step (T = 1 calls, batch 1, no grad) as an agent would. To time one step at
history T the memory is first brought to the state it has after T steps, then a few more steps are timed
from that same state:

* bounded memories (hcam, trxl, janus, lstm, ...) are filled by running ``min(T, fill_steps)`` real steps
  in whole-sequence blocks, where ``fill_steps`` covers the whole capacity (hcam: M*C + C, trxl: window,
  janus: n_init + n_window, lstm/gru: 1), after which their state (and per-step work) no longer depends on T;
  the ``filled`` column says how many steps were run;
* ``full_attention`` gets a cache of exactly T steps with random content (``filled_state``), since running
  T steps of it costs O(T^2); the per-step work depends only on the cache size.

A sample is the mean of ``number`` consecutive steps from that state, threading the state as an agent does,
so work a memory does only every few steps (HCAM completes and stores a chunk every ``chunk_size`` steps) is
in every sample at its real frequency.

A second table times a whole-sequence forward (``seq_batch`` rows x ``seq_len`` steps from a fresh state, as a
trainer calls the memory), reported as env steps/s beside the one-step rate: the parallel-scan memories (mingru,
ffm, lru, s6) gain most from whole sequences; the memories whose writes depend on their own reads (titans,
memoryvla, sat) loop over the steps either way. sat runs on its default place signal (columns 0 and 1 of x as
a pose), which with random inputs spreads entries over its places.

Ratios are against full attention at the same T, measured in the same run with the memories timed in
round-robin (sample r of every memory, then sample r + 1 ...) so drifting load affects them alike. The
attention memories (hcam, trxl, full_attention) share width and head count (``width``, ``heads``) and have two
layers with MLP ratio 2 each (their defaults); every memory runs at batch ``batch_size`` (1) under
``torch.no_grad`` with ``threads`` (1) torch threads.
Absolute times are context only: the CI machine's 2 cores are shared and noisy.

    python -m chronotope.scripts.bench.memory --quick
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class Config:
    quick: bool = False
    """Cap the episode lengths at 10^4 and take 3 samples per point."""
    lengths: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    """Histories T at which one step is timed."""
    memories: tuple[str, ...] = (
        "hcam",
        "trxl",
        "janus",
        "lstm",
        "gru",
        "mingru",
        "ffm",
        "lru",
        "s6",
        "titans",
        "memoryvla",
        "sat",
        "full_attention",
    )
    """Memories to compare; names that are not registered are skipped with a note."""
    width: int = 64
    """hidden_size of every memory that has one (janus keeps its own defaults; memoryvla: its cognitive width)."""
    heads: int = 4
    """num_heads of hcam, trxl and full_attention, so the attention memories compare at one width and head count."""
    input_size: int = 64
    """Feature size of the per-step inputs."""
    batch_size: int = 1
    """Rows stepped together."""
    fill_block: int = 256
    """Steps per whole-sequence call while filling a bounded memory."""
    default_fill: int = 1024
    """Fill steps for a bounded memory whose capacity the benchmark does not know."""
    repeat: int = 7
    """Timed samples per point (each the mean of ``number`` steps)."""
    number: int = 8
    """Consecutive steps averaged per sample (8 = one HCAM chunk cycle, so its chunk write is in every sample)."""
    threads: int = 1
    """torch threads."""
    device: str = "cpu"
    """torch device."""
    seq_len: int = 128
    """Length of the whole-sequence forward timed for the sequence throughput table (0: skip that table)."""
    seq_batch: int = 16
    """Rows of that whole-sequence forward (a rollout chunk of this many environments)."""
    out_dir: str = "runs/bench"
    """Where ``memory.json`` / ``memory.md`` are written."""


def fill_steps(name: str, mem: torch.nn.Module, default: int) -> int:
    """Steps after which a bounded memory's state is full (per-step cost independent of T from there)."""
    if name == "hcam":
        return mem.capacity * mem.chunk_size + mem.chunk_size
    if name == "trxl":
        return mem.window
    if name in ("lstm", "gru", "none", "mingru", "ffm", "lru", "s6", "titans"):
        return 1  # a fixed-size recurrent state: per-step work does not depend on the history
    if name in ("memoryvla", "sat"):
        return mem.capacity + 1  # banks full: consolidation / eviction on every step from here
    cap = getattr(getattr(mem, "cfg", None), "capacity", None)  # janus: n_init + n_window frames
    return int(cap) + 1 if isinstance(cap, int) else default


def _build(name: str, cfg: Config):
    from chronotope.memory import make_memory

    widths = (
        "hcam",
        "trxl",
        "full_attention",
        "lstm",
        "gru",
        "mingru",
        "ffm",
        "lru",
        "s6",
        "titans",
        "memoryvla",
        "sat",
    )
    kw = {"hidden_size": cfg.width} if name in widths else {}
    if name in ("hcam", "trxl", "full_attention"):
        kw["num_heads"] = cfg.heads
    torch.manual_seed(0)
    return make_memory(name, cfg.input_size, **kw).to(cfg.device).eval()


def _filled(name: str, mem, steps: int, cfg: Config, gen: torch.Generator):
    b = cfg.batch_size
    if name == "full_attention":
        return mem.filled_state(b, steps, cfg.device), steps
    n = min(steps, fill_steps(name, mem, cfg.default_fill))
    state = mem.initial_state(b, cfg.device)
    done = 0
    while done < n:
        k = min(cfg.fill_block, n - done)
        x = torch.randn(b, k, cfg.input_size, generator=gen).to(cfg.device)
        _, state = mem(x, state)
        done += k
    return state, n


def run(cfg: Config) -> dict:
    """Times every memory at every T; prints and writes the tables and the headline ratios."""
    from chronotope.memory import available_memories, state_nbytes
    from chronotope.scripts.bench.common import machine_info, print_table, write_results

    torch.set_num_threads(cfg.threads)
    lengths = tuple(t for t in cfg.lengths if not cfg.quick or t <= 10_000)
    repeat, number = (3, cfg.number) if cfg.quick else (cfg.repeat, cfg.number)
    registered = set(available_memories())
    names = [n for n in cfg.memories if n in registered]
    skipped = [n for n in cfg.memories if n not in registered]
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(cfg.batch_size, 1, cfg.input_size, generator=gen).to(cfg.device)
    results: dict[str, dict[int, dict[str, float]]] = {n: {} for n in names}
    mems = {n: _build(n, cfg) for n in names}
    with torch.no_grad():
        for t in lengths:
            filled = {n: _filled(n, mems[n], t, cfg, gen) for n in names}
            # Round-robin over the memories so that load drifting on the shared machine hits all alike.
            samples: dict[str, list[float]] = {n: [] for n in names}
            for r in range(2 + repeat):  # the first two rounds are warm-up
                for n in names:
                    state = filled[n][0]
                    t0 = time.perf_counter()
                    for _ in range(number):  # consecutive steps: periodic work (chunk writes) is timed too
                        _, state = mems[n](x1, state)
                    if r >= 2:
                        samples[n].append((time.perf_counter() - t0) / number)
            for n in names:
                q = statistics.quantiles(samples[n], n=4) if len(samples[n]) >= 2 else [samples[n][0]] * 3
                results[n][t] = {
                    "step_ms": statistics.median(samples[n]) * 1e3,
                    "step_ms_iqr": (q[2] - q[0]) * 1e3,
                    "state_bytes": state_nbytes(filled[n][0]),
                    "filled": filled[n][1],
                }
            del filled
        seq: dict[str, dict[str, float]] = {}
        if cfg.seq_len > 0:
            xs = torch.randn(cfg.seq_batch, cfg.seq_len, cfg.input_size, generator=gen).to(cfg.device)
            # Episode starts as a rollout chunk has them: one row starts mid-chunk.
            starts = torch.zeros(cfg.seq_batch, cfg.seq_len, dtype=torch.bool, device=cfg.device)
            starts[0, cfg.seq_len // 2] = True
            fresh = {n: mems[n].initial_state(cfg.seq_batch, cfg.device) for n in names}
            seq_samples: dict[str, list[float]] = {n: [] for n in names}
            for r in range(1 + repeat):  # the first round is warm-up
                for n in names:
                    t0 = time.perf_counter()
                    mems[n](xs, fresh[n], starts)
                    if r >= 1:
                        seq_samples[n].append(time.perf_counter() - t0)
            for n in names:
                sec = statistics.median(seq_samples[n])
                seq[n] = {"seq_ms": sec * 1e3, "seq_steps_per_s": cfg.seq_batch * cfg.seq_len / sec}

    cols = ["memory"] + [f"T={t:,}" for t in lengths]
    md = print_table(
        f"Per-step time (ms, median; step-by-step, batch {cfg.batch_size})",
        cols,
        [[n] + [results[n][t]["step_ms"] for t in lengths] for n in names],
    )
    md += print_table(
        "State bytes at T",
        cols,
        [[n] + [results[n][t]["state_bytes"] for t in lengths] for n in names],
    )
    md += print_table(
        "Steps actually run to fill the state (bounded memories are full after these)",
        cols,
        [[n] + [results[n][t]["filled"] for t in lengths] for n in names],
    )
    if seq:
        md += print_table(
            f"Forward throughput, env steps/s (batch {cfg.batch_size} one step at a time at T={lengths[0]:,}; "
            f"batch {cfg.seq_batch} x a whole {cfg.seq_len}-step sequence, fresh state, one row restarting mid-way)",
            ["memory", "one step (steps/s)", "sequence (steps/s)", "sequence / one step"],
            [
                [
                    n,
                    cfg.batch_size / (results[n][lengths[0]]["step_ms"] / 1e3),
                    seq[n]["seq_steps_per_s"],
                    seq[n]["seq_steps_per_s"] / (cfg.batch_size / (results[n][lengths[0]]["step_ms"] / 1e3)),
                ]
                for n in names
            ],
        )
    headline: dict[str, float] = {}
    if "full_attention" in results:
        full = results["full_attention"]
        md += print_table(
            "Per-step time / full attention's at the same T",
            cols,
            [[n] + [results[n][t]["step_ms"] / full[t]["step_ms"] for t in lengths] for n in names],
        )
        t_ref = 10_000 if 10_000 in lengths else lengths[-1]
        if "hcam" in results:
            r = results["hcam"][t_ref]["step_ms"] / full[t_ref]["step_ms"]
            headline["hcam_over_full_at_T"] = t_ref
            headline["hcam_over_full"] = r
            line = f"HCAM per-step time / full attention at T={t_ref:,}: {r:.3f} (target <= 0.1)"
            print(line)
            md += f"\n{line}\n"
    if "janus" in results:
        jt = [t for t in lengths if results["janus"][t]["filled"] < t]  # T past janus's cache capacity
        if len(jt) >= 2:
            first, last = results["janus"][jt[0]]["step_ms"], results["janus"][jt[-1]]["step_ms"]
            headline["janus_last_over_first_full"] = last / first
            line = (
                f"janus per-step time once its cache is full: {first:.2f} ms at T={jt[0]:,} vs {last:.2f} ms at "
                f"T={jt[-1]:,} (ratio {last / first:.2f}; state bytes constant: "
                f"{results['janus'][jt[0]]['state_bytes'] == results['janus'][jt[-1]]['state_bytes']})"
            )
            print(line)
            md += f"\n{line}\n"
    if skipped:
        note = f"not registered, skipped: {', '.join(skipped)}"
        print(note)
        md += f"\n{note}\n"
    md += "\nTimings on a shared CPU are noisy; compare ratios measured in the same run.\n"
    out = {
        "config": cfg,
        "results": results,
        "sequence": seq,
        "headline": headline,
        "skipped": skipped,
        "machine": machine_info(),
    }
    write_results("memory", out, md, cfg.out_dir)
    return out


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: the HCAM / full attention headline and how full attention's step
    cost grows with T.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    res, h = result["results"], result.get("headline") or {}
    s = ""
    if "hcam_over_full" in h:
        s += (
            f"HCAM's per-step cost at T={h['hcam_over_full_at_T']:,} is {h['hcam_over_full']:.3f}x full attention's "
            f"(target <= 0.1: {'met' if h['hcam_over_full'] <= 0.1 else 'not met'}). "
        )
    if "full_attention" in res:
        ts = sorted(res["full_attention"], key=int)
        lo, hi = res["full_attention"][ts[0]]["step_ms"], res["full_attention"][ts[-1]]["step_ms"]
        s += (
            f"Full attention grows from {lo:.2f} ms to {hi:.2f} ms per step between T={int(ts[0]):,} and "
            f"T={int(ts[-1]):,} (it attends over every past step); the bounded memories (HCAM chunks, TrXL window, "
            "Janus cache, LSTM) stop growing once their state is full. "
        )
        if "hcam" in res and res["hcam"][ts[0]]["step_ms"] > lo:
            s += "At short T we trail: HCAM's two-level lookup costs more than attending over a few steps."
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
