"""The one interface every learned memory implements, and the registry that builds them by name.

Every memory is a ``torch.nn.Module`` with

* ``output_size`` (int): the feature size F' of what ``forward`` returns;
* ``initial_state(batch_size, device) -> state``: an empty memory for ``batch_size`` rows;
* ``forward(x[B, T, F], state, episode_starts[B, T]) -> (y[B, T, F'], state)``.

``episode_starts[b, t]`` true means that step t of row b begins a new episode: the memory of that row is
cleared *before* step t is read. Processing a sequence step by step (T = 1 at a time, threading the state)
must give the same outputs as processing it whole. State is a pytree (tensor, tuple/list/dict of tensors)
whose size is bounded by configuration, and it moves with :func:`state_to`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

State = Any  # a pytree of tensors (tensor | tuple | list | dict of those)

_REGISTRY: dict[str, Callable[..., MemoryModule]] = {}


def check_positive(name: str, value: int, prefix: str = "") -> None:
    """Raises ``ValueError`` (``"{prefix}{name} must be a positive int, got {value!r}"``) unless ``value`` is an
    int >= 1 (a bool is refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{prefix}{name} must be a positive int, got {value!r}")


class MemoryModule(nn.Module):
    """Base class: subclasses set ``input_size`` and ``output_size`` and implement the two methods."""

    input_size: int
    output_size: int
    gradient_horizon: int | None = None
    """How many steps back a step's output passes gradient into earlier inputs: None, unbounded (recurrent cores,
    attention over the past); 0, only into its own step's input (HCAM, whose stored chunks and local window are
    stop-gradient). A trainer that replays steps only to rebuild the memory state can run the replayed steps
    further back than this without autograd: the gradient is the same (the registry tests check the declaration)."""
    # Put before the messages of the helpers below that do not name the class (batch_size checks).
    _error_prefix: str = ""

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, state: State, episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def check_input(self, x: torch.Tensor, episode_starts: torch.Tensor | None) -> torch.Tensor:
        """Validates ``x[B, T, F]`` and returns ``episode_starts`` as a bool tensor ``[B, T]``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: expected input of shape [B, T, F], got {shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected feature size {self.input_size}, got {x.shape[-1]} "
                f"(input shape {tuple(x.shape)})"
            )
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).nonzero()[0].tolist()
            raise ValueError(f"{type(self).__name__}: non-finite input (NaN/inf) at index {bad}")
        b, t = x.shape[:2]
        if episode_starts is None:
            return torch.zeros(b, t, dtype=torch.bool, device=x.device)
        if tuple(episode_starts.shape) != (b, t):
            raise ValueError(
                f"{type(self).__name__}: episode_starts has shape {tuple(episode_starts.shape)}, "
                f"expected {(b, t)} to match the input"
            )
        return episode_starts.to(device=x.device, dtype=torch.bool)

    def check_state_batch(self, b: int, *state_batches: int) -> None:
        """Raises ``ValueError`` naming the first of ``state_batches`` (the state's batch sizes) that is not the
        input batch size ``b``."""
        for got in state_batches:
            if got != b:
                raise ValueError(f"{type(self).__name__}: state batch size {got} != input batch {b}")

    def _state_device_dtype(
        self, device: torch.device | str | None
    ) -> tuple[torch.device | str | None, torch.dtype | None]:
        """Device and floating dtype of an empty state: ``device`` (None: the parameters' device), the
        parameters' dtype. Subclasses whose state follows something else override it."""
        p = next(self.parameters())
        return (p.device if device is None else device), p.dtype

    def _zeros_state(
        self, batch_size: int, device: torch.device | str | None = None, **shapes: Any
    ) -> dict[str, torch.Tensor]:
        """A state of zero tensors, after checking that ``batch_size`` is a positive int.

        Each keyword is one entry, in the order given: ``name=shape`` (a tuple of ints, batch dimension
        included where the layout puts it) takes the dtype of :meth:`_state_device_dtype`, and
        ``name=(shape, dtype)`` an explicit dtype (``torch.long``, ``torch.bool``). Every entry goes on
        the device of :meth:`_state_device_dtype`.
        """
        check_positive("batch_size", batch_size, self._error_prefix)
        device, dtype = self._state_device_dtype(device)
        state = {}
        for name, spec in shapes.items():
            if len(spec) == 2 and isinstance(spec[1], torch.dtype):
                shape, dt = spec
            else:
                shape, dt = spec, dtype
            state[name] = torch.zeros(tuple(shape), device=device, dtype=dt)
        return state


def register_memory(name: str) -> Callable[[Callable[..., MemoryModule]], Callable[..., MemoryModule]]:
    """Class decorator: ``@register_memory("lstm")`` makes the class buildable by ``make_memory("lstm", ...)``."""

    def deco(cls: Callable[..., MemoryModule]) -> Callable[..., MemoryModule]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"memory {name!r} is already registered to {_REGISTRY[name]}")
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # Imported lazily so that ``import chronotope.memory.base`` stays cheap; each module registers itself.
    import importlib

    for mod in ("recurrent", "trxl", "hcam", "janus", "gaussian", "mingru", "ffm", "ssm", "titans", "memoryvla", "sat"):
        try:
            importlib.import_module(f"chronotope.memory.{mod}")
        except ModuleNotFoundError as e:  # a module not written yet must not break the others
            if e.name != f"chronotope.memory.{mod}":
                raise


def available_memories() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def make_memory(name: str, input_size: int, **cfg: Any) -> MemoryModule:
    """Builds the memory registered as ``name`` reading features of size ``input_size``."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown memory {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](input_size=input_size, **cfg)


def state_nbytes(state: State) -> int:
    """Bytes of every tensor in a state pytree (dicts, lists, tuples; other leaves count 0)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_nbytes(v) for v in state)
    return 0


def state_to(state: State, device: torch.device | str) -> State:
    """Moves a state pytree to ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: state_to(v, device) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        moved = [state_to(v, device) for v in state]
        return type(state)(moved) if not hasattr(state, "_fields") else type(state)(*moved)
    return state
