"""Sizes of the JanusVLN dual implicit memory (:class:`JanusConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
