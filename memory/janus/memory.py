"""The JanusVLN dual implicit memory with its two fixed-size caches (:class:`JanusMemory`, registered as "janus")."""

from __future__ import annotations

from typing import Any

import torch

from chronotope.memory.base import register_memory
from chronotope.memory.janus.layers import _merge2x2
from chronotope.memory.janus.model import JanusModel


@register_memory("janus")
class JanusMemory(JanusModel):
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

    _error_prefix = "janus: "

    # ------------------------------------------------------------------ state

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        cfg, b, c = self.cfg, batch_size, self.cfg.capacity
        semantic = (b, c, cfg.policy_layers, self.num_visual, cfg.policy_width)
        shapes: dict[str, Any] = {}
        if cfg.instruction_size:
            shapes["instruction"] = (b, cfg.max_instruction_tokens, cfg.instruction_size)
            shapes["instruction_mask"] = ((b, cfg.max_instruction_tokens), torch.bool)
        if cfg.use_spatial:
            spatial = (b, c, cfg.spatial_pairs, cfg.grid * cfg.grid, cfg.encoder_width)
            shapes["spatial_k"] = shapes["spatial_v"] = spatial
        state = self._zeros_state(
            b,
            device,
            count=((b,), torch.long),
            frames=((b, c), torch.long),
            semantic_k=semantic,
            semantic_v=semantic,
            **shapes,
        )
        state["frames"].fill_(-1)
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
