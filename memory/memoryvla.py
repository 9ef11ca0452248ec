"""MemoryVLA perceptual-cognitive memory bank (Shi et al. 2025), scaled down. Follows ``specs/memoryvla.md``.

Two streams with separate banks, each of at most ``capacity`` (L) entries kept in time order:

* **perceptual**: ``p = reshape(W_p x + b_p, [N_p, d_p]) + offset`` (N_p tokens per step);
* **cognitive**: ``c = LN(MLP(x))``, one token of width d_c (standing in for the LLM's EOS state).

Per step and stream, with current tokens X (read, then write):

1. **retrieval**: two post-LN cross-attention blocks over the stored entries (keys = entry tokens + TE(timestep),
   values = entry tokens, query = X; the second block's query is the first's output):
   ``h = LN(Q + A(Q W_q, K W_k, V W_v))``, ``Q <- LN(h + FFN(h))``; no output projection. An empty bank attends
   over the current tokens themselves (K = X + TE(step), V = X; MemoryVLA+). TE is a sinusoid of the (possibly
   fractional) timestep through a learned Linear-SiLU-Linear, one per stream. Result H.
2. **gate**: ``g = sigmoid(W_g [X ; H] + b_g)`` per token and channel, ``X~ = g X + (1 - g) H`` (``fusion="add"``:
   ``(X + H) / 2``).
3. **consolidation** (no gradient): append ``(stopgrad(X~), step)`` (``write_fused=False``: X); with L + 1 entries,
   merge the most similar adjacent pair (cosine, mean over tokens for multi-token entries; first on ties) into its
   mean, timestep the mean of the two (MemoryVLA+), later entries shift down (``consolidate="fifo"``: drop the
   oldest). The two streams choose their pair independently.

Output ``y_t = concat(flatten(p~_t), c~_t)``, ``output_size = N_p d_p + d_c``. Stored entries carry no gradient,
so ``y_t`` does not depend on ``x_s`` (s < t) through the bank's contents. Writes depend on the step's own read,
so a whole sequence is a loop over its steps (step-by-step equals whole-sequence by construction).

Choices where the spec leaves one: the MemoryVLA+ defaults (empty bank reads itself, fused writes, averaged
timesteps); heads 1 and no dropout (MemoryVLA); the perceptual tokens come from the flat feature (no spatial map
reaches a ``MemoryModule``). State: ``per_mem [B, L, N_p, d_p]``, ``per_ts [B, L]``, ``per_n [B]``, ``cog_mem
[B, L, d_c]``, ``cog_ts [B, L]``, ``cog_n [B]``, ``step [B]``; slots >= n are zero and never read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory


def sinusoid(s: torch.Tensor, freqs: int) -> torch.Tensor:
    """``[...]`` float timesteps -> ``[..., f]``: ``[cos(s w_k), sin(s w_k)]``, ``w_k = 1e4^(-2k/f)``, k < f/2."""
    k = torch.arange(freqs // 2, device=s.device, dtype=s.dtype)
    w = torch.exp(-math.log(1e4) * 2 * k / freqs)
    ang = s[..., None] * w
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


def consolidate(
    mem: torch.Tensor, ts: torch.Tensor, n: torch.Tensor, new: torch.Tensor, new_ts: torch.Tensor, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Appends one entry per row, then merges (or drops, ``"fifo"``) back to capacity where a bank overflows.

    Args:
        mem: ``[B, L, N, d]`` entries (slots >= n are zero); ts: ``[B, L]`` float; n: ``[B]`` long.
        new: ``[B, N, d]``; new_ts: ``[B]`` float.
        mode: ``"merge"`` or ``"fifo"``.

    Returns:
        the new ``(mem, ts, n)``.
    """
    b, cap = ts.shape
    slots = torch.arange(cap, device=ts.device)
    # Rows with room: the new entry goes to slot n.
    put = slots[None] == n[:, None]  # [B, L]
    mem_room = torch.where(put[:, :, None, None], new[:, None], mem)
    ts_room = torch.where(put, new_ts[:, None], ts)
    # Full rows: L + 1 entries, back to L.
    ext = torch.cat([mem, new[:, None]], dim=1)  # [B, L+1, N, d]
    ext_ts = torch.cat([ts, new_ts[:, None]], dim=1)  # [B, L+1]
    if mode == "fifo":
        mem_full, ts_full = ext[:, 1:], ext_ts[:, 1:]
    else:
        sim = F.cosine_similarity(ext[:, :-1], ext[:, 1:], dim=-1).mean(-1)  # [B, L]: mean over tokens
        i_star = sim.argmax(dim=1)  # [B], first on ties
        src = slots[None] + (slots[None] > i_star[:, None]).long()  # [B, L]
        mem_full = torch.gather(ext, 1, src[:, :, None, None].expand(-1, -1, *ext.shape[2:]))
        ts_full = torch.gather(ext_ts, 1, src)
        rows = torch.arange(b, device=ts.device)
        merged = (ext[rows, i_star] + ext[rows, i_star + 1]) / 2  # [B, N, d]
        merged_ts = (ext_ts[rows, i_star] + ext_ts[rows, i_star + 1]) / 2
        at = slots[None] == i_star[:, None]  # [B, L]
        mem_full = torch.where(at[:, :, None, None], merged[:, None], mem_full)
        ts_full = torch.where(at, merged_ts[:, None], ts_full)
    full = n >= cap  # [B]
    mem_out = torch.where(full[:, None, None, None], mem_full, mem_room)
    ts_out = torch.where(full[:, None], ts_full, ts_room)
    return mem_out, ts_out, torch.clamp(n + 1, max=cap)


class _Block(nn.Module):
    """Post-LN cross-attention block without output projection: ``Q [B, N, d]`` over ``K, V [B, S, d]``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``allowed [B, S]`` bool (every row has at least one readable key)."""
        b, n, d = q.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, h, d // h).transpose(1, 2)  # [B, h, *, d/h]

        mask = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, float("-inf"))
        att = F.scaled_dot_product_attention(
            split(self.wq(q)), split(self.wk(k)), split(self.wv(v)), attn_mask=mask[:, None, None, :]
        )  # [B, h, N, d/h]
        x = self.ln1(q + att.transpose(1, 2).reshape(b, n, d))
        return self.ln2(x + self.ffn(x))


class MemoryStream(nn.Module):
    """One stream's retrieval, gate and timestep encoding over ``[B, L, N, d]`` entries."""

    def __init__(self, dim: int, heads: int, blocks: int, freqs: int, fusion: str) -> None:
        super().__init__()
        self.freqs, self.fusion = freqs, fusion
        self.te = nn.Sequential(nn.Linear(freqs, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(blocks))
        self.gate = nn.Linear(2 * dim, dim)
        nn.init.normal_(self.gate.weight, std=1e-3)
        nn.init.normal_(self.gate.bias, std=1e-3)

    def retrieve(
        self, x: torch.Tensor, mem: torch.Tensor, ts: torch.Tensor, n: torch.Tensor, step: torch.Tensor
    ) -> torch.Tensor:
        """``x [B, N, d]`` current tokens, bank ``mem [B, L, N, d]``, ``ts [B, L]``, ``n [B]``, ``step [B]`` -> H."""
        b, cap, nt, d = mem.shape
        te_mem = self.te(sinusoid(ts, self.freqs))[:, :, None, :]  # [B, L, 1, d]
        te_now = self.te(sinusoid(step.to(x.dtype), self.freqs))[:, None, :]  # [B, 1, d]
        keys = torch.cat([(mem + te_mem).reshape(b, cap * nt, d), x + te_now], dim=1)  # [B, L*N + N, d]
        vals = torch.cat([mem.reshape(b, cap * nt, d), x], dim=1)
        slot_ok = torch.arange(cap, device=x.device)[None] < n[:, None]  # [B, L]
        allowed = torch.cat(
            [slot_ok.repeat_interleave(nt, dim=1), (n == 0)[:, None].expand(-1, nt)], dim=1
        )  # [B, L*N + N]: the current tokens only for an empty bank
        q = x
        for block in self.blocks:
            q = block(q, keys, vals, allowed)
        return q

    def fuse(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``X~ = g X + (1 - g) H`` (or their mean)."""
        if self.fusion == "add":
            return (x + h) / 2
        g = torch.sigmoid(self.gate(torch.cat([x, h], dim=-1)))
        return g * x + (1 - g) * h


@register_memory("memoryvla")
class MemoryVLAMemory(MemoryModule):
    """Perceptual-cognitive memory bank.

    Args:
        input_size: F.
        hidden_size: d_c, the cognitive token width (``output_size = n_per * d_per + hidden_size``).
        n_per: N_p, perceptual tokens per step.
        d_per: d_p, perceptual token width.
        capacity: L, entries per bank.
        blocks: retrieval blocks per stream.
        heads: attention heads (must divide d_p and d_c).
        te_freqs: f, sinusoid size of the timestep encoding (even).
        fusion: ``"gate"`` or ``"add"``.
        consolidate: ``"merge"`` (most similar adjacent pair) or ``"fifo"``.
        write_fused: store the fused tokens X~ (True) or the raw X (False).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        n_per: int = 4,
        d_per: int = 16,
        capacity: int = 32,
        blocks: int = 2,
        heads: int = 1,
        te_freqs: int = 16,
        fusion: str = "gate",
        consolidate: str = "merge",
        write_fused: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("n_per", n_per),
            ("d_per", d_per),
            ("capacity", capacity),
            ("blocks", blocks),
            ("heads", heads),
            ("te_freqs", te_freqs),
        ):
            check_positive(name, v)
        if te_freqs % 2:
            raise ValueError(f"te_freqs must be even, got {te_freqs}")
        if d_per % heads or hidden_size % heads:
            raise ValueError(f"heads {heads} must divide d_per {d_per} and hidden_size {hidden_size}")
        if fusion not in ("gate", "add"):
            raise ValueError(f"fusion must be 'gate' or 'add', got {fusion!r}")
        if consolidate not in ("merge", "fifo"):
            raise ValueError(f"consolidate must be 'merge' or 'fifo', got {consolidate!r}")
        self.input_size = input_size
        self.n_per, self.d_per, self.d_cog = n_per, d_per, hidden_size
        self.capacity = capacity
        self.consolidate, self.write_fused = consolidate, write_fused
        self.output_size = n_per * d_per + hidden_size
        self.per_proj = nn.Linear(input_size, n_per * d_per)
        self.per_offset = nn.Parameter(torch.randn(n_per, d_per) * 0.02)
        self.cog_proj = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, hidden_size),
            nn.LayerNorm(hidden_size),
        )
        self.per = MemoryStream(d_per, heads, blocks, te_freqs, fusion)
        self.cog = MemoryStream(hidden_size, heads, blocks, te_freqs, fusion)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, F]`` -> perceptual ``[B, T, N_p, d_p]`` and cognitive ``[B, T, 1, d_c]`` tokens."""
        b, t = x.shape[:2]
        p = self.per_proj(x).view(b, t, self.n_per, self.d_per) + self.per_offset
        return p, self.cog_proj(x).unsqueeze(2)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Empty banks (see the module docstring for the layout)."""
        b, cap = batch_size, self.capacity
        return self._zeros_state(
            b,
            device,
            per_mem=(b, cap, self.n_per, self.d_per),
            per_ts=(b, cap),
            per_n=((b,), torch.long),
            cog_mem=(b, cap, self.d_cog),
            cog_ts=(b, cap),
            cog_n=((b,), torch.long),
            step=((b,), torch.long),
        )

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x [B, T, F]`` -> ``y [B, T, N_p d_p + d_c]`` and the new state."""
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        self.check_state_batch(b, state["step"].shape[0])
        p_all, c_all = self.tokens(x)
        st = dict(state)
        ys = []
        for r, p_i, c_i in zip(starts.unbind(1), p_all.unbind(1), c_all.unbind(1)):  # r: [B]
            if bool(r.any()):
                st = {k: torch.where(r.view(-1, *([1] * (v.dim() - 1))), torch.zeros_like(v), v) for k, v in st.items()}
            fused = []
            for name, stream, cur in (("per", self.per, p_i), ("cog", self.cog, c_i)):
                mem = st[f"{name}_mem"]
                mem4 = mem if mem.dim() == 4 else mem.unsqueeze(2)  # [B, L, N, d]
                h = stream.retrieve(cur, mem4, st[f"{name}_ts"], st[f"{name}_n"], st["step"])
                xt = stream.fuse(cur, h)  # [B, N, d]
                fused.append(xt)
                write = (xt if self.write_fused else cur).detach()
                mem4, ts, n = consolidate(
                    mem4, st[f"{name}_ts"], st[f"{name}_n"], write, st["step"].to(x.dtype), self.consolidate
                )
                st[f"{name}_mem"] = mem4 if mem.dim() == 4 else mem4.squeeze(2)
                st[f"{name}_ts"], st[f"{name}_n"] = ts, n
            st["step"] = st["step"] + 1
            ys.append(torch.cat([fused[0].flatten(1), fused[1].flatten(1)], dim=-1))
        y = torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, self.output_size)
        return y, st


__all__ = ["MemoryStream", "MemoryVLAMemory", "consolidate", "sinusoid"]
