"""HCAM: Hierarchical Chunk Attention Memory (Lampinen et al. 2021, "Towards mental time travel").

Follows ``shared/specs/hcam.md``. Each layer of a small pre-LN transformer-style stack owns a chunked memory of
its *own past inputs* (the layer-normalised stream entering its HCAM block):

* **write** (every step, after the read): append the layer input to an accumulator; once ``chunk_size`` (C)
  steps are collected push the chunk into ``contents`` with key = mean over its C steps (no normalisation);
  a ring buffer of ``capacity`` (M) slots evicts the oldest chunk first (FIFO). The accumulator's length then
  restarts at 0, but its positions keep the pushed chunk's steps until the next chunk overwrites them one by
  one, so it always holds the last C steps (what the local read below sees; a pushed chunk is still exactly its
  C steps). An episode start clears that row's memory and accumulator before the step is read. Stored memory
  carries no gradient.
* **read** (:class:`HCAMAttention`): q = x W_q, k = stopgrad(keys) W_k; logits q k^T / sqrt(F), masked
  slots -1e6; hard top-k over the M chunk summaries; softmax over the k selected logits gives relevance w;
  one shared multi-head attention reads each selected chunk (query = raw x, key = value = chunk contents
  plus a sinusoidal position code over the C positions, descending C-1..0, gradient stopped); the
  relevance-weighted sum is added to the residual stream.

A query reads only chunks completed at earlier steps (the chunk in the accumulator is not yet memory), and a
row whose memory is empty reads zeros (the spec leaves this case open; softmax over only masked slots would
otherwise return a uniform mix of empty chunks).

* **local read** (:class:`LocalAttention`, ``local_attention=True``, the default; spec section "In an agent"):
  the chunk read alone cannot see the last C-1 steps (they sit in the accumulator), so every query also attends
  over a causal sliding window of this layer's own recent inputs: the C steps before it (distances C..1) and
  itself (distance 0), never a later step nor one before its episode's start. Multi-head attention (the same H),
  query = raw x, key = value = each window step's embedding plus a learned code of its distance to the query. The
  past steps are the accumulator as it stands (the chunk being filled and, past its length, the previous chunk's
  steps, seen while that chunk is of the episode), so the state needs no new field and the window covers
  distances 1..C whatever the phase within a chunk. Stored memory keeps its stop-gradient: the window's past
  steps carry no gradient; the current step's own item does (it is the present input, not memory, as in a TrXL
  segment; the gradient through earlier steps stays cut, as for the chunk read). The layer adds both reads to its
  residual stream, no gating: ``h += HCAM(LN(h)) + Local(LN(h))``, then ``h += MLP(LN(h))``; the chunk read
  answers "what happened long ago" (top-k of the completed chunks), the local read "what happened in the last C
  steps", which the chunk read cannot see until their chunk completes.

Whole sequences are processed in parallel: the writes of a call are fully determined by the layer inputs and
the episode starts, so every chunk completed during the call is built up front and each query gets a mask of
the chunks it may see (written before it, same episode, not yet evicted).

A call with T = 1 (an agent acting) takes a one-step path instead, where fixed per-op costs dominate: it
gathers only the top-k chunks and folds the within-chunk attention's key and value projections into the query
and the output (:meth:`HCAMAttention.read_topk`), writes all layers at once, and, with ``step_shortcuts=True`` (the
default) on CPU, skips ops that are identities for the step at hand (no restart, no completed chunk, nothing
masked). The test suite checks it against the sequence path, output and state, to float rounding, with the
shortcuts on and off.

Hyperparameters of the paper are not public; the defaults (D = 32, H = 2, C = 8, k = 4, M = 32, 2 layers, local
attention on) are the small CPU sizes of the spec, chosen so the synthetic recall experiment trains in seconds.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from chronotope.memory.base import MemoryModule, check_positive, register_memory

_MASKED_LOGIT = -1e6  # the spec's value for masked slots (not -inf, so softmax stays finite)


def chunk_position_encoding(
    chunk_size: int, dim: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Sinusoidal code over the C positions of a chunk, ordered descending (C-1 .. 0).

    ``inv_freq_i = 1e4^(-2i/D)``, ``PE = concat[sin(pos * inv_freq), cos(pos * inv_freq)]``.

    Returns:
        ``[C, D]``.
    """
    if dim % 2:
        raise ValueError(f"the chunk position code needs an even feature size, got {dim}")
    pos = torch.arange(chunk_size - 1, -1, -1, device=device, dtype=torch.float64)  # [C]: C-1 .. 0
    inv_freq = 1e4 ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim)  # [D/2]
    ang = pos[:, None] * inv_freq[None, :]  # [C, D/2]
    return torch.cat([ang.sin(), ang.cos()], dim=-1).to(dtype)


@functools.lru_cache(maxsize=64)
def _cached_position_encoding(chunk_size: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """:func:`chunk_position_encoding`, computed once per (C, D, device, dtype): it is a constant, and building
    it costs ~10 small ops per read. Callers must not modify the returned ``[C, D]`` tensor in place."""
    with torch.inference_mode(False):  # a cached constant must also serve calls outside inference mode
        return chunk_position_encoding(chunk_size, dim, device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _local_distances(chunk_size: int, device: torch.device) -> torch.Tensor:
    """Distances to its query of the local window's items, by the query's accumulator position a: ``[C, C+1]``.

    Item j < C is accumulator position j, at distance ``((a - 1 - j) mod C) + 1`` (1..C); item C is the query's own
    step (distance 0). A cached constant: callers must not modify it in place.
    """
    with torch.inference_mode(False):
        a = torch.arange(chunk_size, device=device)
        dist = (a[:, None] - 1 - a[None, :]) % chunk_size + 1  # [C (a), C (j)]
        return torch.cat([dist, dist.new_zeros(chunk_size, 1)], dim=1)


class MultiHeadAttention(nn.Module):
    """Plain multi-head attention: queries of size E over key/value items of size D, output size F.

    Args:
        query_size: E.
        kv_size: D.
        num_heads: H (must divide D).
        output_size: F.
    """

    def __init__(self, query_size: int, kv_size: int, num_heads: int, output_size: int) -> None:
        super().__init__()
        if kv_size % num_heads:
            raise ValueError(f"kv_size {kv_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = kv_size // num_heads
        self.q = nn.Linear(query_size, kv_size)
        self.k = nn.Linear(kv_size, kv_size)
        self.v = nn.Linear(kv_size, kv_size)
        self.out = nn.Linear(kv_size, output_size)

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``query [..., Q, E]``, ``kv [..., S, D]`` -> ``[..., Q, F]``."""
        h, dh = self.num_heads, self.head_dim
        q = self.q(query).unflatten(-1, (h, dh)).transpose(-2, -3)  # [..., H, Q, dh]
        k = self.k(kv).unflatten(-1, (h, dh)).transpose(-2, -3)  # [..., H, S, dh]
        v = self.v(kv).unflatten(-1, (h, dh)).transpose(-2, -3)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)  # [..., H, Q, S]
        o = (att @ v).transpose(-2, -3).flatten(-2)  # [..., Q, D]
        return self.out(o)


class HCAMAttention(nn.Module):
    """The HCAM read: hard top-k over chunk summaries, then attention inside each selected chunk.

    Args:
        query_size: E, size of the queries x.
        memory_size: D, size of the stored step embeddings (must be even for the position code).
        num_heads: H of the within-chunk attention.
        topk: k, chunks read per query (``min(k, M)`` when fewer slots exist).
        feature_size: F, size of q/k for chunk selection and of the output; defaults to D.
    """

    def __init__(
        self, query_size: int, memory_size: int, num_heads: int, topk: int, feature_size: int | None = None
    ) -> None:
        super().__init__()
        check_positive("topk", topk)
        self.topk = topk
        self.memory_size = memory_size
        self.feature_size = feature_size or memory_size
        f = self.feature_size
        self.query_proj = nn.Linear(query_size, f, bias=False)  # W_q: single head, no bias
        self.key_proj = nn.Linear(memory_size, f, bias=False)  # W_k
        self.mha = MultiHeadAttention(query_size, memory_size, num_heads, f)
        # Stop-gradient into memory (the spec). HCAMMemory(memory_gradient=True) turns it off, so that a training
        # sequence's reads pass gradient to the steps it wrote within that sequence.
        self.stop_gradient = True

    def forward(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        contents: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reads the memory.

        Args:
            x: ``[B, Q, E]`` queries.
            keys: ``[B, M, D]`` chunk summaries.
            contents: ``[B, M, C, D]`` step embeddings of each chunk.
            mask: ``[B, Q, M]`` bool, true where a query may read that slot; None means all.

        Returns:
            ``[B, Q, F]``; zero for a query with no readable slot.
        """
        b, nq, _ = x.shape
        m, c = contents.shape[1], contents.shape[2]
        f = self.feature_size
        if m == 0:
            return x.new_zeros(b, nq, f)
        pe = _cached_position_encoding(c, contents.shape[-1], contents.device, contents.dtype)
        contents = contents + pe  # [B, M, C, D]
        if self.stop_gradient:
            keys, contents = keys.detach(), contents.detach()  # stop-gradient into memory

        q = self.query_proj(x)  # [B, Q, F]
        k = self.key_proj(keys)  # [B, M, F]
        logits = q @ k.transpose(-1, -2) / math.sqrt(f)  # [B, Q, M]
        if mask is not None:
            logits = logits.masked_fill(~mask, _MASKED_LOGIT)
        kk = min(self.topk, m)
        top_logits, idx = logits.topk(kk, dim=-1)  # [B, Q, k]
        w = torch.softmax(top_logits, dim=-1)  # [B, Q, k] relevance

        # One shared MHA reads each selected chunk. Computed densely: scores of every query against every stored
        # item in one matmul, softmax inside each selected chunk, weighted by its relevance and scattered into
        # a zero [.., M, C] weight table, then one matmul with the values. Unselected chunks get weight exactly
        # 0, so they cannot change the output. The output projection is linear and the relevances sum to 1,
        # so projecting the weighted sum equals the spec's weighted sum of projected per-chunk outputs. This
        # replaces B*Q*k tiny per-chunk matmuls, several times slower on CPU.
        mha = self.mha
        h, dh = mha.num_heads, mha.head_dim
        kc = mha.k(contents).unflatten(-1, (h, dh)).permute(0, 3, 1, 2, 4).flatten(2, 3)  # [B, H, M*C, dh]
        vc = mha.v(contents).unflatten(-1, (h, dh)).permute(0, 3, 1, 2, 4).flatten(2, 3)  # [B, H, M*C, dh]
        qh = mha.q(x).unflatten(-1, (h, dh)).transpose(1, 2) / math.sqrt(dh)  # [B, H, Q, dh]
        scores = (qh @ kc.transpose(-1, -2)).unflatten(-1, (m, c))  # [B, H, Q, M, C]
        idx_e = idx[:, None, :, :, None].expand(b, h, nq, kk, c)  # [B, H, Q, k, C]
        att = torch.softmax(scores.gather(3, idx_e), dim=-1)  # within each selected chunk
        att = att * w[:, None, :, :, None]  # times its relevance
        dense = torch.zeros_like(scores).scatter(3, idx_e, att)  # [B, H, Q, M, C]
        o = (dense.flatten(3) @ vc).transpose(1, 2).flatten(-2)  # [B, Q, D]
        out = mha.out(o)  # [B, Q, F]
        if mask is not None:
            out = out * mask.any(dim=-1, keepdim=True).to(out.dtype)
        return out

    def read_topk(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        contents: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The same read as :meth:`forward` (equal to float rounding), touching only the selected chunks.

        For few queries (an agent's single step: Q = 1) the dense form of :meth:`forward` projects all M*C
        stored items through the keys and values of the MHA to use k*C of them. Here the k chosen chunks are
        gathered first, and the MHA's key and value projections are folded into the query and the output:
        per head, ``q_h . (W_k,h s + b_k,h) = (W_k,h^T q_h) . s + const`` (the constant is shared by every item
        of a chunk, so the within-chunk softmax ignores it) and ``sum_j a_j (W_v,h s_j + b_v,h) =
        W_v,h (sum_j a_j s_j) + b_v,h`` (the weights of a query sum to one per head). No stored item is
        projected at all, and the 1/sqrt scalings run inside the matmuls (``baddbmm``). Selection logits equal
        those of :meth:`forward` up to rounding, so only chunks tied to rounding precision could be picked
        differently.

        Args:
            x: ``[B, Q, E]`` queries.
            keys: ``[B, M, D]`` chunk summaries.
            contents: ``[B, M, C, D]`` step embeddings of each chunk.
            mask: ``[B, Q, M]`` bool, true where a query may read that slot; None means all.

        Returns:
            ``[B, Q, F]``; zero for a query with no readable slot.
        """
        b, nq, _ = x.shape
        if contents.shape[1] == 0:
            return x.new_zeros(b, nq, self.feature_size)
        if mask is None:
            return self._read_topk(x, keys, contents, None, None)
        return self._read_topk(x, keys, contents, ~mask, mask.any(dim=-1, keepdim=True).to(x.dtype))

    def _read_topk(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        contents: torch.Tensor,
        blocked: torch.Tensor | None,
        gate: torch.Tensor | None,
    ) -> torch.Tensor:
        """:meth:`read_topk` with the mask given as ``blocked = ~mask [B, Q, M]`` and ``gate [B, Q, 1]`` (1.0 where
        a query has a readable slot), so that a stack of layers sharing one mask derives them once."""
        b, nq, _ = x.shape
        m, c, d = contents.shape[1], contents.shape[2], contents.shape[3]
        bq, dev, dt = b * nq, x.device, x.dtype
        zero = _zero(dev, dt)  # baddbmm's ignored input (beta = 0): scaling inside the matmul saves an op
        q = F.linear(x, self.query_proj.weight)  # [B, Q, F]
        k = F.linear(keys.detach() if self.stop_gradient else keys, self.key_proj.weight)  # [B, M, F]
        logits = torch.baddbmm(zero, q, k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(self.feature_size))
        if blocked is not None:
            logits = logits.masked_fill(blocked, _MASKED_LOGIT)  # [B, Q, M]
        kk = min(self.topk, m)
        top_logits, idx = logits.topk(kk, dim=-1)  # [B, Q, k]
        w = torch.softmax(top_logits, dim=-1)  # [B, Q, k] relevance

        mha = self.mha
        h, dh = mha.num_heads, mha.head_dim
        pe = _cached_position_encoding(c, d, dev, contents.dtype)  # [C, D]
        qh = F.linear(x, mha.q.weight, mha.q.bias).view(bq, h, dh).transpose(0, 1)  # [H, BQ, dh]
        qk = torch.baddbmm(zero, qh, mha.k.weight.view(h, dh, d), beta=0.0, alpha=1.0 / math.sqrt(dh))  # [H, BQ, D]
        ws = self._weighted_items(qh, qk, contents, idx, w, pe)  # [H, BQ, D]
        wv = mha.v.weight.view(h, dh, d).transpose(1, 2)  # [H, D, dh]
        o = torch.baddbmm(mha.v.bias.view(h, 1, dh), ws, wv)  # [H, BQ, dh]
        o = o.transpose(0, 1).reshape(b, nq, h * dh)  # [B, Q, H*dh]
        out = F.linear(o, mha.out.weight, mha.out.bias)  # [B, Q, F]
        return out if gate is None else out * gate

    def _weighted_items(
        self,
        qh: torch.Tensor,
        qk: torch.Tensor,
        contents: torch.Tensor,
        idx: torch.Tensor,
        w: torch.Tensor,
        pe: torch.Tensor,
    ) -> torch.Tensor:
        """Per head, the attention-weighted sum of the items of each query's selected chunks, ``[H, BQ, D]``, from
        copies of only those chunks. (Scoring every stored item by one large matmul per row instead, then a softmax
        within each chunk, was measured 1.35x slower for a training sequence: the softmax over C-wide rows and the
        16x larger products cost more than the copies.)"""
        b, m, c, d = contents.shape
        nq, kk = idx.shape[1], idx.shape[2]
        bq, dev = b * nq, contents.device
        mha = self.mha
        h, dh = mha.num_heads, mha.head_dim
        # The chosen chunks, stop-gradient into memory: whole chunks copied by row index (far cheaper than an
        # element-wise gather), with the position code added to the M stored chunks rather than the Q*k copies.
        rows = (idx + (torch.arange(b, device=dev) * m).view(b, 1, 1)).view(-1)  # [B*Q*k] into [B*M]
        stored = contents.detach() if self.stop_gradient else contents
        sel = (stored + pe).view(b * m, c * d).index_select(0, rows).view(bq, kk * c, d)  # [BQ, k*C, D]
        # Layouts chosen for the CPU's batched matmul: [BQ, H, D] x [BQ, D, k*C] (the second a transposed view) and
        # [BQ, H, k*C] x [BQ, k*C, D], forward and backward, run ~3x faster than with heads as the last axis.
        qk = qk.transpose(0, 1).contiguous()  # [BQ, H, D]
        scores = torch.bmm(qk, sel.transpose(1, 2)).view(bq, h, kk, c)  # [BQ, H, k, C]
        if torch.is_grad_enabled() and mha.k.bias.requires_grad:
            # q_h . b_k,h is shared by every item of a chunk, so the softmax ignores it; adding it when training
            # keeps the key bias in the graph, with the (zero up to rounding) gradient the dense read gives it.
            qb = (qh * mha.k.bias.view(h, 1, dh)).sum(-1) / math.sqrt(dh)  # [H, BQ]
            scores = scores + qb.t()[:, :, None, None]
        att = torch.softmax(scores, dim=-1) * w.view(bq, 1, kk, 1)  # within each chunk, times its relevance
        ws = torch.bmm(att.view(bq, h, kk * c), sel)  # [BQ, H, D]: weighted sum of items per head
        return ws.transpose(0, 1)


class LocalAttention(nn.Module):
    """Multi-head attention of each query over its own window of recent steps (HCAM's local path).

    Each query x attends over its S items, given with their distance d_j (0 .. num_positions-1) to the query and a
    mask (an additive bias, from the caller). An item is ``s_j = item_j + P[d_j]``, P a learned code per distance
    (key = value = s_j, as in the chunk read). Head h scores ``s_j . (A_h x + c_h) / sqrt(D)``, takes the softmax
    over the items, and the output is ``sum_h U_h (sum_j a_hj s_j) + b``.

    This is multi-head attention with key width D per head whose query-key maps (``A_h = W_k,h^T W_q,h``,
    ``c_h = W_k,h^T b_q,h``; a key bias would shift every score of a query alike, which the softmax ignores) and
    value-output maps (``U_h = W_o,h W_v,h``; the value bias folds into ``b``, since the weights of a head sum to
    one) are stored as their products: no item is projected, and a step costs two small and two batched matmuls
    (the one-step path's cost is dominated by the number of ops). Parameters ``H D (E + F) + H D + F``, plus the
    codes: about a standard MHA's at H = 2 (4D^2 + 3D against 4D^2 + 4D when E = F = D), growing with H.

    Args:
        query_size: E.
        kv_size: D (the items).
        num_heads: H.
        output_size: F.
        num_positions: distances coded (the window's items are at distances 0 .. num_positions-1).
    """

    def __init__(self, query_size: int, kv_size: int, num_heads: int, output_size: int, num_positions: int) -> None:
        super().__init__()
        check_positive("num_heads", num_heads)
        check_positive("num_positions", num_positions)
        self.num_heads = num_heads
        self.kv_size = kv_size
        h, d = num_heads, kv_size
        self.qk_weight = nn.Parameter(torch.empty(query_size, h * d))  # [E, H*D]: x -> A_h x for every head
        self.qk_bias = nn.Parameter(torch.zeros(h * d))  # c_h
        self.ov_weight = nn.Parameter(torch.empty(h * d, output_size))  # [H*D, F]: the U_h side by side
        self.ov_bias = nn.Parameter(torch.zeros(output_size))  # b
        # Learned rather than the chunk read's sinusoid (base 1e4): over a window of C+1 steps most of its
        # frequencies barely change, so neighbouring distances get near-equal codes; measured on the k-steps-ago
        # recall test, the learned codes trained to ~1.0 where the sinusoid reached 0.5-0.7 in the same steps.
        self.position = nn.Parameter(torch.randn(num_positions, kv_size))  # P, N(0, 1) as nn.Embedding
        # nn.Linear's default range for each map (1/sqrt(fan_in)); the scores carry the usual 1/sqrt(D).
        nn.init.uniform_(self.qk_weight, -1 / math.sqrt(query_size), 1 / math.sqrt(query_size))
        nn.init.uniform_(self.ov_weight, -1 / math.sqrt(h * d), 1 / math.sqrt(h * d))

    def forward(
        self, x: torch.Tensor, items: torch.Tensor, dist: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x [N, E]`` queries, ``items [N, S, D]``, ``dist [N, S]`` their distances (long), ``bias [N, 1, S]``
        additive (0 for a seen item, -inf for a hidden one; every query must see one) or None -> ``[N, F]``."""
        return self.read(x, items, dist, bias)

    def read(
        self, x: torch.Tensor, items: torch.Tensor, dist: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`forward` without module dispatch (the one-step path calls it once per layer and step)."""
        n, d, h = x.shape[0], self.kv_size, self.num_heads
        items = items + F.embedding(dist, self.position)  # [N, S, D]
        qk = torch.addmm(self.qk_bias, x, self.qk_weight).view(n, h, d)  # [N, H, D]: A_h x + c_h
        scale = 1.0 / math.sqrt(d)
        if bias is None:
            scores = torch.baddbmm(_zero(x.device, x.dtype), qk, items.transpose(1, 2), beta=0.0, alpha=scale)
        else:
            scores = torch.baddbmm(bias, qk, items.transpose(1, 2), alpha=scale)  # [N, H, S]
        ws = torch.bmm(torch.softmax(scores, dim=-1), items)  # [N, H, D]: the weighted sum of the items, per head
        return torch.addmm(self.ov_bias, ws.view(n, h * d), self.ov_weight)  # [N, F]


class _HCAMLayer(nn.Module):
    """Pre-LN layer: ``h += HCAM(LN(h)) [+ Local(LN(h))]`` reading this layer's own past ``LN(h)``, then
    ``h += MLP(LN(h))``."""

    def __init__(
        self, dim: int, num_heads: int, topk: int, mlp_ratio: int, chunk_size: int, local_attention: bool
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HCAMAttention(dim, dim, num_heads, topk)
        self.local = LocalAttention(dim, dim, num_heads, dim, chunk_size + 1) if local_attention else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))


@register_memory("hcam")
class HCAMMemory(MemoryModule):
    """Stack of layers, each with an HCAM block over its own chunked past inputs.

    State (all rows share the shapes; bounded by configuration):
        ``keys [L, B, M, D]``, ``contents [L, B, M, C, D]``, ``valid [B, M]`` (slot holds a chunk of the
        current episode), ``accumulator [L, B, C, D]`` (chunk being filled; past its length the previous chunk's
        steps, which the local read sees, or zero before the episode's first chunk),
        ``steps_since_last_write [B]`` (its length), ``write_pos [B]`` (next ring slot).

    Gradient: by default stored chunks and the local window are stop-gradient (the spec), so a step's output
    depends with gradient on its own input only (``gradient_horizon`` 0) and the encoder learns what to store only
    from the steps where it is stored. ``memory_gradient=True`` (a choice of ours; the paper trains with stop
    gradient) keeps the gradient through what a call writes: within one call (a training sequence, replayed
    overlap included) a read passes gradient to every earlier step of that call whose chunk or window it reads,
    as full attention over the sequence would; chunks written by earlier calls (the state handed in) stay constant.
    The declared horizon is then None (the trainer replays its overlap with autograd). On Ballet, where a dancer's
    pattern must be stored 16-40 steps before it is asked for, the stop-gradient core's auxiliary loss stayed at
    chance (docs/RESULTS.md 1).

    Args:
        input_size: F_in.
        hidden_size: D, width of the stream and of stored embeddings (even); ``output_size``.
        num_layers: L.
        num_heads: heads of the within-chunk attention (must divide D).
        chunk_size: C, steps per chunk.
        topk: k, chunks read per query (at most ``capacity``).
        capacity: M, chunks kept per layer (FIFO).
        mlp_ratio: MLP width as a multiple of D.
        local_attention: add the local read (each step attends over itself and the C steps before it, within its
            episode) beside the chunk read; off gives the chunk read alone (the spec's HCAM block).
        memory_gradient: pass gradient through the chunks and window steps written within a call (see Gradient
            above); False (default) is the spec's stop-gradient.
        step_shortcuts: the one-step path's speed trick (a call with T = 1 on a CPU tensor). True (default): it reads
            three flags on the host (any restart? any chunk completed? every slot valid?) and skips the ops that are
            identities when they are false (clearing rows, masking, rewriting the ring), since on CPU the host read
            costs less than the ops. False: it always takes the general, branch-free path, as it does on an
            accelerator (where a host read would stall the stream). Outputs and states are the same either way (to
            float rounding); only the cost differs. The sequence path (T > 1) has no such branches.
    """

    # Stored chunks and the local window are stop-gradient (the spec's "stop-gradient into memory"): a step's output
    # depends with gradient on its own input only. memory_gradient=True makes it None on the instance.
    gradient_horizon = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 32,
        num_layers: int = 2,
        num_heads: int = 2,
        chunk_size: int = 8,
        topk: int = 4,
        capacity: int = 32,
        mlp_ratio: int = 2,
        local_attention: bool = True,
        step_shortcuts: bool = True,
        memory_gradient: bool = False,
    ) -> None:
        super().__init__()
        for name, v in [
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("chunk_size", chunk_size),
            ("topk", topk),
            ("capacity", capacity),
            ("mlp_ratio", mlp_ratio),
        ]:
            check_positive(name, v)
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (sinusoidal chunk positions), got {hidden_size}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        if topk > capacity:
            raise ValueError(f"topk {topk} exceeds capacity {capacity}")
        if not isinstance(local_attention, bool):
            raise ValueError(f"local_attention must be a bool, got {local_attention!r}")
        if not isinstance(step_shortcuts, bool):
            raise ValueError(f"step_shortcuts must be a bool, got {step_shortcuts!r}")
        if not isinstance(memory_gradient, bool):
            raise ValueError(f"memory_gradient must be a bool, got {memory_gradient!r}")
        self.input_size = input_size
        self.output_size = hidden_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.chunk_size = chunk_size
        self.capacity = capacity
        self.topk = topk
        self.local_attention = local_attention
        self.step_shortcuts = step_shortcuts
        self.memory_gradient = memory_gradient
        if memory_gradient:
            self.gradient_horizon = None  # every step written within a call passes gradient
        self.inp = nn.Linear(input_size, hidden_size)
        self.layers = nn.ModuleList(
            _HCAMLayer(hidden_size, num_heads, topk, mlp_ratio, chunk_size, local_attention) for _ in range(num_layers)
        )
        for layer in self.layers:
            layer.attn.stop_gradient = not memory_gradient
        self.norm = nn.LayerNorm(hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Empty memory for ``batch_size`` rows (see the class docstring for the fields)."""
        L, B, M, C, D = self.num_layers, batch_size, self.capacity, self.chunk_size, self.hidden_size  # noqa: N806
        return self._zeros_state(
            B,
            device,
            keys=(L, B, M, D),
            contents=(L, B, M, C, D),
            valid=((B, M), torch.bool),
            accumulator=(L, B, C, D),
            steps_since_last_write=((B,), torch.long),
            write_pos=((B,), torch.long),
        )

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], episode_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reads then writes each layer's memory for every step.

        Args:
            x: ``[B, T, F_in]``.
            state: see the class docstring.
            episode_starts: ``[B, T]`` bool; true clears that row's memory before the step is read.

        Returns:
            ``y [B, T, D]`` and the new state.
        """
        starts = self.check_input(x, episode_starts)
        b, t = x.shape[:2]
        self.check_state_batch(b, state["valid"].shape[0])
        if t == 1:
            return self._step(x, state, starts[:, 0])
        return self._sequence(x, state, starts)

    def _sequence(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], starts: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Whole-sequence path (``x [B, T, F_in]``, ``starts [B, T]`` bool); the reference for :meth:`_step`."""
        plan = _WritePlan(starts, state["steps_since_last_write"], state["write_pos"], state["valid"], self)

        h = self.inp(x)  # [B, T, D]
        b, t, c = x.shape[0], x.shape[1], self.chunk_size
        if self.local_attention:
            local_dist = _local_distances(c, x.device)[plan.pos].flatten(0, 1)  # [B*T, C+1]
            # 0 where a query sees the item, -inf where not; the query's own item (last) is always seen.
            local_bias = torch.zeros(b * t, 1, c + 1, device=x.device, dtype=h.dtype)  # [B*T, 1, C+1]
            local_bias[:, 0, :c].masked_fill_(~plan.local_seen.flatten(0, 1), -math.inf)
        new_keys, new_contents, new_acc = [], [], []
        for li, layer in enumerate(self.layers):
            hin = layer.norm1(h)  # [B, T, D]: what this layer reads with and stores
            stored = hin if self.memory_gradient else hin.detach()
            src = torch.cat([state["accumulator"][li], stored], dim=1)  # [B, C+T, D]
            chunks = src[plan.bi2, plan.chunk_src]  # [B, Nn, C, D] chunks completed during this call
            chunk_keys = chunks.mean(dim=2)  # [B, Nn, D]: key = mean of the chunk, no normalisation
            keys = torch.cat([state["keys"][li], chunk_keys], dim=1)  # [B, M+Nn, D]
            contents = torch.cat([state["contents"][li], chunks], dim=1)  # [B, M+Nn, C, D]
            # Top-k gather read: [B, T, k, C, D] selected items instead of projecting all (M + Nn) * C items
            # for every query (equal to the dense read to rounding; ~15% faster training updates here).
            h = h + layer.attn.read_topk(hin, keys, contents, plan.visible)
            if layer.local is not None:
                # The C steps before each query (in accumulator-position order; gradient stopped unless
                # memory_gradient), then its own.
                items = torch.cat([src[plan.bi2, plan.local_src], hin[:, :, None]], dim=2)  # [B, T, C+1, D]
                local = layer.local.read(hin.flatten(0, 1), items.flatten(0, 1), local_dist, local_bias)  # [B*T, D]
                h = h + local.view(b, t, -1)
            h = h + layer.mlp(layer.norm2(h))
            k_f, c_f = plan.final_slots(keys, contents)
            new_keys.append(k_f)
            new_contents.append(c_f)
            new_acc.append(plan.final_accumulator(src))
        y = self.norm(h)
        new_state = {
            "keys": torch.stack(new_keys),
            "contents": torch.stack(new_contents),
            "valid": plan.valid_final,
            "accumulator": torch.stack(new_acc),
            "steps_since_last_write": plan.acc_len_final,
            "write_pos": plan.write_pos_final,
        }
        if self.memory_gradient:  # what is handed on is memory: constant for the next call
            new_state = {k: v.detach() for k, v in new_state.items()}
        return y, new_state

    def _step(
        self, x: torch.Tensor, state: dict[str, torch.Tensor], start: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step (``x [B, 1, F_in]``, ``start [B]``): the read and write of :meth:`_sequence` with few ops.

        An agent steps its memory once per environment step, where fixed per-op costs dominate: this path
        reads only the top-k chunks (:meth:`HCAMAttention.read_topk`), does not clear the stored slots of
        restarting rows before the read (they are masked: their weight is exactly zero, or the whole read is
        zeroed when no slot is valid), and writes all layers at once after the stack. The test suite checks it
        against :meth:`_sequence` (step-by-step equals whole-sequence). The local read takes its window straight from
        the state's accumulator (no gather), its mask only when some ring slot is invalid.
        """
        c, m = self.chunk_size, self.capacity
        dev = x.device
        # On CPU, reading three flags costs less than the ops they let us skip: most steps neither restart a
        # row nor complete a chunk, and once the ring is full nothing is masked. Every skipped op is an identity
        # in that case (mask of all false, gate of ones, ring unchanged), so both branches give the same values.
        # On an accelerator a host read would stall the stream: there every step takes the general branch, as it
        # does everywhere with step_shortcuts=False (see the class docstring).
        host = dev.type == "cpu" and self.step_shortcuts
        any_start = bool(start.any()) if host else True
        valid = state["valid"] & ~start[:, None] if any_start else state["valid"]  # [B, M]: restart clears
        acc_len = state["steps_since_last_write"]  # [B]
        acc_len = acc_len.masked_fill(start, 0) if any_start else acc_len
        write_pos = state["write_pos"]
        full = acc_len == c - 1  # [B]: this step completes the chunk
        any_full = bool(full.any()) if host else True
        if host and bool(valid.all()):
            blocked = gate = None  # nothing masked, every row reads
        else:
            blocked = ~valid[:, None, :]  # [B, 1, M]: shared by all layers
            gate = valid.any(dim=-1).to(x.dtype)[:, None, None]  # [B, 1, 1]: 0 reads nothing (empty memory)
        # Functional calls instead of submodule calls: the same parameters and ops, without ~5 us of module
        # dispatch each (14 per step), which is a tenth of a step at batch 1.
        h = F.linear(x, self.inp.weight, self.inp.bias)  # [B, 1, D]
        b = x.shape[0]
        if self.local_attention:
            # The window of every layer is its accumulator as it stands: the C steps before this one, positions below
            # acc_len from the chunk being filled, the others still holding the previous chunk's steps.
            local_dist = _local_distances(c, dev)[acc_len]  # [B, C+1]
            window = state["accumulator"]  # [L, B, C, D]
            if blocked is None:
                local_bias = None  # ring full: the previous chunk is of this episode, so the whole window is seen
            else:  # positions from the previous chunk are seen iff it is of this episode (its slot still valid)
                seen = (_arange(c, dev) < acc_len[:, None]) | valid.gather(1, (write_pos[:, None] - 1) % m)  # [B, C]
                local_bias = F.pad(seen, (0, 1), value=True)[:, None]  # [B, 1, C+1]; the step itself is seen
                local_bias = torch.zeros_like(local_bias, dtype=h.dtype).masked_fill_(~local_bias, -math.inf)
        hins = []
        for li, layer in enumerate(self.layers):
            hin = _layer_norm(layer.norm1, h)  # [B, 1, D]
            h = h + layer.attn._read_topk(hin, state["keys"][li], state["contents"][li], blocked, gate)
            if layer.local is not None:
                items = torch.cat([window[li], hin], dim=1)  # [B, C+1, D]
                h = h + layer.local.read(hin.view(b, -1), items, local_dist, local_bias).view(b, 1, -1)
            fc1, act, fc2 = layer.mlp
            u = F.linear(_layer_norm(layer.norm2, h), fc1.weight, fc1.bias)
            h = h + F.linear(F.gelu(u, approximate=act.approximate), fc2.weight, fc2.bias)
            hins.append(hin)
        # Writes of all layers together, on [L, B, ...] tensors.
        hin_all = torch.stack(hins).detach()  # [L, B, 1, D]: the state handed on carries no gradient
        at_pos = (_arange(c, dev) == acc_len[:, None])[None, :, :, None]  # [1, B, C, 1]
        keep = (~start).to(x.dtype)[None, :, None, None] if any_start else None  # [1, B, 1, 1]
        acc = state["accumulator"] if keep is None else state["accumulator"] * keep  # [L, B, C, D]
        acc = torch.where(at_pos, hin_all, acc)
        steps = (acc_len + 1).masked_fill(full, 0) if any_full else acc_len + 1
        if not (any_start or any_full):  # the ring is unchanged: hand the same tensors on
            new_state = {
                "keys": state["keys"],
                "contents": state["contents"],
                "valid": valid,
                "accumulator": acc,
                "steps_since_last_write": steps,
                "write_pos": write_pos,
            }
            return _layer_norm(self.norm, h), new_state
        # The ring gets its one possible new chunk by rewriting slot write_pos of every row (with its old content
        # where no chunk completes) on fresh copies: a broadcast where() over the whole ring costs several times
        # more.
        rows = _arange(b, dev)  # [B]
        full_l = full[None, :, None]  # [1, B, 1]
        at_slot = (_arange(m, dev) == write_pos[:, None]) & full[:, None]  # [B, M]
        # Fresh copies (the input state stays untouched); a restart clears its row.
        keys = state["keys"].clone() if keep is None else state["keys"] * keep  # [L, B, M, D]
        contents = state["contents"].clone() if keep is None else state["contents"] * keep[..., None]  # [L,B,M,C,D]
        keys[:, rows, write_pos] = torch.where(full_l, acc.mean(dim=2), keys[:, rows, write_pos])  # [L, B, D]
        contents[:, rows, write_pos] = torch.where(full_l[..., None], acc, contents[:, rows, write_pos])
        new_state = {
            "keys": keys,
            "contents": contents,
            "valid": valid | at_slot,
            "accumulator": acc,  # a completed chunk stays until overwritten step by step (the local window)
            "steps_since_last_write": steps,
            "write_pos": (write_pos + full.long()) % m,
        }
        return _layer_norm(self.norm, h), new_state


@functools.lru_cache(maxsize=64)
def _zero(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A cached scalar zero (the ignored ``input`` of ``baddbmm`` with ``beta = 0``)."""
    with torch.inference_mode(False):
        return torch.zeros((), device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    """``torch.arange(n)`` built once per (n, device): index constants of the one-step path (not to be modified)."""
    with torch.inference_mode(False):
        return torch.arange(n, device=device)


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


class _WritePlan:
    """Index bookkeeping of one call, shared by all layers (they all write every step).

    Chunks are ranked per row in write order: stored slot s has rank ``((s - write_pos) mod M) - M`` (oldest
    first), the r-th chunk completed during the call has rank r. A query at step t sees a chunk iff it was
    completed before t, belongs to t's episode and is among the M most recent (FIFO).
    """

    def __init__(
        self,
        starts: torch.Tensor,
        acc_len: torch.Tensor,
        write_pos: torch.Tensor,
        valid: torch.Tensor,
        mem: HCAMMemory,
    ) -> None:
        b, t = starts.shape
        c, m = mem.chunk_size, mem.capacity
        dev = starts.device
        tt = torch.arange(t, device=dev)
        last_start = torch.where(starts, tt, -1).cummax(dim=1).values if t else starts.long()  # [B, T]
        # Slot in the accumulator that step t is written to.
        pos = torch.where(last_start >= 0, (tt - last_start) % c, (tt + acc_len[:, None]) % c)  # [B, T]
        complete = pos == c - 1  # step t completes a chunk
        count = complete.long().cumsum(dim=1)  # [B, T]
        n_before = count - complete.long()  # chunks completed at steps < t
        n_total = count[:, -1] if t else torch.zeros_like(acc_len)  # [B]
        epi = starts.long().cumsum(dim=1)  # [B, T]; 0 = the episode carried in by the state
        epi_last = epi[:, -1] if t else torch.zeros_like(acc_len)
        n_new = max(int(n_total.max()) if b and t else 0, 1)  # at least one (never visible) placeholder

        # Completion time of the r-th new chunk of each row (t for nonexistent ones).
        comp_time = torch.where(complete, tt, t).sort(dim=1).values if t else starts.long()
        comp_time = torch.cat([comp_time, comp_time.new_full((b, n_new), t)], dim=1)[:, :n_new]  # [B, Nn]
        exists = comp_time < t
        comp_c = comp_time.clamp(max=max(t - 1, 0))
        # Source of each chunk element in [accumulator (C) ; layer inputs (T)]: times before 0 lie in the
        # accumulator carried in by the state.
        tau = comp_c[:, :, None] - (c - 1) + torch.arange(c, device=dev)  # [B, Nn, C]
        src = torch.where(tau >= 0, c + tau, acc_len[:, None, None] + tau).clamp(0, c + t - 1)
        self.bi2 = torch.arange(b, device=dev)[:, None, None]
        self.chunk_src = src
        chunk_epi = epi.gather(1, comp_c) if t else torch.zeros_like(comp_c)  # [B, Nn]

        # Visibility [B, T, M + Nn].
        slots = torch.arange(m, device=dev)
        rank_old = (slots[None, :] - write_pos[:, None]) % m - m  # [B, M]
        oldest_kept = (n_before - m)[:, :, None]  # [B, T, 1]
        vis_old = valid[:, None, :] & (epi[:, :, None] == 0) & (rank_old[:, None, :] >= oldest_kept)
        r = torch.arange(n_new, device=dev)
        vis_new = (
            exists[:, None, :]
            & (r[None, None, :] < n_before[:, :, None])
            & (r[None, None, :] >= oldest_kept)
            & (chunk_epi[:, None, :] == epi[:, :, None])
        )
        self.visible = torch.cat([vis_old, vis_new], dim=2)

        # Final ring: slot s holds the most recent chunk whose rank is congruent to (s - write_pos) mod M.
        off = (slots[None, :] - write_pos[:, None]) % m  # [B, M]
        from_new = n_total[:, None] > off
        r_last = (off + m * torch.div(n_total[:, None] - 1 - off, m, rounding_mode="floor")).clamp(0, n_new - 1)
        valid_new = chunk_epi.gather(1, r_last) == epi_last[:, None]
        valid_old = valid & (epi_last[:, None] == 0)
        self.valid_final = torch.where(from_new, valid_new, valid_old)  # [B, M]
        self.slot_index = torch.where(from_new, m + r_last, slots[None, :])  # [B, M] into [old ; new]
        self.write_pos_final = (write_pos + n_total) % m
        self.acc_len_final = (pos[:, -1] + 1) % c if t else acc_len.clone()
        j = torch.arange(c, device=dev)
        # Accumulator position j holds the last step written there: time t-1 - ((len - 1 - j) mod C), positions
        # below the length from the chunk being filled, the others from the previous chunk (zero if that step
        # precedes the episode). Times before 0 lie in the accumulator carried in, position (time + acc_len) mod C.
        tau_acc = (t - 1) - (self.acc_len_final[:, None] - 1 - j[None, :]) % c  # [B, C]
        self.acc_src = torch.where(tau_acc >= 0, c + tau_acc, (tau_acc + acc_len[:, None]) % c)
        ls_final = last_start[:, -1:] if t else torch.full_like(acc_len[:, None], -1)  # [B, 1]; -1: no start
        first_final = torch.where(ls_final >= 0, ls_final, -c)  # earliest time of the final episode in the window
        self.acc_used = tau_acc >= first_final  # [B, C]
        self.bi1 = torch.arange(b, device=dev)[:, None]

        # Local window of step t: the accumulator as step t finds it (the one-step path reads it as it stands), i.e.
        # position j holds time t - dist, dist = ((pos_t - 1 - j) mod C) + 1 in 1..C, as an index into
        # [accumulator carried in (C) ; layer inputs (T)]. Seen iff in t's episode: after its last start in the
        # call, or else within what the state carries (its chunk being filled; the previous chunk if still valid).
        self.pos = pos  # [B, T]: t's accumulator position, which fixes the distances of its window
        tau_l = tt[None, :, None] - ((pos[:, :, None] - 1 - j) % c + 1)  # [B, T, C]
        self.local_src = torch.where(tau_l >= 0, c + tau_l, (tau_l + acc_len[:, None, None]) % c)
        prev_valid = valid.gather(1, (write_pos[:, None] - 1) % m).long()  # [B, 1]: newest stored chunk
        first = torch.where(last_start >= 0, last_start, -(acc_len[:, None] + c * prev_valid))  # [B, T]
        self.local_seen = tau_l >= first[:, :, None]  # [B, T, C]

    def final_slots(self, keys: torch.Tensor, contents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys [B, M+Nn, D]``, ``contents [B, M+Nn, C, D]`` -> the ring after the call (cleared slots zero)."""
        v = self.valid_final.to(keys.dtype)
        k = keys[self.bi1, self.slot_index] * v[:, :, None]  # [B, M, D]
        c = contents[self.bi1, self.slot_index] * v[:, :, None, None]  # [B, M, C, D]
        return k, c

    def final_accumulator(self, src: torch.Tensor) -> torch.Tensor:
        """``src [B, C+T, D]`` -> the accumulator after the call ``[B, C, D]``: the partial chunk, then past its length
        the previous chunk's steps (zero for steps before the episode)."""
        return src[self.bi1, self.acc_src] * self.acc_used[:, :, None].to(src.dtype)


__all__ = ["HCAMAttention", "HCAMMemory", "MultiHeadAttention", "chunk_position_encoding"]
