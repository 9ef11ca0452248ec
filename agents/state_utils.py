"""Batch operations on memory-state pytrees whose leaves keep the batch on different dims.

A memory's state is any pytree of tensors. Which dim of each leaf is the batch is found once by comparing
``initial_state(1)`` with ``initial_state(2)``; leaves without a batch dim are shared by all rows.
"""

from __future__ import annotations

from typing import Any

import torch

from chronotope.memory.base import MemoryModule


def _leaves(state: Any, prefix: tuple = ()) -> list[tuple[tuple, torch.Tensor]]:
    if isinstance(state, torch.Tensor):
        return [(prefix, state)]
    if isinstance(state, dict):
        return [x for k in sorted(state) for x in _leaves(state[k], prefix + (k,))]
    if isinstance(state, (list, tuple)):
        return [x for i, v in enumerate(state) for x in _leaves(v, prefix + (i,))]
    return []


def _map(state: Any, fn, path: tuple = ()) -> Any:
    if isinstance(state, torch.Tensor):
        return fn(path, state)
    if isinstance(state, dict):
        return {k: _map(v, fn, path + (k,)) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        out = [_map(v, fn, path + (i,)) for i, v in enumerate(state)]
        return type(state)(*out) if hasattr(state, "_fields") else type(state)(out)
    return state


class StateBatcher:
    """Index, concatenate and detach states of one memory module along their batch dims."""

    def __init__(self, memory: MemoryModule) -> None:
        one = dict(_leaves(memory.initial_state(1, "cpu")))
        two = dict(_leaves(memory.initial_state(2, "cpu")))
        self.batch_dim: dict[tuple, int | None] = {}
        for path, a in one.items():
            b = two[path]
            dims = [d for d in range(a.dim()) if a.shape[d] != b.shape[d]]
            self.batch_dim[path] = dims[0] if dims else None

    def index(self, state: Any, idx: torch.Tensor) -> Any:
        def f(path, t):
            d = self.batch_dim.get(path)
            return t if d is None else t.index_select(d, idx.to(t.device))

        return _map(state, f)

    def narrow(self, state: Any, start: int, length: int) -> Any:
        """Rows ``start .. start + length - 1`` of every batched leaf, as views (leaves without a batch dim as is)."""

        def f(path, t):
            d = self.batch_dim.get(path)
            return t if d is None else t.narrow(d, start, length)

        return _map(state, f)

    def cat(self, states: list[Any]) -> Any:
        flat = [dict(_leaves(s)) for s in states]

        def f(path, t):
            d = self.batch_dim.get(path)
            return t if d is None else torch.cat([fs[path] for fs in flat], dim=d)

        return _map(states[0], f)

    @staticmethod
    def detach(state: Any) -> Any:
        return _map(state, lambda p, t: t.detach().clone())

    @staticmethod
    def to(state: Any, device) -> Any:
        return _map(state, lambda p, t: t.to(device))


def split_sequences(x: torch.Tensor, seq_len: int) -> torch.Tensor:
    """[T, N, ...] -> [C * N, L, ...] with C = T // L; sequence c * N + n holds env n's steps c*L .. c*L + L - 1.

    Chunk-major order, as the memory states stored at chunk starts (``StateBatcher.cat`` of per-chunk states).
    """
    t, n = x.shape[:2]
    c = t // seq_len
    rest = x.shape[2:]
    return x.reshape(c, seq_len, n, *rest).transpose(1, 2).reshape(c * n, seq_len, *rest)
