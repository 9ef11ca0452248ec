"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gates see only x_t. Follows ``specs/mingru.md``.

One layer (inner width D = expansion * H)::

    [h_hat, k] = W x_t + c;  z = sigmoid(k);  h_t = (1 - z) * h_(t-1) + z * g(h_hat);  y_t = W_out h_t + c_out
    g(v) = v + 0.5 (v >= 0), sigmoid(v) (v < 0)

Because ``a_t = 1 - z_t`` and ``b_t = z_t g(h_hat_t)`` depend on x only, a whole sequence runs as one scan
(:mod:`.scan`); a call with T = 1 takes the one-step update. The stack is the official ``Model`` with RMSNorm:
per layer ``h += minGRU(RMSNorm(h))``, then ``h += FF(RMSNorm(h))``; a final RMSNorm; an input projection
F -> H in front. Stacking matters: the gates of layer 2 depend on layer 1's states.

Choices where the spec leaves one:

* sequence path ``scan="linear"`` (default): the linear-space doubling scan (no division, exact zeros at episode
  starts); ``"log"`` is the log-space doubling scan, ``"loop"`` the reference loop; all three compute one function;
* the optional causal conv and the learned initial state of the official code are not built (both off in the
  spec's CPU default); an episode start sets the carried h to 0;
* state ``h [B, num_layers, D]`` (h, not log h).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory
from chronotope.memory.scan import linear_scan, log_doubling_scan


def g(v: torch.Tensor) -> torch.Tensor:
    """The positive candidate activation: ``v + 0.5`` for ``v >= 0``, ``sigmoid(v)`` below."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: torch.Tensor) -> torch.Tensor:
    """``log g(v)`` computed without forming ``g`` (``-softplus(-v)`` is ``log sigmoid(v)``)."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


class MinGRUCell(nn.Module):
    """One minGRU layer: ``[B, T, H] -> [B, T, H]`` with carried ``h [B, D]``."""

    def __init__(self, dim: int, inner: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.to_hidden_and_gate = nn.Linear(dim, 2 * inner)
        with torch.no_grad():
            self.to_hidden_and_gate.bias[inner:].fill_(gate_bias)
        self.to_out = nn.Linear(inner, dim)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, H]`` -> ``(h_hat, k)`` each ``[B, T, D]``."""
        h_hat, k = self.to_hidden_and_gate(x).chunk(2, dim=-1)
        return h_hat, k

    def recur(
        self, h_hat: torch.Tensor, k: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor, scan: str
    ) -> torch.Tensor:
        """The hidden states ``h [B, T, D]`` from gate pre-activations, carried ``h0 [B, D]`` and starts."""
        t = h_hat.shape[1]
        if t == 1 or scan == "loop":
            keep = (~starts).to(h0.dtype)[..., None]  # [B, T, 1]
            z = torch.sigmoid(k)
            ht = g(h_hat)
            h = h0
            hs = []
            for z_i, k_i, g_i in zip(z.unbind(1), keep.unbind(1), ht.unbind(1)):
                h = (1 - z_i) * (h * k_i) + z_i * g_i
                hs.append(h)
            return torch.stack(hs, dim=1)
        if scan == "log":
            log_a = -F.softplus(k)
            log_b = -F.softplus(-k) + log_g(h_hat)
            return log_doubling_scan(log_a, log_b, torch.log(h0), starts).exp()
        z = torch.sigmoid(k)
        return linear_scan(1 - z, z * g(h_hat), h0, starts)


@register_memory("mingru")
class MinGRUMemory(MemoryModule):
    """Stacked minGRU memory.

    Args:
        input_size: F.
        hidden_size: H, the model width and ``output_size``.
        num_layers: stacked minGRU layers (each with its own state).
        expansion: inner width D = expansion * H of each minGRU.
        ff_mult: width of the per-layer feed-forward as a multiple of H; 0 turns it off.
        gate_bias: initial bias of the update gate's pre-activation (negative: longer memory at init).
        scan: whole-sequence path: ``"linear"`` (doubling scan), ``"log"`` (log-space doubling) or ``"loop"``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        expansion: int = 1,
        ff_mult: int = 2,
        gate_bias: float = 0.0,
        scan: str = "linear",
    ) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        check_positive("expansion", expansion)
        if not isinstance(ff_mult, int) or isinstance(ff_mult, bool) or ff_mult < 0:
            raise ValueError(f"ff_mult must be an int >= 0 (0: no feed-forward), got {ff_mult!r}")
        if scan not in ("linear", "log", "loop"):
            raise ValueError(f"scan must be 'linear', 'log' or 'loop', got {scan!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.num_layers = num_layers
        self.inner = expansion * hidden_size
        self.scan = scan
        self.inp = nn.Linear(input_size, hidden_size)
        self.norms = nn.ModuleList(nn.RMSNorm(hidden_size) for _ in range(num_layers))
        self.cells = nn.ModuleList(MinGRUCell(hidden_size, self.inner, gate_bias) for _ in range(num_layers))
        if ff_mult:
            self.ff_norms = nn.ModuleList(nn.RMSNorm(hidden_size) for _ in range(num_layers))
            self.ffs = nn.ModuleList(
                nn.Sequential(
                    nn.Linear(hidden_size, ff_mult * hidden_size),
                    nn.GELU(),
                    nn.Linear(ff_mult * hidden_size, hidden_size),
                )
                for _ in range(num_layers)
            )
        else:
            self.ff_norms = self.ffs = None
        self.norm = nn.RMSNorm(hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero state ``h [B, num_layers, D]``."""
        return self._zeros_state(batch_size, device, h=(batch_size, self.num_layers, self.inner))

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, T, F]``, ``h [B, num_layers, D]`` -> ``y [B, T, H]`` and the new state."""
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        h_in = state["h"]
        self.check_state_batch(b, h_in.shape[0])
        if t == 0:
            return x.new_zeros(b, 0, self.output_size), state
        u = self.inp(x)  # [B, T, H]
        finals = []
        for i, cell in enumerate(self.cells):
            h_hat, k = cell.gates(self.norms[i](u))
            hs = cell.recur(h_hat, k, h_in[:, i], starts, self.scan)  # [B, T, D]
            finals.append(hs[:, -1])
            u = u + cell.to_out(hs)
            if self.ffs is not None:
                u = u + self.ffs[i](self.ff_norms[i](u))
        return self.norm(u), {"h": torch.stack(finals, dim=1)}


__all__ = ["MinGRUCell", "MinGRUMemory", "g", "log_g"]
