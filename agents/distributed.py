"""Multi-process data-parallel training through ``torch.distributed`` (launched by ``torchrun``).

Each rank steps its own batched envs (seeded ``seed + 1000 * rank``) and holds a full copy of the model; after
every backward pass the gradients are averaged over ranks with one ``all_reduce`` of a flat buffer, so all ranks
take the same optimiser step and stay identical (parameters are broadcast from rank 0 once at start). Advantage
normalisation uses the mean and std of the whole global minibatch, which makes one update on P ranks x B/P
samples equal one update on 1 rank x B samples (single minibatch; see ``tests/agents/test_distributed.py``).

The gradients are reduced by hand rather than with ``DistributedDataParallel`` because the policy is called
through several entry points (forward, ``log_prob``, ``entropy``, memory states) that a DDP wrapper would hide,
and a single coalesced ``all_reduce`` after backward is all DDP would do here anyway (no overlap to gain for
models this small).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

RANK_SEED_STRIDE = 1000
"""Rank r seeds its envs and its sampling RNG with ``seed + RANK_SEED_STRIDE * r``."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the process group (world_size 1: plain single-process training)."""

    rank: int = 0
    """Global rank of this process."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this node (selects the CUDA device)."""
    backend: str | None = None
    """``gloo`` or ``nccl`` when a process group was initialised, else None."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes config, logs, progress and checkpoints."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's env / sampling seed."""
        return seed + RANK_SEED_STRIDE * self.rank


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from e
    if value < 0:
        raise ValueError(f"environment variable {name} must be >= 0, got {raw!r}")
    return value


def init_distributed(device: str | torch.device = "cpu", timeout_s: float = 600.0) -> DistContext:
    """Joins the process group described by torchrun's env vars when ``WORLD_SIZE > 1``.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and, through ``init_method="env://"``, ``MASTER_ADDR`` and
    ``MASTER_PORT``). Without them, or with ``WORLD_SIZE=1``, nothing is initialised and a single-process
    context is returned.

    Args:
        device: the training device; ``cuda`` selects the ``nccl`` backend (and ``cuda:LOCAL_RANK``), anything
            else ``gloo``.
        timeout_s: collective timeout.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world == 0:
        raise ValueError("environment variable WORLD_SIZE must be >= 1, got '0'")
    if world == 1:
        return DistContext()
    rank = _env_int("RANK", -1) if "RANK" in os.environ else None
    if rank is None:
        raise ValueError(f"WORLD_SIZE={world} but RANK is not set: launch with torchrun")
    if rank >= world:
        raise ValueError(f"RANK={rank} is not below WORLD_SIZE={world}")
    local_rank = _env_int("LOCAL_RANK", 0)
    import torch.distributed as dist

    cuda = torch.device(device).type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, backend=backend)


def destroy_distributed(ctx: DistContext) -> None:
    """Leaves the process group (no-op for a single process)."""
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, ctx: DistContext, src: int = 0) -> None:
    """Copies parameters and buffers of rank ``src`` to all ranks (so every rank starts identical)."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src)


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Replaces every ``.grad`` with its mean over ranks, in one coalesced ``all_reduce``.

    Parameters without a gradient are skipped; which parameters get one is a property of the graph, the same on
    every rank.
    """
    if not ctx.enabled:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # [sum of numels]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def global_mean_std(x: torch.Tensor, ctx: DistContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased std of ``x`` concatenated over all ranks (``torch.std`` of the whole batch).

    Two passes (sum and count, then squared deviations from the global mean) keep the std as accurate as
    ``torch.std`` on one process.
    """
    if not ctx.enabled:
        return x.mean(), x.std()
    import torch.distributed as dist

    xf = x.detach().double()
    s = torch.stack([xf.sum(), torch.tensor(float(xf.numel()), dtype=torch.float64, device=x.device)])
    dist.all_reduce(s, op=dist.ReduceOp.SUM)
    n = s[1]
    mean = s[0] / n
    sq = ((xf - mean) ** 2).sum()
    dist.all_reduce(sq, op=dist.ReduceOp.SUM)
    std = torch.sqrt(sq / (n - 1))
    return mean.to(x.dtype), std.to(x.dtype)


def split_rollout(batch: dict[str, Any], batcher, rank: int, world_size: int) -> dict[str, Any]:
    """Rank ``rank``'s share of a rollout batch made on one process: a contiguous block of its envs.

    Time-major leaves ``[T, N, ...]`` are cut along N; the stored chunk states (``C * N`` rows, chunk-major,
    row ``c * N + n``) keep the rows of the same envs, chunk-major again. Used to check that P ranks on B/P
    samples update like one rank on B.

    Args:
        batch: from :meth:`PPOTrainer.rollout` with N envs.
        batcher: the trainer's ``StateBatcher``.
    """
    n = batch["actions"].shape[1]
    if world_size < 1 or n % world_size:
        raise ValueError(f"cannot split {n} envs over world_size={world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    per = n // world_size
    lo, hi = rank * per, (rank + 1) * per
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if k == "states":
            continue
        if v is None or isinstance(v, int):  # an unused optional entry, or a scalar shared by all envs
            out[k] = v
        elif isinstance(v, dict):
            out[k] = {kk: vv[:, lo:hi] for kk, vv in v.items()}
        else:
            out[k] = v[:, lo:hi]
    total = _state_rows(batch["states"], batcher)
    if total is None:  # no leaf has a batch dim: the state is shared by all rows
        out["states"] = batch["states"]
        return out
    if total % n:
        raise ValueError(f"stored states have {total} rows, not a multiple of {n} envs")
    rows = torch.cat([torch.arange(c * n + lo, c * n + hi) for c in range(total // n)])
    out["states"] = batcher.index(batch["states"], rows)
    return out


def _state_rows(state: Any, batcher) -> int | None:
    from chronotope.agents.state_utils import _leaves

    for path, t in _leaves(state):
        d = batcher.batch_dim.get(path)
        if d is not None:
            return t.shape[d]
    return None
