"""Registry-driven tests: every registered memory obeys the one interface of :mod:`chronotope.memory.base`."""

from __future__ import annotations

import inspect

import pytest
import torch

from chronotope.memory import available_memories, make_memory, state_to
from chronotope.memory.base import _REGISTRY

F_IN = 6
B = 3
T = 24  # longer than HCAM's default chunk (8) x 2, so its memory is actually read
NAMES = available_memories()
# Memories whose default config takes seconds per call on the shared CI cores (janus: ~4 s for 24 steps
# of 3 rows when measured): their heavy interface tests run under `-m slow`; the cheap default test always runs.
_SLOW_DEFAULTS = {"janus"}
HEAVY = [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_DEFAULTS else n for n in NAMES]
# Parameters that act only on an optional input the generic interface does not pass (janus: the
# instruction, all masked without one); they must still get a finite gradient, but it may be zero.
_OPTIONAL_INPUT_PARAMS = {"janus": ("policy.instruction_proj.",)}


def _build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return make_memory(name, input_size=F_IN).eval()


def _inputs(seed: int = 1, b: int = B, t: int = T) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, F_IN, generator=g)
    starts = torch.zeros(b, t, dtype=torch.bool)
    if b > 2 and t > 9:
        starts[0, 9] = True  # row 0: new episode mid-sequence
        starts[2, 0] = True  # row 2: starts at the first step; row 1: never
    return x, starts


def _leaves(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state) for t in _leaves(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _leaves(v)]
    return []


def _nbytes(state) -> int:
    return sum(t.numel() * t.element_size() for t in _leaves(state))


def test_registry_has_the_baselines():
    for name in ("lstm", "gru", "none", "trxl", "hcam", "full_attention"):
        assert name in NAMES
    with pytest.raises(ValueError, match="nope"):
        make_memory("nope", input_size=F_IN)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_output_size(name):
    sig = inspect.signature(_REGISTRY[name])
    missing = [p for p in sig.parameters.values() if p.name != "input_size" and p.default is inspect.Parameter.empty]
    missing = [p for p in missing if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert not missing, f"{name}: config fields without default: {[p.name for p in missing]}"
    m = _build(name)
    x, starts = _inputs()
    y, _ = m(x, m.initial_state(B), starts)
    assert y.shape == (B, T, m.output_size)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", HEAVY)
def test_step_by_step_equals_whole(name):
    m = _build(name)
    x, starts = _inputs()
    with torch.no_grad():
        y_whole, s_whole = m(x, m.initial_state(B), starts)
        state = m.initial_state(B)
        ys = []
        for t in range(T):
            y_t, state = m(x[:, t : t + 1], state, starts[:, t : t + 1])
            ys.append(y_t)
        # Uneven chunks as a rollout buffer would cut them.
        s2 = m.initial_state(B)
        parts = []
        for a, e in [(0, 5), (5, 6), (6, 17), (17, T)]:
            y_p, s2 = m(x[:, a:e], s2, starts[:, a:e])
            parts.append(y_p)
    torch.testing.assert_close(torch.cat(ys, 1), y_whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(parts, 1), y_whole, atol=1e-5, rtol=1e-5)
    # The states agree too: continuing from either gives the same outputs.
    x2, _ = _inputs(seed=7, t=5)
    with torch.no_grad():
        ya, _ = m(x2, s_whole)
        yb, _ = m(x2, state)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", HEAVY)
def test_episode_start_resets_exactly(name):
    m = _build(name)
    x, _ = _inputs()
    t0 = 11
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[:, t0] = True
    with torch.no_grad():
        y, _ = m(x, m.initial_state(B), starts)
        y_fresh, _ = m(x[:, t0:], m.initial_state(B))
        # A dirty state with a start at the first step behaves like an empty one.
        _, dirty = m(x[:, :t0], m.initial_state(B))
        first = torch.zeros(B, T - t0, dtype=torch.bool)
        first[:, 0] = True
        y_dirty, _ = m(x[:, t0:], dirty, first)
        y_no_reset, _ = m(x[:, t0:], dirty)
    torch.testing.assert_close(y[:, t0:], y_fresh, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(y_dirty, y_fresh, atol=1e-6, rtol=1e-6)
    if name != "none":  # a memory that remembers must differ when not reset
        assert not torch.allclose(y_no_reset, y_fresh, atol=1e-4)


@pytest.mark.parametrize("name", HEAVY)
def test_gradients_reach_parameters(name):
    m = _build(name).train()
    if not any(p.requires_grad for p in m.parameters()):
        pytest.skip(f"{name} has no trainable parameters with its default config")
    x, starts = _inputs()
    y, _ = m(x, m.initial_state(B), starts)
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    for pname, p in m.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        if not pname.startswith(_OPTIONAL_INPUT_PARAMS.get(name, ())):
            assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("name", [n for n in NAMES if _REGISTRY[n].gradient_horizon is not None])
def test_declared_gradient_horizon_holds(name):
    """A memory that declares ``gradient_horizon`` h passes no gradient from step t's output to inputs before
    t - h (the trainer then replays those steps without autograd). Undeclared (None) means unbounded."""
    m = _build(name).train()
    h = m.gradient_horizon
    x, _ = _inputs()
    x.requires_grad_(True)
    y, _ = m(x, m.initial_state(B), torch.zeros(B, T, dtype=torch.bool))
    t = T - 1
    # weighted, not a plain sum: the sum of a layer-normed output (HCAM's) is constant, its gradient zero up to
    # rounding (exactly zero on some CPUs)
    (y[:, t] * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    assert x.grad[:, t - h :].abs().sum() > 0  # the step itself (and the horizon) does carry gradient
    assert torch.count_nonzero(x.grad[:, : t - h]) == 0


@pytest.mark.parametrize("name", HEAVY)
def test_state_moves_and_is_bounded(name):
    m = _build(name)
    x, starts = _inputs()
    with torch.no_grad():
        _, state = m(x, m.initial_state(B), starts)
    moved = state_to(state, "cpu")
    assert type(moved) is type(state)
    for a, b in zip(_leaves(state), _leaves(moved), strict=True):
        assert a.dtype == b.dtype and b.device.type == "cpu"
        assert torch.equal(a, b)
    x2, _ = _inputs(seed=3, t=4)
    with torch.no_grad():
        torch.testing.assert_close(m(x2, moved)[0], m(x2, state)[0], atol=0, rtol=0)
    if name == "full_attention":  # unbounded by design: grows by one step per step
        with torch.no_grad():
            _, longer = m(x, state)
        assert _nbytes(longer) > _nbytes(state)
    else:
        with torch.no_grad():
            _, longer = m(torch.cat([x, x], 1), state)
        assert _nbytes(longer) == _nbytes(state) == _nbytes(m.initial_state(B))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", HEAVY)
def test_state_moves_to_cuda(name):
    m = _build(name)
    x, starts = _inputs()
    with torch.no_grad():
        y_cpu, state = m(x, m.initial_state(B), starts)
        m_gpu = _build(name).to("cuda")
        gstate = state_to(state, "cuda")
        assert all(t.device.type == "cuda" for t in _leaves(gstate))
        x2, _ = _inputs(seed=3, t=4)
        y_gpu, gstate = m_gpu(x2.cuda(), gstate)
        y_ref, _ = m(x2, state)
        back = state_to(gstate, "cpu")
    torch.testing.assert_close(y_gpu.cpu(), y_ref, atol=1e-4, rtol=1e-4)
    assert all(t.device.type == "cpu" for t in _leaves(back))


@pytest.mark.parametrize("name", HEAVY)
def test_bad_input_is_rejected(name):
    m = _build(name)
    state = m.initial_state(B)
    x, starts = _inputs()
    with pytest.raises(ValueError, match=str(F_IN + 1)):
        m(torch.zeros(B, 2, F_IN + 1), state)
    with pytest.raises(ValueError, match="batch"):
        m(torch.zeros(B + 2, 2, F_IN), state)
    bad = x.clone()
    bad[1, 4, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(bad, state, starts)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        m(x, state, torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="0"):
        m.initial_state(0)


@pytest.mark.parametrize("name", HEAVY)
def test_seeded_construction_is_deterministic(name):
    x, starts = _inputs()
    m1, m2 = _build(name, seed=5), _build(name, seed=5)
    with torch.no_grad():
        a, _ = m1(x, m1.initial_state(B), starts)
        b, _ = m2(x, m2.initial_state(B), starts)
    assert torch.equal(a, b)
