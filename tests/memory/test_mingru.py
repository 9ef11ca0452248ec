"""minGRU memory against the oracles of specs/mingru.md (the shared contract runs in test_memory_api.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chronotope.memory import make_memory, state_nbytes
from chronotope.memory.mingru import MinGRUCell, g, log_g


def _cell(gate_bias: float = 0.0, dtype=torch.float64) -> MinGRUCell:
    return MinGRUCell(1, 1, gate_bias).to(dtype)


def test_hand_case():
    ones = torch.ones(1, 3, 1, dtype=torch.float64)
    starts = torch.zeros(1, 3, dtype=torch.bool)
    cell = _cell()
    for scan in ("loop", "linear", "log"):
        h = cell.recur(ones, 0 * ones, torch.zeros(1, 1, dtype=torch.float64), starts, scan)
        torch.testing.assert_close(h.flatten(), torch.tensor([0.75, 1.125, 1.3125], dtype=torch.float64))
    h = cell.recur(-ones[:, :1], 0 * ones[:, :1], torch.zeros(1, 1, dtype=torch.float64), starts[:, :1], "loop")
    assert abs(h.item() - 0.134471) < 1e-6
    assert abs(g(torch.tensor(-1.0)).item() - 0.268941) < 1e-6
    v = torch.linspace(-5, 5, 101, dtype=torch.float64)
    torch.testing.assert_close(log_g(v), torch.log(g(v)))


def _paths_inputs(dtype):
    gen = torch.Generator().manual_seed(0)
    b, t, d = 4, 21, 5
    h_hat = torch.randn(b, t, d, generator=gen, dtype=dtype)
    k = torch.randn(b, t, d, generator=gen, dtype=dtype)
    h0 = torch.rand(b, d, generator=gen, dtype=dtype) * 2
    starts = torch.zeros(b, t, dtype=torch.bool)
    starts[0, 0] = True
    starts[1, 9] = True
    starts[2, 4] = starts[2, 5] = True  # row 3: no start (Heinsen applies)
    return h_hat, k, h0, starts


def _heinsen(h_hat, k, h0):
    """Heinsen's log-space scan (official path), rows without starts only."""
    log_a = -F.softplus(k)
    log_b = -F.softplus(-k) + log_g(h_hat)
    log_a = torch.cat([torch.zeros_like(log_a[:, :1]), log_a], 1)
    log_b = torch.cat([torch.log(h0)[:, None], log_b], 1)
    a_star = log_a.cumsum(1)
    return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))[:, 1:]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_paths_agree(dtype, tol):
    h_hat, k, h0, starts = _paths_inputs(dtype)
    cell = _cell(dtype=dtype)
    loop = cell.recur(h_hat, k, h0, starts, "loop")
    for scan in ("linear", "log"):
        torch.testing.assert_close(cell.recur(h_hat, k, h0, starts, scan), loop, atol=tol, rtol=tol)
    torch.testing.assert_close(_heinsen(h_hat[3:], k[3:], h0[3:]), loop[3:], atol=tol, rtol=tol)


def test_log_path_gradients_finite_with_starts_and_zero_state():
    h_hat, k, h0, starts = _paths_inputs(torch.float64)
    h0[1] = 0.0
    h_hat.requires_grad_()
    k.requires_grad_()
    _cell().recur(h_hat, k, h0, starts, "log").sum().backward()
    assert torch.isfinite(h_hat.grad).all() and torch.isfinite(k.grad).all()


def test_gate_limits():
    h_hat, _, h0, _ = _paths_inputs(torch.float64)
    starts = torch.zeros(h_hat.shape[:2], dtype=torch.bool)
    cell = _cell()
    for scan in ("loop", "linear"):
        open_ = cell.recur(h_hat, torch.full_like(h_hat, 30.0), h0, starts, scan)
        torch.testing.assert_close(open_, g(h_hat), atol=1e-12, rtol=1e-12)
        shut = cell.recur(h_hat, torch.full_like(h_hat, -30.0), h0, starts, scan)
        torch.testing.assert_close(shut, h0[:, None].expand_as(shut), atol=1e-10, rtol=1e-10)


def test_module_gate_bias_reaches_the_cell():
    m = make_memory("mingru", 4, hidden_size=8, gate_bias=-3.0)
    assert torch.allclose(m.cells[0].to_hidden_and_gate.bias[8:], torch.tensor(-3.0))


@pytest.mark.parametrize("scan", ["linear", "log", "loop"])
def test_module_paths_agree_and_step_equals_whole(scan):
    torch.manual_seed(0)
    m = make_memory("mingru", 6, hidden_size=16, scan=scan).double().eval()
    ref = make_memory("mingru", 6, hidden_size=16, scan="loop").double().eval()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(3, 17, 6, dtype=torch.float64)
    starts = torch.zeros(3, 17, dtype=torch.bool)
    starts[0, 5] = starts[1, 0] = starts[2, 8] = starts[2, 9] = True
    with torch.no_grad():
        y, s = m(x, m.initial_state(3), starts)
        y_ref, s_ref = ref(x, ref.initial_state(3), starts)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(s["h"], s_ref["h"], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("steps", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_convex_bound_holds_over_long_runs(steps):
    torch.manual_seed(1)
    cell = MinGRUCell(4, 8)
    x = torch.randn(1, steps, 4) * 3
    with torch.no_grad():
        h_hat, k = cell.gates(x)
        h0 = torch.rand(1, 8)
        h = cell.recur(h_hat, k, h0, torch.zeros(1, steps, dtype=torch.bool), "linear")
        gv = g(h_hat)
        lo = torch.minimum(h0, gv.min(1).values)
        hi = torch.maximum(h0, gv.max(1).values)
    assert torch.isfinite(h).all()
    assert (h >= lo[:, None] - 1e-5).all() and (h <= hi[:, None] + 1e-5).all()
    m = make_memory("mingru", 4, hidden_size=8).eval()
    with torch.no_grad():
        s0 = m.initial_state(1)
        _, s = m(x[:, :1000], s0)
    assert state_nbytes(s) == state_nbytes(s0)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="-2"):
        make_memory("mingru", 4, hidden_size=-2)
    with pytest.raises(ValueError, match="'fast'"):
        make_memory("mingru", 4, scan="fast")
    with pytest.raises(ValueError, match="-1"):
        make_memory("mingru", 4, ff_mult=-1)
    with pytest.raises(ValueError, match="0"):
        make_memory("mingru", 4, expansion=0)
