"""Recurrent baselines: ``lstm``, ``gru`` and ``none`` (no memory: identity or a per-step MLP).

An episode start zeroes that row's hidden state before the step is read (cleanrl's ``(1 - d) * state``).
A whole sequence is run through cuDNN-style ``nn.LSTM``/``nn.GRU`` in segments cut at the steps where any
row starts an episode, so training on long sequences with few resets stays fast and still equals the
step-by-step result.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory


class _RNNMemory(MemoryModule):
    """Shared code of the LSTM and GRU memories.

    Args:
        input_size: F, the feature size of the inputs.
        hidden_size: H, the hidden state size and ``output_size``.
        num_layers: stacked recurrent layers.
        keep_bias: initial bias of the gate that keeps the state (the GRU's update gate ``z`` in
            ``h' = (1 - z) * n + z * h``, the LSTM's forget gate), in every layer; the input-side bias of that gate
            is set to it and the hidden-side one to 0, so a fraction ``sigmoid(keep_bias)`` of the state is kept per
            step at the start of training (None: torch's uniform initialisation, ``sigmoid(~0) = 0.5``). A positive
            value (1 to 3) lets the gradient of a late loss reach an early input through more steps (the LSTM's
            forget-gate bias of 1, Jozefowicz et al. 2015; the chrono initialisation of Tallec and Ollivier 2018
            sets it from the span to remember).
    """

    _cell: type[nn.RNNBase]
    _has_cell_state: bool

    def __init__(
        self, input_size: int, hidden_size: int = 128, num_layers: int = 1, keep_bias: float | None = None
    ) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        if keep_bias is not None and not (isinstance(keep_bias, (int, float)) and math.isfinite(keep_bias)):
            raise ValueError(f"keep_bias must be a finite number or None, got {keep_bias!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.output_size = hidden_size
        self.rnn = self._cell(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.keep_bias = keep_bias
        if keep_bias is not None:
            with torch.no_grad():
                gate = slice(hidden_size, 2 * hidden_size)  # z in (r, z, n); f in (i, f, g, o)
                for layer in range(num_layers):
                    getattr(self.rnn, f"bias_ih_l{layer}")[gate] = float(keep_bias)
                    getattr(self.rnn, f"bias_hh_l{layer}")[gate] = 0.0

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero hidden state: ``h`` (and ``c`` for the LSTM) of shape ``[num_layers, B, H]``."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        cell = {"c": shape} if self._has_cell_state else {}
        return self._zeros_state(batch_size, device, h=shape, **cell)

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Runs the recurrence.

        Args:
            x: ``[B, T, F]`` inputs.
            state: from :meth:`initial_state` or a previous call; ``h``/``c`` are ``[num_layers, B, H]``.
            episode_starts: ``[B, T]`` bool; true zeroes that row's state before the step.

        Returns:
            ``y [B, T, H]`` and the new state.
        """
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        self.check_state_batch(b, state["h"].shape[1])
        h = state["h"]
        c = state.get("c")
        # Cut the sequence at every step where some row starts an episode; inside a segment no reset happens.
        cut_at = starts[:, 1:].any(dim=0).nonzero().flatten().add(1).tolist()
        cuts = [0, *cut_at, t] if t > 0 else [0]
        outs = []
        for s, e in zip(cuts[:-1], cuts[1:]):
            keep = (~starts[:, s]).to(x.dtype)[None, :, None]  # [1, B, 1]
            h = h * keep
            if c is not None:
                c = c * keep
                y, (h, c) = self.rnn(x[:, s:e], (h.contiguous(), c.contiguous()))
            else:
                y, h = self.rnn(x[:, s:e], h.contiguous())
            outs.append(y)
        y = torch.cat(outs, dim=1) if outs else x.new_zeros(b, 0, self.hidden_size)
        new_state = {"h": h, "c": c} if c is not None else {"h": h}
        return y, new_state


@register_memory("lstm")
class LSTMMemory(_RNNMemory):
    """LSTM memory (``nn.LSTM``); state ``{"h", "c"}`` each ``[num_layers, B, H]``."""

    _cell = nn.LSTM
    _has_cell_state = True


@register_memory("gru")
class GRUMemory(_RNNMemory):
    """GRU memory (``nn.GRU``); state ``{"h"}`` of shape ``[num_layers, B, H]``."""

    _cell = nn.GRU
    _has_cell_state = False


@register_memory("none")
class NoMemory(MemoryModule):
    """No memory: identity (``hidden_sizes=()``) or a per-step MLP. The reactive baseline.

    Args:
        input_size: F.
        hidden_sizes: sizes of the MLP layers (ReLU between them); empty means identity, output F.
    """

    def __init__(self, input_size: int, hidden_sizes: tuple[int, ...] = ()) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        for s in hidden_sizes:
            check_positive("hidden_sizes entry", s)
        self.input_size = input_size
        layers: list[nn.Module] = []
        prev = input_size
        for i, s in enumerate(hidden_sizes):
            layers.append(nn.Linear(prev, s))
            if i < len(hidden_sizes) - 1:
                layers.append(nn.ReLU())
            prev = s
        self.net = nn.Sequential(*layers)
        self.output_size = prev

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """An empty state; it carries only the batch size so that mismatched batches are caught."""
        return self._zeros_state(batch_size, device, batch=(batch_size, 0))

    def _state_device_dtype(self, device: torch.device | str | None) -> tuple[torch.device | str | None, None]:
        # The state follows no parameters (there may be none): ``device`` as given, the default dtype.
        return device, None

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, T, F] -> y [B, T, output_size]``; the state passes through unchanged."""
        self.check_input(x, episode_starts)
        self.check_state_batch(x.shape[0], state["batch"].shape[0])
        return self.net(x), state
