"""Sliding-window transformer memory (trxl) and the unbounded full-attention baseline."""

from __future__ import annotations

import pytest
import torch

from chronotope.memory import make_memory


def _x(b: int, t: int, f: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stepwise", [False, True])
def test_window_bounds_what_a_step_reads(stepwise):
    w = 4
    torch.manual_seed(0)
    mem = make_memory("trxl", 5, hidden_size=16, num_layers=1, window=w).eval()
    x = _x(1, 12)
    t = 10

    def run(inp):
        with torch.no_grad():
            if not stepwise:
                return mem(inp, mem.initial_state(1))[0]
            s, ys = mem.initial_state(1), []
            for i in range(inp.shape[1]):
                y, s = mem(inp[:, i : i + 1], s)
                ys.append(y)
            return torch.cat(ys, 1)

    y = run(x)
    far, near = x.clone(), x.clone()
    far[0, t - w - 1] += 3.0  # just outside the window of step t
    near[0, t - w] += 3.0  # the oldest step inside it
    assert torch.equal(run(far)[0, t], y[0, t])
    assert not torch.allclose(run(near)[0, t], y[0, t])


def test_state_is_the_last_window_steps():
    w = 5
    torch.manual_seed(1)
    mem = make_memory("trxl", 5, hidden_size=8, num_layers=2, num_heads=2, window=w).eval()
    x = _x(2, 13)
    with torch.no_grad():
        _, state = mem(x, mem.initial_state(2))
        hin = mem.layers[0].norm1(mem.inp(x))
    assert state["cache"].shape == (2, 2, w, 8)
    assert state["valid"].all()
    torch.testing.assert_close(state["cache"][0], hin[:, -w:])
    # A short history leaves the oldest slots empty and zero.
    with torch.no_grad():
        _, short = mem(x[:, :2], mem.initial_state(2))
    assert short["valid"].sum(1).tolist() == [2, 2] and not short["cache"][:, :, :3].any()


def test_full_attention_equals_trxl_with_a_window_longer_than_the_sequence():
    torch.manual_seed(2)
    t = 20
    trxl = make_memory("trxl", 5, hidden_size=16, window=t).eval()
    full = make_memory("full_attention", 5, hidden_size=16, max_distance=t).eval()
    full.load_state_dict(trxl.state_dict())
    x = _x(2, t, seed=3)
    starts = torch.zeros(2, t, dtype=torch.bool)
    starts[1, 7] = True
    with torch.no_grad():
        y_t, _ = trxl(x, trxl.initial_state(2), starts)
        y_f, s_f = full(x, full.initial_state(2), starts)
    torch.testing.assert_close(y_f, y_t, atol=1e-6, rtol=1e-6)
    assert s_f["cache"].shape[2] == t  # full attention keeps every step


def test_full_attention_filled_state_matches_real_shapes():
    torch.manual_seed(4)
    full = make_memory("full_attention", 5, hidden_size=8, num_heads=2).eval()
    with torch.no_grad():
        _, real = full(_x(3, 9), full.initial_state(3))
    fake = full.filled_state(3, 9)
    assert {k: (v.shape, v.dtype) for k, v in real.items()} == {k: (v.shape, v.dtype) for k, v in fake.items()}
    y, s = full(_x(3, 1), fake)
    assert y.shape == (3, 1, 8) and s["cache"].shape[2] == 10


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="0"):
        make_memory("trxl", 5, window=0)
    with pytest.raises(ValueError, match="None"):
        make_memory("trxl", 5, window=None)
    with pytest.raises(ValueError, match="30"):
        make_memory("trxl", 5, hidden_size=30, num_heads=4)
