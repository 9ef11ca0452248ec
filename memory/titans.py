"""Titans neural long-term memory (Behrouz et al. 2025, "Learning to Memorize at Test Time"), the LMM variant.

Follows ``specs/titans.md``. Each row carries, per memory head, the weights of a small MLP ``M`` (the memory)
and their momentum ``S``. One step (paper eqs. 11-15, batched over rows and heads)::

    k = l2norm(SiLU(conv(x W_K))), v = SiLU(conv(x W_V)), q = l2norm(SiLU(conv(x W_Q)))       [Hm, d] each
    theta = theta_max sigmoid(x w_theta + c_theta), eta = sigmoid(x w_eta + c_eta),
    alpha = alpha_min + (1 - alpha_min) sigmoid(x w_alpha + c_alpha)                            [Hm] each
    surprise G = grad_W ||M(k) - v||^2  (closed form, below)
    S <- eta S - theta G;   W <- (1 - alpha) W + S                                             (eqs. 13-14)
    read y = M(q) with the new weights (read_before_write=False) or the old ones (True)        (eq. 15)
    o = W_O (RMSNorm(y) * sigmoid(x W_G))                                                      [F']

with ``M(k) = W2 phi(W1 k)`` (depth 2; ``W k`` at depth 1; ``+ k`` with ``residual``), phi = SiLU, and, for
``e = M(k) - v``: ``G2 = 2 e h^T``, ``delta = (W2^T 2e) * phi'(z)``, ``G1 = delta k^T`` (z = W1 k, h = phi(z)).
The inner update uses only plain torch ops, so backpropagation through the unrolled steps is the outer loop
that learns W_K, W_V, W_Q, the conv kernels, the gates, W_G, W_O and the initial memory M_0 (per head, xavier).

Choices where the spec leaves one (marked "ours" there): chunk size b = 1 (the exact per-step rule), so a whole
sequence is a loop over its steps and step-by-step equals whole-sequence by construction; the sum loss with no
norm inside the memory; the port's soft clamp of the surprise norm on by default (``max_grad_norm=1``: without
it the depth-2 memory diverged to NaN within 30 steps of random inputs at the default gates); read after write
by default; ``residual`` off by default; the short conv has no bias.
An episode start (or the first step from :meth:`initial_state`, flagged by ``fresh``) sets W <- M_0, S <- 0 and
empties the conv buffer, by ``torch.where`` on the row mask; M_0 therefore gets its gradient at those steps.
State: ``w1 [B, Hm, dh, d]``, ``w2 [B, Hm, d, dh]``, ``s1``, ``s2`` alike (depth 1: ``w1``/``s1`` of
``[B, Hm, d, d]``), ``conv [B, 3 Hm d, K-1]``, ``fresh [B]`` bool; bytes fixed by the config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory
from chronotope.memory.scan import causal_depthwise_conv


def silu_grad(z: torch.Tensor) -> torch.Tensor:
    """``d SiLU(z) / dz = sigmoid(z) (1 + z (1 - sigmoid(z)))``."""
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


def memory_read(ws: tuple[torch.Tensor, ...], q: torch.Tensor, residual: bool) -> torch.Tensor:
    """``M(q)``: ``ws`` = ``(w1 [B, Hm, dh, d], w2 [B, Hm, d, dh])`` or ``(w [B, Hm, d, d],)``, ``q [B, Hm, d]``."""
    if len(ws) == 1:
        p = torch.einsum("bhij,bhj->bhi", ws[0], q)
    else:
        p = torch.einsum("bhij,bhj->bhi", ws[1], F.silu(torch.einsum("bhij,bhj->bhi", ws[0], q)))
    return p + q if residual else p


def surprise(
    ws: tuple[torch.Tensor, ...], k: torch.Tensor, v: torch.Tensor, residual: bool
) -> tuple[torch.Tensor, ...]:
    """Closed-form gradient of ``||M(k) - v||^2`` w.r.t. each weight tensor of ``ws`` (same shapes)."""
    if len(ws) == 1:
        e2 = 2 * (memory_read(ws, k, residual) - v)  # [B, Hm, d]
        return (torch.einsum("bhi,bhj->bhij", e2, k),)
    w1, w2 = ws
    z = torch.einsum("bhij,bhj->bhi", w1, k)  # [B, Hm, dh]
    h = F.silu(z)
    p = torch.einsum("bhij,bhj->bhi", w2, h)
    e2 = 2 * (p + k - v if residual else p - v)  # [B, Hm, d]
    g2 = torch.einsum("bhi,bhj->bhij", e2, h)  # [B, Hm, d, dh]
    delta = torch.einsum("bhji,bhj->bhi", w2, e2) * silu_grad(z)  # [B, Hm, dh]
    g1 = torch.einsum("bhi,bhj->bhij", delta, k)  # [B, Hm, dh, d]
    return g1, g2


def soft_clamp_norm(g: torch.Tensor, c: float) -> torch.Tensor:
    """Rescales ``g [B, Hm, ...]`` per ``(row, head)`` to Frobenius norm ``c tanh(|g| / c)`` (smooth, <= c)."""
    n = g.flatten(2).norm(dim=-1).clamp_min(1e-12)[..., None, None]  # [B, Hm, 1, 1]
    return g * (c * torch.tanh(n / c) / n)


def memory_update(
    ws: tuple[torch.Tensor, ...],
    ss: tuple[torch.Tensor, ...],
    k: torch.Tensor,
    v: torch.Tensor,
    theta: torch.Tensor,
    eta: torch.Tensor,
    alpha: torch.Tensor,
    residual: bool,
    max_grad_norm: float | None = None,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """One write: ``S <- eta S - theta G``, ``W <- (1 - alpha) W + S``; gates ``[B, Hm]``. Returns ``(ws, ss)``.

    With ``max_grad_norm`` c, each surprise tensor is soft-clamped per row and head to norm ``c tanh(|G| / c)``.
    """
    gs = surprise(ws, k, v, residual)
    if max_grad_norm is not None:
        gs = tuple(soft_clamp_norm(g_, max_grad_norm) for g_ in gs)
    th, et, al = (g[..., None, None] for g in (theta, eta, alpha))
    new_ss = tuple(et * s - th * g for s, g in zip(ss, gs))
    new_ws = tuple((1 - al) * w + s for w, s in zip(ws, new_ss))
    return new_ws, new_ss


@register_memory("titans")
class TitansMemory(MemoryModule):
    """Titans LMM: an MLP memory written online by its surprise, with momentum and forgetting.

    Args:
        input_size: F.
        hidden_size: F', the output size.
        key_size: d, key/value width per memory head.
        memory_hidden: dh, hidden width of the memory MLP (depth 2).
        num_heads: Hm, memory heads.
        memory_depth: 1 (a linear memory W [d, d]) or 2 (W2 phi(W1 .)).
        conv_kernel: K of the short causal depthwise conv on q/k/v (1: none).
        theta_max: largest inner step size (theta = theta_max sigmoid(.)); <= 0.5 never overshoots along a key.
        alpha_min: floor of the forgetting gate, keeps the weights bounded.
        residual: the memory returns ``M(k) + k``.
        max_grad_norm: soft clamp on the norm of each surprise tensor (``None``: off). With it the momentum and
            weights stay bounded whatever the inputs (|S| <= theta_max c / (1 - eta)); without it a depth-2
            memory at the default gates diverges within tens of steps on large random inputs (measured).
        read_before_write: read with the weights before this step's write.
        theta_bias: initial c_theta.
        eta_bias: initial c_eta (momentum, sigmoid 2.2 ~ 0.9).
        alpha_bias: initial c_alpha (forgetting, sigmoid -4 ~ 0.02).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        key_size: int = 32,
        memory_hidden: int = 64,
        num_heads: int = 2,
        memory_depth: int = 2,
        conv_kernel: int = 4,
        theta_max: float = 0.5,
        alpha_min: float = 1e-4,
        residual: bool = False,
        read_before_write: bool = False,
        max_grad_norm: float | None = 1.0,
        theta_bias: float = -1.0,
        eta_bias: float = 2.2,
        alpha_bias: float = -4.0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("key_size", key_size),
            ("memory_hidden", memory_hidden),
            ("num_heads", num_heads),
            ("conv_kernel", conv_kernel),
        ):
            check_positive(name, v)
        if memory_depth not in (1, 2):
            raise ValueError(f"memory_depth must be 1 or 2, got {memory_depth!r}")
        if not theta_max > 0:
            raise ValueError(f"theta_max must be > 0, got {theta_max!r}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
        if not 0 <= alpha_min < 1:
            raise ValueError(f"alpha_min must be in [0, 1), got {alpha_min!r}")
        self.input_size = input_size
        self.output_size = hidden_size
        self.d, self.dh, self.heads = key_size, memory_hidden, num_heads
        self.depth = memory_depth
        self.conv_kernel = conv_kernel
        self.theta_max, self.alpha_min = theta_max, alpha_min
        self.residual, self.read_before_write = residual, read_before_write
        self.max_grad_norm = max_grad_norm
        hd = num_heads * key_size
        self.qkv = nn.Linear(input_size, 3 * hd, bias=False)
        ref = nn.Conv1d(3 * hd, 3 * hd, conv_kernel, groups=3 * hd, bias=False)
        self.conv_weight = nn.Parameter(ref.weight.detach()[:, 0].clone())  # [3 Hm d, K]
        self.gates = nn.Linear(input_size, 3 * num_heads)  # theta, eta, alpha per head
        with torch.no_grad():
            self.gates.weight.zero_()
            self.gates.bias.copy_(
                torch.tensor([theta_bias, eta_bias, alpha_bias]).repeat_interleave(num_heads).to(self.gates.bias)
            )
        shapes = [(memory_hidden, key_size), (key_size, memory_hidden)] if memory_depth == 2 else [(key_size, key_size)]
        self.m0 = nn.ParameterList(
            nn.Parameter(torch.stack([nn.init.xavier_uniform_(torch.empty(*s)) for _ in range(num_heads)]))
            for s in shapes
        )
        self.out_norm = nn.RMSNorm(key_size)
        self.out_gate = nn.Linear(input_size, hd)
        self.out = nn.Linear(hd, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """An empty memory: weights are set to M_0 at the first step (``fresh``), momentum 0, conv buffer 0."""
        shapes = {}
        for i, w in enumerate(self.m0):
            shapes[f"w{i + 1}"] = shapes[f"s{i + 1}"] = (batch_size, *w.shape)
        state = self._zeros_state(
            batch_size,
            device,
            **shapes,
            conv=(batch_size, 3 * self.heads * self.d, self.conv_kernel - 1),
            fresh=((batch_size,), torch.bool),
        )
        state["fresh"].fill_(True)
        return state

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, T, F]`` -> ``y [B, T, F']`` and the new state (see the module docstring)."""
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        self.check_state_batch(b, state["fresh"].shape[0])
        if t == 0:
            return x.new_zeros(b, 0, self.output_size), state
        starts = torch.cat([starts[:, :1] | state["fresh"][:, None], starts[:, 1:]], dim=1)
        hm, d = self.heads, self.d
        qkv, conv = causal_depthwise_conv(self.qkv(x), state["conv"], self.conv_weight, None, starts)
        q, k, v = F.silu(qkv).view(b, t, 3, hm, d).unbind(2)  # [B, T, Hm, d] each
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        g_theta, g_eta, g_alpha = self.gates(x).view(b, t, 3, hm).unbind(2)  # [B, T, Hm] each
        theta = self.theta_max * torch.sigmoid(g_theta)
        eta = torch.sigmoid(g_eta)
        alpha = self.alpha_min + (1 - self.alpha_min) * torch.sigmoid(g_alpha)
        n = len(self.m0)
        ws = tuple(state[f"w{i + 1}"] for i in range(n))
        ss = tuple(state[f"s{i + 1}"] for i in range(n))
        m0 = tuple(w.unsqueeze(0) for w in self.m0)
        reads = []
        # Per-step slices by unbind: indexing [:, i] would give T full-size zero gradients in the backward.
        steps = zip(*(z.unbind(1) for z in (q, k, v, theta, eta, alpha)), starts.unbind(1))
        for q_i, k_i, v_i, th_i, et_i, al_i, st_i in steps:
            if bool(st_i.any()):  # skipping the where on steps without a start is exact and saves its cost
                r = st_i[:, None, None, None]  # [B, 1, 1, 1]
                ws = tuple(torch.where(r, w0, w) for w0, w in zip(m0, ws))
                ss = tuple(torch.where(r, torch.zeros_like(s), s) for s in ss)
            if self.read_before_write:
                reads.append(memory_read(ws, q_i, self.residual))
            ws, ss = memory_update(ws, ss, k_i, v_i, th_i, et_i, al_i, self.residual, self.max_grad_norm)
            if not self.read_before_write:
                reads.append(memory_read(ws, q_i, self.residual))
        y = self.out_norm(torch.stack(reads, dim=1))  # [B, T, Hm, d]
        y = y * torch.sigmoid(self.out_gate(x)).view(b, t, hm, d)
        new_state = {f"w{i + 1}": w for i, w in enumerate(ws)} | {f"s{i + 1}": s for i, s in enumerate(ss)}
        new_state["conv"] = conv
        new_state["fresh"] = torch.zeros_like(state["fresh"])
        return self.out(y.reshape(b, t, hm * d)), new_state


__all__ = ["TitansMemory", "memory_read", "memory_update", "silu_grad", "surprise"]
