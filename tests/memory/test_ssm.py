"""LRU and selective-SSM memories against the oracles of specs/ssm.md (shared contract: test_memory_api.py)."""

from __future__ import annotations

import math

import pytest
import torch

from chronotope.memory import make_memory, state_nbytes
from chronotope.memory.scan import linear_scan
from chronotope.memory.ssm import S6Layer


def _lru(**kw):
    torch.manual_seed(0)
    return make_memory("lru", 5, hidden_size=8, state_size=6, **kw).double().eval()


def test_lru_init_ring_and_normalisation():
    m = make_memory("lru", 5, state_size=512)
    lam = m.lrus[0].lam()
    assert (lam.abs() >= 0.9 - 1e-6).all() and (lam.abs() <= 0.999 + 1e-6).all()
    gamma = torch.exp(m.lrus[0].gamma_log)
    torch.testing.assert_close(gamma**2 / (1 - lam.abs() ** 2), torch.ones(512), atol=1e-4, rtol=1e-4)


def test_lru_impulse():
    m = _lru()
    layer = m.lrus[0]
    e = torch.zeros(1, 12, 8, dtype=torch.float64)
    e[0, 0, 3] = 1.0
    _, h = layer(e, torch.zeros(1, 6, dtype=torch.complex128), torch.zeros(1, 12, dtype=torch.bool))
    lam = layer.lam()
    gbe = torch.exp(layer.gamma_log) * torch.complex(layer.B_re[:, 3], layer.B_im[:, 3])
    expect = lam[None, :] ** torch.arange(12, dtype=torch.float64)[:, None] * gbe
    torch.testing.assert_close(h[0], expect, atol=1e-12, rtol=1e-12)
    ratio = h[0, 1:] / h[0, :-1]
    torch.testing.assert_close(ratio.abs(), lam.abs().expand_as(ratio), atol=1e-10, rtol=1e-10)
    phase = torch.remainder(ratio.angle() - torch.exp(layer.theta_log), 2 * math.pi)
    assert torch.minimum(phase, 2 * math.pi - phase).max() < 1e-9


def test_lru_normalisation_keeps_unit_variance():
    g = torch.Generator().manual_seed(0)
    steps = 100_000
    lam = torch.tensor(0.95 * complex(math.cos(0.3), math.sin(0.3)), dtype=torch.complex128)
    gamma = math.sqrt(1 - 0.95**2)
    w = torch.randn(1, steps, 1, generator=g, dtype=torch.float64).to(torch.complex128)
    h = linear_scan(lam.expand(1, steps, 1), gamma * w, chunk=4096)
    assert abs(h[0, 1000:].abs().pow(2).mean().item() - 1.0) < 0.02


def _hand_layer(bias: float = 0.0) -> S6Layer:
    layer = S6Layer(1, 1, 1, 1, 1, 1e-3, 1e-1).double()
    with torch.no_grad():
        layer.A_log.zero_()  # A = -1
        layer.x_proj.weight.copy_(torch.tensor([[0.0], [1.0], [1.0]]))  # d = 0, B_t = C_t = u
        layer.dt_proj.weight.zero_()
        layer.dt_proj.bias.fill_(bias)  # softplus(0) = ln 2
        layer.D.zero_()
    return layer


def test_s6_hand_case():
    a, b, c = _hand_layer().discretise(torch.ones(1, 3, 1, dtype=torch.float64))
    h = linear_scan(a, b)
    torch.testing.assert_close(
        h.flatten(), torch.tensor([0.693147, 1.039721, 1.213008], dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(h.flatten(), math.log(2) * (2 - 2.0 ** -torch.arange(3.0, dtype=torch.float64)))
    assert torch.equal(c, torch.ones_like(c))


def test_s6_selectivity():
    u = torch.rand(1, 5, 1, dtype=torch.float64) + 0.5
    h0 = torch.full((1, 1, 1), 3.0, dtype=torch.float64)
    a, b, _ = _hand_layer(-20.0).discretise(u)
    torch.testing.assert_close(linear_scan(a, b, h0), h0[:, None].expand(1, 5, 1, 1), atol=1e-6, rtol=0)
    a, b, _ = _hand_layer(20.0).discretise(u)
    delta = 20.0 + math.log1p(math.exp(-20.0))
    torch.testing.assert_close(linear_scan(a, b, h0)[0, :, 0, 0], delta * u[0, :, 0] ** 2, atol=1e-6, rtol=1e-8)


@pytest.mark.parametrize("name,extra", [("lru", {}), ("s6", {"scan_mode": "doubling"}), ("s6", {"scan_mode": "loop"})])
@pytest.mark.parametrize("chunk", [None, 3])
def test_chunked_and_step_paths_agree(name, extra, chunk):
    torch.manual_seed(1)
    m = make_memory(name, 5, hidden_size=16, scan_chunk=chunk, **extra).double().eval()
    x = torch.randn(3, 14, 5, dtype=torch.float64)
    starts = torch.zeros(3, 14, dtype=torch.bool)
    starts[0, 0] = starts[1, 6] = starts[2, 9] = starts[2, 10] = True
    with torch.no_grad():
        y, s = m(x, m.initial_state(3), starts)
        st, ys = m.initial_state(3), []
        for i in range(14):
            yi, st = m(x[:, i : i + 1], st, starts[:, i : i + 1])
            ys.append(yi)
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=1e-12)
    for k in s:
        torch.testing.assert_close(st[k], s[k], atol=1e-12, rtol=1e-12)


def test_s6_reset_ignores_a_large_input_just_before_the_start():
    torch.manual_seed(2)
    m = make_memory("s6", 5, hidden_size=16).eval()
    x = torch.randn(2, 10, 5)
    x[:, 5] = 1e3  # just before the start at t = 6: the conv taps must not read it
    starts = torch.zeros(2, 10, dtype=torch.bool)
    starts[:, 6] = True
    with torch.no_grad():
        y, _ = m(x, m.initial_state(2), starts)
        fresh, _ = m(x[:, 6:], m.initial_state(2))
    torch.testing.assert_close(y[:, 6:], fresh, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["lru", "s6"])
@pytest.mark.parametrize("steps", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_finite_and_bounded_state_over_long_runs(name, steps):
    torch.manual_seed(3)
    m = make_memory(name, 5, hidden_size=16).eval()
    s0 = m.initial_state(1)
    s = s0
    with torch.no_grad():
        for i in range(0, steps, 2048):
            y, s = m(torch.randn(1, min(2048, steps - i), 5) * 3, s)
            assert torch.isfinite(y).all()
    assert all(torch.isfinite(v).all() for v in s.values())
    assert state_nbytes(s) == state_nbytes(s0)


def test_gradients_reach_the_decay_parameters():
    torch.manual_seed(4)
    x = torch.randn(2, 9, 5)
    lru = make_memory("lru", 5, hidden_size=8)
    y, _ = lru(x, lru.initial_state(2))
    (y * torch.randn_like(y)).sum().backward()
    layer = lru.lrus[0]
    for p in (layer.nu_log, layer.theta_log, layer.gamma_log):
        assert p.grad is not None and p.grad.abs().sum() > 0
    s6 = make_memory("s6", 5, hidden_size=8)
    y, _ = s6(x, s6.initial_state(2))
    (y * torch.randn_like(y)).sum().backward()
    for mixer in s6.mixers:
        assert mixer.A_log.grad.abs().sum() > 0 and mixer.dt_proj.bias.grad.abs().sum() > 0


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="1.2"):
        make_memory("lru", 5, r_max=1.2)
    with pytest.raises(ValueError, match="0"):
        make_memory("lru", 5, state_size=0)
    with pytest.raises(ValueError, match="-1"):
        make_memory("s6", 5, conv_kernel=-1)
    with pytest.raises(ValueError, match="0.5"):
        make_memory("s6", 5, dt_min=0.5, dt_max=0.1)
    with pytest.raises(ValueError, match="0"):
        make_memory("s6", 5, scan_chunk=0)
    with pytest.raises(ValueError, match="'fast'"):
        make_memory("s6", 5, scan_mode="fast")
