"""FFM memory against the oracles of specs/ffm.md (the shared contract runs in test_memory_api.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from chronotope.memory import make_memory, state_nbytes


def _ffm(**kw):
    torch.manual_seed(0)
    return make_memory("ffm", 5, **kw).double().eval()


def _set_decay(m, a, b):
    with torch.no_grad():
        m.a.copy_(torch.as_tensor(a, dtype=torch.float64))
        m.b.copy_(torch.as_tensor(b, dtype=torch.float64))


def _no_starts(b, t):
    return torch.zeros(b, t, dtype=torch.bool)


def test_init_follows_the_official_values():
    m = make_memory("ffm", 5)
    assert abs(m.a[-1].item() - math.log(0.01) / 1024) < 1e-6  # -0.0045
    assert abs(m.a[0].item() - (-0.673)) < 1e-3
    assert abs(m.limit - 0.683) < 1e-3
    torch.testing.assert_close(m.b, 2 * math.pi / torch.linspace(1, 1024, 4))


@pytest.mark.parametrize("t_chunk", [None, 1])
def test_impulse(t_chunk):
    m = _ffm(memory_size=1, context_size=1, max_len=512)  # the default clamp (|a| <= 0.683) excludes ln 2
    _set_decay(m, [-math.log(2)], [math.pi / 2])
    xt = torch.zeros(1, 5, 1, dtype=torch.float64)
    xt[0, 0] = 1.0
    s0 = torch.zeros(1, 1, 1, dtype=torch.complex128)
    if t_chunk is None:
        s = m.aggregate(xt, s0, _no_starts(1, 5))[0, :, 0, 0]
    else:
        outs = []
        for i in range(5):
            s0 = m.aggregate(xt[:, i : i + 1], s0, _no_starts(1, 1))[:, -1]
            outs.append(s0[0, 0, 0])
        s = torch.stack(outs)
    expect = torch.tensor([1, 0.5j, -0.25, -0.125j, 0.0625], dtype=torch.complex128)
    torch.testing.assert_close(s, expect, atol=1e-12, rtol=1e-12)


def test_pure_decay():
    m = _ffm(memory_size=1, context_size=1)
    a = -0.3
    _set_decay(m, [a], [0.0])
    t = 40
    s = m.aggregate(
        torch.ones(1, t, 1, dtype=torch.float64), torch.zeros(1, 1, 1, dtype=torch.complex128), _no_starts(1, t)
    )
    steps = torch.arange(1, t + 1, dtype=torch.float64)
    torch.testing.assert_close(s[0, :, 0, 0].real, (1 - math.exp(a) ** steps) / (1 - math.exp(a)))
    assert s.imag.abs().max() == 0


def _official(m, xt, s0):
    """The official batched float64 form: S_t = gamma^t cumsum_j(gamma^(-j) x~_j) + gamma^(t+1) S_(-1)."""
    t = xt.shape[1]
    a = m.a.clamp(-m.limit, -1e-8)[:, None]
    b = m.b[None, :]
    log_gamma = torch.complex(a.expand(-1, len(m.b)), b.expand(len(m.a), -1))  # [m, c]
    ts = torch.arange(t, dtype=torch.float64)[:, None, None]
    xc = xt[..., None].to(torch.complex128)  # [B, T, m, 1]
    inv = torch.exp(-log_gamma * ts)  # gamma^(-j)
    fwd = torch.exp(log_gamma * ts)  # gamma^t
    return fwd * torch.cumsum(inv * xc, dim=1) + torch.exp(log_gamma * (ts + 1)) * s0[:, None]


def test_forms_agree():
    m = _ffm(memory_size=6, context_size=3)
    gen = torch.Generator().manual_seed(3)
    b, t = 4, 30
    xt = torch.randn(b, t, 6, generator=gen, dtype=torch.float64)
    s0 = torch.complex(
        torch.randn(b, 6, 3, generator=gen, dtype=torch.float64), torch.randn(b, 6, 3, dtype=torch.float64)
    )
    starts = _no_starts(b, t)
    starts[0, 0] = starts[1, 13] = starts[2, 6] = starts[2, 7] = True
    scan = m.aggregate(xt, s0, starts)
    loop = []
    s = s0
    for i in range(t):
        s = m.aggregate(xt[:, i : i + 1], s, starts[:, i : i + 1])[:, 0]
        loop.append(s)
    torch.testing.assert_close(scan, torch.stack(loop, 1), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(scan[3], _official(m, xt[3:], s0[3:])[0], atol=1e-10, rtol=1e-10)


def test_gates():
    m = _ffm(hidden_size=7)
    mm, f_out = m.memory_size, 7
    x = torch.randn(2, 12, 5, dtype=torch.float64)
    with torch.no_grad():
        # input gate shut: |S| stays ~0, so y does not depend on the past
        gate_rows = slice(mm + f_out, 2 * mm + f_out)
        m.pre.weight[gate_rows] = 0
        m.pre.bias[gate_rows] = -30.0
        _, st = m(x, m.initial_state(2))
        assert st["S"].abs().max() < 1e-10
        y_full, _ = m(x, m.initial_state(2))
        y_last, _ = m(x[:, -1:], m.initial_state(2))
        torch.testing.assert_close(y_full[:, -1:], y_last, atol=1e-10, rtol=1e-10)
        # output gate shut: y = s; fully open: y = LN(z)
        m2 = _ffm(hidden_size=7)
        out_rows = slice(2 * mm + f_out, 2 * mm + 2 * f_out)
        m2.pre.weight[out_rows] = 0
        m2.pre.bias[out_rows] = -30.0
        y, _ = m2(x, m2.initial_state(2))
        skip = m2.pre(x)[..., mm : mm + f_out]
        torch.testing.assert_close(y, skip, atol=1e-10, rtol=1e-10)
        m2.pre.bias[out_rows] = 30.0
        y, _ = m2(x, m2.initial_state(2))
        u, _, g = m2.pre(x).split([mm, f_out, mm + f_out], -1)
        s_all = m2.aggregate(
            u * torch.sigmoid(g[..., :mm]), torch.zeros(2, mm, 4, dtype=torch.complex128), _no_starts(2, 12)
        )
        z = m2.mix(torch.cat([s_all.real.flatten(2), s_all.imag.flatten(2)], -1))
        torch.testing.assert_close(y, F.layer_norm(z, (f_out,)), atol=1e-10, rtol=1e-10)


def test_time_invariance():
    m = _ffm(memory_size=4, context_size=3)
    xt = torch.randn(2, 10, 4, dtype=torch.float64)
    d = 3
    pre = torch.cat([torch.zeros(2, d, 4, dtype=torch.float64), xt], 1)
    z0 = torch.zeros(2, 4, 3, dtype=torch.complex128)
    torch.testing.assert_close(
        m.aggregate(pre, z0, _no_starts(2, 10 + d))[:, d:], m.aggregate(xt, z0, _no_starts(2, 10)), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("steps", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_state_within_bound_over_long_runs(steps):
    torch.manual_seed(2)
    m = make_memory("ffm", 5, hidden_size=16).eval()
    x = torch.randn(1, steps, 5) * 3
    with torch.no_grad():
        s0 = m.initial_state(1)
        u, _, g = m.pre(x).split([32, 16, 48], -1)
        xt = u * torch.sigmoid(g[..., :32])
        s = m.aggregate(xt, torch.zeros(1, 32, 4, dtype=torch.complex64), _no_starts(1, steps))
        bound = xt.abs().max(1).values[0] / (1 - torch.exp(m.a.clamp(-m.limit, -1e-8)))  # [m]
        _, st = m(x[:, :2000], s0)
    assert torch.isfinite(s).all()
    assert (s.abs().amax(dim=(0, 1, 3)) <= bound * 1.001).all()
    assert state_nbytes(st) == state_nbytes(s0)


def test_decay_and_frequency_get_gradients():
    m = make_memory("ffm", 5, hidden_size=8)
    x = torch.randn(2, 9, 5)
    y, _ = m(x, m.initial_state(2))
    (y * torch.randn_like(y)).sum().backward()
    assert m.a.grad.abs().sum() > 0 and m.b.grad.abs().sum() > 0


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="-3"):
        make_memory("ffm", 5, memory_size=-3)
    with pytest.raises(ValueError, match="0"):
        make_memory("ffm", 5, context_size=0)
    with pytest.raises(ValueError, match="max_period 2"):
        make_memory("ffm", 5, min_period=4, max_period=2)
