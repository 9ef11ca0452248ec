"""The trainable policy core of Janus (:class:`PolicyCore`, the paper's MLLM): instruction, semantic KV cache and
the current frame's fused visual tokens, read out through one learned token."""

from __future__ import annotations

import torch
from torch import nn

from chronotope.memory.janus import layers
from chronotope.memory.janus.config import JanusConfig
from chronotope.memory.janus.layers import _Block, _heads


class PolicyCore(nn.Module):
    """Trainable core (the paper's MLLM): reads the instruction, the semantic KV cache and the current frame.

    Per frame the tokens are the ``M`` fused visual tokens plus one read-out token. Across frames only the
    visual tokens are visible (they are what the cache stores); within a frame all tokens see each other.
    """

    def __init__(self, cfg: JanusConfig) -> None:
        super().__init__()
        d = cfg.policy_width
        self.num_visual = (cfg.grid // 2) ** 2
        self.num_heads = cfg.policy_heads
        self.max_age = cfg.n_window + 1  # ages beyond the window share one bias (only sink frames get there)
        self.blocks = nn.ModuleList(
            _Block(d, cfg.policy_heads, cfg.mlp_ratio, qk_norm=False) for _ in range(cfg.policy_layers)
        )
        self.age_bias = nn.Parameter(torch.zeros(cfg.policy_layers, cfg.policy_heads, self.max_age + 1))
        self.visual_pos = nn.Parameter(0.02 * torch.randn(self.num_visual, d))
        self.readout = nn.Parameter(0.02 * torch.randn(d))
        # Only built when instructions are used: an input that is never given would get no gradient.
        self.instruction_proj = (
            nn.Sequential(nn.Linear(cfg.instruction_size, d), nn.LayerNorm(d)) if cfg.instruction_size else None
        )
        self.out_norm = nn.LayerNorm(d)

    def _tokens(self, visual: torch.Tensor) -> torch.Tensor:
        """``[..., M, d]`` -> ``[..., M + 1, d]``: visual tokens with positions, then the read-out token."""
        ro = self.readout.expand(*visual.shape[:-2], 1, visual.shape[-1])
        return torch.cat([visual + self.visual_pos, ro], dim=-2)

    def _instruction(
        self, instruction: torch.Tensor | None, mask: torch.Tensor | None, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected instruction ``[B, L, d]`` and its additive mask ``[B, 1, 1, L]`` (L = 0 without one)."""
        if instruction is None or self.instruction_proj is None:
            b = like.shape[0]
            return like.new_zeros(b, 0, like.shape[-1]), like.new_zeros(b, 1, 1, 0)
        bias = torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(~mask, float("-inf"))
        return self.instruction_proj(instruction), bias[:, None, None, :]

    def forward(
        self,
        visual: torch.Tensor,
        instruction: torch.Tensor | None,
        instruction_mask: torch.Tensor | None,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        valid: torch.Tensor,
        age: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame with the semantic cache.

        Args:
            visual: ``[B, M, d]`` fused visual tokens of the current frame.
            instruction: ``[B, L, E]`` instruction embeddings or None; instruction_mask ``[B, L]`` bool.
            cache_k, cache_v: ``[B, C, layers, M, d]`` cached keys/values of earlier frames' visual tokens.
            valid: ``[B, C]`` bool retained slots; age ``[B, C]`` long, current frame index minus slot's frame.

        Returns:
            read-out ``[B, d]`` and this frame's visual keys and values ``[B, layers, M, d]`` to cache.
        """
        b, m, _ = visual.shape
        h = self._tokens(visual)  # [B, M+1, d]
        ins, ins_bias = self._instruction(instruction, instruction_mask, h)  # [B, L, d], [B, 1, 1, L]
        bucket = age.clamp(0, self.max_age)  # [B, C]
        new_k, new_v = [], []
        for i, blk in enumerate(self.blocks):
            q, k, v = blk.qkv_raw(h)  # [B, M+1, d]
            _, ik, iv = blk.qkv_raw(ins)  # [B, L, d]
            new_k.append(k[:, :m])
            new_v.append(v[:, :m])
            keys = torch.cat([ik, cache_k[:, :, i].flatten(1, 2), k], dim=1)  # [B, L + C M + M + 1, d]
            vals = torch.cat([iv, cache_v[:, :, i].flatten(1, 2), v], dim=1)
            table = self.age_bias[i]  # [H, A]
            cache_bias = table[:, bucket].masked_fill(~valid, float("-inf"))  # [H, B, C]
            cache_bias = cache_bias.permute(1, 0, 2).repeat_interleave(m, dim=2)[:, :, None, :]  # [B, H, 1, C M]
            cur_bias = table[:, 0].view(1, -1, 1, 1).expand(b, -1, 1, m + 1)  # [B, H, 1, M+1]
            bias = torch.cat([ins_bias.expand(b, self.num_heads, 1, -1), cache_bias, cur_bias], dim=-1)
            o = layers._attention(
                _heads(q, self.num_heads), _heads(keys, self.num_heads), _heads(vals, self.num_heads), bias
            )
            h = blk.finish(h, o)
        return self.out_norm(h[:, m]), torch.stack(new_k, dim=1), torch.stack(new_v, dim=1)

    def forward_full(
        self,
        visual: torch.Tensor,
        instruction: torch.Tensor | None,
        instruction_mask: torch.Tensor | None,
        allowed: torch.Tensor,
    ) -> torch.Tensor:
        """A whole episode at once (the oracle): ``visual[B, T, M, d]``, ``allowed[T, T]`` (or one mask per row,
        ``[B, T, T]``) -> ``[B, T, d]``."""
        b, t, m, _ = visual.shape
        n1 = m + 1
        dev = visual.device
        h = self._tokens(visual).flatten(1, 2)  # [B, T(M+1), d]
        frame = torch.arange(t, device=dev).repeat_interleave(n1)  # [N]
        is_visual = (torch.arange(n1, device=dev) < m).repeat(t)  # [N]
        same = frame[:, None] == frame[None, :]
        tok_allowed = same | (allowed[..., frame, :][..., frame] & is_visual[None, :])  # [N, N] or [B, N, N]
        bucket = (frame[:, None] - frame[None, :]).clamp(0, self.max_age)  # [N, N]
        ins, ins_bias = self._instruction(instruction, instruction_mask, h)
        ins_bias = ins_bias.expand(b, self.num_heads, h.shape[1], -1)
        for i, blk in enumerate(self.blocks):
            q, k, v = blk.qkv_raw(h)
            _, ik, iv = blk.qkv_raw(ins)
            vis_bias = self.age_bias[i][:, bucket]  # [H, N, N]
            if tok_allowed.dim() == 3:
                vis_bias = vis_bias[None].masked_fill(~tok_allowed[:, None], float("-inf"))  # [B, H, N, N]
            else:
                vis_bias = vis_bias.masked_fill(~tok_allowed, float("-inf"))
            bias = torch.cat([ins_bias, vis_bias.expand(b, -1, -1, -1)], dim=-1)
            keys, vals = torch.cat([ik, k], dim=1), torch.cat([iv, v], dim=1)
            o = layers._attention(
                _heads(q, self.num_heads), _heads(keys, self.num_heads), _heads(vals, self.num_heads), bias
            )
            h = blk.finish(h, o)
        return self.out_norm(h.unflatten(1, (t, n1))[:, :, m])
