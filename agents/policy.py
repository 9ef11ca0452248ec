"""``ActorCritic``: observation encoders + a memory core by name + policy and value heads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal

from chronotope.agents.encoders import SQRT2, ObservationEncoder, init_linear
from chronotope.memory.base import make_memory
from chronotope.memory.recurrent import NoMemory


class ActorCritic(nn.Module):
    """Works with any Box / Discrete / Dict observation space and a Discrete or Box action space.

    ``forward(obs[B, T, ...], state, episode_starts[B, T]) -> (dist, value[B, T], state)``.

    Layout: per-key encoders -> ``proj`` (features ``z``) -> memory core (output ``y``) -> a shared ReLU layer
    over ``[y, z]`` -> linear policy and value heads. The skip of ``z`` around the memory (as in the recurrent
    agents of SB3-contrib and of the HCAM / Memory Maze papers, whose policy MLP reads the memory output beside
    the current embedding) lets the memory only *keep* what is needed, while the layer after it combines that
    with the current observation (for example a remembered goal in the start frame with the current GPS and
    compass); without it a policy linear in a recurrent state must do that arithmetic inside the recurrence.
    The ``none`` core (``y = z``) gets the same layer over ``z``, so every core has the same depth.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        memory: str = "none",
        memory_cfg: dict[str, Any] | None = None,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"unsupported action space {action_space!r}: use Discrete or Box")
        self.observation_space = observation_space
        self.action_space = action_space
        self.memory_name = memory
        self.encoder = ObservationEncoder(observation_space)
        self.proj = nn.Sequential(init_linear(nn.Linear(self.encoder.out_dim, hidden), SQRT2), nn.ReLU())
        self.memory = make_memory(memory, input_size=hidden, **(memory_cfg or {}))
        self._identity_memory = isinstance(self.memory, NoMemory) and len(self.memory.net) == 0
        trunk_in = hidden if self._identity_memory else self.memory.output_size + hidden
        self.trunk = nn.Sequential(init_linear(nn.Linear(trunk_in, hidden), SQRT2), nn.ReLU())
        if isinstance(action_space, spaces.Discrete):
            self.pi = init_linear(nn.Linear(hidden, int(action_space.n)), 0.01)
            self.log_std = None
        else:
            self.pi = init_linear(nn.Linear(hidden, int(np.prod(action_space.shape))), 0.01)
            self.log_std = nn.Parameter(torch.zeros(int(np.prod(action_space.shape))))
        self.v = init_linear(nn.Linear(hidden, 1), 1.0)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        return self.memory.initial_state(batch_size, device)

    def forward(
        self, obs: dict[str, torch.Tensor] | torch.Tensor, state, episode_starts: torch.Tensor, features: bool = False
    ):
        """obs leaves [B, T, ...]; episode_starts bool [B, T]. ``features``: also return the memory output [B, T, F]
        (for auxiliary losses) as a fourth item."""
        logits, value, state, y = self._heads(obs, state, episode_starts)
        # No argument validation: logits come from our own layers (validation re-checks them on every call and
        # every log_prob, several small ops each, on the rollout's per-step path); a non-finite value still
        # surfaces in the losses.
        if self.log_std is None:
            dist = Categorical(logits=logits, validate_args=False)
        else:
            dist = Normal(logits, self.log_std.exp().expand_as(logits), validate_args=False)
        return (dist, value, state, y) if features else (dist, value, state)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor] | torch.Tensor, state, episode_starts: torch.Tensor):
        """Samples actions for acting (no gradient): the rollout's per-step call.

        Draws exactly what ``forward`` + ``dist.sample()`` + :meth:`log_prob` draw (same normalisation, same
        ``multinomial`` / ``normal`` call on the global RNG), without building a distribution object.

        Args:
            obs: leaves ``[B, T, ...]``.
            state: memory state.
            episode_starts: bool ``[B, T]``.

        Returns:
            ``(actions [B, T] (Discrete) or [B, T, A] (Box), log_prob [B, T], value [B, T], state)``.
        """
        logits, value, state, _ = self._heads(obs, state, episode_starts)
        if self.log_std is None:
            logits = logits - logits.logsumexp(dim=-1, keepdim=True)  # [B, T, n]: Categorical's normalisation
            probs = torch.softmax(logits, dim=-1)
            a = torch.multinomial(probs.reshape(-1, logits.shape[-1]), 1, True).reshape(logits.shape[:-1])
            logp = logits.gather(-1, a[..., None]).squeeze(-1)  # [B, T]
        else:
            dist = Normal(logits, self.log_std.exp().expand_as(logits), validate_args=False)
            a = dist.sample()
            logp = dist.log_prob(a).sum(-1)
        return a, logp, value, state

    def _heads(self, obs, state, episode_starts: torch.Tensor):
        """-> (policy logits or mean [B, T, A], value [B, T], state, memory output [B, T, F])."""
        b, t = episode_starts.shape
        flat = _map_obs(obs, lambda x: x.reshape(b * t, *x.shape[2:]))
        z = self.proj(self.encoder(flat)).reshape(b, t, -1)  # [B, T, hidden]
        if self._identity_memory:
            # The ``none`` core without layers returns its input; calling it would only re-validate our own
            # features (an isfinite pass and a host sync on every rollout step).
            y = z
            h = self.trunk(z)
        else:
            y, state = self.memory(z, state, episode_starts)  # [B, T, F]
            h = self.trunk(torch.cat([y, z], -1))
        return self.pi(h), self.v(h).squeeze(-1), state, y

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(actions)
        return lp if self.log_std is None else lp.sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        e = dist.entropy()
        return e if self.log_std is None else e.sum(-1)


def _map_obs(obs, fn):
    if isinstance(obs, dict):
        return {k: fn(v) for k, v in obs.items()}
    return fn(obs)


def obs_to_torch(obs, device, time_dim: bool = False) -> dict[str, torch.Tensor] | torch.Tensor:
    """Batched numpy observation (dict or array) -> tensors on ``device`` (no copy on CPU where possible).

    With ``time_dim`` each leaf gets a length-1 time axis after the batch: [B, ...] -> [B, 1, ...], the shape
    :meth:`ActorCritic.forward` reads when acting one step at a time.
    """
    if isinstance(obs, dict):
        out = {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}
        return {k: v[:, None] for k, v in out.items()} if time_dim else out
    t = torch.as_tensor(np.asarray(obs), device=device)
    return t[:, None] if time_dim else t
