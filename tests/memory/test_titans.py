"""Titans memory against the oracles of specs/titans.md (shared contract: test_memory_api.py)."""

from __future__ import annotations

import pytest
import torch

from chronotope.memory import make_memory, state_nbytes
from chronotope.memory.titans import memory_read, memory_update, surprise


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("depth", [1, 2])
def test_closed_form_surprise_equals_autograd(residual, depth):
    g = torch.Generator().manual_seed(0)
    b, hm, d, dh = 3, 2, 4, 5
    shapes = [(dh, d), (d, dh)] if depth == 2 else [(d, d)]
    ws = tuple(torch.randn(b, hm, *s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes)
    k = torch.nn.functional.normalize(torch.randn(b, hm, d, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(b, hm, d, generator=g, dtype=torch.float64)
    loss = (memory_read(ws, k, residual) - v).pow(2).sum()
    auto = torch.autograd.grad(loss, ws)
    for a, c in zip(auto, surprise(ws, k, v, residual)):
        torch.testing.assert_close(c, a, atol=1e-12, rtol=1e-12)


def _scalar_run(theta, eta, alpha, m0=0.0, steps=3):
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    ws, ss = (torch.full((1, 1, 1, 1), m0, dtype=torch.float64),), (torch.zeros(1, 1, 1, 1, dtype=torch.float64),)
    out = []
    gate = lambda val: torch.full((1, 1), val, dtype=torch.float64)  # noqa: E731
    for _ in range(steps):
        ws, ss = memory_update(ws, ss, one, one, gate(theta), gate(eta), gate(alpha), False)
        out.append(ws[0].item())
    return out


def test_hand_cases():
    assert _scalar_run(0.25, 0.0, 0.0) == pytest.approx([0.5, 0.75, 0.875], abs=1e-12)
    assert _scalar_run(0.25, 0.5, 0.0) == pytest.approx([0.5, 1.0, 1.25], abs=1e-12)
    assert _scalar_run(0.25, 0.5, 0.1) == pytest.approx([0.5, 0.95, 1.13], abs=1e-12)
    assert _scalar_run(0.0, 0.0, 0.5, m0=1.0) == pytest.approx([0.5, 0.25, 0.125], abs=1e-12)


def test_linear_memory_is_the_delta_rule():
    g = torch.Generator().manual_seed(1)
    b, d = 2, 5
    w = torch.randn(b, 1, d, d, generator=g, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(b, 1, d, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(b, 1, d, generator=g, dtype=torch.float64)
    theta, alpha = torch.full((b, 1), 0.3, dtype=torch.float64), torch.full((b, 1), 0.1, dtype=torch.float64)
    (new,), _ = memory_update((w,), (torch.zeros_like(w),), k, v, theta, torch.zeros_like(theta), alpha, False)
    kk = k[:, 0, :, None] @ k[:, 0, None, :]
    expect = (
        w[:, 0] @ ((1 - 0.1) * torch.eye(d, dtype=torch.float64) - 2 * 0.3 * kk)
        + 2 * 0.3 * v[:, 0, :, None] @ k[:, 0, None, :]
    )
    torch.testing.assert_close(new[:, 0], expect, atol=1e-12, rtol=1e-12)


def test_frozen_memory_reads_m0_and_orthonormal_recall():
    g = torch.Generator().manual_seed(2)
    b, hm, d, dh = 2, 2, 4, 6
    m0 = (
        torch.randn(1, hm, dh, d, generator=g, dtype=torch.float64),
        torch.randn(1, hm, d, dh, generator=g, dtype=torch.float64),
    )
    ws = tuple(w.expand(b, -1, -1, -1) for w in m0)
    ss = tuple(torch.zeros_like(w) for w in ws)
    zero = torch.zeros(b, hm, dtype=torch.float64)
    for _ in range(5):
        k, v, q = (torch.randn(b, hm, d, generator=g, dtype=torch.float64) for _ in range(3))
        ws, ss = memory_update(ws, ss, k, v, zero, zero + 0.9, zero, False)
        torch.testing.assert_close(memory_read(ws, q, False), memory_read(m0, q, False).expand(b, -1, -1))
    # Recall: a linear memory with theta = 0.5 stores orthonormal keys exactly.
    keys = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0].T  # rows orthonormal
    vals = torch.randn(d, d, generator=g, dtype=torch.float64)
    w, s = (torch.zeros(1, 1, d, d, dtype=torch.float64),), (torch.zeros(1, 1, d, d, dtype=torch.float64),)
    half, zero1 = torch.full((1, 1), 0.5, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    for i in range(d):
        w, s = memory_update(w, s, keys[i][None, None], vals[i][None, None], half, zero1, zero1, False)
    for i in range(d):
        torch.testing.assert_close(memory_read(w, keys[i][None, None], False)[0, 0], vals[i], atol=1e-6, rtol=0)


def _small(**kw):
    torch.manual_seed(3)
    return make_memory("titans", 5, hidden_size=8, key_size=4, memory_hidden=5, **kw).double()


@pytest.mark.parametrize("read_before_write", [False, True])
def test_reset_restores_m0_and_step_equals_whole(read_before_write):
    m = _small(read_before_write=read_before_write).eval()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    starts = torch.zeros(2, 9, dtype=torch.bool)
    starts[1, 4] = True
    with torch.no_grad():
        y, s = m(x, m.initial_state(2), starts)
        st, ys = m.initial_state(2), []
        for i in range(9):
            yi, st = m(x[:, i : i + 1], st, starts[:, i : i + 1])
            ys.append(yi)
        torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=1e-12)
        # a frozen memory (theta = 0, alpha = 0 floor) keeps M_0: its weights after a start equal M_0 exactly
        frozen = _small(theta_bias=-1e4, alpha_bias=-1e4, alpha_min=0.0).eval()
        _, sf = frozen(x, frozen.initial_state(2), starts)
    assert torch.equal(sf["w1"][1], frozen.m0[0]) and torch.equal(sf["w2"][1], frozen.m0[1])


def test_gradcheck_through_the_unrolled_steps():
    m = _small(memory_depth=2, conv_kernel=2)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    starts = torch.zeros(2, 3, dtype=torch.bool)
    starts[1, 1] = True
    names = ("qkv.weight", "gates.bias")

    def f(wk, gb):
        params = {names[0]: wk, names[1]: gb}
        y, _ = torch.func.functional_call(m, params, (x, m.initial_state(2), starts))
        return y

    inputs = tuple(dict(m.named_parameters())[n].detach().clone().requires_grad_() for n in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("steps", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_weights_finite_and_state_constant_over_long_runs(steps):
    torch.manual_seed(4)
    m = make_memory("titans", 5, hidden_size=8).eval()
    s0 = m.initial_state(1)
    s = s0
    with torch.no_grad():
        for _ in range(0, steps, 1000):
            _, s = m(torch.randn(1, 1000, 5) * 3, s)
    assert all(torch.isfinite(v).all() for k, v in s.items() if k != "fresh")
    assert state_nbytes(s) == state_nbytes(s0)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="3"):
        make_memory("titans", 5, memory_depth=3)
    with pytest.raises(ValueError, match="1.5"):
        make_memory("titans", 5, alpha_min=1.5)
    with pytest.raises(ValueError, match="-0.1"):
        make_memory("titans", 5, theta_max=-0.1)
    with pytest.raises(ValueError, match="0"):
        make_memory("titans", 5, key_size=0)
    with pytest.raises(ValueError, match="-1.0"):
        make_memory("titans", 5, max_grad_norm=-1.0)


def test_soft_clamp_bounds_the_surprise_and_keeps_small_ones():
    from chronotope.memory.titans import soft_clamp_norm

    g = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    big = soft_clamp_norm(g * 100, 1.0)
    assert (big.flatten(2).norm(dim=-1) <= 1.0 + 1e-12).all()
    torch.testing.assert_close(soft_clamp_norm(g * 1e-4, 1.0), g * 1e-4, atol=1e-12, rtol=1e-6)
