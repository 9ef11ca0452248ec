"""The two frozen encoders of Janus: :class:`SpatialEncoder` (a tiny VGGT, cross-frame attention over a cache of
raw keys/values) and :class:`SemanticEncoder` (per-frame blocks and a 2x2 patch merger)."""

from __future__ import annotations

import torch
from torch import nn

from chronotope.memory.janus import layers
from chronotope.memory.janus.config import JanusConfig
from chronotope.memory.janus.layers import (
    _Block,
    _FrameTokenizer,
    _heads,
    _merge2x2,
    _rope_tables,
    _rotate,
    retention_mask,
)


class SpatialEncoder(nn.Module):
    """Spatial-geometric encoder: alternating per-frame and cross-frame attention (a tiny VGGT).

    ``forward`` processes one frame against the cached raw keys/values of earlier frames;
    :meth:`forward_full` processes a whole sequence under a frame mask (the oracle, and the pretraining path).
    """

    def __init__(self, input_size: int, cfg: JanusConfig) -> None:
        super().__init__()
        self.grid, self.num_tokens = cfg.grid, cfg.grid * cfg.grid
        self.dim, self.num_heads = cfg.encoder_width, cfg.encoder_heads
        self.tokenizer = _FrameTokenizer(input_size, self.num_tokens, self.dim)
        self.frame_blocks = nn.ModuleList(
            _Block(self.dim, self.num_heads, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.spatial_pairs)
        )
        self.global_blocks = nn.ModuleList(
            _Block(self.dim, self.num_heads, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.spatial_pairs)
        )
        self.norm = nn.LayerNorm(self.dim)
        cos, sin = _rope_tables(cfg.grid, self.dim // self.num_heads, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)  # [P, dh]
        self.register_buffer("rope_sin", sin, persistent=False)

    def _pos(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """qk-norm then rotary, on ``[..., P, dh]`` (patch positions only, never the frame index)."""
        x = norm(x)
        return x * self.rope_cos + _rotate(x) * self.rope_sin

    def _frame_attention(self, blk: _Block, h: torch.Tensor) -> torch.Tensor:
        """Per-frame block on ``[..., P, D]``: tokens attend within their own frame."""
        q, k, v = blk.qkv_raw(h)
        qh, kh = self._pos(blk.q_norm, _heads(q, self.num_heads)), self._pos(blk.k_norm, _heads(k, self.num_heads))
        return blk.finish(h, layers._attention(qh, kh, _heads(v, self.num_heads), None))

    def forward(
        self, tokens: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame with the cache.

        Args:
            tokens: ``[B, P, D]`` tokenised current frame.
            cache_k, cache_v: ``[B, C, L, P, D]`` raw keys/values of the cached frames per global layer.
            valid: ``[B, C]`` bool, which slots hold a retained frame.

        Returns:
            spatial tokens ``[B, P, D]`` and this frame's raw keys and values ``[B, L, P, D]`` to cache.
        """
        b, p, _ = tokens.shape
        h = tokens
        keymask = torch.cat([valid, valid.new_ones(b, 1)], dim=1).repeat_interleave(p, dim=1)  # [B, (C+1) P]
        keymask = keymask[:, None, None, :]  # [B, 1, 1, (C+1) P]
        new_k, new_v = [], []
        for i, (fb, gb) in enumerate(zip(self.frame_blocks, self.global_blocks)):
            h = self._frame_attention(fb, h)
            q, k, v = gb.qkv_raw(h)  # [B, P, D]
            new_k.append(k)
            new_v.append(v)
            kk = torch.cat([cache_k[:, :, i], k[:, None]], dim=1)  # [B, C+1, P, D]
            vv = torch.cat([cache_v[:, :, i], v[:, None]], dim=1)
            qh = self._pos(gb.q_norm, _heads(q, self.num_heads))  # [B, H, P, dh]
            kh = self._pos(gb.k_norm, _heads(kk, self.num_heads)).transpose(1, 2).flatten(2, 3)  # [B, H, (C+1)P, dh]
            vh = _heads(vv, self.num_heads).transpose(1, 2).flatten(2, 3)
            h = gb.finish(h, layers._attention(qh, kh, vh, keymask))
        return self.norm(h), torch.stack(new_k, dim=1), torch.stack(new_v, dim=1)

    def forward_full(self, tokens: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """A whole sequence at once.

        Args:
            tokens: ``[B, T, P, D]`` tokenised frames.
            allowed: ``[T, T]`` bool, frame t may read frame s (default: frame-causal; pass all-True for the
                bidirectional pass of pretraining), or ``[B, T, T]`` for one mask per row.

        Returns:
            ``[B, T, P, D]`` spatial tokens.
        """
        b, t, p, d = tokens.shape
        if allowed is None:
            allowed = retention_mask(t, 0, None, device=tokens.device)
        tok_mask = allowed.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)  # [TP, TP] or [B, TP, TP]
        if tok_mask.dim() == 3:
            tok_mask = tok_mask[:, None]  # [B, 1, TP, TP]: one mask per row, shared by the heads
        h = tokens
        for fb, gb in zip(self.frame_blocks, self.global_blocks):
            h = self._frame_attention(fb, h)
            q, k, v = gb.qkv_raw(h)  # [B, T, P, D]
            qh = self._pos(gb.q_norm, _heads(q, self.num_heads)).transpose(1, 2).flatten(2, 3)  # [B, H, TP, dh]
            kh = self._pos(gb.k_norm, _heads(k, self.num_heads)).transpose(1, 2).flatten(2, 3)
            vh = _heads(v, self.num_heads).transpose(1, 2).flatten(2, 3)
            o = layers._attention(qh, kh, vh, tok_mask).unflatten(2, (t, p)).transpose(1, 2)  # [B, T, H, P, dh]
            h = gb.finish(h, o)
        return self.norm(h)


class SemanticEncoder(nn.Module):
    """Visual-semantic encoder: per-frame blocks and a 2x2 patch merger to the policy width (Qwen2.5-VL style)."""

    def __init__(self, input_size: int, cfg: JanusConfig) -> None:
        super().__init__()
        self.grid = cfg.grid
        d = cfg.encoder_width
        self.tokenizer = _FrameTokenizer(input_size, cfg.grid * cfg.grid, d)
        self.blocks = nn.ModuleList(
            _Block(d, cfg.encoder_heads, cfg.mlp_ratio, qk_norm=False) for _ in range(cfg.semantic_layers)
        )
        self.num_heads = cfg.encoder_heads
        self.norm = nn.LayerNorm(d)
        self.merger = nn.Sequential(nn.Linear(4 * d, 4 * d), nn.GELU(), nn.Linear(4 * d, cfg.policy_width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` frames -> ``[..., M, policy_width]`` semantic tokens (``M = grid**2 / 4``)."""
        h = self.tokenizer(x)  # [..., P, D]
        for blk in self.blocks:
            q, k, v = blk.qkv_raw(h)
            h = blk.finish(h, layers._attention(*(_heads(t, self.num_heads) for t in (q, k, v)), None))
        return self.merger(_merge2x2(self.norm(h), self.grid))
