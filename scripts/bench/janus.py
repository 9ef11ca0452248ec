"""Benchmark helpers of the Janus memory: a state as it is after L frames, and a closure timing step L + 1.

(They lived in ``memory/janus.py``; benchmark code belongs to ``scripts/``.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from chronotope.memory.base import state_nbytes
from chronotope.memory.janus import JanusMemory

__all__ = ["make_step_fn", "state_nbytes", "synthetic_state"]


def synthetic_state(
    model: JanusMemory,
    batch_size: int,
    episode_length: int,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A state as it is after ``episode_length`` frames, for benchmarks of the per-step cost at that length.

    Runs ``min(episode_length, C)`` random frames through the model (real cache contents), then, for longer
    episodes, relabels the slots with the frames a real run would hold (``{0..n_init-1}`` and the last
    ``n_window``, in their ring positions) and sets the frame count. Tensor shapes are those of every state of
    the model, so stepping from it costs what step ``episode_length`` of a real episode costs.
    """
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    fill = min(episode_length, cfg.capacity)
    state = model.initial_state(batch_size, device)
    if fill:
        x = torch.randn(batch_size, fill, model.input_size, generator=gen).to(device)
        with torch.no_grad():
            _, state = model(x, state)
    if episode_length > cfg.capacity:
        frames = torch.arange(episode_length - cfg.n_window, episode_length)
        labels = torch.arange(cfg.capacity)
        labels[model._slot(frames)] = frames
        state = dict(state)
        state["frames"] = labels.to(state["frames"].device).expand(batch_size, -1).clone()
        state["count"] = torch.full_like(state["count"], episode_length)
    return state


def make_step_fn(
    model: JanusMemory,
    batch_size: int,
    episode_length: int,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> tuple[Callable[[], torch.Tensor], dict[str, torch.Tensor]]:
    """A closure that runs step ``episode_length + 1`` of an episode (one frame, no gradient), and its state.

    Every call starts from the same :func:`synthetic_state`, so repeated timings measure the cost of exactly
    that step; :func:`state_nbytes` of the returned state is the memory held at that length.
    """
    state = synthetic_state(model, batch_size, episode_length, device, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch_size, 1, model.input_size, generator=gen).to(device)

    def step() -> torch.Tensor:
        with torch.no_grad():
            return model(x, state)[0]

    return step, state
