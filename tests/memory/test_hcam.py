"""HCAM against the oracles of shared/specs/hcam.md."""

from __future__ import annotations

import math

import pytest
import torch

from chronotope.memory import make_memory
from chronotope.memory.hcam import HCAMAttention, chunk_position_encoding

B, Q, M, C, D = 2, 3, 6, 4, 8


def _memory(seed: int = 0, m: int = M, c: int = C, d: int = D):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, Q, d, generator=g)
    keys = torch.randn(B, m, d, generator=g)
    contents = torch.randn(B, m, c, d, generator=g)
    return x, keys, contents


def _attn(topk: int, heads: int = 2, d: int = D, seed: int = 0) -> HCAMAttention:
    torch.manual_seed(seed)
    return HCAMAttention(d, d, heads, topk).double().eval()


def test_position_code_is_descending_sinusoid():
    pe = chunk_position_encoding(5, 6, dtype=torch.float64)
    assert pe.shape == (5, 6)
    # Last position of the chunk is position 0: sin 0 = 0, cos 0 = 1.
    torch.testing.assert_close(pe[-1], torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.float64))
    inv = torch.tensor([1.0, 1e4 ** (-2 / 6), 1e4 ** (-4 / 6)], dtype=torch.float64)
    torch.testing.assert_close(pe[0], torch.cat([(4 * inv).sin(), (4 * inv).cos()]))
    with pytest.raises(ValueError, match="7"):
        chunk_position_encoding(3, 7)


def test_k_equals_m_is_the_naive_loop():
    """Oracle 1: k = M equals sum_i softmax(q.k_i / sqrt F)_i * MHA(x, chunk_i + PE) (not flat attention)."""
    attn = _attn(topk=M)
    x, keys, contents = (t.double() for t in _memory())
    out = attn(x, keys, contents)
    pe = chunk_position_encoding(C, D, dtype=torch.float64)
    q = attn.query_proj(x)  # [B, Q, F]
    w = torch.softmax(q @ attn.key_proj(keys).transpose(1, 2) / math.sqrt(D), dim=-1)  # [B, Q, M]
    ref = torch.zeros_like(out)
    for i in range(M):
        ref = ref + w[:, :, i : i + 1] * attn.mha(x, contents[:, i] + pe)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # ... and it is not flat attention over all M*C items.
    flat = attn.mha(x, (contents + pe).flatten(1, 2))
    assert not torch.allclose(out, flat, atol=1e-3)


def test_chunk_size_one_is_flat_single_head_attention():
    """Oracle 2: C = 1, k = M, H = 1 equals single-head flat attention over the M memories."""
    attn = _attn(topk=M, heads=1)
    x, keys, contents = (t.double() for t in _memory(c=1))
    keys = contents[:, :, 0]  # the key of a one-step chunk is that step
    out = attn(x, keys, contents)
    pe = chunk_position_encoding(1, D, dtype=torch.float64)[0]
    logits = attn.query_proj(x) @ attn.key_proj(keys).transpose(1, 2) / math.sqrt(D)  # [B, Q, M]
    values = attn.mha.out(attn.mha.v(keys + pe))  # [B, M, F]: attention over one item returns its value
    ref = torch.softmax(logits, dim=-1) @ values
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_single_chunk_is_mha_over_it():
    """Oracle 3: M = 1 gives MHA(x, chunk + PE)."""
    attn = _attn(topk=1)
    x, keys, contents = (t.double() for t in _memory(m=1))
    out = attn(x, keys, contents)
    ref = attn.mha(x, contents[:, 0] + chunk_position_encoding(C, D, dtype=torch.float64))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_permuting_memory_leaves_output_unchanged():
    """Oracle 4: jointly permuting keys, contents and mask."""
    attn = _attn(topk=3)
    x, keys, contents = (t.double() for t in _memory(seed=2))
    mask = torch.rand(B, Q, M, generator=torch.Generator().manual_seed(3)) > 0.3
    perm = torch.randperm(M, generator=torch.Generator().manual_seed(4))
    out = attn(x, keys, contents, mask)
    out_p = attn(x, keys[:, perm], contents[:, perm], mask[:, :, perm])
    torch.testing.assert_close(out, out_p, atol=1e-10, rtol=1e-10)


def test_unselected_chunks_do_not_matter():
    """Oracle 5: a chunk in no query's top-k is irrelevant (bit-identical); masked chunks are never read."""
    k = 2
    attn = _attn(topk=k)
    x, keys, contents = (t.double() for t in _memory(seed=5))
    out = attn(x, keys, contents)
    logits = attn.query_proj(x) @ attn.key_proj(keys).transpose(1, 2)
    chosen = logits.topk(k, dim=-1).indices  # [B, Q, k]
    for b in range(B):
        unused = sorted(set(range(M)) - set(chosen[b].flatten().tolist()))
        assert unused, "the test needs a chunk no query selects"
        changed = contents.clone()
        changed[b, unused] = changed[b, unused] * 7.0 + 3.0
        assert torch.equal(attn(x, keys, changed), out)
    # Mask the chunks every query would pick first: with >= k valid ones left they are never read.
    mask = torch.ones(B, Q, M, dtype=torch.bool)
    mask[:, :, :3] = False
    out_m = attn(x, keys, contents, mask)
    out_removed = attn(x, keys[:, 3:], contents[:, 3:])
    torch.testing.assert_close(out_m, out_removed, atol=1e-12, rtol=1e-12)
    scrambled = contents.clone()
    scrambled[:, :3] = torch.randn_like(scrambled[:, :3]) * 100
    keys_big = keys.clone()
    keys_big[:, :3] *= 100  # huge logits for the masked ones
    torch.testing.assert_close(attn(x, keys_big, scrambled, mask), out_removed, atol=1e-12, rtol=1e-12)


def test_fewer_valid_chunks_than_k_and_empty_memory():
    attn = _attn(topk=4)
    x, keys, contents = (t.double() for t in _memory(seed=6))
    mask = torch.zeros(B, Q, M, dtype=torch.bool)
    mask[:, :, 2] = True  # one readable chunk: it gets all the weight
    ref = attn.mha(x, contents[:, 2] + chunk_position_encoding(C, D, dtype=torch.float64))
    torch.testing.assert_close(attn(x, keys, contents, mask), ref, atol=1e-10, rtol=1e-10)
    assert torch.equal(attn(x, keys, contents, torch.zeros_like(mask)), torch.zeros(B, Q, D, dtype=torch.float64))


def test_no_gradient_into_memory():
    """Oracle 6a: gradients w.r.t. stored keys/contents are zero; the query path still learns."""
    attn = _attn(topk=2)
    x, keys, contents = (t.double() for t in _memory(seed=7))
    x.requires_grad_(True)
    keys.requires_grad_(True)
    contents.requires_grad_(True)
    attn(x, keys, contents).sum().backward()
    assert keys.grad is None or not keys.grad.any()
    assert contents.grad is None or not contents.grad.any()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert attn.key_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("local", [True, False])
def test_memory_module_has_no_gradient_across_time(local):
    """In the agent, earlier steps reach a later output only through (stop-gradient) memory; the local window's
    past steps are memory too (only the step's own item carries gradient)."""
    torch.manual_seed(0)
    mem = make_memory("hcam", 5, hidden_size=16, chunk_size=2, capacity=4, topk=2, local_attention=local)
    x = torch.randn(1, 9, 5, requires_grad=True)
    y, state = mem(x, mem.initial_state(1))
    (y[0, -1] * torch.arange(16.0)).sum().backward()  # LayerNorm output: plain sum is constant
    assert not x.grad[0, :-1].any() and x.grad[0, -1].abs().sum() > 0
    assert not any(t.requires_grad for t in state.values())
    # ... yet the earlier steps do change it (through what was written).
    x2 = x.detach().clone()
    x2[0, 0] += 1.0
    assert not torch.allclose(mem(x2, mem.initial_state(1))[0][0, -1], y[0, -1])


@pytest.mark.parametrize(
    ("steps", "stepwise"), [(3, False), (8, False), (24, False), (37, False), (13, True), (37, True)]
)
def test_write_counts_and_chunk_means(steps, stepwise):
    """Oracle 6b: after T writes #chunks = min(floor(T / C), M), each key is its chunk's mean (FIFO ring)."""
    c, m = 3, 4
    torch.manual_seed(1)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=c, capacity=m, topk=2).eval()
    x = torch.randn(2, steps, 5)
    with torch.no_grad():
        state = mem.initial_state(2)
        if stepwise:
            for t in range(steps):
                _, state = mem(x[:, t : t + 1], state)
        else:
            _, state = mem(x, state)
        hin = mem.layers[0].norm1(mem.inp(x))  # what layer 0 stores, [B, T, D]
    n_chunks = steps // c
    assert (state["valid"].sum(1) == min(n_chunks, m)).all()
    assert (state["steps_since_last_write"] == steps % c).all()
    assert (state["write_pos"] == n_chunks % m).all()
    for r in range(max(0, n_chunks - m), n_chunks):  # the kept chunks, slot r mod M
        chunk = hin[:, r * c : (r + 1) * c]
        torch.testing.assert_close(state["contents"][0, :, r % m], chunk, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(state["keys"][0, :, r % m], chunk.mean(1), atol=1e-6, rtol=1e-6)
    tail = steps % c
    torch.testing.assert_close(state["accumulator"][0, :, :tail], hin[:, steps - tail :], atol=1e-6, rtol=1e-6)
    # Past its length the accumulator still holds the previous chunk's steps (the local window), zero before one.
    if n_chunks:
        prev = hin[:, (n_chunks - 1) * c + tail : n_chunks * c]
        torch.testing.assert_close(state["accumulator"][0, :, tail:], prev, atol=1e-6, rtol=1e-6)
    else:
        assert not state["accumulator"][:, :, tail:].any()


def test_episode_start_clears_memory_and_accumulator():
    torch.manual_seed(2)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=2, capacity=3, topk=2).eval()
    x = torch.randn(2, 11, 5)
    starts = torch.zeros(2, 11, dtype=torch.bool)
    starts[0, 6] = True
    with torch.no_grad():
        _, state = mem(x, mem.initial_state(2), starts)
    # Row 0 restarted at step 6: 5 steps since -> 2 chunks and one step in the accumulator.
    assert state["valid"][0].sum() == 2 and state["valid"][1].sum() == 3
    assert state["steps_since_last_write"].tolist() == [1, 1]
    assert not state["keys"][:, 0][:, ~state["valid"][0]].any()


def test_a_chunk_is_read_only_after_it_is_complete():
    """The chunk read alone (the local read, which sees the last C steps, is off)."""
    torch.manual_seed(3)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=4, capacity=2, topk=1, num_layers=1, local_attention=False)
    mem = mem.eval()
    x = torch.randn(1, 6, 5)
    with torch.no_grad():
        y, _ = mem(x, mem.initial_state(1))
        x2 = x.clone()
        x2[0, 1] += 5.0  # inside the first chunk, which completes at step 3 and is read from step 4
        y2, _ = mem(x2, mem.initial_state(1))
    assert torch.equal(y[0, [0, 2, 3]], y2[0, [0, 2, 3]])
    assert not torch.allclose(y[0, 4:], y2[0, 4:])


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="9"):
        make_memory("hcam", 5, topk=9, capacity=4)
    with pytest.raises(ValueError, match="15"):
        make_memory("hcam", 5, hidden_size=15, num_heads=1)
    with pytest.raises(ValueError, match="0"):
        make_memory("hcam", 5, chunk_size=0)
    with pytest.raises(ValueError, match="yes"):
        make_memory("hcam", 5, local_attention="yes")


@pytest.mark.parametrize(("topk", "heads", "nq", "m"), [(2, 2, 3, M), (M, 1, 1, M), (3, 4, 1, 5), (1, 2, 2, 1)])
def test_topk_read_equals_the_dense_read(topk, heads, nq, m):
    """The one-step read (only the selected chunks, projections folded) equals ``forward`` to float rounding."""
    attn = _attn(topk=min(topk, m), heads=heads)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(B, nq, D, generator=g, dtype=torch.float64)
    keys = torch.randn(B, m, D, generator=g, dtype=torch.float64)
    contents = torch.randn(B, m, C, D, generator=g, dtype=torch.float64)
    mask = torch.rand(B, nq, m, generator=g) > 0.4
    mask[0, 0] = False  # a query with nothing to read gets zeros
    mask[1, -1] = True
    for mk in (None, mask):
        ref = attn(x, keys, contents, mk)
        torch.testing.assert_close(attn.read_topk(x, keys, contents, mk), ref, atol=1e-10, rtol=1e-10)
    assert torch.equal(attn.read_topk(x, keys, contents, mask)[0, 0], torch.zeros(D, dtype=torch.float64))


def test_topk_read_has_no_gradient_into_memory():
    attn = _attn(topk=2)
    x, keys, contents = (t.double().requires_grad_(True) for t in _memory(seed=12))
    attn.read_topk(x, keys, contents).sum().backward()
    assert keys.grad is None and contents.grad is None
    assert x.grad.abs().sum() > 0
    for p in (attn.key_proj.weight, attn.mha.k.weight, attn.mha.v.weight, attn.mha.v.bias, attn.mha.out.weight):
        assert p.grad.abs().sum() > 0


def _starts(b: int, t: int, seed: int) -> torch.Tensor:
    starts = torch.rand(b, t, generator=torch.Generator().manual_seed(seed)) < 0.03
    starts[0] = False  # one row runs one long episode: its ring fills and wraps around
    starts[1, 0] = True
    starts[2, 17] = True  # restart in the middle of a chunk
    return starts


@pytest.mark.parametrize(
    ("seed", "branch", "local"), [(1, True, True), (2, True, True), (1, False, True), (1, True, False)]
)
def test_fast_step_equals_the_sequence_path(seed, branch, local):
    """``_step`` (the one-step fast path) equals ``_sequence`` run on the same one step: outputs and every
    state field, through chunk completions, ring wrap-around, restarts and an empty memory; with and without
    the CPU branches that skip identity ops (``step_shortcuts``; accelerators always take the branch-free path),
    with and without the local read."""
    torch.manual_seed(4)
    cfg = dict(hidden_size=8, chunk_size=3, capacity=4, topk=2, num_heads=2)
    mem = make_memory("hcam", 5, local_attention=local, step_shortcuts=branch, **cfg)
    mem = mem.double().eval()
    b = 3
    x = torch.randn(b, 41, 5, dtype=torch.float64)
    starts = _starts(b, x.shape[1], seed=seed)
    with torch.no_grad():
        state = mem.initial_state(b)
        for t in range(x.shape[1]):
            xt, st = x[:, t : t + 1], starts[:, t : t + 1]
            y_fast, s_fast = mem._step(xt, state, st[:, 0])
            y_ref, s_ref = mem._sequence(xt, state, st)
            torch.testing.assert_close(y_fast, y_ref, atol=1e-12, rtol=1e-12)
            assert set(s_fast) == set(s_ref)
            for k in s_ref:
                torch.testing.assert_close(s_fast[k], s_ref[k], atol=1e-12, rtol=1e-12, msg=f"{k} at step {t}")
            state = s_fast
    assert state["valid"][0].all()  # the long episode filled the ring (so the all-valid branch ran)


def test_step_shortcuts_switch_selects_the_step_path():
    """``step_shortcuts`` (constructor switch, default on) decides whether the CPU one-step path branches on host
    flags: on, a step that neither restarts nor completes a chunk hands the ring tensors on as they are; off, it
    takes the general path and rewrites them (same values). The sequence path is the same either way."""
    assert make_memory("hcam", 5).step_shortcuts is True
    with pytest.raises(ValueError, match="step_shortcuts"):
        make_memory("hcam", 5, step_shortcuts=1)
    x = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(0))
    runs = {}
    for on in (True, False):
        torch.manual_seed(7)
        mem = make_memory("hcam", 5, hidden_size=8, chunk_size=4, capacity=3, topk=2, step_shortcuts=on).eval()
        with torch.no_grad():
            _, state = mem(x[:, :5], mem.initial_state(2))  # 5 steps: one chunk written, the next one at 1 of 4
            y, after = mem(x[:, 5:6], state)  # no restart, no chunk completes
            y_seq, _ = mem(x, mem.initial_state(2))
        assert (after["keys"] is state["keys"]) is on and (after["contents"] is state["contents"]) is on
        runs[on] = (y, after, y_seq)
    torch.testing.assert_close(runs[True][0], runs[False][0], atol=1e-6, rtol=1e-6)
    for k in runs[True][1]:
        torch.testing.assert_close(runs[True][1][k], runs[False][1][k], atol=1e-6, rtol=1e-6)
    assert torch.equal(runs[True][2], runs[False][2])


def test_fast_step_leaves_its_input_state_untouched():
    torch.manual_seed(5)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=2, capacity=3, topk=2).eval()
    x = torch.randn(2, 9, 5)
    with torch.no_grad():
        _, state = mem(x, mem.initial_state(2))
        before = {k: v.clone() for k, v in state.items()}
        for t in range(4):  # completes a chunk and restarts row 1 on the way
            starts = torch.tensor([[False], [t == 2]])
            mem(x[:, t : t + 1], state, starts)
    for k, v in before.items():
        assert torch.equal(state[k], v), k


def test_fast_step_trains_the_same_parameters(monkeypatch):
    """With autograd on, one step sends the same gradient as the sequence path, and as the sequence path with the
    dense read of ``forward``; none reaches memory."""
    torch.manual_seed(6)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=2, capacity=3, topk=2).double()
    x = torch.randn(2, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        _, state = mem(x[:, :6], mem.initial_state(2))
    starts = torch.zeros(2, 1, dtype=torch.bool)

    def grads_of(run):
        mem.zero_grad()
        y, new = run()
        (y * torch.arange(8.0, dtype=torch.float64)).sum().backward()
        assert not any(t.requires_grad for t in new.values())
        return {n: p.grad.clone() for n, p in mem.named_parameters() if p.grad is not None}

    fast = grads_of(lambda: mem._step(x[:, 6:], state, starts[:, 0]))
    seq = grads_of(lambda: mem._sequence(x[:, 6:], state, starts))
    monkeypatch.setattr(HCAMAttention, "read_topk", HCAMAttention.forward)
    dense = grads_of(lambda: mem._sequence(x[:, 6:], state, starts))
    assert set(fast) == set(seq) == set(dense) == {n for n, _ in mem.named_parameters()}
    for n, g_dense in dense.items():
        for got in (fast, seq):
            torch.testing.assert_close(got[n], g_dense, atol=1e-10, rtol=1e-8, msg=n)
    # The MHA's key bias shifts every score of a chunk alike, which the softmax ignores: zero up to rounding.
    assert all(fast[f"layers.{i}.attn.mha.k.bias"].abs().max() < 1e-12 for i in range(2))
    assert all(fast[n].abs().sum() > 0 for n in fast if "attn" in n and "mha.k.bias" not in n)
    local = [n for n in fast if ".local." in n]
    assert len(local) == 2 * 5 and all(fast[n].abs().sum() > 0 for n in local)


# --- The local read (spec, "In an agent"): each step also attends over itself and the C steps before it. ---


def _local_reference(mem, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Layer 0's local read by a naive loop: the query step t attends over steps max(t - C, its episode's start) .. t,
    each its layer input plus the learned code of its distance t - tau, per head softmax(s . (A_h x + c_h) / sqrt D),
    output sum_h U_h (sum_j a_hj s_j) + b. ``[B, T, D]``."""
    loc = mem.layers[0].local
    hin = mem.layers[0].norm1(mem.inp(x))  # [B, T, D]
    b, t_len, d = hin.shape
    h = loc.num_heads
    out = torch.zeros(b, t_len, loc.ov_weight.shape[1], dtype=x.dtype)
    for row in range(b):
        first = 0
        for t in range(t_len):
            first = t if starts[row, t] else first
            taus = list(range(max(first, t - mem.chunk_size), t + 1))
            items = hin[row, taus] + loc.position[[t - tau for tau in taus]]  # [S, D]
            q = (hin[row, t] @ loc.qk_weight + loc.qk_bias).view(h, d)
            heads = [torch.softmax(items @ q[i] / math.sqrt(d), dim=0) @ items for i in range(h)]
            out[row, t] = torch.cat(heads) @ loc.ov_weight + loc.ov_bias
    return out


def _record_local_reads(monkeypatch) -> list[torch.Tensor]:
    """Makes every local read append its output ``[N, D]`` to the returned list."""
    from chronotope.memory.hcam import LocalAttention

    outputs = []
    read = LocalAttention.read

    def recording(self, *args):
        out = read(self, *args)
        outputs.append(out)
        return out

    monkeypatch.setattr(LocalAttention, "read", recording)
    return outputs


def test_local_read_sees_the_last_c_steps_of_its_episode(monkeypatch):
    """Both paths read exactly steps t-C .. t of t's episode, coded by distance: equal to the naive loop for every
    step, at every phase within a chunk, across calls (window partly in the carried state) and restarts (one at
    a call's first step, one mid-chunk)."""
    torch.manual_seed(7)
    c = 3
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=c, capacity=4, topk=2, num_layers=1).double().eval()
    b, t_len = 3, 17
    x = torch.randn(b, t_len, 5, dtype=torch.float64)
    starts = torch.zeros(b, t_len, dtype=torch.bool)
    starts[1, 5] = True  # mid-chunk
    starts[2, 0] = True
    starts[2, 9] = True  # the first step of the third call below
    outputs = _record_local_reads(monkeypatch)
    with torch.no_grad():
        ref = _local_reference(mem, x, starts)
        mem(x, mem.initial_state(b), starts)  # one call
        whole = outputs[-1].view(b, t_len, -1)
        state = mem.initial_state(b)  # three calls of 4, 5, 8 steps
        parts = []
        for a, e in [(0, 4), (4, 9), (9, t_len)]:
            _, state = mem(x[:, a:e], state, starts[:, a:e])
            parts.append(outputs[-1].view(b, e - a, -1))
        state = mem.initial_state(b)  # step by step (the one-step path)
        steps = []
        for t in range(t_len):
            _, state = mem(x[:, t : t + 1], state, starts[:, t : t + 1])
            steps.append(outputs[-1].view(b, 1, -1))
    torch.testing.assert_close(whole, ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.cat(parts, 1), ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.cat(steps, 1), ref, atol=1e-12, rtol=1e-12)


def test_local_attention_is_multi_head_attention():
    """The local read's stored products equal a standard MHA (key width D per head, key and value biases)."""
    from chronotope.memory.hcam import LocalAttention

    g = torch.Generator().manual_seed(8)
    e, d, f, h, n, s = 6, 4, 5, 3, 7, 5
    wq, wk, wv = (torch.randn(h, d, dim, generator=g, dtype=torch.float64) for dim in (e, d, d))
    bq, bk, bv = (torch.randn(h, d, generator=g, dtype=torch.float64) for _ in range(3))
    wo, bo = torch.randn(f, h * d, generator=g, dtype=torch.float64), torch.randn(f, generator=g, dtype=torch.float64)
    x = torch.randn(n, e, generator=g, dtype=torch.float64)
    items = torch.randn(n, s, d, generator=g, dtype=torch.float64)
    dist = torch.randint(0, s, (n, s), generator=g)
    hidden = torch.zeros(n, 1, s, dtype=torch.float64)
    hidden[:, :, :2] = -math.inf  # the first two items are hidden from every query
    loc = LocalAttention(e, d, h, f, num_positions=s).double()
    with torch.no_grad():
        loc.qk_weight.copy_(torch.einsum("hke,hkd->ehd", wq, wk).reshape(e, h * d))  # A_h^T = W_q,h^T W_k,h
        loc.qk_bias.copy_(torch.einsum("hk,hkd->hd", bq, wk).reshape(h * d))
        wo_h = wo.view(f, h, d)
        loc.ov_weight.copy_(torch.einsum("fhk,hkd->hdf", wo_h, wv).reshape(h * d, f))  # U_h^T = W_v,h^T W_o,h^T
        loc.ov_bias.copy_(bo + torch.einsum("fhk,hk->f", wo_h, bv))
        out = loc(x, items, dist, hidden)
        kv = items + loc.position[dist]
        q = torch.einsum("hke,ne->nhk", wq, x) + bq  # [N, H, d]
        k = torch.einsum("hkd,nsd->nhsk", wk, kv) + bk[:, None]  # [N, H, S, d]
        v = torch.einsum("hkd,nsd->nhsk", wv, kv) + bv[:, None]
        att = torch.softmax((q[:, :, None] * k).sum(-1) / math.sqrt(d) + hidden, dim=-1)  # [N, H, S]
        ref = (att[..., None] * v).sum(2).flatten(1) @ wo.T + bo
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)


def test_episode_start_clears_the_local_window():
    """An input from before a restart cannot reach any output after it: outputs bit-identical when every pre-restart
    input changes, whether the restart falls inside one call, at a call's first step (state carried) or in the
    one-step path; restarts mid-chunk, so the window would otherwise hold pre-restart steps."""
    torch.manual_seed(9)
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=4, capacity=3, topk=2).eval()
    b, t_len, t0 = 2, 16, 6
    x = torch.randn(b, t_len, 5)
    x2 = x.clone()
    x2[:, :t0] = torch.randn(b, t0, 5) * 3.0
    starts = torch.zeros(b, t_len, dtype=torch.bool)
    starts[:, t0] = True

    def runs(inp):
        with torch.no_grad():
            whole, _ = mem(inp, mem.initial_state(b), starts)
            _, state = mem(inp[:, :t0], mem.initial_state(b))
            split, _ = mem(inp[:, t0:], state, starts[:, t0:])
            state = mem.initial_state(b)
            steps = []
            for t in range(t_len):
                y, state = mem(inp[:, t : t + 1], state, starts[:, t : t + 1])
                steps.append(y)
        return whole, split, torch.cat(steps, 1)

    (whole, split, steps), (whole2, split2, steps2) = runs(x), runs(x2)
    assert torch.equal(whole[:, t0:], whole2[:, t0:])
    assert torch.equal(split, split2)
    assert torch.equal(steps[:, t0:], steps2[:, t0:])
    assert not torch.allclose(whole[:, :t0], whole2[:, :t0])  # (before the restart they do differ)
    # Without the restart, steps 4 and 5 reach step 6 through the local window alone: their chunk (4..7) is not
    # complete yet, so without the local read step 6 cannot see them.
    x3 = x.clone()
    x3[:, 4:t0] += 1.0
    for local in (True, False):
        torch.manual_seed(9)
        m = make_memory("hcam", 5, hidden_size=8, chunk_size=4, capacity=3, topk=2, local_attention=local).eval()
        with torch.no_grad():
            y, _ = m(x, m.initial_state(b))
            y3, _ = m(x3, m.initial_state(b))
        assert torch.equal(y[:, t0], y3[:, t0]) != local


@pytest.mark.parametrize("seed", [3, 4])
def test_step_by_step_equals_whole_sequence_with_local_read(seed):
    """With the local read on: outputs and final state agree between one call, step-by-step calls and uneven calls,
    across chunk boundaries, ring wrap-around and restarts at every phase within a chunk."""
    torch.manual_seed(seed)
    c = 4
    mem = make_memory("hcam", 5, hidden_size=8, chunk_size=c, capacity=3, topk=2, num_heads=2).double().eval()
    b, t_len = 4, 45
    x = torch.randn(b, t_len, 5, dtype=torch.float64)
    starts = torch.zeros(b, t_len, dtype=torch.bool)
    for row, phase in enumerate(range(c)):
        starts[row, 20 + phase] = True  # row r restarts at phase r of its chunk
    starts[1, 33] = True
    starts[3, 0] = True
    with torch.no_grad():
        y_whole, s_whole = mem(x, mem.initial_state(b), starts)
        state, ys = mem.initial_state(b), []
        for t in range(t_len):
            y, state = mem(x[:, t : t + 1], state, starts[:, t : t + 1])
            ys.append(y)
        s_parts, parts = mem.initial_state(b), []
        for a, e in [(0, 3), (3, 4), (4, 13), (13, 22), (22, 23), (23, t_len)]:
            y, s_parts = mem(x[:, a:e], s_parts, starts[:, a:e])
            parts.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), y_whole, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(torch.cat(parts, 1), y_whole, atol=1e-10, rtol=1e-10)
    for k in s_whole:
        torch.testing.assert_close(state[k], s_whole[k], atol=1e-10, rtol=1e-10, msg=k)
        torch.testing.assert_close(s_parts[k], s_whole[k], atol=1e-10, rtol=1e-10, msg=k)


def _recall_batch(b: int, t_len: int, c: int, v: int, recall_steps: int, g: torch.Generator):
    """One-hot symbols at every step; step 0 also carries a marker, the last ``recall_steps`` steps a recall cue."""
    sym = torch.randint(0, v, (b, t_len), generator=g)
    x = torch.cat([torch.nn.functional.one_hot(sym, v).float(), torch.zeros(b, t_len, 2)], dim=-1)
    x[:, 0, v] = 1.0
    x[:, t_len - recall_steps :, v + 1] = 1.0
    t = torch.arange(t_len)
    lagged = torch.stack([torch.where(t >= k, sym.roll(k, 1), -1) for k in range(1, c)], dim=-1)  # [B, T, C-1]
    return x, sym, lagged


def test_local_read_recalls_the_last_steps_and_the_chunk_read_the_far_past():
    """Trained by supervised learning (150 Adam steps of 16 sequences), HCAM plus a linear readout names the symbol
    seen k steps ago for every k in 1..C-1 and the marked symbol seen at step 0, 4 chunks back. Without the local read
    the k-steps-ago answers whose step is in the chunk being filled are at chance (that chunk is not memory yet)
    while the far recall still works: the local read is what adds the last C-1 steps."""
    c, v, t_len, recall_steps, batch, train_steps = 4, 8, 20, 2, 16, 150
    t = torch.arange(t_len)
    xent = torch.nn.functional.cross_entropy

    def train_and_test(local: bool):
        torch.manual_seed(0)
        cfg = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "chunk_size": c, "topk": 2, "capacity": 8}
        mem = make_memory("hcam", v + 2, local_attention=local, **cfg)
        readout = torch.nn.Linear(32, c * v)  # C-1 lag answers and the far answer
        opt = torch.optim.Adam([*mem.parameters(), *readout.parameters()], lr=5e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(train_steps):
            x, sym, lagged = _recall_batch(batch, t_len, c, v, recall_steps, g)
            logits = readout(mem(x, mem.initial_state(batch))[0]).unflatten(-1, (c, v))  # [B, T, C, V]
            loss = xent(logits[:, :, : c - 1].flatten(0, 2), lagged.flatten(), ignore_index=-1)
            far = sym[:, :1].expand(-1, recall_steps).flatten()
            loss = loss + xent(logits[:, -recall_steps:, c - 1].flatten(0, 1), far)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            x, sym, lagged = _recall_batch(128, t_len, c, v, recall_steps, torch.Generator().manual_seed(2))
            pred = readout(mem(x, mem.initial_state(128))[0]).unflatten(-1, (c, v)).argmax(-1)
        lag_acc, pending_acc = [], []
        for k in range(1, c):
            seen = lagged[..., k - 1] >= 0
            pending = seen & (t % c >= k)  # step t-k is in t's chunk being filled
            hit = pred[..., k - 1] == lagged[..., k - 1]
            lag_acc.append(hit[seen].float().mean().item())
            pending_acc.append(hit[pending].float().mean().item())
        far_acc = (pred[:, -recall_steps:, c - 1] == sym[:, :1]).float().mean().item()
        return lag_acc, pending_acc, far_acc

    lag_acc, pending_acc, far_acc = train_and_test(local=True)
    assert min(lag_acc) > 0.95 and min(pending_acc) > 0.95 and far_acc > 0.95, (lag_acc, pending_acc, far_acc)
    lag_acc, pending_acc, far_acc = train_and_test(local=False)
    assert max(pending_acc) < 0.25, pending_acc  # chance: 1 / 8
    assert far_acc > 0.95, far_acc


@pytest.mark.parametrize("local", [True, False])
def test_memory_gradient_reaches_steps_written_within_the_call(local):
    """memory_gradient=True: the same outputs, but the last step's output passes gradient to the earlier steps of
    the call whose chunks (or window) it reads; what is handed on stays constant memory, so a second call's
    output passes none to the first call's inputs."""
    torch.manual_seed(0)
    kw = dict(hidden_size=16, chunk_size=2, capacity=4, topk=2, local_attention=local)
    plain = make_memory("hcam", 5, **kw)
    mem = make_memory("hcam", 5, memory_gradient=True, **kw)
    mem.load_state_dict(plain.state_dict())
    assert plain.gradient_horizon == 0 and mem.gradient_horizon is None
    x = torch.randn(1, 9, 5, requires_grad=True)
    y, state = mem(x, mem.initial_state(1))
    torch.testing.assert_close(y, plain(x, plain.initial_state(1))[0])
    (y[0, -1] * torch.arange(16.0)).sum().backward()
    reached = x.grad[0].abs().sum(-1) > 0
    assert reached[-1] and reached[:-1].sum() >= 2  # chunks of two steps: at least one chunk besides itself
    assert not any(t.requires_grad for t in state.values())
    x2 = torch.randn(1, 3, 5, requires_grad=True)
    y2, _ = mem(x2, state)
    assert y2.requires_grad and not any(t.requires_grad for t in state.values())
    with pytest.raises(ValueError, match="memory_gradient"):
        make_memory("hcam", 5, memory_gradient=1)
