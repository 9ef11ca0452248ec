"""MemoryVLA memory bank against the oracles of specs/memoryvla.md (shared contract: test_memory_api.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chronotope.memory import make_memory, state_nbytes
from chronotope.memory.memoryvla import consolidate


def _write_all(entries, mode, cap=3):
    mem = torch.zeros(1, cap, 1, 2, dtype=torch.float64)
    ts = torch.zeros(1, cap, dtype=torch.float64)
    n = torch.zeros(1, dtype=torch.long)
    banks = []
    for t, e in enumerate(entries):
        new = torch.tensor(e, dtype=torch.float64).view(1, 1, 2)
        mem, ts, n = consolidate(mem, ts, n, new, torch.tensor([float(t)], dtype=torch.float64), mode)
        banks.append((mem[0, : n[0], 0].clone(), ts[0, : n[0]].clone()))
    return banks


def test_merge_by_hand():
    entries = [(1, 0), (0, 1), (0.1, 1), (1, 0.2), (1, 0.25)]
    banks = _write_all(entries, "merge")
    mem, ts = banks[3]
    torch.testing.assert_close(mem, torch.tensor([[1, 0], [0.05, 1], [1, 0.2]], dtype=torch.float64))
    torch.testing.assert_close(ts, torch.tensor([0, 1.5, 3], dtype=torch.float64))
    mem, ts = banks[4]
    torch.testing.assert_close(mem, torch.tensor([[1, 0], [0.05, 1], [1, 0.225]], dtype=torch.float64))
    torch.testing.assert_close(ts, torch.tensor([0, 1.5, 3.5], dtype=torch.float64))
    mem, ts = _write_all(entries, "fifo")[4]
    torch.testing.assert_close(mem, torch.tensor([[0.1, 1], [1, 0.2], [1, 0.25]], dtype=torch.float64))
    torch.testing.assert_close(ts, torch.tensor([2, 3, 4], dtype=torch.float64))


def _naive_bank(tokens, starts, cap, mode):
    """Per-row Python lists: append, then merge (or drop) while longer than cap."""
    b, t = starts.shape
    out = []
    for r in range(b):
        bank: list[tuple[torch.Tensor, float]] = []
        step = 0
        for i in range(t):
            if starts[r, i]:
                bank, step = [], 0
            bank.append((tokens[r, i], float(step)))
            while len(bank) > cap:
                if mode == "fifo":
                    bank.pop(0)
                    continue
                sims = [
                    F.cosine_similarity(bank[j][0], bank[j + 1][0], dim=-1).mean().item() for j in range(len(bank) - 1)
                ]
                j = max(range(len(sims)), key=lambda q: (sims[q], -q))
                bank[j : j + 2] = [((bank[j][0] + bank[j + 1][0]) / 2, (bank[j][1] + bank[j + 1][1]) / 2)]
            step += 1
        out.append(bank)
    return out


@pytest.mark.parametrize("mode", ["merge", "fifo"])
def test_batched_banks_match_a_naive_reference(mode):
    torch.manual_seed(0)
    m = make_memory("memoryvla", 5, hidden_size=8, d_per=4, n_per=2, capacity=5, write_fused=False, consolidate=mode)
    m = m.double().eval()
    b, t = 3, 200
    x = torch.randn(b, t, 5, dtype=torch.float64)
    starts = torch.rand(b, t) < 0.03
    with torch.no_grad():
        _, st = m(x, m.initial_state(b), starts)
        p, c = m.tokens(x)
    for name, tok in (("per", p), ("cog", c)):
        ref = _naive_bank(tok, starts, 5, mode)
        for r in range(b):
            n = st[f"{name}_n"][r].item()
            since = t - (starts[r].nonzero().max().item() if starts[r].any() else 0)
            assert n == min(since, 5) == len(ref[r])
            mem = st[f"{name}_mem"][r, :n].reshape(n, *tok.shape[2:])
            torch.testing.assert_close(mem, torch.stack([e for e, _ in ref[r]]), atol=1e-6, rtol=1e-6)
            ts = st[f"{name}_ts"][r, :n]
            torch.testing.assert_close(ts, torch.tensor([s for _, s in ref[r]], dtype=torch.float64))
            assert (ts[1:] > ts[:-1]).all()
            assert not st[f"{name}_mem"][r, n:].any()
    # Constant inputs keep every entry equal to that input.
    with torch.no_grad():
        _, st = m(x[:, :1].expand(b, 20, 5), m.initial_state(b))
        c0 = m.tokens(x[:, :1])[1][:, 0, 0]
    torch.testing.assert_close(st["cog_mem"], c0[:, None].expand(-1, 5, -1))


def _one_entry_model(**kw):
    torch.manual_seed(1)
    return make_memory("memoryvla", 5, hidden_size=8, d_per=4, n_per=2, capacity=4, **kw).double().eval()


def test_single_entry_read_ignores_query_key_and_te():
    m = _one_entry_model()
    x = torch.randn(2, 2, 5, dtype=torch.float64)
    with torch.no_grad():
        y, _ = m(x, m.initial_state(2))
        for blk in m.cog.blocks:
            blk.wq.weight.mul_(3.0)
            blk.wk.weight.add_(0.5)
        m.cog.te[2].bias.add_(1.0)
        y2, _ = m(x, m.initial_state(2))
    cog = slice(m.n_per * m.d_per, None)
    torch.testing.assert_close(y2[:, 1, cog], y[:, 1, cog], atol=1e-10, rtol=1e-10)


def test_identical_entries_without_te_read_like_one():
    m = _one_entry_model(write_fused=False)
    with torch.no_grad():
        for s in (m.per, m.cog):
            s.te[2].weight.zero_()
            s.te[2].bias.zero_()
        x = torch.randn(2, 1, 5, dtype=torch.float64)
        rep = x.expand(2, 4, 5)
        y_many, _ = m(rep, m.initial_state(2))  # three identical entries stored before step 3
        y_one, _ = m(rep[:, :2], m.initial_state(2))  # one
    torch.testing.assert_close(y_many[:, 3], y_one[:, 1], atol=1e-10, rtol=1e-10)


def test_retrieval_is_permutation_invariant_and_ignores_empty_slots():
    m = _one_entry_model()
    g = torch.Generator().manual_seed(2)
    mem = torch.randn(2, 4, 2, 4, generator=g, dtype=torch.float64)
    ts = torch.rand(2, 4, generator=g, dtype=torch.float64) * 9
    n = torch.tensor([3, 4])
    mem[0, 3] = 0
    x = torch.randn(2, 2, 4, generator=g, dtype=torch.float64)
    step = torch.tensor([10, 10])
    with torch.no_grad():
        h = m.per.retrieve(x, mem, ts, n, step)
        perm = torch.tensor([2, 0, 1, 3])
        mem_p, ts_p = mem.clone(), ts.clone()
        mem_p[0, :3], ts_p[0, :3] = mem[0, perm[:3]], ts[0, perm[:3]]
        perm4 = torch.tensor([3, 1, 0, 2])
        mem_p[1], ts_p[1] = mem[1, perm4], ts[1, perm4]
        torch.testing.assert_close(m.per.retrieve(x, mem_p, ts_p, n, step), h, atol=1e-10, rtol=1e-10)
        junk = mem.clone()
        junk[0, 3] = 100.0
        assert torch.equal(m.per.retrieve(x, junk, ts, n, step), h)


def test_gate_limits():
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    outs = {}
    for tag, bias in (("x", 50.0), ("h", -50.0)):
        m = _one_entry_model()
        with torch.no_grad():
            for s in (m.per, m.cog):
                s.gate.weight.zero_()
                s.gate.bias.fill_(bias)
            outs[tag] = m(x, m.initial_state(2))[0]
    with torch.no_grad():
        p, c = m.tokens(x)
        xt = torch.cat([p.flatten(2), c.flatten(2)], -1)
    torch.testing.assert_close(outs["x"], xt, atol=1e-12, rtol=1e-12)
    assert not torch.allclose(outs["h"], xt, atol=1e-3)
    add = _one_entry_model(fusion="add")
    gate_h = _one_entry_model()
    with torch.no_grad():
        for s in (gate_h.per, gate_h.cog):
            s.gate.weight.zero_()
            s.gate.bias.fill_(0.0)  # g = 0.5 exactly: the gate equals the mean
        torch.testing.assert_close(add(x, add.initial_state(2))[0], gate_h(x, gate_h.initial_state(2))[0])


def test_no_gradient_to_earlier_inputs():
    torch.manual_seed(3)
    m = make_memory("memoryvla", 5, hidden_size=8, d_per=4, n_per=2, capacity=3)
    x = torch.randn(2, 6, 5, requires_grad=True)
    y, _ = m(x, m.initial_state(2))
    y[:, -1].sum().backward()
    assert x.grad[:, :-1].abs().max() == 0 and x.grad[:, -1].abs().max() > 0


def test_state_is_constant_in_size_over_long_runs():
    torch.manual_seed(4)
    m = make_memory("memoryvla", 5, capacity=8).eval()
    s0 = m.initial_state(1)
    with torch.no_grad():
        _, s = m(torch.randn(1, 300, 5), s0)
    assert state_nbytes(s) == state_nbytes(s0) and s["per_n"].item() == 8 and s["step"].item() == 300


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="'lifo'"):
        make_memory("memoryvla", 5, consolidate="lifo")
    with pytest.raises(ValueError, match="'mul'"):
        make_memory("memoryvla", 5, fusion="mul")
    with pytest.raises(ValueError, match="0"):
        make_memory("memoryvla", 5, capacity=0)
    with pytest.raises(ValueError, match="15"):
        make_memory("memoryvla", 5, te_freqs=15)
    with pytest.raises(ValueError, match="heads 3"):
        make_memory("memoryvla", 5, heads=3)
