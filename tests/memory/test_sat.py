"""Spatially-Aware Transformer memory against the oracles of specs/sat.md (shared contract: test_memory_api.py)."""

from __future__ import annotations

import random

import pytest
import torch

from chronotope.memory import make_memory, state_nbytes
from chronotope.memory.sat import STRATEGIES, write_slot


def _run_writes(strategy: str, places, cap=4, k=4, c=1):
    b = 1
    tw = torch.zeros(b, cap, dtype=torch.long)
    pl = torch.zeros(b, cap, dtype=torch.long)
    valid = torch.zeros(b, cap, dtype=torch.bool)
    sid = torch.tensor([STRATEGIES.index(strategy)])
    kept = []
    for t, p in enumerate(places):
        slot, write = write_slot(sid, torch.tensor([p]), tw, pl, valid, k, c)
        if write[0]:
            s = slot[0].item()
            tw[0, s], pl[0, s], valid[0, s] = t, p, True
        kept.append({tw[0, i].item() for i in range(cap) if valid[0, i]})
    return kept


def test_eviction_by_hand():
    places = [0, 0, 1, 2, 1, 3]
    expect = {
        "fifo": ({1, 2, 3, 4}, {2, 3, 4, 5}),
        "lifo": ({0, 1, 2, 3}, {0, 1, 2, 3}),
        "mvfo": ({1, 2, 3, 4}, {1, 3, 4, 5}),
        "lvfo": ({0, 1, 3, 4}, {0, 1, 3, 5}),
    }
    for strategy, (after4, after5) in expect.items():
        kept = _run_writes(strategy, places)
        assert kept[4] == after4 and kept[5] == after5, strategy
    assert _run_writes("place_fifo", places, c=1)[5] == {1, 3, 4, 5}


def _naive(strategy, places, starts, cap, k, c):
    """A per-row list of (write step, place) simulated directly from the rules."""
    mem: list[tuple[int, int]] = []
    step = 0
    out = []
    for p, s in zip(places, starts):
        if s:
            mem, step = [], 0
        counts = {j: sum(1 for _, q in mem if q == j) for j in range(k)}
        full = len(mem) == cap

        def drop_oldest(pred, mem=mem):
            victim = min((e for e in mem if pred(e)), key=lambda e: e[0])
            mem.remove(victim)

        if strategy == "place_fifo" and counts[p] >= c:
            drop_oldest(lambda e, p=p: e[1] == p)
        elif full:
            if strategy in ("fifo", "place_fifo"):
                drop_oldest(lambda e: True)
            elif strategy == "lifo":
                step += 1
                out.append(sorted(mem))
                continue
            else:
                nonempty = [j for j in range(k) if counts[j] > 0]
                pick = max if strategy == "mvfo" else min
                j_star = pick(nonempty, key=lambda j: (counts[j], -j) if pick is max else (counts[j], j))
                drop_oldest(lambda e, j=j_star: e[1] == j)
        mem.append((step, p))
        step += 1
        out.append(sorted(mem))
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_match_a_naive_simulation(strategy):
    rng = random.Random(STRATEGIES.index(strategy))
    b, t, cap, k, c = 3, 1000, 8, 5, 2
    places = [[rng.randrange(k) for _ in range(t)] for _ in range(b)]
    starts = [[i > 0 and rng.random() < 0.01 for i in range(t)] for _ in range(b)]
    m = make_memory(
        "sat",
        4,
        hidden_size=8,
        num_heads=1,
        head_dim=8,
        num_places=k,
        grid=(5, 1),
        capacity=cap,
        place_capacity=c,
        strategy=strategy,
        num_layers=1,
    ).eval()
    x = torch.randn(b, t, 4)
    with torch.no_grad():
        _, st = m(x, m.initial_state(b), torch.tensor(starts), place=torch.tensor(places))
    for r in range(b):
        ref = _naive(strategy, places[r], starts[r], cap, k, c)[-1]
        got = sorted((st["tw"][r, i].item(), st["pl"][r, i].item()) for i in range(cap) if st["valid"][r, i])
        assert got == ref
        assert len(got) <= cap
        if strategy == "place_fifo":
            assert all(sum(1 for _, q in got if q == j) <= c for j in range(k))


def _layer_inputs(k=4, cap=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(2, cap, 16, generator=g, dtype=torch.float64)
    pl = torch.arange(cap).remainder(k).repeat(2, 1)  # every place non-empty
    valid = torch.ones(2, cap, dtype=torch.bool)
    q = torch.randn(2, 16, generator=g, dtype=torch.float64)
    return q, m, pl, valid


def _sat(**kw):
    torch.manual_seed(0)
    cfg = {"hidden_size": 16, "num_heads": 2, "head_dim": 8, "mlp_size": 16, "num_places": 4, "grid": (2, 2)}
    cfg.update(kw)
    return make_memory("sat", 5, **cfg).double().eval()


def test_ph_read_equals_a_naive_loop_and_flat_for_one_place():
    mem = _sat(top_k=4)
    layer = mem.layers[0]
    q, m, pl, valid = _layer_inputs()
    with torch.no_grad():
        got = layer.ph_read(q, m, pl, valid, 4)
        lam, _ = layer.place_logits(q, m, pl, valid, 4)
        w = torch.softmax(lam, dim=1)
        ref = torch.zeros_like(got)
        for j in range(4):
            ref += w[:, j, None] * layer.mha(q, m, (valid & (pl == j))[:, None])[:, 0]
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10)
        one = _sat(num_places=1, grid=(1, 1), top_k=2).layers[0]
        flat = one.mha(q, m, valid[:, None])[:, 0]
        torch.testing.assert_close(one.ph_read(q, m, torch.zeros_like(pl), valid, 1), flat, atol=1e-10, rtol=1e-10)


def test_read_invariances():
    mem = _sat(top_k=2)
    layer = mem.layers[0]
    q, m, pl, valid = _layer_inputs()
    valid[:, 10:] = False
    with torch.no_grad():
        base = layer(q, m, pl, valid, 4)
        perm = torch.randperm(12)
        torch.testing.assert_close(layer(q, m[:, perm], pl[:, perm], valid[:, perm], 4), base, atol=1e-12, rtol=1e-12)
        junk = m.clone()
        junk[:, 10:] = 50.0
        assert torch.equal(layer(q, junk, pl, valid, 4), base)  # invalid slots are never read
        lam, _ = layer.place_logits(q, m, pl, valid, 4)
        out = lam.argmin(dim=1)  # a place outside the top-2
        edit = m.clone()
        for r in range(2):
            idx = ((pl[r] == out[r]) & valid[r]).nonzero().flatten()
            delta = torch.randn(len(idx), 16, dtype=torch.float64)
            edit[r, idx] += delta - delta.mean(0)  # the place mean is unchanged
        assert torch.equal(layer(q, edit, pl, valid, 4), base)
    # Relabelling places and permuting the place table alike changes nothing (whole module).
    x = torch.randn(2, 15, 5, dtype=torch.float64)
    places = torch.randint(4, (2, 15))
    relabel = torch.tensor([2, 0, 3, 1])
    other = _sat(top_k=2)
    with torch.no_grad():
        other.places.weight[relabel] = mem.places.weight
        y, _ = mem(x, mem.initial_state(2), place=places)
        y2, _ = other(x, other.initial_state(2), place=relabel[places])
    torch.testing.assert_close(y2, y, atol=1e-12, rtol=1e-12)


def test_empty_places_are_never_chosen():
    layer = _sat(top_k=2).layers[0]
    q, m, pl, valid = _layer_inputs()
    pl[:, :] = torch.tensor([0, 3] * 6)  # places 1 and 2 empty
    with torch.no_grad():
        lam, nonempty = layer.place_logits(q, m, pl, valid, 4)
        assert set(lam.topk(2, dim=1).indices.flatten().tolist()) == {0, 3}
        # one non-empty place with k = 2: the empty pick gets weight 0 and the read is that place's
        pl[:] = 3
        got = layer.ph_read(q, m, pl, valid, 4)
        torch.testing.assert_close(got, layer.mha(q, m, valid[:, None])[:, 0], atol=1e-12, rtol=1e-12)
        assert not layer.ph_read(q, m, pl, torch.zeros_like(valid), 4).any()  # no entry at all: 0


def test_pose_binning_and_input_errors():
    mem = _sat()
    pose = torch.tensor([[[-0.9, -0.9], [-0.9, 0.5], [0.5, -0.9], [0.9, 0.9], [5.0, -5.0]]])
    assert mem.place_of_pose(pose).tolist() == [[0, 1, 2, 3, 2]]
    x = torch.randn(1, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        a, _ = mem(x, mem.initial_state(1), pose=pose.double())
        b, _ = mem(x, mem.initial_state(1), place=mem.place_of_pose(pose))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="place id 7"):
        mem(x, mem.initial_state(1), place=torch.full((1, 5), 7))
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        mem(x, mem.initial_state(1), place=torch.zeros(1, 4, dtype=torch.long))
    nocol = _sat(pose_columns=None)
    with pytest.raises(ValueError, match="place= or pose="):
        nocol(x, nocol.initial_state(1))


@pytest.mark.parametrize("steps", [2_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_state_constant_over_long_runs(steps):
    mem = make_memory("sat", 4, num_layers=1).eval()
    s0 = mem.initial_state(1)
    s = s0
    with torch.no_grad():
        for _ in range(0, steps, 1000):
            _, s = mem(torch.randn(1, 1000, 4), s)
    assert state_nbytes(s) == state_nbytes(s0) and s["valid"].sum() == 64 and s["step"].item() == steps
    counts = torch.bincount(s["pl"][0], minlength=16)
    assert (counts <= 4).all()


def test_ama_learns_the_matching_strategy():
    torch.manual_seed(0)
    n = len(STRATEGIES)
    mem = make_memory("sat", 4, strategy="ama", num_tasks=n, eps=1.0, seed=0).train()
    opt = torch.optim.Adam(mem.q_net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for it in range(2000):
        mem.eps = max(0.1, 1.0 - 0.9 * it / 500)
        tasks = torch.randint(n, (32,), generator=g)
        onehot = torch.nn.functional.one_hot(tasks, n).float()
        with torch.no_grad():
            sigma = mem.choose_strategy(onehot)
        reward = (sigma == tasks).float()
        loss = mem.ama_loss(onehot, sigma, reward)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mem.eval()
    eye = torch.eye(n)
    assert mem.choose_strategy(eye).tolist() == list(range(n))
    # In eval the choice is deterministic and changes only at episode starts.
    x = torch.randn(2, 6, 4)
    task = torch.zeros(2, 6, n)
    task[0, :, 1] = 1
    task[1, :3, 2] = 1
    task[1, 3:, 3] = 1
    starts = torch.zeros(2, 6, dtype=torch.bool)
    starts[:, 0] = True
    with torch.no_grad():
        _, st = mem(x[:, :3], mem.initial_state(2), starts[:, :3], task=task[:, :3])
        assert st["strategy"].tolist() == [1, 2]
        _, st2 = mem(x[:, 3:], st, starts[:, 3:], task=task[:, 3:])
        assert st2["strategy"].tolist() == [1, 2]  # no start: the latched choice stays
        starts[1, 3] = True
        _, st3 = mem(x[:, 3:], st, starts[:, 3:], task=task[:, 3:])
        assert st3["strategy"].tolist() == [1, 3]


def test_ama_step_equals_whole_in_training():
    n = len(STRATEGIES)
    x = torch.randn(2, 10, 4)
    task = torch.nn.functional.one_hot(torch.randint(n, (2, 10)), n).float()
    starts = torch.zeros(2, 10, dtype=torch.bool)
    starts[:, 0] = starts[0, 4] = starts[1, 7] = True
    outs = []
    for stepwise in (False, True):
        torch.manual_seed(3)
        mem = make_memory("sat", 4, strategy="ama", num_tasks=n, eps=0.5, seed=5).train()
        with torch.no_grad():
            if not stepwise:
                outs.append(mem(x, mem.initial_state(2), starts, task=task)[0])
            else:
                s, ys = mem.initial_state(2), []
                for i in range(10):
                    y, s = mem(x[:, i : i + 1], s, starts[:, i : i + 1], task=task[:, i : i + 1])
                    ys.append(y)
                outs.append(torch.cat(ys, 1))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=1e-6)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="'random'"):
        make_memory("sat", 4, strategy="random")
    with pytest.raises(ValueError, match="'th'"):
        make_memory("sat", 4, read="th")
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        make_memory("sat", 4, grid=(3, 3))
    with pytest.raises(ValueError, match="num_tasks > 0"):
        make_memory("sat", 4, strategy="ama")
    with pytest.raises(ValueError, match="1.5"):
        make_memory("sat", 4, eps=1.5)
    with pytest.raises(ValueError, match=r"\(0, 9\)"):
        make_memory("sat", 4, pose_columns=(0, 9))
