"""Transformer memories over cached past embeddings: ``trxl`` (sliding window) and ``full_attention``.

Each layer caches its own past *inputs* (after layer norm, gradient stopped, Transformer-XL style) and its
attention reads the current step plus the cached steps. ``trxl`` keeps the last ``window`` steps, so its state
is bounded by configuration; ``full_attention`` keeps the whole history of the episode (its state grows
with the number of steps processed: this is the unbounded baseline of the memory benchmark).

Positions enter as a learned per-head bias on the relative distance (query step minus key step), clipped at
``window`` (or ``max_distance`` for full attention), so a step's output does not depend on where in a
rollout chunk it falls: step-by-step equals whole-sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory


def episode_ids(starts: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool episode starts -> ``[B, T]`` long: how many starts up to and including each step.

    Id 0 means "still the episode the state was carried over from".
    """
    return starts.long().cumsum(dim=1)


class _Layer(nn.Module):
    """Pre-LN transformer layer whose attention reads ``[cache ; current]`` keys with a relative-distance bias."""

    def __init__(self, dim: int, num_heads: int, num_buckets: int, mlp_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(num_heads, num_buckets))  # [H, max distance + 1]
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def attend(self, hin: torch.Tensor, cache: torch.Tensor, dist: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of the current steps over ``[cache ; current]``.

        Args:
            hin: ``[B, T, D]`` normalised layer inputs.
            cache: ``[B, N, D]`` cached normalised inputs of earlier steps (no gradient).
            dist: ``[T, N + T]`` long relative distance, already clipped to the bias table.
            allowed: ``[B, T, N + T]`` bool: which keys each query may read.

        Returns:
            ``[B, T, D]``.
        """
        b, t, d = hin.shape
        h = self.num_heads
        w_q, w_k, w_v = self.qkv.weight.chunk(3, dim=0)
        b_q, b_k, b_v = self.qkv.bias.chunk(3, dim=0)
        kv_in = torch.cat([cache, hin], dim=1)  # [B, N+T, D]
        q = F.linear(hin, w_q, b_q).view(b, t, h, d // h).transpose(1, 2)  # [B, H, T, dh]
        k = F.linear(kv_in, w_k, b_k).view(b, -1, h, d // h).transpose(1, 2)  # [B, H, S, dh]
        v = F.linear(kv_in, w_v, b_v).view(b, -1, h, d // h).transpose(1, 2)
        bias = self.rel_bias[:, dist]  # [H, T, S]
        neg = torch.zeros(allowed.shape, dtype=hin.dtype, device=hin.device).masked_fill(~allowed, float("-inf"))
        mask = bias.unsqueeze(0) + neg.unsqueeze(1)  # [B, H, T, S]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, T, dh]
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class _CachedAttentionMemory(MemoryModule):
    """Shared implementation; ``window=None`` keeps every step of the history."""

    window: int | None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: int,
        window: int | None,
        max_distance: int,
    ) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        check_positive("num_heads", num_heads)
        check_positive("mlp_ratio", mlp_ratio)
        check_positive("max_distance", max_distance)
        if window is not None:
            check_positive("window", window)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.input_size = input_size
        self.output_size = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.window = window
        self.max_distance = window if window is not None else max_distance
        self.inp = nn.Linear(input_size, hidden_size)
        self.layers = nn.ModuleList(
            _Layer(hidden_size, num_heads, self.max_distance + 1, mlp_ratio) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Empty cache: ``cache [L, B, N, D]`` and ``valid [B, N]`` with N = window (0 for full attention)."""
        n = self.window or 0
        return self._zeros_state(
            batch_size,
            device,
            cache=(self.num_layers, batch_size, n, self.hidden_size),
            valid=((batch_size, n), torch.bool),
        )

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reads the cache and appends the new steps to it.

        Args:
            x: ``[B, T, F]``.
            state: ``cache [L, B, N, D]``, ``valid [B, N]``.
            episode_starts: ``[B, T]`` bool; a start hides all earlier steps of that row.

        Returns:
            ``y [B, T, D]`` and the new state (N stays ``window`` for trxl, grows by T for full attention).
        """
        starts = self.check_input(x, episode_starts)
        cache, valid = state["cache"], state["valid"]
        b, t = x.shape[:2]
        self.check_state_batch(b, cache.shape[1], valid.shape[0])
        n = cache.shape[2]
        dev = x.device
        epi = episode_ids(starts)  # [B, T]
        # Which keys each query may read: same episode, not in the future, within the window.
        t_idx = torch.arange(t, device=dev)
        key_time = torch.arange(-n, t, device=dev)  # cached steps have negative times
        dist = t_idx[:, None] - key_time[None, :]  # [T, N+T]
        causal = dist >= 0
        if self.window is not None:
            causal = causal & (dist <= self.window)
        key_epi = torch.cat([torch.zeros(b, n, dtype=epi.dtype, device=dev), epi], dim=1)  # [B, N+T]
        key_ok = torch.cat([valid, torch.ones(b, t, dtype=torch.bool, device=dev)], dim=1)  # [B, N+T]
        allowed = causal[None] & key_ok[:, None, :] & (key_epi[:, None, :] == epi[:, :, None])  # [B, T, N+T]
        dist_c = dist.clamp(0, self.max_distance)

        h = self.inp(x)  # [B, T, D]
        new_cache = []
        for li, layer in enumerate(self.layers):
            hin = layer.norm1(h)
            h = h + layer.attend(hin, cache[li], dist_c, allowed)
            h = h + layer.mlp(layer.norm2(h))
            new_cache.append(torch.cat([cache[li], hin.detach()], dim=1))  # [B, N+T, D]
        y = self.norm(h)

        # Keep only what the next call may read: the rest of the final episode, last `window` steps.
        last_epi = epi[:, -1:] if t > 0 else torch.zeros(b, 1, dtype=epi.dtype, device=dev)
        keep_valid = key_ok & (key_epi == last_epi)  # [B, N+T]
        all_cache = torch.stack(new_cache) * keep_valid[None, :, :, None].to(x.dtype)  # [L, B, N+T, D]
        if self.window is not None:
            all_cache = all_cache[:, :, -self.window :]
            keep_valid = keep_valid[:, -self.window :]
        return y, {"cache": all_cache, "valid": keep_valid}


@register_memory("trxl")
class TrXLMemory(_CachedAttentionMemory):
    """Transformer over a sliding window of the last ``window`` cached steps per layer.

    Args:
        input_size: F.
        hidden_size: D, model width and ``output_size``.
        num_layers: transformer layers, each with its own cache.
        num_heads: attention heads (must divide D).
        mlp_ratio: MLP width as a multiple of D.
        window: how many past steps each step can read; the state holds exactly this many per layer.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        window: int = 64,
    ) -> None:
        if window is None:
            raise ValueError("trxl needs a finite window, got None (use full_attention for unbounded)")
        super().__init__(input_size, hidden_size, num_layers, num_heads, mlp_ratio, window, max_distance=window)


@register_memory("full_attention")
class FullAttentionMemory(_CachedAttentionMemory):
    """Causal attention over the entire episode: state grows by one step per step (unbounded by design).

    Args:
        input_size: F.
        hidden_size: D, model width and ``output_size``.
        num_layers: transformer layers.
        num_heads: attention heads (must divide D).
        mlp_ratio: MLP width as a multiple of D.
        max_distance: relative distances beyond this share one learned bias.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        max_distance: int = 256,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, num_heads, mlp_ratio, None, max_distance)

    def filled_state(
        self, batch_size: int, steps: int, device: torch.device | str | None = None, seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """A state of the same shapes as after ``steps`` steps of one episode, with random cached content.

        Filling the cache step by step costs O(steps^2); benchmarks use this to time one more step at
        ``steps`` history. Content is layer-normalised-scale noise.
        """
        check_positive("steps", steps)
        p = next(self.parameters())
        device = p.device if device is None else device
        g = torch.Generator().manual_seed(seed)
        cache = torch.randn(self.num_layers, batch_size, steps, self.hidden_size, generator=g, dtype=p.dtype)
        return {
            "cache": cache.to(device),
            "valid": torch.ones(batch_size, steps, dtype=torch.bool, device=device),
        }


__all__ = ["FullAttentionMemory", "TrXLMemory", "episode_ids"]
