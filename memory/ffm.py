"""FFM: Fast and Forgetful Memory (Morad et al., NeurIPS 2023). Follows ``specs/ffm.md`` (official proroklab/ffm).

One step, m decay traces x c frequencies::

    [u, s, g] = W_pre x_t + c_pre            (sizes m, F', m + F')
    p = sigmoid(g[:m]), q = sigmoid(g[m:]);   x~ = u * p                            [m]
    gamma[j, k] = exp(a_j + i b_k)                                                   [m, c] complex
    S_t = gamma * S_(t-1) + x~ 1_c^T                                                 [m, c]
    z = W_mix [Re S_t ; Im S_t] + c_mix;      y_t = LN(z) * q + s * (1 - q)          [F']

The phase of each entry of S encodes how long ago an input arrived, its modulus how much is left. A whole
sequence runs through the shared scan (:mod:`.scan`) with ``a_t = gamma`` (0 where a row starts) and
``b_t = x~_t 1_c^T`` in complex64 (complex128 for double modules): exact with resets, unlike the official float64
cumsum form, which has no resets inside a sequence. T = 1 takes the one-step update.

Choices where the spec leaves one: ``a`` is clamped to ``[-limit, -1e-8]`` in the forward only (no in-place
clamp of the parameter), so weights port both ways and the function has no side effects; the flattened
``[Re S ; Im S]`` layout is real parts of all (j, k) then imaginary parts; state ``S [B, m, c, 2]`` real
(``view_as_real``) so rollout buffers stay float.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory
from chronotope.memory.scan import linear_scan


@register_memory("ffm")
class FFMMemory(MemoryModule):
    """Fast and Forgetful Memory.

    Args:
        input_size: F.
        hidden_size: F', the output size.
        memory_size: m, decay traces.
        context_size: c, complex frequencies per trace.
        min_period: shortest rotation period of the initial frequencies (steps).
        max_period: longest rotation period; also sets the slowest initial decay (1% left after it).
        max_len: sets the clamp on the decay rates (the official float64 form's overflow limit).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        memory_size: int = 32,
        context_size: int = 4,
        min_period: int = 1,
        max_period: int = 1024,
        max_len: int = 1024,
    ) -> None:
        super().__init__()
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("memory_size", memory_size),
            ("context_size", context_size),
            ("min_period", min_period),
            ("max_period", max_period),
            ("max_len", max_len),
        ):
            check_positive(name, v)
        if max_period < min_period:
            raise ValueError(f"max_period {max_period} must be >= min_period {min_period}")
        self.input_size = input_size
        self.output_size = hidden_size
        self.memory_size = memory_size
        self.context_size = context_size
        m, c = memory_size, context_size
        self.pre = nn.Linear(input_size, 2 * m + 2 * hidden_size)
        self.mix = nn.Linear(2 * m * c, hidden_size)
        self.limit = math.log(torch.finfo(torch.float64).max) / max_len - 0.01
        a_high = math.log(0.01) / max_period
        a_low = -self.limit + 0.01
        self.a = nn.Parameter(torch.linspace(a_low, a_high, m))
        self.b = nn.Parameter(2 * math.pi / torch.linspace(float(min_period), float(max_period), c))

    def gamma(self) -> torch.Tensor:
        """``exp(a_j + i b_k)`` ``[m, c]`` complex, with a clamped to ``[-limit, -1e-8]``."""
        a = self.a.clamp(-self.limit, -1e-8)
        return torch.exp(torch.complex(a[:, None].expand(-1, self.context_size), self.b[None, :].expand(len(a), -1)))

    def aggregate(self, xt: torch.Tensor, s0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """The aggregator: ``S_t = gamma * S_(t-1) + x~_t 1_c^T``, cleared where a row starts.

        Args:
            xt: ``[B, T, m]`` gated inputs x~.
            s0: ``[B, m, c]`` complex carried state.
            starts: ``[B, T]`` bool.

        Returns:
            ``S [B, T, m, c]`` complex (complex128 for float64 inputs, else complex64).
        """
        b, t = xt.shape[:2]
        cdt = torch.complex128 if xt.dtype == torch.float64 else torch.complex64
        gamma = self.gamma().to(cdt)  # [m, c]
        xc = xt.unsqueeze(-1).expand(-1, -1, -1, self.context_size).to(cdt)  # [B, T, m, c]
        s0 = s0.to(cdt)
        if t == 1:
            keep = (~starts[:, 0]).to(xt.dtype)[:, None, None]
            return (gamma * s0 * keep + xc[:, 0]).unsqueeze(1)
        return linear_scan(gamma.expand(b, t, -1, -1), xc, s0, starts)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero state ``S [B, m, c, 2]`` (real and imaginary parts)."""
        return self._zeros_state(batch_size, device, S=(batch_size, self.memory_size, self.context_size, 2))

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, T, F]``, ``S [B, m, c, 2]`` -> ``y [B, T, F']`` and the new state."""
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        s_in = state["S"]
        self.check_state_batch(b, s_in.shape[0])
        if t == 0:
            return x.new_zeros(b, 0, self.output_size), state
        m, f_out = self.memory_size, self.output_size
        u, skip, gates = self.pre(x).split([m, f_out, m + f_out], dim=-1)
        gates = torch.sigmoid(gates)
        p, q = gates[..., :m], gates[..., m:]
        s_all = self.aggregate(u * p, torch.view_as_complex(s_in.contiguous()), starts)  # [B, T, m, c]
        flat = torch.cat([s_all.real.flatten(2), s_all.imag.flatten(2)], dim=-1)  # [B, T, 2mc]
        z = F.layer_norm(self.mix(flat), (f_out,))
        y = z * q + skip * (1 - q)
        return y, {"S": torch.view_as_real(s_all[:, -1]).contiguous()}


__all__ = ["FFMMemory"]
