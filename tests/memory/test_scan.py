"""The shared diagonal scan (specs/ssm.md oracle 1) and the start-masked causal conv."""

from __future__ import annotations

import pytest
import torch

from chronotope.memory.scan import causal_depthwise_conv, linear_scan, log_doubling_scan


def _starts(b: int, t: int) -> torch.Tensor:
    s = torch.zeros(b, t, dtype=torch.bool)
    s[0, 0] = True  # at t = 0
    s[1, 7] = True  # mid-sequence
    s[2, 11] = s[2, 12] = True  # two consecutive steps
    return s


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("chunk", [None, 4, 5])
def test_scan_paths_agree(complex_, chunk):
    g = torch.Generator().manual_seed(0)
    b, t = 4, 23
    dt = torch.complex128 if complex_ else torch.float64
    a = torch.rand(b, t, 3, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1
    x = torch.randn(b, t, 3, 2, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, 3, 2, generator=g, dtype=torch.float64)
    if complex_:
        a = a * torch.exp(1j * torch.rand(b, t, 3, 2, generator=g, dtype=torch.float64))
        x = x.to(dt) + 1j * torch.randn(b, t, 3, 2, generator=g, dtype=torch.float64)
        h0 = h0.to(dt) - 0.5j
    starts = _starts(b, t)
    ref = torch.zeros(b, t, 3, 2, dtype=dt)
    h = h0.clone()
    for i in range(t):
        h = torch.where(starts[:, i, None, None], 0, a[:, i]) * h + x[:, i]
        ref[:, i] = h
    loop = linear_scan(a, x, h0, starts, mode="loop")
    dbl = linear_scan(a, x, h0, starts, mode="doubling", chunk=chunk)
    torch.testing.assert_close(loop, ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dbl, ref, atol=1e-12, rtol=1e-12)


def test_log_scan_agrees_and_has_finite_gradients_with_starts():
    g = torch.Generator().manual_seed(1)
    b, t = 4, 19
    log_a = (-torch.rand(b, t, 5, generator=g, dtype=torch.float64) * 2).requires_grad_()
    log_b = torch.randn(b, t, 5, generator=g, dtype=torch.float64).requires_grad_()
    h0 = torch.rand(b, 5, generator=g, dtype=torch.float64)
    h0[1] = 0.0  # log h0 = -inf for one row
    starts = _starts(b, t)
    out = log_doubling_scan(log_a, log_b, torch.log(h0), starts)
    ref = linear_scan(log_a.exp(), log_b.exp(), h0, starts, mode="loop")
    torch.testing.assert_close(out.exp(), ref, atol=1e-12, rtol=1e-12)
    out.sum().backward()
    assert torch.isfinite(log_a.grad).all() and torch.isfinite(log_b.grad).all()


def test_conv_never_reads_before_a_start_and_chunks_agree():
    g = torch.Generator().manual_seed(2)
    b, t, c, k = 3, 20, 4, 4
    x = torch.randn(b, t, c, generator=g, dtype=torch.float64)
    w = torch.randn(c, k, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    starts = _starts(b, t)
    buf0 = torch.zeros(b, c, k - 1, dtype=torch.float64)
    y, buf = causal_depthwise_conv(x, buf0, w, bias, starts)
    # Reference: conv1d on each episode segment with zero history.
    conv = torch.nn.functional.conv1d
    for r in range(b):
        cuts = [0, *starts[r].nonzero().flatten().tolist(), t]
        for s, e in zip(cuts[:-1], cuts[1:]):
            if e <= s:
                continue
            seg = torch.nn.functional.pad(x[r, s:e].T[None], (k - 1, 0))
            ref = conv(seg, w[:, None, :], bias, groups=c)[0].T
            torch.testing.assert_close(y[r, s:e], ref, atol=1e-12, rtol=1e-12)
    # Step by step threading the buffer gives the same.
    bb = buf0
    ys = []
    for i in range(t):
        yi, bb = causal_depthwise_conv(x[:, i : i + 1], bb, w, bias, starts[:, i : i + 1])
        ys.append(yi)
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(bb, buf, atol=0, rtol=0)


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="fast"):
        linear_scan(torch.ones(1, 2), torch.ones(1, 2), mode="fast")
    with pytest.raises(ValueError, match="0"):
        linear_scan(torch.ones(1, 2), torch.ones(1, 2), chunk=0)
