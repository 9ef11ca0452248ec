"""Building blocks shared by the Janus encoders and policy core: attention, heads, 2x2 merge, 2D rotary
embedding, frame retention masks, the pre-LN block and the frame tokenizer.

Every attention of the model goes through :func:`_attention`; callers reach it as ``layers._attention`` so a test
can wrap this one attribute to count the keys each query reads.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Every attention of this module goes through here (tests wrap it to count the keys each query reads).

    Args:
        q: ``[..., H, Nq, dh]``.
        k, v: ``[..., H, Nk, dh]``.
        mask: bool (True = may read) or additive float, broadcastable to ``[..., H, Nq, Nk]``; or None.

    Returns:
        ``[..., H, Nq, dh]``.
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[..., N, D] -> [..., H, N, D / H]``."""
    *lead, n, d = x.shape
    return x.reshape(*lead, n, num_heads, d // num_heads).transpose(-2, -3)


def _merge2x2(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """``[..., grid*grid, D] -> [..., (grid/2)**2, 4 D]``: concatenates each 2x2 block of neighbouring patches."""
    *lead, _, d = tokens.shape
    g = grid // 2
    t = tokens.reshape(*lead, g, 2, g, 2, d).transpose(-4, -3)  # [..., g, g, 2, 2, D]
    return t.reshape(*lead, g * g, 4 * d)


def retention_mask(num_frames: int, n_init: int, n_window: int | None, device: Any = None) -> torch.Tensor:
    """Which earlier frames each frame may read: ``[T, T]`` bool, row = query frame, column = key frame.

    Frame t reads itself and the frames a cache holds after t frames: ``[0, n_init)`` and
    ``[t - n_window, t)``. ``n_window=None`` gives the plain frame-causal mask (no eviction).
    """
    t = torch.arange(num_frames, device=device)[:, None]
    s = torch.arange(num_frames, device=device)[None, :]
    if n_window is None:
        return s <= t
    return (s == t) | ((s < t) & ((s < n_init) | (s >= t - n_window)))


def retained_frames(num_frames: int, n_init: int, n_window: int) -> list[int]:
    """Frames a cache holds after ``num_frames`` frames: ``{0..n_init-1} U {T-n_window..T-1}`` (sorted)."""
    return sorted({f for f in range(num_frames) if f < n_init or f >= num_frames - n_window})


def _rope_tables(grid: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``[P, dh]`` of a 2D rotary embedding: first half of a head rotates by patch row, second by column."""
    quarter = head_dim // 4
    inv = base ** (-torch.arange(quarter, dtype=torch.float64) / quarter)  # [dh/4]
    idx = torch.arange(grid * grid)
    rows = (idx // grid).double()[:, None] * inv  # [P, dh/4]
    cols = (idx % grid).double()[:, None] * inv
    ang = torch.cat([rows, rows, cols, cols], dim=-1)  # [P, dh]
    return ang.cos().float(), ang.sin().float()


def _rotate(x: torch.Tensor) -> torch.Tensor:
    """Rotate-half within each of the two halves (row part, column part) of the head dimension."""
    a, b = x.chunk(2, dim=-1)

    def half(t: torch.Tensor) -> torch.Tensor:
        t1, t2 = t.chunk(2, dim=-1)
        return torch.cat([-t2, t1], dim=-1)

    return torch.cat([half(a), half(b)], dim=-1)


# ----------------------------------------------------------------------------------------------- blocks


class _Block(nn.Module):
    """Pre-LN transformer block; callers assemble the keys, so caching and masking stay outside."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, qk_norm: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        head = dim // num_heads
        self.q_norm = nn.LayerNorm(head) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head) if qk_norm else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def qkv_raw(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[..., N, D]`` -> q, k, v ``[..., N, D]`` each, before qk-norm / rotary (what a cache stores)."""
        q, k, v = self.qkv(self.norm1(h)).chunk(3, dim=-1)
        return q, k, v

    def finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Residual update from the attention output ``attn[..., H, N, dh]``; returns ``[..., N, D]``."""
        o = attn.transpose(-2, -3).flatten(-2)  # [..., N, D]
        h = h + self.proj(o)
        return h + self.mlp(self.norm2(h))


class _FrameTokenizer(nn.Module):
    """Feature vector ``[..., F]`` -> ``[..., P, D]`` patch tokens with a learned per-patch position."""

    def __init__(self, input_size: int, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.num_tokens, self.dim = num_tokens, dim
        self.proj = nn.Linear(input_size, num_tokens * dim)
        self.pos = nn.Parameter(0.02 * torch.randn(num_tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).unflatten(-1, (self.num_tokens, self.dim)) + self.pos
