"""Spatially-Aware Transformer (Cho, Yoon, Ahn, ICLR 2024): place-centric episodic memory with an adaptive allocator.

Follows ``specs/sat.md`` (released code junmokane/spatially-aware-transformer). Every step writes one entry
``(u = W_in x_t, write step, place)`` into a fixed budget of L slots and reads the entries written before it.

**Read** (per layer, pre-LN residual, the code's ``HCAMLayer``): entries as read now are
``m_i = e_i + TE(age_i) + P(place_i)`` (sinusoidal age code, learned place table). With ``read="ph"`` (SAT-PM-PH)
the query picks places first: per place j the mean entry ``s_j``, a single-head relevance
``lam_j = (W_a q + b_a).(W_b s_j + b_b) / sqrt(D)`` (empty places excluded), top-k places, softmax over them,
then multi-head attention inside each chosen place, summed with those weights. ``read="flat"`` attends over all
entries (T-FIFO / SAT-FIFO). Each layer is ``o += SA(LN o)`` (one query token, so the value and output maps of a
self-attention), ``o += read(LN o)``, ``o += MLP(LN o)``. No entry at all: the read adds 0.

**Write** (after the read) under the row's strategy, counts c_j excluding the incoming entry:
``place_fifo`` (SAT-PM: a place holding C entries drops its oldest, else a full memory drops the global oldest),
``fifo``, ``lifo`` (keep the first L, drop the incoming), ``mvfo`` / ``lvfo`` (a full memory drops the oldest
entry of the most / least visited non-empty place, ties to the lowest id). New entries take the freed slot, else
the lowest free one; outputs do not depend on slot order.

**Adaptive Memory Allocator** (``strategy="ama"``): at each episode start ``sigma = argmax Q(task)`` (or uniform
with probability ``eps`` in training, drawn from the module's own generator) over the five strategies; ``task`` is
latched in the state; :meth:`SATMemory.ama_loss` gives the bandit regression ``(r - Q(task)[sigma])^2``.

**The place signal through the MemoryModule API.** ``forward`` takes the declared extra inputs (class attribute
``extra_inputs``) as keyword tensors: ``place [B, T]`` long ids in ``[0, num_places)`` (a room id from the scene),
or ``pose [B, T, >=2]`` binned on the ``grid`` over ``pose_bounds`` (``place = ix * gy + iy``, clamped to the
edge cells), and ``task [B, T, num_tasks]`` (AMA only, read at episode starts). A caller that passes only x gets
the pose from ``pose_columns`` of x (default columns 0 and 1, so the generic interface works; an agent whose
memory input is an encoder feature should pass ``place`` or ``pose``). ``place`` wins over ``pose``, which wins
over ``pose_columns``; ``pose_columns=None`` with neither given is an error.

Choices where the spec leaves one: the TH (time-chunk hierarchical) read is not built; the query gets no place
embedding unless ``query_place_emb``; carried state is detached between calls, while inside one call later reads
backpropagate into earlier entries (as the released code trains on whole sequences). State (fixed shapes):
``e [B, L, D]``, ``tw [B, L]``, ``pl [B, L]`` long, ``valid [B, L]`` bool, ``step [B]`` long, ``strategy [B]``
long, ``task [B, num_tasks]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory

STRATEGIES = ("fifo", "lifo", "mvfo", "lvfo", "place_fifo")
_NEG = -1e9  # masked logit: exp underflows to exactly 0 beside any real logit, and no NaN when all are masked
_BIG = torch.iinfo(torch.long).max


def age_encoding(age: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal code of ``age [...]`` (steps) -> ``[..., dim]``: ``[sin, cos]`` with periods up to 1e4."""
    inv = torch.exp(-math.log(1e4) * torch.arange(0, dim, 2, device=age.device, dtype=dtype) / dim)
    ang = age.to(dtype)[..., None] * inv
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)[..., :dim]


def write_slot(
    strategy: torch.Tensor,
    place: torch.Tensor,
    tw: torch.Tensor,
    pl: torch.Tensor,
    valid: torch.Tensor,
    num_places: int,
    place_capacity: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each row's incoming entry goes.

    Args:
        strategy: ``[B]`` long index into :data:`STRATEGIES`.
        place: ``[B]`` long place of the incoming entry.
        tw, pl, valid: ``[B, L]`` write steps, places and occupancy of the slots.
        num_places: K.
        place_capacity: C of ``place_fifo``.

    Returns:
        ``slot [B]`` long and ``write [B]`` bool (false: the entry is dropped, LIFO on a full memory).
    """
    b, cap = valid.shape
    counts = (F.one_hot(pl, num_places) * valid[..., None]).sum(1)  # [B, K]
    full = valid.all(dim=1)  # [B]
    free = (~valid).long().argmax(dim=1)  # lowest free slot (meaningless where full)

    def oldest(mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, tw, torch.full_like(tw, _BIG)).argmin(dim=1)  # [B]

    glob = oldest(valid)
    nonempty = counts > 0
    most = torch.where(nonempty, counts, torch.full_like(counts, -1)).argmax(dim=1)  # ties: lowest id
    least = torch.where(nonempty, counts, torch.full_like(counts, _BIG)).argmin(dim=1)
    in_most = oldest(valid & (pl == most[:, None]))
    in_least = oldest(valid & (pl == least[:, None]))
    here_full = counts.gather(1, place[:, None])[:, 0] >= place_capacity
    in_here = oldest(valid & (pl == place[:, None]))
    when_full = torch.stack([glob, free, in_most, in_least, glob], dim=1)  # [B, S] (lifo: unused)
    slot = torch.where(full, when_full.gather(1, strategy[:, None])[:, 0], free)
    pf = strategy == STRATEGIES.index("place_fifo")
    slot = torch.where(pf & here_full, in_here, slot)
    write = ~(full & (strategy == STRATEGIES.index("lifo")))
    return slot, write


class _MHA(nn.Module):
    """Multi-head attention of one query over L entries, q/k/v without bias, output Linear with bias."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q = nn.Linear(dim, heads * head_dim, bias=False)
        self.k = nn.Linear(dim, heads * head_dim, bias=False)
        self.v = nn.Linear(dim, heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, q: torch.Tensor, m: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``q [B, D]``, ``m [B, L, D]``, ``masks [B, G, L]`` (G key sets) -> ``[B, G, D]`` (0 for an empty set)."""
        b, cap, _ = m.shape
        h, dh = self.heads, self.head_dim
        qh = self.q(q).view(b, h, 1, dh)
        kh = self.k(m).view(b, cap, h, dh).transpose(1, 2)  # [B, h, L, dh]
        vh = self.v(m).view(b, cap, h, dh).transpose(1, 2)
        logits = (qh @ kh.transpose(-1, -2)) * dh**-0.5  # [B, h, 1, L]
        mk = masks[:, None]  # [B, 1, G, L]
        w = torch.softmax(logits.masked_fill(~mk, _NEG), dim=-1) * mk  # [B, h, G, L]
        r = (w @ vh).transpose(1, 2).reshape(b, -1, h * dh)  # [B, G, h*dh]
        return self.out(r) * masks.any(-1, keepdim=True)  # [B, G, D]


class SATLayer(nn.Module):
    """One pre-LN layer: one-token self-attention map, place-hierarchical (or flat) read, MLP."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp: int, top_k: int, read: str) -> None:
        super().__init__()
        self.top_k, self.read = top_k, read
        self.ln_sa, self.ln_read, self.ln_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.sa_v, self.sa_out = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
        self.w_a, self.w_b = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.mha = _MHA(dim, heads, head_dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.ReLU(), nn.Linear(mlp, dim))

    def place_logits(self, q: torch.Tensor, m: torch.Tensor, pl: torch.Tensor, valid: torch.Tensor, k: int):
        """``lam [B, K]`` (``_NEG`` for empty places) from the per-place mean entries."""
        onehot = F.one_hot(pl, k).to(m.dtype) * valid[..., None].to(m.dtype)  # [B, L, K]
        n = onehot.sum(1)  # [B, K]
        s = onehot.transpose(1, 2) @ m / (n[..., None] + 1e-5)  # [B, K, D]
        lam = (self.w_b(s) @ self.w_a(q)[..., None])[..., 0] / math.sqrt(m.shape[-1])  # [B, K]
        return lam.masked_fill(n == 0, _NEG), n > 0

    def ph_read(self, q: torch.Tensor, m: torch.Tensor, pl: torch.Tensor, valid: torch.Tensor, k: int):
        """The place-hierarchical read term ``[B, D]``."""
        lam, nonempty = self.place_logits(q, m, pl, valid, k)
        top = min(self.top_k, k)
        sel_lam, sel = lam.topk(top, dim=1)  # [B, k]
        sel_ok = nonempty.gather(1, sel)  # [B, k]: an empty place is chosen only when fewer than k are non-empty
        w = torch.softmax(sel_lam.masked_fill(~sel_ok, _NEG), dim=1) * sel_ok  # [B, k]
        masks = valid[:, None, :] & (pl[:, None, :] == sel[:, :, None])  # [B, k, L]
        return (w[..., None] * self.mha(q, m, masks)).sum(1)

    def forward(self, o: torch.Tensor, m: torch.Tensor, pl: torch.Tensor, valid: torch.Tensor, k: int):
        """``o [B, D]`` query stream, entries ``m [B, L, D]`` -> ``o [B, D]``."""
        o = o + self.sa_out(self.sa_v(self.ln_sa(o)))
        q = self.ln_read(o)
        if self.read == "ph":
            o = o + self.ph_read(q, m, pl, valid, k)
        else:
            o = o + self.mha(q, m, valid[:, None, :])[:, 0]
        return o + self.mlp(self.ln_mlp(o))


@register_memory("sat")
class SATMemory(MemoryModule):
    """Spatially-Aware Transformer memory (SAT-PM-PH by default; T-FIFO/SAT-FIFO/SAT-AMA by config).

    Args:
        input_size: F.
        hidden_size: D, model width and ``output_size``.
        num_layers: layers (each reads the same entries).
        num_heads: heads of the in-place attention.
        head_dim: width per head.
        mlp_size: hidden width of each layer's MLP.
        num_places: K.
        capacity: L, total entries kept.
        place_capacity: C of ``place_fifo`` (``None``: L // K).
        top_k: places read per query (``read="ph"``).
        read: ``"ph"`` (place-hierarchical) or ``"flat"``.
        strategy: one of ``fifo``, ``lifo``, ``mvfo``, ``lvfo``, ``place_fifo``, ``ama``.
        place_embedding: add the learned place embedding to entries (False: T-FIFO).
        query_place_emb: add the current place's embedding to the query.
        num_tasks: size of the ``task`` input (AMA needs > 0).
        ama_hidden: hidden width of the AMA Q network.
        eps: AMA exploration probability in training (the trainer anneals this attribute).
        grid: (gx, gy) cells binning a pose into places (gx * gy must equal K).
        pose_bounds: (xmin, xmax, ymin, ymax) of the grid.
        pose_columns: columns of x holding (x, y) when neither ``place`` nor ``pose`` is passed (None: required).
        seed: seed of the AMA exploration generator.
    """

    extra_inputs = ("place", "pose", "task")

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 2,
        head_dim: int = 32,
        mlp_size: int = 64,
        num_places: int = 16,
        capacity: int = 64,
        place_capacity: int | None = None,
        top_k: int = 2,
        read: str = "ph",
        strategy: str = "place_fifo",
        place_embedding: bool = True,
        query_place_emb: bool = False,
        num_tasks: int = 0,
        ama_hidden: int = 64,
        eps: float = 1.0,
        grid: tuple[int, int] = (4, 4),
        pose_bounds: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0),
        pose_columns: tuple[int, int] | None = (0, 1),
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("head_dim", head_dim),
            ("mlp_size", mlp_size),
            ("num_places", num_places),
            ("capacity", capacity),
            ("top_k", top_k),
            ("ama_hidden", ama_hidden),
        ):
            check_positive(name, v)
        place_capacity = max(1, capacity // num_places) if place_capacity is None else place_capacity
        check_positive("place_capacity", place_capacity)
        if read not in ("ph", "flat"):
            raise ValueError(f"read must be 'ph' or 'flat', got {read!r}")
        if strategy not in (*STRATEGIES, "ama"):
            raise ValueError(f"strategy must be one of {(*STRATEGIES, 'ama')}, got {strategy!r}")
        if not isinstance(num_tasks, int) or num_tasks < 0:
            raise ValueError(f"num_tasks must be an int >= 0, got {num_tasks!r}")
        if strategy == "ama" and num_tasks == 0:
            raise ValueError("strategy 'ama' needs num_tasks > 0 (the task input it chooses from), got 0")
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {eps!r}")
        if len(grid) != 2 or grid[0] * grid[1] != num_places:
            raise ValueError(f"grid {grid} must have gx * gy == num_places ({num_places})")
        if not (pose_bounds[0] < pose_bounds[1] and pose_bounds[2] < pose_bounds[3]):
            raise ValueError(f"pose_bounds must be (xmin, xmax, ymin, ymax) with min < max, got {pose_bounds}")
        if pose_columns is not None and (len(pose_columns) != 2 or max(pose_columns) >= input_size):
            raise ValueError(f"pose_columns {pose_columns} must be two columns of x (input_size {input_size})")
        self.input_size = input_size
        self.output_size = hidden_size
        self.num_places, self.capacity, self.place_capacity = num_places, capacity, place_capacity
        self.strategy, self.read = strategy, read
        self.place_embedding, self.query_place_emb = place_embedding, query_place_emb
        self.num_tasks, self.eps = num_tasks, eps
        self.grid, self.pose_bounds, self.pose_columns = tuple(grid), tuple(pose_bounds), pose_columns
        self.inp = nn.Linear(input_size, hidden_size)
        self.places = nn.Embedding(num_places, hidden_size)
        self.layers = nn.ModuleList(
            SATLayer(hidden_size, num_heads, head_dim, mlp_size, top_k, read) for _ in range(num_layers)
        )
        self.q_net = (
            nn.Sequential(nn.Linear(num_tasks, ama_hidden), nn.ReLU(), nn.Linear(ama_hidden, len(STRATEGIES)))
            if strategy == "ama"
            else None
        )
        self.generator = torch.Generator().manual_seed(seed)

    def place_of_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """``pose [..., >=2]`` -> place ids ``[...]`` on the grid (positions outside the bounds go to edge cells)."""
        gx, gy = self.grid
        x0, x1, y0, y1 = self.pose_bounds
        ix = ((pose[..., 0] - x0) / (x1 - x0) * gx).floor().clamp(0, gx - 1).long()
        iy = ((pose[..., 1] - y0) / (y1 - y0) * gy).floor().clamp(0, gy - 1).long()
        return ix * gy + iy

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """An empty memory (see the module docstring for the layout)."""
        b, cap = batch_size, self.capacity
        state = self._zeros_state(
            b,
            device,
            e=(b, cap, self.output_size),
            tw=((b, cap), torch.long),
            pl=((b, cap), torch.long),
            valid=((b, cap), torch.bool),
            step=((b,), torch.long),
            strategy=((b,), torch.long),
            task=(b, self.num_tasks),
        )
        state["strategy"].fill_(STRATEGIES.index(self.strategy) if self.strategy != "ama" else 0)
        return state

    def choose_strategy(self, task: torch.Tensor) -> torch.Tensor:
        """AMA: ``task [B, num_tasks]`` -> ``[B]`` strategy ids (greedy in eval, eps-greedy in training)."""
        greedy = self.q_net(task).argmax(dim=1)
        if not self.training or self.eps == 0.0:
            return greedy
        b = task.shape[0]
        explore = torch.rand(b, generator=self.generator) < self.eps
        rand = torch.randint(len(STRATEGIES), (b,), generator=self.generator)
        return torch.where(explore.to(greedy.device), rand.to(greedy.device), greedy)

    def ama_loss(self, task: torch.Tensor, strategy: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """Bandit regression ``mean (r - Q(task)[strategy])^2``; ``task [N, num_tasks]``, ``strategy, reward [N]``."""
        if self.q_net is None:
            raise ValueError(f"ama_loss needs strategy 'ama', this memory uses {self.strategy!r}")
        q = self.q_net(task).gather(1, strategy.long()[:, None])[:, 0]
        return F.mse_loss(q, reward.to(q.dtype))

    def _places(self, x: torch.Tensor, place: torch.Tensor | None, pose: torch.Tensor | None) -> torch.Tensor:
        b, t = x.shape[:2]
        if place is not None:
            if tuple(place.shape) != (b, t):
                raise ValueError(f"SATMemory: place has shape {tuple(place.shape)}, expected {(b, t)}")
            place = place.to(device=x.device, dtype=torch.long)
            if place.numel() and (place.min() < 0 or place.max() >= self.num_places):
                bad = place[(place < 0) | (place >= self.num_places)][0].item()
                raise ValueError(f"SATMemory: place id {bad} outside [0, {self.num_places})")
            return place
        if pose is not None:
            if pose.dim() != 3 or tuple(pose.shape[:2]) != (b, t) or pose.shape[2] < 2:
                raise ValueError(f"SATMemory: pose has shape {tuple(pose.shape)}, expected ({b}, {t}, >=2)")
            return self.place_of_pose(pose.to(x.device))
        if self.pose_columns is None:
            raise ValueError("SATMemory: pass place= or pose= (pose_columns is None, so x carries no pose)")
        return self.place_of_pose(x[..., list(self.pose_columns)])

    def entries(self, state: dict[str, torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        """Entries as read now: ``e + TE(step - tw) + P(pl)`` ``[B, L, D]``."""
        m = e + age_encoding(state["step"][:, None] - state["tw"], e.shape[-1], e.dtype)
        return m + self.places(state["pl"]) if self.place_embedding else m

    def forward(
        self,
        x: torch.Tensor,
        state: dict[str, torch.Tensor],
        episode_starts: torch.Tensor | None = None,
        place: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        task: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reads, then writes, step by step.

        Args:
            x: ``[B, T, F]``.
            state: from :meth:`initial_state` or a previous call.
            episode_starts: ``[B, T]`` bool; a start clears that row's memory before the step is read.
            place: ``[B, T]`` long place ids, or
            pose: ``[B, T, >=2]`` positions binned on the grid; neither: ``pose_columns`` of x.
            task: ``[B, T, num_tasks]``, read at episode starts (AMA).

        Returns:
            ``y [B, T, D]`` and the new state (detached).
        """
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        self.check_state_batch(b, state["step"].shape[0])
        places = self._places(x, place, pose)  # [B, T]
        if task is not None and tuple(task.shape) != (b, t, self.num_tasks):
            raise ValueError(f"SATMemory: task has shape {tuple(task.shape)}, expected {(b, t, self.num_tasks)}")
        if self.strategy == "ama" and task is None:
            raise ValueError("SATMemory: strategy 'ama' needs the task input (task=[B, T, num_tasks])")
        u_all = self.inp(x)  # [B, T, D]
        st = dict(state)
        ys = []
        for i, (u, pl_t, r) in enumerate(zip(u_all.unbind(1), places.unbind(1), starts.unbind(1))):
            if bool(r.any()):
                cleared = {
                    k: torch.where(r.view(-1, *([1] * (v.dim() - 1))), torch.zeros_like(v), v) for k, v in st.items()
                }
                if task is not None:
                    cleared["task"] = torch.where(r[:, None], task[:, i].to(st["task"].dtype), st["task"])
                if self.strategy == "ama":
                    cleared["strategy"] = torch.where(r, self.choose_strategy(cleared["task"]), st["strategy"])
                else:
                    cleared["strategy"] = st["strategy"]
                st = cleared
            m = self.entries(st, st["e"])
            o = u + self.places(pl_t) if self.query_place_emb else u
            for layer in self.layers:
                o = layer(o, m, st["pl"], st["valid"], self.num_places)
            ys.append(o)
            slot, write = write_slot(
                st["strategy"], pl_t, st["tw"], st["pl"], st["valid"], self.num_places, self.place_capacity
            )
            hit = (torch.arange(self.capacity, device=x.device)[None] == slot[:, None]) & write[:, None]  # [B, L]
            st["e"] = torch.where(hit[..., None], u[:, None], st["e"])
            st["tw"] = torch.where(hit, st["step"][:, None], st["tw"])
            st["pl"] = torch.where(hit, pl_t[:, None], st["pl"])
            st["valid"] = st["valid"] | hit
            st["step"] = st["step"] + 1
        y = torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, self.output_size)
        return y, {k: v.detach() for k, v in st.items()}


__all__ = ["STRATEGIES", "SATLayer", "SATMemory", "age_encoding", "write_slot"]
