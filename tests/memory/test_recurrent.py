"""The recurrent baselines' ``keep_bias``: the gate that keeps the state starts biased as asked."""

import pytest
import torch

from chronotope.memory import make_memory


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_keep_bias_lengthens_the_gradient_path(name):
    """With the keep gate biased open, a loss 60 steps after an input reaches that input with a far larger gradient
    than with it biased shut, over the same weights otherwise (averaged over inits)."""
    grads = {}
    for bias in (-3.0, 3.0):
        total = 0.0
        for seed in range(4):
            torch.manual_seed(seed)
            mem = make_memory(name, input_size=8, hidden_size=16, num_layers=2, keep_bias=bias)
            x = torch.zeros(2, 61, 8)
            x[:, 0] = torch.randn(2, 8)
            x.requires_grad_(True)
            y, _ = mem(x, mem.initial_state(2), torch.zeros(2, 61, dtype=torch.bool))
            y[:, -1].pow(2).sum().backward()
            total += x.grad[:, 0].norm().item()
        grads[bias] = total
    assert grads[3.0] > 100 * grads[-3.0]


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_keep_bias_sets_only_the_keep_gate(name):
    torch.manual_seed(0)
    ref = make_memory(name, input_size=4, hidden_size=5)
    torch.manual_seed(0)
    mem = make_memory(name, input_size=4, hidden_size=5, keep_bias=2.0)
    gate = slice(5, 10)  # the GRU's update gate z in (r, z, n); the LSTM's forget gate f in (i, f, g, o)
    assert torch.all(mem.rnn.bias_ih_l0[gate] == 2.0) and torch.all(mem.rnn.bias_hh_l0[gate] == 0.0)
    for key in ("bias_ih_l0", "bias_hh_l0"):
        a, b = getattr(mem.rnn, key).detach().clone(), getattr(ref.rnn, key).detach().clone()
        a[gate] = b[gate] = 0
        assert torch.equal(a, b)
    assert torch.equal(mem.rnn.weight_ih_l0, ref.rnn.weight_ih_l0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1"])
def test_keep_bias_rejects_non_numbers(bad):
    with pytest.raises(ValueError, match="keep_bias"):
        make_memory("gru", input_size=4, keep_bias=bad)
