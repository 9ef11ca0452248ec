"""JanusVLN dual implicit memory (Zeng et al., ICLR 2026, arXiv 2509.22548), small enough to train on a CPU.

Each step's input ``x[B, T, F]`` is one *frame*. Two frozen encoders read it:

* the **visual-semantic encoder** (:class:`SemanticEncoder`) turns the frame into ``P = grid**2`` patch tokens
  (a learned projection of the feature vector, with a learned per-patch position), runs per-frame
  self-attention and a Qwen2.5-VL-style 2x2 patch merger, giving ``M = P / 4`` semantic tokens of the policy
  width;
* the **spatial-geometric encoder** (:class:`SpatialEncoder`) tokenises the frame the same way (its own
  weights) and alternates per-frame attention with cross-frame ("global") attention, VGGT style. The global
  attention of the current frame reads the cached keys/values of earlier frames. Keys are cached *before*
  qk-norm and the 2D rotary embedding; both are applied when the cache is read, with positions per patch,
  so nothing depends on the frame index.

The spatial tokens of the current frame are merged 2x2, passed through norm -> linear -> GELU -> linear to the
policy width (the authors' ``VGGTMerger``) and added to the semantic tokens with weight ``fusion_weight``
(lambda). The trainable **policy core** (:class:`PolicyCore`, standing in for the paper's MLLM) reads the
fused tokens of the current frame plus one learned read-out token; each layer attends over the instruction
tokens, its own cached keys/values of the fused visual tokens of earlier frames (the *semantic memory*: the
MLLM's KV cache in the paper) and the current frame. A learned per-head bias on the frame age (clipped at
``n_window + 1``) gives the policy the order of the frames it remembers. The read-out token's final state is
the output ``y[B, T, policy_width]``.

**Dual cache, retention.** Both caches keep keys/values per layer along the frame dimension in
``n_init + n_window`` slots shared by the layers: the first ``n_init`` frames of the episode (attention sinks)
stay, the rest is a ring buffer holding the last ``n_window`` frames (paper: 8 + 48). Eviction is masking: an
empty or overwritten slot is simply not readable, so every step attends over tensors of the same size and
the state is constant in size from the first step. An episode start empties both caches of that row.

**Instructions.** The generic ``forward(x, state, episode_starts)`` works without any instruction (the
default ``instruction_size=0`` builds no instruction input). Build with ``instruction_size=E`` to read
instruction embeddings ``[B, L, E]`` (``L <= max_instruction_tokens``; rows without one, or padding tokens
marked False in the mask, are simply not attended). The caller either stores them in the state with
:meth:`JanusMemory.set_instruction` (per row, e.g. when one env of a vector env resets) or passes
``instruction=`` to ``forward`` (``[B, L, E]`` for the whole chunk or ``[B, T, L, E]`` per step) with an
optional boolean ``instruction_mask``. The
instruction is an *input*, not memory: an episode start does not clear it; set the new episode's
instruction at the same time.

**Frozen encoders.** Both encoders (tokenisers included) have ``requires_grad=False`` and stay in eval mode;
they are ordinary differentiable modules, so gradients still reach ``x`` (and an upstream encoder) through
them. Pretrain them standalone (e.g. :meth:`SpatialEncoder.forward_full` on a relative-pose or depth proxy)
and load their weights; the policy core and the fusion MLP are what trains here.

Oracles (``specs/janus.md``) are checked against :meth:`JanusMemory.reference_forward`, a full-sequence pass
with a frame-causal mask optionally restricted to the retained frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chronotope.memory.base import MemoryModule, register_memory, state_nbytes

__all__ = [
    "JanusConfig",
    "JanusMemory",
    "JanusReencodeMemory",
    "PolicyCore",
    "SemanticEncoder",
    "SpatialEncoder",
    "retention_mask",
    "retained_frames",
    "make_step_fn",
    "state_nbytes",
    "synthetic_state",
]


@dataclass
class JanusConfig:
    """Sizes of the dual implicit memory. Every field has a working default (CPU-sized)."""

    grid: int = 4
    """Each frame becomes ``grid x grid`` patch tokens; must be even for the 2x2 merge."""
    encoder_width: int = 32
    """Token width of both frozen encoders."""
    encoder_heads: int = 2
    """Attention heads of both encoders; ``encoder_width / encoder_heads`` must be divisible by 4 (2D RoPE)."""
    spatial_pairs: int = 2
    """Number of (per-frame, cross-frame) block pairs in the spatial-geometric encoder."""
    semantic_layers: int = 2
    """Per-frame transformer blocks in the visual-semantic encoder."""
    policy_width: int = 64
    """Width of the policy core; also the output size."""
    policy_heads: int = 4
    """Attention heads of the policy core."""
    policy_layers: int = 2
    """Transformer layers of the policy core (each keeps its own semantic KV cache)."""
    mlp_ratio: int = 2
    """Hidden width of every MLP as a multiple of its block's width."""
    n_init: int = 8
    """Initial frames of an episode that are never evicted (attention sinks); paper: 8."""
    n_window: int = 48
    """Most recent frames kept after the initial ones; paper: 48."""
    fusion_weight: float = 0.2
    """lambda: weight of the fused spatial tokens added to the semantic tokens; paper: 0.2."""
    use_spatial: bool = True
    """False builds the semantic-only model (no spatial encoder, cache or fusion)."""
    instruction_size: int = 0
    """Feature size E of the instruction embeddings a caller passes; 0 (default) builds no instruction input."""
    max_instruction_tokens: int = 16
    """Instruction slots kept in the state (shorter instructions are padded and masked)."""
    rope_base: float = 100.0
    """Base of the 2D rotary embedding of the spatial encoder (positions are patch row/column)."""

    @property
    def capacity(self) -> int:
        """Frames a cache holds: ``n_init + n_window``."""
        return self.n_init + self.n_window

    def validate(self) -> None:
        def positive(name: str, lo: int = 1) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"JanusConfig.{name} must be an int >= {lo}, got {v!r}")

        for name in (
            "grid encoder_width encoder_heads spatial_pairs semantic_layers policy_width policy_heads "
            "policy_layers mlp_ratio n_window max_instruction_tokens"
        ).split():
            positive(name)
        positive("n_init", lo=0)
        positive("instruction_size", lo=0)
        if self.grid % 2:
            raise ValueError(f"JanusConfig.grid must be even for the 2x2 merge, got {self.grid}")
        if self.encoder_width % self.encoder_heads or (self.encoder_width // self.encoder_heads) % 4:
            raise ValueError(
                f"JanusConfig.encoder_width={self.encoder_width} / encoder_heads={self.encoder_heads} must give "
                "a head size divisible by 4 (2D rotary embedding)"
            )
        if self.policy_width % self.policy_heads:
            raise ValueError(
                f"JanusConfig.policy_width={self.policy_width} is not divisible by policy_heads={self.policy_heads}"
            )
        if not math.isfinite(float(self.fusion_weight)):
            raise ValueError(f"JanusConfig.fusion_weight must be finite, got {self.fusion_weight!r}")


# ----------------------------------------------------------------------------------------------- helpers


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
        return blk.finish(h, _attention(qh, kh, _heads(v, self.num_heads), None))

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
            h = gb.finish(h, _attention(qh, kh, vh, keymask))
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
            o = _attention(qh, kh, vh, tok_mask).unflatten(2, (t, p)).transpose(1, 2)  # [B, T, H, P, dh]
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
            h = blk.finish(h, _attention(*(_heads(t, self.num_heads) for t in (q, k, v)), None))
        return self.merger(_merge2x2(self.norm(h), self.grid))


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
            o = _attention(_heads(q, self.num_heads), _heads(keys, self.num_heads), _heads(vals, self.num_heads), bias)
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
            o = _attention(_heads(q, self.num_heads), _heads(keys, self.num_heads), _heads(vals, self.num_heads), bias)
            h = blk.finish(h, o)
        return self.out_norm(h.unflatten(1, (t, n1))[:, :, m])


# ----------------------------------------------------------------------------------------------- memory


@register_memory("janus")
class JanusMemory(MemoryModule):
    """JanusVLN dual implicit memory behind the common memory interface (see the module docstring).

    State (a dict, every tensor batch-first, all sizes fixed by the configuration; ``C = n_init + n_window``):

    * ``count`` ``[B]`` long: frames seen in the current episode (the index the next frame gets);
    * ``frames`` ``[B, C]`` long: episode frame index held by each cache slot, -1 when empty;
    * ``spatial_k``, ``spatial_v`` ``[B, C, spatial_pairs, P, encoder_width]``: raw cross-frame keys/values
      (absent when ``use_spatial=False``);
    * ``semantic_k``, ``semantic_v`` ``[B, C, policy_layers, M, policy_width]``: the policy's keys/values of
      the fused visual tokens;
    * ``instruction`` ``[B, max_instruction_tokens, instruction_size]`` and ``instruction_mask`` ``[B, L]``
      (only when ``instruction_size > 0``).

    Gradients flow through the caches within one ``forward`` call (backpropagation through the chunk); the
    returned state is detached, so a rollout never keeps a graph and training truncates at chunk boundaries.
    """

    def __init__(self, input_size: int, config: JanusConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
            raise ValueError(f"janus: input_size must be a positive int, got {input_size!r}")
        names = {f.name for f in fields(JanusConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"janus: unknown config field(s) {unknown}; valid fields: {sorted(names)}")
        cfg = replace(config or JanusConfig(), **overrides)
        cfg.validate()
        self.cfg = cfg
        self.input_size = input_size
        self.output_size = cfg.policy_width
        self.num_visual = (cfg.grid // 2) ** 2
        self.semantic_encoder = SemanticEncoder(input_size, cfg)
        self.spatial_encoder: SpatialEncoder | None = None
        self.fusion: nn.Module | None = None
        if cfg.use_spatial:
            self.spatial_encoder = SpatialEncoder(input_size, cfg)
            d4 = 4 * cfg.encoder_width
            self.fusion = nn.Sequential(  # the authors' VGGTMerger: norm -> linear -> GELU -> linear
                nn.LayerNorm(d4), nn.Linear(d4, d4), nn.GELU(), nn.Linear(d4, cfg.policy_width)
            )
        self.policy = PolicyCore(cfg)
        for enc in self.encoders():
            enc.requires_grad_(False)
            enc.eval()

    # ------------------------------------------------------------------ structure

    def encoders(self) -> list[nn.Module]:
        """The frozen encoders (semantic, then spatial when present)."""
        return [m for m in (self.semantic_encoder, self.spatial_encoder) if m is not None]

    def train(self, mode: bool = True) -> JanusMemory:
        super().train(mode)
        for enc in self.encoders():  # frozen encoders never switch to training behaviour
            enc.eval()
        return self

    def _dtype(self) -> torch.dtype:
        return self.policy.readout.dtype

    # ------------------------------------------------------------------ state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"janus: batch_size must be a positive int, got {batch_size!r}")
        cfg, b, c = self.cfg, batch_size, self.cfg.capacity
        kw = {"device": device, "dtype": self._dtype()}
        state = {
            "count": torch.zeros(b, dtype=torch.long, device=device),
            "frames": torch.full((b, c), -1, dtype=torch.long, device=device),
            "semantic_k": torch.zeros(b, c, cfg.policy_layers, self.num_visual, cfg.policy_width, **kw),
            "semantic_v": torch.zeros(b, c, cfg.policy_layers, self.num_visual, cfg.policy_width, **kw),
        }
        if cfg.instruction_size:
            state["instruction"] = torch.zeros(b, cfg.max_instruction_tokens, cfg.instruction_size, **kw)
            state["instruction_mask"] = torch.zeros(b, cfg.max_instruction_tokens, dtype=torch.bool, device=device)
        if cfg.use_spatial:
            shape = (b, c, cfg.spatial_pairs, cfg.grid * cfg.grid, cfg.encoder_width)
            state["spatial_k"] = torch.zeros(shape, **kw)
            state["spatial_v"] = torch.zeros(shape, **kw)
        return state

    def _check_state(self, state: Any, batch_size: int) -> None:
        ref = self.initial_state(1, "meta")
        if not isinstance(state, dict) or set(state) != set(ref):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"janus: state must be a dict with keys {sorted(ref)}, got {got}")
        for key, r in ref.items():
            s = state[key]
            if tuple(s.shape) != (batch_size, *r.shape[1:]):
                raise ValueError(
                    f"janus: state[{key!r}] has shape {tuple(s.shape)}, expected {(batch_size, *r.shape[1:])} "
                    f"(batch size {batch_size} of the input)"
                )

    def _prepare_instruction(
        self, instruction: torch.Tensor, mask: torch.Tensor | None, lead: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validates ``[*lead, L, E]`` (+ mask ``[*lead, L]``) and pads to ``max_instruction_tokens``."""
        cfg = self.cfg
        if not cfg.instruction_size:
            raise ValueError("janus: got an instruction but instruction_size=0; build with instruction_size=E")
        n = len(lead)
        if (
            not isinstance(instruction, torch.Tensor)
            or instruction.dim() != n + 2
            or tuple(instruction.shape[:n]) != lead
        ):
            raise ValueError(
                f"janus: instruction must have shape {(*lead, 'L', cfg.instruction_size)}, got "
                f"{tuple(instruction.shape)}"
            )
        length, size = instruction.shape[-2:]
        if size != cfg.instruction_size:
            raise ValueError(f"janus: instruction feature size {size} != instruction_size {cfg.instruction_size}")
        if length > cfg.max_instruction_tokens:
            raise ValueError(
                f"janus: instruction has {length} tokens, more than max_instruction_tokens {cfg.max_instruction_tokens}"
            )
        if not torch.isfinite(instruction).all():
            raise ValueError("janus: instruction contains non-finite values (NaN/inf)")
        if mask is None:
            mask = torch.ones(instruction.shape[:-1], dtype=torch.bool, device=instruction.device)
        elif tuple(mask.shape) != tuple(instruction.shape[:-1]):
            raise ValueError(
                f"janus: instruction_mask has shape {tuple(mask.shape)}, expected {tuple(instruction.shape[:-1])}"
            )
        pad = cfg.max_instruction_tokens - length
        instruction = F.pad(instruction.to(self._dtype()), (0, 0, 0, pad))
        mask = F.pad(mask.to(torch.bool), (0, pad), value=False)
        return instruction, mask

    def set_instruction(
        self,
        state: dict[str, torch.Tensor],
        instruction: torch.Tensor,
        instruction_mask: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Returns a state whose rows ``rows`` (``[B]`` bool, default all) read ``instruction``.

        Args:
            state: a state of this module.
            instruction: ``[B, L, instruction_size]`` embeddings, ``L <= max_instruction_tokens``.
            instruction_mask: ``[B, L]`` bool, False for padding (default: all True).
            rows: ``[B]`` bool, which rows to change.
        """
        b = state["count"].shape[0]
        ins, mask = self._prepare_instruction(instruction, instruction_mask, (b,))
        if rows is None:
            rows = torch.ones(b, dtype=torch.bool, device=ins.device)
        if tuple(rows.shape) != (b,):
            raise ValueError(f"janus: rows has shape {tuple(rows.shape)}, expected {(b,)}")
        rows = rows.to(device=ins.device, dtype=torch.bool)
        out = dict(state)
        out["instruction"] = torch.where(rows[:, None, None], ins, state["instruction"])
        out["instruction_mask"] = torch.where(rows[:, None], mask, state["instruction_mask"])
        return out

    def reset_rows(self, state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empties both caches of the rows where ``rows[B]`` is True (the instruction stays)."""
        if not bool(rows.any()):
            return state
        out = dict(state)
        out["count"] = state["count"].masked_fill(rows, 0)
        out["frames"] = state["frames"].masked_fill(rows[:, None], -1)
        for key in ("spatial_k", "spatial_v", "semantic_k", "semantic_v"):
            if key in state:
                out[key] = state[key].masked_fill(rows.view(-1, 1, 1, 1, 1), 0.0)
        return out

    def cache_frames(self, state: dict[str, torch.Tensor]) -> list[list[int]]:
        """Per row, the sorted episode frame indices both caches hold."""
        return [sorted(f for f in row.tolist() if f >= 0) for row in state["frames"]]

    def cache_lengths(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Frames held per row and layer: ``{"spatial": [B, spatial_pairs], "semantic": [B, policy_layers]}``.

        The layers of one cache share its slot table, so every layer of a row holds the same frames.
        """
        n = (state["frames"] >= 0).sum(dim=1)  # [B]
        out = {"semantic": n[:, None].expand(-1, state["semantic_k"].shape[2])}
        if "spatial_k" in state:
            out["spatial"] = n[:, None].expand(-1, state["spatial_k"].shape[2])
        return out

    # ------------------------------------------------------------------ forward

    def _slot(self, count: torch.Tensor) -> torch.Tensor:
        """Slot of frame ``count[B]``: fill in order, then cycle through the window slots (the oldest window
        frame is the one overwritten; the first ``n_init`` slots are never touched again)."""
        cfg = self.cfg
        ring = cfg.n_init + (count - cfg.n_init).remainder(cfg.n_window)
        return torch.where(count < cfg.capacity, count, ring)

    def _step(
        self, semantic: torch.Tensor, spatial_tokens: torch.Tensor | None, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One frame for every row: ``semantic[B, M, d]``, ``spatial_tokens[B, P, D]`` -> ``y[B, d]``, state."""
        b = semantic.shape[0]
        count, frames = state["count"], state["frames"]
        valid = frames >= 0  # [B, C]
        age = count[:, None] - frames  # [B, C]
        out = dict(state)
        slot = self._slot(count)
        rows = torch.arange(b, device=count.device)
        fused = semantic
        if self.spatial_encoder is not None:
            sp, nk, nv = self.spatial_encoder(spatial_tokens, state["spatial_k"], state["spatial_v"], valid)
            fused = semantic + self.cfg.fusion_weight * self.fusion(_merge2x2(sp, self.cfg.grid))
            out["spatial_k"] = state["spatial_k"].index_put((rows, slot), nk)
            out["spatial_v"] = state["spatial_v"].index_put((rows, slot), nv)
        y, pk, pv = self.policy(
            fused,
            state.get("instruction"),
            state.get("instruction_mask"),
            state["semantic_k"],
            state["semantic_v"],
            valid,
            age,
        )
        out["semantic_k"] = state["semantic_k"].index_put((rows, slot), pk)
        out["semantic_v"] = state["semantic_v"].index_put((rows, slot), pv)
        out["frames"] = frames.index_put((rows, slot), count)
        out["count"] = count + 1
        return y, out

    def forward(
        self,
        x: torch.Tensor,
        state: dict[str, torch.Tensor],
        episode_starts: torch.Tensor | None = None,
        instruction: torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Processes ``T`` frames per row, in order, through the caches.

        Args:
            x: ``[B, T, input_size]`` frame features.
            state: from :meth:`initial_state` or a previous call.
            episode_starts: ``[B, T]`` bool; a start empties that row's caches before the step is read.
            instruction: optional ``[B, L, E]`` (whole chunk; replaces the state's instruction before step 0)
                or ``[B, T, L, E]`` (per step). Without it the state's instruction is used.
            instruction_mask: optional ``[B, L]`` / ``[B, T, L]`` bool, False for padding tokens.

        Returns:
            ``y[B, T, policy_width]`` and the new state.
        """
        starts = self.check_input(x, episode_starts)
        b, t, _ = x.shape
        self._check_state(state, b)
        per_step = None
        if instruction is not None:
            if instruction.dim() == 4:
                per_step = self._prepare_instruction(instruction, instruction_mask, (b, t))
            else:
                state = self.set_instruction(state, instruction, instruction_mask)
        elif instruction_mask is not None:
            raise ValueError("janus: instruction_mask given without instruction")
        semantic = self.semantic_encoder(x)  # [B, T, M, d]: per-frame, so all steps at once
        spatial = self.spatial_encoder.tokenizer(x) if self.spatial_encoder is not None else None  # [B, T, P, D]
        any_start = starts.any(dim=0).tolist()  # one host sync per call, not one per step
        ys = []
        for i in range(t):
            if any_start[i]:
                state = self.reset_rows(state, starts[:, i])
            if per_step is not None:
                state = dict(state, instruction=per_step[0][:, i], instruction_mask=per_step[1][:, i])
            y, state = self._step(semantic[:, i], None if spatial is None else spatial[:, i], state)
            ys.append(y)
        return torch.stack(ys, dim=1), {k: v.detach() for k, v in state.items()}

    def reference_forward(
        self,
        x: torch.Tensor,
        instruction: torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
        evict: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Full-sequence pass of one episode per row (no caches): the oracle for the cached path.

        Every frame attends to its own frame and, with a frame-causal mask, to earlier frames; ``evict=True``
        restricts the earlier frames to those the caches would still hold (:func:`retention_mask`). Cost is
        quadratic in ``T``: this is also the "re-encode everything" baseline.

        Args:
            x: ``[B, T, input_size]`` frames of episodes that start at step 0.
            instruction: optional ``[B, L, E]``; instruction_mask optional ``[B, L]``.
            evict: mask to the retained frames (True) or keep every earlier frame (False).

        Returns:
            ``y[B, T, policy_width]`` and the spatial tokens ``[B, T, P, encoder_width]`` (None without the
            spatial encoder).
        """
        self.check_input(x, None)
        b, t, _ = x.shape
        cfg = self.cfg
        ins = mask = None
        if instruction is None:
            if instruction_mask is not None:
                raise ValueError("janus: instruction_mask given without instruction")
        else:
            ins, mask = self._prepare_instruction(instruction, instruction_mask, (b,))
        allowed = retention_mask(t, cfg.n_init, cfg.n_window if evict else None, device=x.device)
        fused = self.semantic_encoder(x)  # [B, T, M, d]
        spatial = None
        if self.spatial_encoder is not None:
            spatial = self.spatial_encoder.forward_full(self.spatial_encoder.tokenizer(x), allowed)
            fused = fused + cfg.fusion_weight * self.fusion(_merge2x2(spatial, cfg.grid))
        return self.policy.forward_full(fused, ins, mask, allowed), spatial

    # ------------------------------------------------------------------ diagnostics

    def attended_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keys a query of the *next* frame may read, per row ``[B]`` (cost per step; flat once caches are full).

        ``spatial``: keys per cross-frame query, ``(held + 1) * P``; ``semantic``: keys per policy query,
        ``instruction tokens + held * M + M + 1``.
        """
        held = (state["frames"] >= 0).sum(dim=1)  # [B]
        n_ins = state["instruction_mask"].sum(dim=1) if "instruction_mask" in state else torch.zeros_like(held)
        out = {"semantic": n_ins + held * self.num_visual + self.num_visual + 1}
        if self.spatial_encoder is not None:
            out["spatial"] = (held + 1) * self.cfg.grid**2
        return out


@register_memory("janus_reencode")
class JanusReencodeMemory(JanusMemory):
    """The no-cache baseline of JanusVLN: the same model, re-encoding the last ``reencode_frames`` frames every step.

    The state keeps the raw frame features of the last ``K = reencode_frames`` frames (a shift buffer, newest
    last) instead of keys/values. Every step runs both frozen encoders and the policy core over the whole window
    (frame-causal, as :meth:`JanusMemory.reference_forward` without eviction) and returns the newest frame's
    read-out, so the cost per step grows with K (encoders O(K), attention O(K^2)) while the cached model pays
    for one frame. Frames older than the window are forgotten; nothing of them survives in any cache.

    State: ``window`` ``[B, K, input_size]`` frame features and ``valid`` ``[B, K]`` bool (False: empty slot,
    before the episode had K frames). An episode start empties the row's window.
    """

    def __init__(
        self, input_size: int, config: JanusConfig | None = None, reencode_frames: int = 8, **overrides: Any
    ) -> None:
        if not isinstance(reencode_frames, int) or isinstance(reencode_frames, bool) or reencode_frames < 1:
            raise ValueError(f"janus_reencode: reencode_frames must be an int >= 1, got {reencode_frames!r}")
        super().__init__(input_size, config, **overrides)
        self.reencode_frames = reencode_frames

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"janus_reencode: batch_size must be a positive int, got {batch_size!r}")
        k = self.reencode_frames
        return {
            "window": torch.zeros(batch_size, k, self.input_size, device=device, dtype=self._dtype()),
            "valid": torch.zeros(batch_size, k, dtype=torch.bool, device=device),
        }

    def reset_rows(self, state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empties the window of the rows where ``rows[B]`` is True."""
        if not bool(rows.any()):
            return state
        return {"window": state["window"], "valid": state["valid"].masked_fill(rows[:, None], False)}

    def cache_frames(self, state: dict[str, torch.Tensor]) -> list[list[int]]:
        """Per row, the window slots that hold a frame (0 = oldest); this model keeps no cache."""
        return [[k for k, v in enumerate(row.tolist()) if v] for row in state["valid"]]

    # The cached model's instruction and cache bookkeeping read state keys this model does not have.
    def set_instruction(self, state, instruction, instruction_mask=None, rows=None):  # noqa: D102
        raise NotImplementedError("janus_reencode reads no instruction (its window holds frame features only)")

    def cache_lengths(self, state):  # noqa: D102
        raise NotImplementedError("janus_reencode keeps no cache; its window holds state['valid'].sum(1) frames")

    def attended_keys(self, state):  # noqa: D102
        raise NotImplementedError("janus_reencode keeps no cache: every step re-encodes its whole window")

    def _window_forward(self, window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``window[B, K, F]``, ``valid[B, K]`` -> read-out of the newest frame ``[B, policy_width]``."""
        k = window.shape[1]
        causal = retention_mask(k, 0, None, device=window.device)  # [K, K]
        eye = torch.eye(k, dtype=torch.bool, device=window.device)
        allowed = (causal[None] & valid[:, None, :]) | eye[None]  # [B, K, K]: empty slots are never read
        fused = self.semantic_encoder(window)  # [B, K, M, d]
        if self.spatial_encoder is not None:
            spatial = self.spatial_encoder.forward_full(self.spatial_encoder.tokenizer(window), allowed)
            fused = fused + self.cfg.fusion_weight * self.fusion(_merge2x2(spatial, self.cfg.grid))
        return self.policy.forward_full(fused, None, None, allowed)[:, -1]

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x[B, T, input_size]`` -> ``y[B, T, policy_width]``, state (see the class docstring)."""
        starts = self.check_input(x, episode_starts)
        b, t, _ = x.shape
        ref = self.initial_state(b, x.device)
        if not isinstance(state, dict) or set(state) != set(ref):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"janus_reencode: state must be a dict with keys {sorted(ref)}, got {got}")
        for key, r in ref.items():
            if tuple(state[key].shape) != tuple(r.shape):
                raise ValueError(
                    f"janus_reencode: state[{key!r}] has shape {tuple(state[key].shape)}, expected {tuple(r.shape)} "
                    f"(batch size {b} of the input)"
                )
        window, valid = state["window"], state["valid"]
        ones = valid.new_ones(b, 1)
        ys = []
        for i in range(t):
            valid = valid & ~starts[:, i : i + 1]
            window = torch.cat([window[:, 1:], x[:, i : i + 1].to(window.dtype)], dim=1)  # newest last
            valid = torch.cat([valid[:, 1:], ones], dim=1)
            ys.append(self._window_forward(window, valid))
        return torch.stack(ys, dim=1), {"window": window.detach(), "valid": valid}


def synthetic_state(
    model: JanusMemory,
    batch_size: int,
    episode_length: int,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A state as it is after ``episode_length`` frames, for benchmarks of the per-step cost at that length.

    Runs ``min(episode_length, C)`` random frames through the model (real cache contents), then, for longer
    episodes, relabels the slots with the frames a real run would hold (``{0..n_init-1}`` and the last
    ``n_window``, in their ring positions) and sets the frame count. Tensor shapes are those of every state of
    the model, so stepping from it costs what step ``episode_length`` of a real episode costs.
    """
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    fill = min(episode_length, cfg.capacity)
    state = model.initial_state(batch_size, device)
    if fill:
        x = torch.randn(batch_size, fill, model.input_size, generator=gen).to(device)
        with torch.no_grad():
            _, state = model(x, state)
    if episode_length > cfg.capacity:
        frames = torch.arange(episode_length - cfg.n_window, episode_length)
        labels = torch.arange(cfg.capacity)
        labels[model._slot(frames)] = frames
        state = dict(state)
        state["frames"] = labels.to(state["frames"].device).expand(batch_size, -1).clone()
        state["count"] = torch.full_like(state["count"], episode_length)
    return state


def make_step_fn(
    model: JanusMemory,
    batch_size: int,
    episode_length: int,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> tuple[Callable[[], torch.Tensor], dict[str, torch.Tensor]]:
    """A closure that runs step ``episode_length + 1`` of an episode (one frame, no gradient), and its state.

    Every call starts from the same :func:`synthetic_state`, so repeated timings measure the cost of exactly
    that step; :func:`state_nbytes` of the returned state is the memory held at that length.
    """
    state = synthetic_state(model, batch_size, episode_length, device, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch_size, 1, model.input_size, generator=gen).to(device)

    def step() -> torch.Tensor:
        with torch.no_grad():
            return model(x, state)[0]

    return step, state
