"""``ActorCritic``: observation encoders + a memory core by name + policy and value heads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal

from chronotope.agents.encoders import SQRT2, ObservationEncoder, box_scaling, init_linear
from chronotope.memory.base import make_memory
from chronotope.memory.recurrent import NoMemory

MEMORY_GRADS = ("all", "aux")
"""What trains the memory core (``TrainConfig.memory_grad``): every loss, or the auxiliary loss alone."""


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

    With ``readout_key`` (a Dict key of [K, F] entity rows, e.g. ObjectRecall's ``candidates``) the shared layer
    also reads one row-sized vector: the rows weighted by a linear head ``address`` on the memory output (see
    :meth:`read_rows`). The trainer makes ``address`` its auxiliary head, so what the auxiliary loss teaches the
    memory to hold (which row was cued) is what selects the row the policy acts on. This is the pointer the
    policy otherwise has to learn as a product of memory and observation inside one ReLU layer, which our GRU
    agents did not learn in 1M steps although the memory held the row (auxiliary loss 0.02).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        memory: str = "none",
        memory_cfg: dict[str, Any] | None = None,
        hidden: int = 128,
        readout_key: str | None = None,
        obs_scale: str = "bounds",
        memory_grad: str = "all",
        readout_query: str | None = None,
        image_encoder: str = "nature",
        fuse_images: bool = False,
        row_vision: bool = False,
        row_glimpse: tuple[int, int, float] | None = None,
        entity_keys: tuple[str, ...] = (),
        obs_norm: bool = False,
        readout_match: str | None = None,
        memory_keys: tuple[str, ...] = (),
        id_embed: int = 0,
    ) -> None:
        super().__init__()
        if memory_grad not in MEMORY_GRADS:
            raise ValueError(f"unknown memory_grad {memory_grad!r}: use one of {MEMORY_GRADS}")
        self.memory_grad = memory_grad
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"unsupported action space {action_space!r}: use Discrete or Box")
        self.observation_space = observation_space
        self.action_space = action_space
        self.memory_name = memory
        if row_vision and readout_key is None:
            raise ValueError("row_vision lets the readout's rows attend over the camera image: it needs readout_key")
        self.encoder = ObservationEncoder(
            observation_space,
            scale=obs_scale,
            image_arch=image_encoder,
            fuse_images=fuse_images,
            row_vision=readout_key if row_vision else None,
            row_glimpse=row_glimpse,
            entity_keys=entity_keys,
            normalize=obs_norm,
            id_embed=id_embed,
        )
        self.proj = nn.Sequential(init_linear(nn.Linear(self.encoder.out_dim, hidden), SQRT2), nn.ReLU())
        # memory_keys: the memory's own encoder over those keys alone (see TrainConfig.memory_keys)
        self.memory_keys = tuple(memory_keys)
        self.mem_encoder: ObservationEncoder | None = None
        if self.memory_keys:
            keys = getattr(observation_space, "spaces", {})
            missing = [k for k in self.memory_keys if k not in keys]
            if missing:
                raise ValueError(
                    f"memory_keys {list(self.memory_keys)} must name keys of the Dict observation; "
                    f"{missing} are not among {sorted(keys)}"
                )
            if obs_norm:
                raise ValueError(
                    "memory_keys and obs_norm together are not supported: the memory's encoder scales by bounds"
                )
            sub = spaces.Dict({k: keys[k] for k in self.memory_keys})
            self.mem_encoder = ObservationEncoder(sub, scale=obs_scale, image_arch=image_encoder)
            self.mem_proj = nn.Sequential(init_linear(nn.Linear(self.mem_encoder.out_dim, hidden), SQRT2), nn.ReLU())
        self.memory = make_memory(memory, input_size=hidden, **(memory_cfg or {}))
        self._identity_memory = isinstance(self.memory, NoMemory) and len(self.memory.net) == 0
        trunk_in = hidden if self._identity_memory else self.memory.output_size + hidden
        self.readout_key = readout_key
        self.readout_query = readout_query
        self.readout_match = readout_match
        self.address: nn.Linear | None = None
        if readout_query is not None and readout_key is None:
            raise ValueError(f"readout_query {readout_query!r} addresses the rows of a readout: it needs readout_key")
        if readout_match is not None and readout_key is None:
            raise ValueError(f"readout_match {readout_match!r} matches the rows of a readout: it needs readout_key")
        if readout_key is not None:
            rows = _readout_box(observation_space, readout_key, "readout_key", "[K, F]")
            center, half = box_scaling(rows.low, rows.high, obs_scale)  # as the encoders scale
            center, half = center.max(0), half.max(0)  # [F]: one scale per column, over the rows
            self.register_buffer("row_center", torch.as_tensor(center, dtype=torch.float32), persistent=False)
            self.register_buffer("row_half", torch.as_tensor(half, dtype=torch.float32), persistent=False)
            out = hidden if self._identity_memory else self.memory.output_size
            # torch's default init, as the separate auxiliary head has: a near-zero head (e.g. gain 0.01) passes
            # the auxiliary gradient into the memory ~10x weaker, and the GRU had not learnt the row after 180k steps
            q = 1  # per row one score, or one per query value
            if readout_query is not None:
                q = _readout_box(observation_space, readout_query, "readout_query", "[Q]").shape[0]
            per_query = rows.shape[0]  # a score per row, or (readout_match) a vector of the rows' attribute
            if readout_match is not None:
                attr = _readout_box(observation_space, readout_match, "readout_match", "[K, P]")
                if attr.shape[0] != rows.shape[0]:
                    raise ValueError(
                        f"readout_match {readout_match!r} has {attr.shape[0]} rows, readout_key {readout_key!r} "
                        f"{rows.shape[0]}: the attribute must describe the readout's rows"
                    )
                per_query = attr.shape[1]
            self.address = nn.Linear(out, per_query * q)
            trunk_in += rows.shape[1]
        self.trunk = nn.Sequential(init_linear(nn.Linear(trunk_in, hidden), SQRT2), nn.ReLU())
        if isinstance(action_space, spaces.Discrete):
            self.pi = init_linear(nn.Linear(hidden, int(action_space.n)), 0.01)
            self.log_std = None
        else:
            self.pi = init_linear(nn.Linear(hidden, int(np.prod(action_space.shape))), 0.01)
            self.log_std = nn.Parameter(torch.zeros(int(np.prod(action_space.shape))))
        self.v = init_linear(nn.Linear(hidden, 1), 1.0)

    @classmethod
    def from_config(cls, cfg, observation_space: spaces.Space, action_space: spaces.Space) -> ActorCritic:
        """The model a :class:`~chronotope.agents.config.TrainConfig` describes (core, its config, width,
        readout), for the spaces of the run's env: the one constructor call of training, imitation and eval."""
        return cls(
            observation_space,
            action_space,
            cfg.agent,
            cfg.memory_cfg_dict(),
            cfg.hidden,
            cfg.readout_key,
            cfg.obs_scale,
            cfg.memory_grad,
            cfg.readout_query,
            cfg.image_encoder,
            cfg.fuse_images,
            cfg.row_vision,
            cfg.row_glimpse_spec(),
            cfg.entity_key_tuple(),
            cfg.obs_norm,
            cfg.readout_match,
            cfg.memory_key_tuple(),
            cfg.id_embed,
        )

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
        flat = map_obs(obs, lambda x: x.reshape(b * t, *x.shape[2:]))
        z = self.proj(self.encoder(flat)).reshape(b, t, -1)  # [B, T, hidden]
        zin = z  # what the memory reads
        if self.mem_encoder is not None:
            zin = self.mem_proj(self.mem_encoder({k: flat[k] for k in self.memory_keys})).reshape(b, t, -1)
        if self._identity_memory:
            # The ``none`` core without layers returns its input; calling it would only re-validate our own
            # features (an isfinite pass and a host sync on every rollout step).
            y = zin
            parts = [z]
        else:
            y, state = self.memory(zin, state, episode_starts)  # [B, T, F]
            # memory_grad="aux": the policy and value read the memory without training it (the auxiliary loss does)
            parts = [y.detach() if self.memory_grad == "aux" else y, z]
        if self.address is not None:
            parts.append(self.read_rows(obs, y))
        h = self.trunk(torch.cat(parts, -1))
        return self.pi(h), self.v(h).squeeze(-1), state, y

    def read_rows(self, obs: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The entity readout: rows ``obs[readout_key]`` [B, T, K, F] (scaled to [-1, 1] by the space's bounds; with
        ``obs_norm`` the unbounded entries by the key's encoder's running statistics)
        summed with the weights ``address(y)`` [B, T, K] that the memory output puts on them -> [B, T, F].

        With the auxiliary loss predicting the one-hot index of the row the task says must be remembered (e.g.
        ObjectRecall's ``memory_slot``), ``address`` is that auxiliary head: a memory that holds the index hands
        the policy the remembered row itself, and a memoryless core can only weight the rows by what the current
        observation tells (its posterior over them).

        With ``readout_query`` the head's output is a [K, Q] table (e.g. Ballet: per dancer row the one-hot of the
        pattern it danced, taught by ``memory_patterns``) and row k's weight is ``table[k] . obs[readout_query]``
        (the query as observed, e.g. the instruction's one-hot; all zeros before it shows, so no row is read).

        With ``readout_match`` (a [K, P] attribute of the rows, e.g. ColourSequence's ``pad_colour``) the head's output
        is what to look for, a [P] vector (with ``readout_query`` a [Q, P] table, e.g. the colour at each position of
        the sequence, dotted with the query first), and row k's weight is ``attr[k] . vector``: the row whose
        attribute the memory names, wherever the row now is."""
        center, half = self.row_center, self.row_half
        enc = self.encoder.encoders[self.readout_key] if self.readout_key in self.encoder.encoders else None
        if getattr(enc, "norm", None) is not None:  # obs_norm: the rows scale as the key's encoder scales them
            shape = obs[self.readout_key].shape[-2:]
            center, half = enc.center.view(shape), enc.halfwidth.view(shape)
        rows = (obs[self.readout_key].float() - center) / half  # [B, T, K, F]
        # Detached: the weights are the auxiliary head's prediction, taught by the auxiliary loss alone (with the
        # policy gradient through them as well, it overrode that loss and the memory never learnt the row).
        weights = self.address(y).detach()  # [B, T, K] or [B, T, K * Q]
        if self.readout_match is not None:
            attr = obs[self.readout_match].float()  # [B, T, K, P]
            if self.readout_query is not None:
                query = obs[self.readout_query].float()  # [B, T, Q]
                table = weights.reshape(*weights.shape[:2], query.shape[-1], attr.shape[-1])  # [B, T, Q, P]
                weights = torch.einsum("btqp,btq->btp", table, query)
            weights = torch.einsum("btkp,btp->btk", attr, weights)  # [B, T, K]
        elif self.readout_query is not None:
            query = obs[self.readout_query].float()  # [B, T, Q]
            table = weights.reshape(*weights.shape[:2], rows.shape[2], query.shape[-1])  # [B, T, K, Q]
            weights = torch.einsum("btkq,btq->btk", table, query)
        return torch.einsum("btk,btkf->btf", weights, rows)

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(actions)
        return lp if self.log_std is None else lp.sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        e = dist.entropy()
        return e if self.log_std is None else e.sum(-1)


def _readout_box(space: spaces.Space, key: str, arg: str, shape: str) -> spaces.Box:
    """The Box ``space[key]`` named by ``arg`` (readout_key: rows [K, F]; readout_query: a query [Q]) with as many
    dimensions as ``shape`` names, or a ValueError naming the argument, the key and what it must be."""
    if not isinstance(space, spaces.Dict) or key not in space.spaces:
        keys = list(space.spaces) if isinstance(space, spaces.Dict) else None
        raise ValueError(f"{arg} {key!r} is not a key of the observation space (keys: {keys})")
    box = space.spaces[key]
    if not isinstance(box, spaces.Box) or len(box.shape) != shape.count(",") + 1:
        raise ValueError(f"{arg} {key!r} must name a {shape} Box, got {box!r}")
    return box


def map_obs(obs, fn):
    """``fn`` applied to an observation: each leaf of a dict, or the tensor itself."""
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
