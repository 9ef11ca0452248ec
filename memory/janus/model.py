"""The Janus model shared by the cached memory and the re-encoding baseline (:class:`JanusModel`).

It owns the two frozen encoders, the fusion MLP and the trainable policy core, the instruction checks and the
stateless full-sequence pass (:meth:`JanusModel.reference_forward`). It keeps no recurrent state: the cached
memory (:class:`~chronotope.memory.janus.memory.JanusMemory`) and the re-encoding baseline
(:class:`~chronotope.memory.janus.reencode.JanusReencodeMemory`) each define their own state and its methods,
so neither inherits a method written for the other's state.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chronotope.memory.base import MemoryModule
from chronotope.memory.janus.config import JanusConfig
from chronotope.memory.janus.encoders import SemanticEncoder, SpatialEncoder
from chronotope.memory.janus.layers import _merge2x2, retention_mask
from chronotope.memory.janus.policy_core import PolicyCore


class JanusModel(MemoryModule):
    """Encoders, fusion and policy core of JanusVLN (see :mod:`chronotope.memory.janus`); no state of its own.

    Subclasses define ``initial_state``, ``forward`` and ``reset_rows`` over their own state.
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

    def train(self, mode: bool = True) -> JanusModel:
        super().train(mode)
        for enc in self.encoders():  # frozen encoders never switch to training behaviour
            enc.eval()
        return self

    def _dtype(self) -> torch.dtype:
        return self.policy.readout.dtype

    def _state_device_dtype(self, device: torch.device | str | None) -> tuple[torch.device | str | None, torch.dtype]:
        # The state takes the policy core's dtype and ``device`` as given (None: torch's default device).
        return device, self._dtype()

    # ------------------------------------------------------------------ instruction

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

    # ------------------------------------------------------------------ full pass

    def _full_pass(self, x: torch.Tensor, ins: Any, mask: Any, allowed: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Both encoders and the policy core over whole sequences ``x[B, T, F]`` under the frame mask ``allowed``
        (``[T, T]`` or ``[B, T, T]``), with the prepared instruction ``ins[B, L, E]`` and ``mask[B, L]`` or None:
        ``y[B, T, policy_width]`` and the spatial tokens ``[B, T, P, D]`` (None without the spatial encoder)."""
        fused = self.semantic_encoder(x)  # [B, T, M, d]
        spatial = None
        if self.spatial_encoder is not None:
            spatial = self.spatial_encoder.forward_full(self.spatial_encoder.tokenizer(x), allowed)
            fused = fused + self.cfg.fusion_weight * self.fusion(_merge2x2(spatial, self.cfg.grid))
        return self.policy.forward_full(fused, ins, mask, allowed), spatial

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
        return self._full_pass(x, ins, mask, allowed)
