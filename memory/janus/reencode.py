"""The no-cache baseline of JanusVLN (:class:`JanusReencodeMemory`, registered as "janus_reencode")."""

from __future__ import annotations

from typing import Any

import torch

from chronotope.memory.base import register_memory
from chronotope.memory.janus.config import JanusConfig
from chronotope.memory.janus.layers import retention_mask
from chronotope.memory.janus.model import JanusModel


@register_memory("janus_reencode")
class JanusReencodeMemory(JanusModel):
    """The no-cache baseline of JanusVLN: the same model, re-encoding the last ``reencode_frames`` frames every step.

    The state keeps the raw frame features of the last ``K = reencode_frames`` frames (a shift buffer, newest
    last) instead of keys/values. Every step runs both frozen encoders and the policy core over the whole window
    (frame-causal, as :meth:`~JanusModel.reference_forward` without eviction) and returns the newest frame's
    read-out, so the cost per step grows with K (encoders O(K), attention O(K^2)) while the cached model pays
    for one frame. Frames older than the window are forgotten; nothing of them survives in any cache.

    State: ``window`` ``[B, K, input_size]`` frame features and ``valid`` ``[B, K]`` bool (False: empty slot,
    before the episode had K frames). An episode start empties the row's window.

    It shares the model (:class:`JanusModel`: encoders, fusion, policy core, ``reference_forward``) with
    :class:`~chronotope.memory.janus.memory.JanusMemory` but not its cache: the cached model's instruction and cache
    methods (``set_instruction``, ``cache_lengths``, ``attended_keys``) are not inherited; here they raise
    ``NotImplementedError`` saying why.
    """

    _error_prefix = "janus_reencode: "

    def __init__(
        self, input_size: int, config: JanusConfig | None = None, reencode_frames: int = 8, **overrides: Any
    ) -> None:
        if not isinstance(reencode_frames, int) or isinstance(reencode_frames, bool) or reencode_frames < 1:
            raise ValueError(f"janus_reencode: reencode_frames must be an int >= 1, got {reencode_frames!r}")
        super().__init__(input_size, config, **overrides)
        self.reencode_frames = reencode_frames

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        k = self.reencode_frames
        return self._zeros_state(
            batch_size, device, window=(batch_size, k, self.input_size), valid=((batch_size, k), torch.bool)
        )

    def reset_rows(self, state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Empties the window of the rows where ``rows[B]`` is True."""
        if not bool(rows.any()):
            return state
        return {"window": state["window"], "valid": state["valid"].masked_fill(rows[:, None], False)}

    def cache_frames(self, state: dict[str, torch.Tensor]) -> list[list[int]]:
        """Per row, the window slots that hold a frame (0 = oldest); this model keeps no cache."""
        return [[k for k, v in enumerate(row.tolist()) if v] for row in state["valid"]]

    # The cached model's instruction and cache bookkeeping have no counterpart in a window of raw frames.
    def set_instruction(self, state: dict[str, torch.Tensor], *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Not supported: raises ``NotImplementedError`` (the window holds frame features only)."""
        raise NotImplementedError("janus_reencode reads no instruction (its window holds frame features only)")

    def cache_lengths(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Not supported: raises ``NotImplementedError`` (no cache; ``state['valid'].sum(1)`` frames are held)."""
        raise NotImplementedError("janus_reencode keeps no cache; its window holds state['valid'].sum(1) frames")

    def attended_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Not supported: raises ``NotImplementedError`` (every step re-encodes the whole window)."""
        raise NotImplementedError("janus_reencode keeps no cache: every step re-encodes its whole window")

    def _window_forward(self, window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``window[B, K, F]``, ``valid[B, K]`` -> read-out of the newest frame ``[B, policy_width]``."""
        k = window.shape[1]
        causal = retention_mask(k, 0, None, device=window.device)  # [K, K]
        eye = torch.eye(k, dtype=torch.bool, device=window.device)
        allowed = (causal[None] & valid[:, None, :]) | eye[None]  # [B, K, K]: empty slots are never read
        return self._full_pass(window, None, None, allowed)[0][:, -1]

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
