"""Mem4Nav dual memory: reversible-transformer long-term memory (LTM), short-term cache (STM), retrieval.

Follows ``specs/mem4nav.md`` (He et al. 2025) and fixes the reference code's defects:

* the reversible blocks have no dropout at all, so ``R^-1(R(x)) == x`` up to float rounding;
* ``write`` really chains: ``theta_prev`` is the first half of the token previously stored under that key;
* leaf and node tokens live in separate key spaces (``("leaf", morton_code)`` vs ``("node", node_id)``);
* the octree is Morton-keyed for real (see ``octree.py``).

Tensors live on the ``device`` given at construction; nothing assumes a GPU.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from chronotope.maps.octree import OctreeConfig, SparseOctree
from chronotope.maps.topology import TopologyConfig, TopologyGraph


@dataclass
class Mem4NavConfig:
    """Sizes and thresholds of the dual memory (paper values in comments)."""

    dim: int = 384
    """Observation embedding width d (paper: 384 = 256 RGB + 128 depth); tokens are 2d wide."""
    blocks: int = 6
    """Reversible blocks in R (paper: 6)."""
    heads: int = 8
    """Attention heads per block (paper: 8)."""
    mlp_ratio: int = 4
    """Hidden width of the block MLP over its input width (paper: 4)."""
    chunks: int = 4
    """Each d-wide half of a token is split into this many sub-tokens, so the attention in a block mixes
    something; with 1 it degenerates to a linear map of a single token. Must divide d (and d/chunks by heads)."""
    top_m: int = 3
    """LTM tokens returned by a read (paper: 3)."""
    query_mode: str = "mlp"
    """How a read builds its query token: "mlp" = MLP([v; p]) (the paper's learned query), or "encode" =
    R([0; v]) (training-free: equals the token of a first write of the same v)."""
    stm_capacity: int = 128
    """STM capacity K (paper: 128)."""
    stm_lambda: float = 0.5
    """Eviction score weight: evict argmin of lam * freq - (1 - lam) * (t_now - tau)."""
    stm_eps: float = 3.0
    """STM retrieval radius on relative positions, metres (paper: ~3)."""
    stm_top_k: int = 3
    """STM entries returned, by cosine similarity (paper: 3)."""
    gate_tau: float = 0.65
    """Use STM results when their best cosine similarity is >= tau, else fall back to LTM (paper: 0.65-0.7)."""
    cycle_lambda: float = 0.1
    """Weight of the cycle-consistency loss (paper: ~0.1)."""

    def __post_init__(self) -> None:
        if self.dim < 1 or self.dim % self.chunks:
            raise ValueError(f"dim {self.dim} must be positive and divisible by chunks {self.chunks}")
        if (self.dim // self.chunks) % self.heads:
            raise ValueError(f"dim/chunks = {self.dim // self.chunks} must be divisible by heads {self.heads}")
        if self.query_mode not in ("mlp", "encode"):
            raise ValueError(f"query_mode must be 'mlp' or 'encode', got {self.query_mode!r}")
        if self.stm_capacity < 1:
            raise ValueError(f"stm_capacity must be >= 1, got {self.stm_capacity}")
        if not 0.0 <= self.stm_lambda <= 1.0:
            raise ValueError(f"stm_lambda must be in [0, 1], got {self.stm_lambda}")


# --------------------------------------------------------------------------------------- reversible R
class ReversibleBlock(nn.Module):
    """``y1 = x1 + Attn(LN_f(x2)); y2 = x2 + MLP(LN_g(y1))`` on halves of width d, split into sub-tokens.

    Args:
        dim: half width d.
        heads: attention heads.
        mlp_ratio: MLP hidden width over sub-token width.
        chunks: sub-tokens per half (attention runs across them).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, chunks: int) -> None:
        super().__init__()
        self.dim, self.chunks, self.width = dim, chunks, dim // chunks
        c = self.width
        self.ln_f = nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, heads, dropout=0.0, batch_first=True)
        self.ln_g = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, mlp_ratio * c), nn.GELU(), nn.Linear(mlp_ratio * c, c))

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Attention branch: ``[B, d] -> [B, d]``."""
        h = self.ln_f(x.view(x.shape[0], self.chunks, self.width))  # [B, S, d/S]
        a, _ = self.attn(h, h, h, need_weights=False)
        return a.reshape(x.shape[0], self.dim)

    def g(self, x: torch.Tensor) -> torch.Tensor:
        """MLP branch: ``[B, d] -> [B, d]``."""
        return self.mlp(self.ln_g(x.view(x.shape[0], self.chunks, self.width))).reshape(x.shape[0], self.dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return y1, y2

    def inverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return x1, x2


class ReversibleTransformer(nn.Module):
    """Stack of :class:`ReversibleBlock` on ``[B, 2d]`` tokens with an exact inverse."""

    def __init__(self, dim: int, blocks: int = 6, heads: int = 8, mlp_ratio: int = 4, chunks: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(ReversibleBlock(dim, heads, mlp_ratio, chunks) for _ in range(blocks))

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 2 or x.shape[1] != 2 * self.dim:
            raise ValueError(f"tokens must have shape [B, {2 * self.dim}], got {tuple(x.shape)}")
        return x[:, : self.dim], x[:, self.dim :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 2d] -> [B, 2d]``."""
        x1, x2 = self._split(x)
        for b in self.blocks:
            x1, x2 = b(x1, x2)
        return torch.cat([x1, x2], dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``R^-1``: ``[B, 2d] -> [B, 2d]``."""
        y1, y2 = self._split(y)
        for b in reversed(self.blocks):
            y1, y2 = b.inverse(y1, y2)
        return torch.cat([y1, y2], dim=1)


# ------------------------------------------------------------------------------------------------ LTM
@dataclass
class LTMRead:
    """Top-m LTM tokens for one query, nearest first."""

    keys: list[Hashable]
    distances: torch.Tensor  # [m] L2 distance of each stored token to the query token
    tokens: torch.Tensor  # [m, 2d] stored tokens
    theta_hat: torch.Tensor  # [m, d] decoded first halves
    v_hat: torch.Tensor  # [m, d] decoded observation embeddings
    positions: torch.Tensor  # [m, 3] pi_p(v_hat)
    descriptors: torch.Tensor  # [m, d] pi_d(v_hat)


class LongTermMemory(nn.Module):
    """Token store written through R and read back losslessly through R^-1.

    The store (``tokens``) is detached data, not parameters; gradients reach R, the query MLP and the heads
    through reads (R^-1 of stored tokens) and :meth:`cycle_loss`.
    """

    def __init__(self, cfg: Mem4NavConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.R = ReversibleTransformer(d, cfg.blocks, cfg.heads, cfg.mlp_ratio, cfg.chunks)
        self.query_mlp = nn.Sequential(nn.Linear(d + 3, 2 * d), nn.GELU(), nn.Linear(2 * d, 2 * d))
        self.pi_p = nn.Linear(d, 3)  # decoded embedding -> position
        self.pi_d = nn.Linear(d, d)  # decoded embedding -> descriptor
        self.pi_v = nn.Linear(d, d)  # decoded embedding -> observation (cycle loss)
        self.to(device=device, dtype=dtype)
        self.clear()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def clear(self) -> None:
        """Forgets every stored token (weights are kept)."""
        self._keys: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._store = torch.zeros(0, 2 * self.cfg.dim, device=self.device, dtype=self.dtype)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def tokens(self) -> torch.Tensor:
        """Stored tokens ``[N, 2d]`` in insertion order of their keys."""
        return self._store

    def token(self, key: Hashable) -> torch.Tensor | None:
        """The token stored under ``key`` ``[2d]``, or None."""
        i = self._index.get(key)
        return None if i is None else self._store[i]

    def _as_embeddings(self, v: torch.Tensor | np.ndarray, n: int | None = None) -> torch.Tensor:
        v = torch.as_tensor(v, device=self.device, dtype=self.dtype)
        v = v.reshape(-1, self.cfg.dim) if v.ndim <= 2 else v
        if v.ndim != 2 or v.shape[1] != self.cfg.dim or (n is not None and v.shape[0] != n):
            raise ValueError(f"embeddings must have shape [{n or 'N'}, {self.cfg.dim}], got {tuple(v.shape)}")
        if not torch.isfinite(v).all():
            raise ValueError("embeddings contain NaN or inf")
        return v

    @torch.no_grad()
    def write(self, keys: Sequence[Hashable], v: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``s = R([theta_prev; v])`` for each key, stored under that key.

        Args:
            keys: N distinct hashable keys.
            v: embeddings ``[N, d]``.

        Returns:
            the stored tokens ``[N, 2d]``.
        """
        keys = list(keys)
        if len(set(keys)) != len(keys):
            raise ValueError(f"keys of one write must be distinct, got {keys}")
        v = self._as_embeddings(v, len(keys))
        theta = torch.zeros_like(v)
        for j, k in enumerate(keys):
            i = self._index.get(k)
            if i is not None:
                theta[j] = self._store[i, : self.cfg.dim]
        s = self.R(torch.cat([theta, v], dim=1))  # [N, 2d]
        new = [j for j, k in enumerate(keys) if k not in self._index]
        for j in new:
            self._index[keys[j]] = len(self._keys)
            self._keys.append(keys[j])
        if new:
            self._store = torch.cat([self._store, torch.zeros(len(new), s.shape[1], device=s.device, dtype=s.dtype)])
        rows = torch.as_tensor([self._index[k] for k in keys], device=self.device)
        self._store[rows] = s
        return s

    def query_token(self, v: torch.Tensor | np.ndarray, p: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Query tokens ``[B, 2d]`` from embeddings ``[B, d]`` and positions ``[B, 3]`` (``cfg.query_mode``)."""
        v = self._as_embeddings(v)
        p = torch.as_tensor(p, device=self.device, dtype=self.dtype).reshape(-1, 3)
        if self.cfg.query_mode == "mlp":
            return self.query_mlp(torch.cat([v, p], dim=1))
        return self.R(torch.cat([torch.zeros_like(v), v], dim=1))

    def read_token(self, q: torch.Tensor, m: int | None = None) -> LTMRead:
        """Top-m stored tokens nearest (L2) to query token ``q`` ``[2d]``, decoded with R^-1."""
        m = self.cfg.top_m if m is None else m
        q = torch.as_tensor(q, device=self.device, dtype=self.dtype).reshape(1, -1)
        m = min(m, len(self._keys))
        d = self.cfg.dim
        if m == 0:
            z = self._store[:0]
            return LTMRead([], z[:, 0], z, z[:, :d], z[:, :d], z[:, :3], z[:, :d])
        dist = torch.cdist(q, self._store)[0]  # [N]
        top = torch.topk(dist, m, largest=False).indices
        tokens = self._store[top]
        x = self.R.inverse(tokens)
        theta_hat, v_hat = x[:, :d], x[:, d:]
        return LTMRead(
            keys=[self._keys[i] for i in top.tolist()],
            distances=dist[top],
            tokens=tokens,
            theta_hat=theta_hat,
            v_hat=v_hat,
            positions=self.pi_p(v_hat),
            descriptors=self.pi_d(v_hat),
        )

    def read(self, v: torch.Tensor | np.ndarray, p: torch.Tensor | np.ndarray, m: int | None = None) -> LTMRead:
        """Reads with the query token built from ``v [d]`` and ``p [3]``."""
        return self.read_token(self.query_token(v, p)[0], m)

    def cycle_loss(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``mean_b ||pi_v(R^-1(R([theta; v]))_v) - v||^2`` for ``theta, v [B, d]``; a scalar."""
        x = self.R.inverse(self.R(torch.cat([theta, v], dim=1)))
        return ((self.pi_v(x[:, self.cfg.dim :]) - v) ** 2).sum(dim=1).mean()


# ------------------------------------------------------------------------------------------------ STM
@dataclass
class STMRead:
    """STM entries within ``eps`` of the query's relative position, by decreasing cosine similarity."""

    keys: list[Hashable]
    slots: np.ndarray  # int64 [k]
    similarities: torch.Tensor  # [k]
    embeddings: torch.Tensor  # [k, d]
    p_rel: np.ndarray  # float64 [k, 3]
    object_ids: np.ndarray  # int64 [k]


class ShortTermMemory:
    """Fixed-capacity cache of recent observations keyed by ``key``, with frequency/recency eviction.

    An entry is ``(key, object id, p_rel, v, tau, freq)``. Re-inserting a key overwrites v, p_rel and the
    object id, sets ``tau = t`` and increments ``freq``; a new key in a full cache first evicts the slot
    minimising ``lam * freq - (1 - lam) * (t_now - tau)`` (ties: lowest slot).
    """

    def __init__(
        self,
        capacity: int,
        dim: int,
        lam: float = 0.5,
        eps: float = 3.0,
        top_k: int = 3,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.dim, self.lam, self.eps, self.top_k = capacity, dim, lam, eps, top_k
        self.device, self.dtype = torch.device(device), dtype
        self.clear()

    def clear(self) -> None:
        """Empties the cache."""
        k = self.capacity
        self.keys: list[Hashable | None] = [None] * k
        self._slot_of: dict[Hashable, int] = {}
        self.object_ids = np.zeros(k, np.int64)
        self.p_rel = np.zeros((k, 3), np.float64)
        self.v = torch.zeros(k, self.dim, device=self.device, dtype=self.dtype)
        self.tau = np.zeros(k, np.float64)
        self.freq = np.zeros(k, np.int64)
        self.used = np.zeros(k, bool)

    def __len__(self) -> int:
        return len(self._slot_of)

    def scores(self, t_now: float) -> np.ndarray:
        """Eviction scores of all slots ``[K]`` (+inf for empty slots, which are never evicted)."""
        s = self.lam * self.freq - (1.0 - self.lam) * (t_now - self.tau)
        return np.where(self.used, s, np.inf)

    def insert(
        self,
        key: Hashable,
        object_id: int,
        p_rel: np.ndarray,
        v: torch.Tensor | np.ndarray,
        t: float,
    ) -> Hashable | None:
        """Inserts or refreshes ``key``; returns the evicted key, if any."""
        p_rel = np.asarray(p_rel, np.float64).reshape(-1)
        if p_rel.shape != (3,) or not np.isfinite(p_rel).all():
            raise ValueError(f"p_rel must be 3 finite numbers, got {p_rel.tolist()}")
        v = torch.as_tensor(v, device=self.device, dtype=self.dtype).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"embedding must have {self.dim} entries, got {v.shape[0]}")
        evicted = None
        slot = self._slot_of.get(key)
        if slot is None:
            if len(self._slot_of) == self.capacity:
                slot = int(np.argmin(self.scores(t)))
                evicted = self.keys[slot]
                del self._slot_of[evicted]
            else:
                slot = int(np.flatnonzero(~self.used)[0])
            self.keys[slot] = key
            self._slot_of[key] = slot
            self.used[slot] = True
            self.freq[slot] = 1
        else:
            self.freq[slot] += 1
        self.object_ids[slot] = int(object_id)
        self.p_rel[slot] = p_rel
        self.v[slot] = v
        self.tau[slot] = float(t)
        return evicted

    def retrieve(self, v: torch.Tensor | np.ndarray, q_rel: np.ndarray, k: int | None = None) -> STMRead:
        """Entries with ``||p_rel - q_rel|| <= eps``, top-k by cosine similarity to ``v`` ``[d]``."""
        k = self.top_k if k is None else k
        v = torch.as_tensor(v, device=self.device, dtype=self.dtype).reshape(1, -1)
        q_rel = np.asarray(q_rel, np.float64).reshape(3)
        near = self.used & (np.linalg.norm(self.p_rel - q_rel, axis=1) <= self.eps)
        slots = np.flatnonzero(near)
        if slots.size == 0:
            return STMRead([], slots, self.v[:0, 0], self.v[:0], self.p_rel[:0], self.object_ids[:0])
        cand = self.v[torch.as_tensor(slots, device=self.device)]
        sim = torch.nn.functional.cosine_similarity(cand, v.expand_as(cand), dim=1)
        # stable descending sort: equal similarities keep slot order
        order = torch.sort(sim, descending=True, stable=True).indices[:k].cpu().numpy()
        sel = slots[order]
        return STMRead(
            keys=[self.keys[i] for i in sel],
            slots=sel,
            similarities=sim[torch.as_tensor(order, device=self.device)],
            embeddings=self.v[torch.as_tensor(sel, device=self.device)],
            p_rel=self.p_rel[sel],
            object_ids=self.object_ids[sel],
        )


# ---------------------------------------------------------------------------------- multi-level memory
@dataclass
class Retrieval:
    """What the STM-first gate returned."""

    source: str  # "stm", "ltm" or "none"
    embeddings: torch.Tensor  # [m, d]: STM entries' v, or LTM decoded v_hat
    scores: torch.Tensor  # [m]: cosine similarities (STM) or token distances (LTM)
    keys: list[Hashable] = field(default_factory=list)


class Mem4NavMemory:
    """Octree + topology graph + LTM + STM, updated per observation and read with the STM-first gate.

    Args:
        cfg: memory sizes and thresholds.
        octree_cfg: the leaf map (its ``token_dim`` is set to 2d so every leaf keeps its LTM token).
        topo_cfg: graph thresholds.
        ltm: an existing (trained) :class:`LongTermMemory` to share; a fresh one otherwise.
        device: torch device of embeddings and tokens.
    """

    def __init__(
        self,
        cfg: Mem4NavConfig | None = None,
        octree_cfg: OctreeConfig | None = None,
        topo_cfg: TopologyConfig | None = None,
        ltm: LongTermMemory | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = cfg or Mem4NavConfig()
        oc = octree_cfg or OctreeConfig()
        self.octree_cfg = OctreeConfig(**{**oc.__dict__, "token_dim": 2 * self.cfg.dim})
        self.topo_cfg = topo_cfg or TopologyConfig()
        self.ltm = ltm if ltm is not None else LongTermMemory(self.cfg, device=device)
        self.device = torch.device(device)
        self.stm = ShortTermMemory(
            self.cfg.stm_capacity,
            self.cfg.dim,
            self.cfg.stm_lambda,
            self.cfg.stm_eps,
            self.cfg.stm_top_k,
            device=self.device,
            dtype=self.ltm.dtype,
        )
        self.reset()

    def reset(self) -> None:
        """Starts a new episode: empty octree, graph, STM and LTM store (weights kept)."""
        self.octree = SparseOctree(self.octree_cfg)
        self.graph = TopologyGraph(self.cfg.dim, self.topo_cfg)
        self.stm.clear()
        self.ltm.clear()
        self.t = 0

    def observe(
        self, v: torch.Tensor | np.ndarray, p: np.ndarray, object_id: int = 0, c_instr: float = 0.0
    ) -> dict[str, int | bool]:
        """Adds observation embedding ``v [d]`` seen at world position ``p [3]``.

        Updates the graph (node creation / running mean / edge), the octree leaf at ``p``, LTM tokens of that
        leaf and node, and the STM entry ``(leaf key, object_id)`` with ``p_rel = p - p_node``.

        Returns:
            ``node``, ``created`` (new node), ``leaf`` (Morton key, -1 if ``p`` is outside the octree cube).
        """
        v_np = torch.as_tensor(v).detach().cpu().double().numpy().reshape(-1)
        p = np.asarray(p, np.float64).reshape(-1)
        upd = self.graph.update(v_np, p, c_instr)
        stats = self.octree.insert(p[None])
        key = int(self.octree.keys_of(p[None])[0])
        v_t = torch.as_tensor(v, device=self.device, dtype=self.ltm.dtype).reshape(1, -1)
        ltm_keys: list[Hashable] = [("node", upd.node)]
        if stats.n_inserted:
            ltm_keys.insert(0, ("leaf", key))
        tokens = self.ltm.write(ltm_keys, v_t.expand(len(ltm_keys), -1))
        if stats.n_inserted:
            slot = self.octree.lookup(np.array([key]))
            self.octree.set_tokens(slot, tokens[:1].cpu().numpy())
        p_rel = p - self.graph.positions[upd.node]
        self.stm.insert((key, int(object_id)), object_id, p_rel, v_t[0], self.t)
        self.t += 1
        return {"node": upd.node, "created": upd.created, "leaf": key}

    def retrieve(self, v: torch.Tensor | np.ndarray, p: np.ndarray) -> Retrieval:
        """STM-first multi-level retrieval for the current embedding ``v [d]`` at position ``p [3]``."""
        p = np.asarray(p, np.float64).reshape(3)
        if self.graph.current is not None:
            q_rel = p - self.graph.positions[self.graph.current]
            stm = self.stm.retrieve(v, q_rel)
            if len(stm.keys) and float(stm.similarities.max()) >= self.cfg.gate_tau:
                return Retrieval("stm", stm.embeddings, stm.similarities, stm.keys)
        if len(self.ltm) == 0:
            z = torch.zeros(0, self.cfg.dim, device=self.device, dtype=self.ltm.dtype)
            return Retrieval("none", z, z[:, 0], [])
        with torch.no_grad():
            r = self.ltm.read(v, p)
        return Retrieval("ltm", r.v_hat, r.distances, r.keys)

    def feature(self, v: torch.Tensor | np.ndarray, p: np.ndarray) -> np.ndarray:
        """Fixed-size policy feature float32 ``[d + 2]``: mean retrieved embedding, then one-hot (stm, ltm)."""
        r = self.retrieve(v, p)
        out = np.zeros(self.cfg.dim + 2, np.float32)
        if r.source != "none":
            out[: self.cfg.dim] = r.embeddings.mean(dim=0).detach().cpu().float().numpy()
            out[self.cfg.dim + (0 if r.source == "stm" else 1)] = 1.0
        return out


class Mem4NavFusion(nn.Module):
    """Modular-variant head: ``MLP([mean(retrieved); v_t; waypoint])``.

    Args:
        dim: embedding width d.
        waypoint_dim: waypoint feature width.
        out_dim: output width.
        hidden: hidden width.
    """

    def __init__(self, dim: int, waypoint_dim: int, out_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim + waypoint_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, retrieved: torch.Tensor, v: torch.Tensor, waypoint: torch.Tensor) -> torch.Tensor:
        """``retrieved [B, m, d]`` (m may be 0), ``v [B, d]``, ``waypoint [B, w]`` -> ``[B, out_dim]``."""
        mean = retrieved.mean(dim=1) if retrieved.shape[1] else torch.zeros_like(v)
        return self.net(torch.cat([mean, v, waypoint], dim=1))
