"""JanusVLN dual implicit memory against the oracles of ``specs/janus.md`` and the memory interface."""

from __future__ import annotations

import copy

import pytest
import torch

from chronotope.memory import make_memory, state_to
from chronotope.memory.janus import JanusMemory, retained_frames, retention_mask, state_nbytes
from chronotope.memory.janus import layers as janus_mod  # every attention goes through layers._attention
from chronotope.scripts.bench.janus import make_step_fn, synthetic_state

F_IN = 10
N_INIT, N_WIN = 2, 3
CAP = N_INIT + N_WIN
P, M = 16, 4  # grid 4: 16 patch tokens, 4 after the 2x2 merge
SMALL = dict(
    grid=4,
    encoder_width=16,
    encoder_heads=1,
    spatial_pairs=2,
    semantic_layers=1,
    policy_width=32,
    policy_heads=2,
    policy_layers=2,
    n_init=N_INIT,
    n_window=N_WIN,
)
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: a second intra-op thread only adds synchronisation, which on a loaded machine costs
    # milliseconds per op (measured: ~16 ms per Linear with 2 threads vs ~0.07 ms with 1).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(seed: int = 0, **kw) -> JanusMemory:
    torch.manual_seed(seed)
    return JanusMemory(F_IN, **{**SMALL, **kw}).eval()


def _x(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, F_IN, generator=torch.Generator().manual_seed(seed))


def _instr(b: int, length: int, size: int = 8, seed: int = 2) -> torch.Tensor:
    return torch.randn(b, length, size, generator=torch.Generator().manual_seed(seed))


def _run_capturing_spatial(m: JanusMemory, x: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Runs ``forward`` and returns ``y``, the current-frame spatial tokens of every step ``[B, T, P, D]``, state."""
    seen: list[torch.Tensor] = []
    handle = m.spatial_encoder.register_forward_hook(lambda mod, args, out: seen.append(out[0]))
    try:
        y, state = m(x, m.initial_state(x.shape[0]), **kw)
    finally:
        handle.remove()
    return y, torch.stack(seen, dim=1), state


# ---------------------------------------------------------------------------------------------- oracles


def test_retention_mask_by_hand():
    # T = 8, n_init = 2, n_window = 3: frame 7 reads 0, 1 (sinks), 4, 5, 6 (window) and itself.
    mask = retention_mask(8, N_INIT, N_WIN)
    assert mask[7].nonzero().flatten().tolist() == [0, 1, 4, 5, 6, 7]
    assert mask[5].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]  # cache full, nothing evicted yet
    assert mask[6].nonzero().flatten().tolist() == [0, 1, 3, 4, 5, 6]  # frame 2 is the first evicted
    assert not mask.triu(1).any()
    # Up to C + 1 frames nothing is evicted: the retention mask is the plain frame-causal mask.
    assert torch.equal(retention_mask(CAP + 1, N_INIT, N_WIN), retention_mask(CAP + 1, 0, None))
    assert retained_frames(9, N_INIT, N_WIN) == [0, 1, 6, 7, 8]


@pytest.mark.parametrize("with_instruction", [False, True])
def test_oracle1_cached_equals_full_causal_pass_before_eviction(with_instruction):
    kw = dict(instruction_size=8) if with_instruction else {}
    m = _model(**kw)
    x = _x(2, CAP + 1)  # the last frame still reads every earlier frame
    fwd_kw, ref_kw = {}, {}
    if with_instruction:
        ins, mask = _instr(2, 3), torch.tensor([[True, True, True], [True, False, True]])
        fwd_kw = ref_kw = dict(instruction=ins, instruction_mask=mask)
    with torch.no_grad():
        y, spatial, _ = _run_capturing_spatial(m, x, **fwd_kw)
        y_ref, spatial_ref = m.reference_forward(x, evict=False, **ref_kw)
        # The full pass of the spatial encoder alone, with its default frame-causal mask, agrees too.
        spatial_enc = m.spatial_encoder.forward_full(m.spatial_encoder.tokenizer(x))
    assert spatial.shape == (2, CAP + 1, P, SMALL["encoder_width"])
    torch.testing.assert_close(spatial, spatial_ref, **TOL)
    torch.testing.assert_close(spatial, spatial_enc, **TOL)
    torch.testing.assert_close(y, y_ref, **TOL)


def test_oracle2_retention_indices_and_constant_memory():
    m = _model()
    b = 2
    state = m.initial_state(b)
    nbytes0 = state_nbytes(state)
    x = _x(b, 3 * CAP + 2)
    for t in range(x.shape[1]):
        starts = torch.tensor([[False], [t == 4]])  # row 1 starts a new episode at step 4
        with torch.no_grad():
            _, state = m(x[:, t : t + 1], state, starts)
        for row, start in ((0, 0), (1, 4 if t >= 4 else 0)):
            n = t + 1 - start  # frames of the current episode of this row
            expected = sorted({f for f in range(n) if f < N_INIT or f >= n - N_WIN})
            assert m.cache_frames(state)[row] == expected, (t, row)
            for name, lengths in m.cache_lengths(state).items():
                assert lengths[row].tolist() == [min(n, CAP)] * lengths.shape[1], (name, t, row)
        assert state_nbytes(state) == nbytes0  # constant from the first step, so constant for T >= C
        for key in ("spatial_k", "spatial_v", "semantic_k", "semantic_v"):
            assert state[key].shape[1] == CAP
    assert m.cache_frames(state)[0] == [0, 1, 14, 15, 16]  # T = 17 by hand


def test_oracle3_output_after_eviction_equals_masked_full_attention():
    m = _model(instruction_size=8)
    t = 3 * CAP + 2
    x, ins = _x(2, t), _instr(2, 4)
    with torch.no_grad():
        y, spatial, _ = _run_capturing_spatial(m, x, instruction=ins)
        y_ref, spatial_ref = m.reference_forward(x, instruction=ins, evict=True)
        y_all, spatial_all = m.reference_forward(x, instruction=ins, evict=False)
    torch.testing.assert_close(spatial, spatial_ref, **TOL)
    torch.testing.assert_close(y, y_ref, **TOL)
    # Eviction is real: once frames have been dropped, attending to all of them gives something else.
    torch.testing.assert_close(y[:, : CAP + 1], y_all[:, : CAP + 1], **TOL)
    assert not torch.allclose(y[:, CAP + 1 :], y_all[:, CAP + 1 :], atol=1e-3)
    assert not torch.allclose(spatial[:, CAP + 1 :], spatial_all[:, CAP + 1 :], atol=1e-3)


def test_oracle4_keys_per_query_constant_once_full(monkeypatch):
    m = _model(instruction_size=8)
    calls: list[tuple[int, int, int]] = []
    orig = janus_mod._attention

    def recording(q, k, v, mask):
        nk = k.shape[-2]
        if mask is None:
            readable = torch.full(q.shape[:-1], nk)
        elif mask.dtype == torch.bool:
            readable = mask.expand(*q.shape[:-1], nk).sum(-1)
        else:
            readable = torch.isfinite(mask).expand(*q.shape[:-1], nk).sum(-1)
        calls.append((nk, int(readable.min()), int(readable.max())))
        return orig(q, k, v, mask)

    monkeypatch.setattr(janus_mod, "_attention", recording)
    state = m.set_instruction(m.initial_state(1), _instr(1, 5))
    x = _x(1, 3 * CAP)
    per_step = []
    for t in range(x.shape[1]):
        predicted = m.attended_keys(state)
        calls.clear()
        with torch.no_grad():
            _, state = m(x[:, t : t + 1], state)
        per_step.append(list(calls))
        held = min(t, CAP)
        # calls per step: semantic encoder (1 layer), spatial (frame, global) x 2, policy x 2
        kinds = [c for c in calls if c[0] != P]  # per-frame attention reads the P tokens of its frame
        spatial_calls, policy_calls = kinds[:2], kinds[2:]
        assert [c[1:] for c in spatial_calls] == [((held + 1) * P,) * 2] * 2
        assert [c[1:] for c in policy_calls] == [((5 + held * M + M + 1),) * 2] * 2
        assert int(predicted["spatial"][0]) == (held + 1) * P
        assert int(predicted["semantic"][0]) == 5 + held * M + M + 1
    # The attended tensors never change size, and the readable keys stop growing once the cache is full.
    assert all([c[0] for c in s] == [c[0] for c in per_step[0]] for s in per_step)
    assert all(s == per_step[CAP] for s in per_step[CAP:])
    assert per_step[CAP - 1] != per_step[CAP]


def test_oracle5_lambda_zero_is_the_semantic_only_model():
    full = _model(fusion_weight=0.0)
    sem_only = JanusMemory(F_IN, **{**SMALL, "use_spatial": False}).eval()
    result = sem_only.load_state_dict(full.state_dict(), strict=False)
    assert not result.missing_keys  # every semantic-only weight comes from the lambda = 0 model
    assert all(k.startswith(("spatial_encoder.", "fusion.")) for k in result.unexpected_keys)
    assert "spatial_k" not in sem_only.initial_state(1)
    x = _x(2, 2 * CAP)
    starts = torch.zeros(2, 2 * CAP, dtype=torch.bool)
    starts[1, 3] = True
    with torch.no_grad():
        y0, _ = full(x, full.initial_state(2), starts)
        ys, _ = sem_only(x, sem_only.initial_state(2), starts)
        assert torch.equal(y0, ys)
        # with lambda = 0 the spatial weights cannot matter ...
        for p in full.spatial_encoder.parameters():
            p.add_(torch.randn_like(p))
        assert torch.equal(full(x, full.initial_state(2), starts)[0], ys)
        # ... and with lambda != 0 they do (so the comparison above can fail).
        full.cfg.fusion_weight = 0.2
        assert not torch.allclose(full(x, full.initial_state(2), starts)[0], ys, atol=1e-4)


def test_oracle5_encoders_are_frozen_and_gradients_flow():
    m = _model().train()
    assert all(not enc.training for enc in m.encoders())  # frozen encoders stay in eval mode
    assert m.policy.training and m.fusion.training
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in m.named_parameters() if n.startswith(("spatial_encoder.", "semantic_encoder."))}
    x = _x(2, CAP + 3).requires_grad_(True)
    starts = torch.zeros(2, CAP + 3, dtype=torch.bool)
    y, state = m(x, m.initial_state(2), starts)
    assert not any(v.requires_grad for v in state.values())  # the returned memory keeps no graph
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    for name, p in m.named_parameters():
        if name in frozen:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0  # gradients pass through the frozen encoders to the input
    # The memory carries information: the last output depends on the first frame (a sink frame).
    x2 = _x(1, 3 * CAP).requires_grad_(True)
    (m(x2, m.initial_state(1))[0][:, -1] * torch.linspace(-1, 1, 32)).sum().backward()
    assert x2.grad[:, 0].abs().sum() > 0


def test_evicted_frames_are_gone():
    # Deeper cached keys mix in what their frame read, so an evicted frame can still echo through a
    # multi-layer model; with one semantic-only policy layer every cached key is its own frame's alone.
    m = _model(use_spatial=False, policy_layers=1)
    x = _x(1, 3 * CAP).requires_grad_(True)
    (m(x, m.initial_state(1))[0][:, -1] * torch.linspace(-1, 1, 32)).sum().backward()
    held = retained_frames(3 * CAP - 1, N_INIT, N_WIN) + [3 * CAP - 1]
    assert all(x.grad[0, f].abs().sum() > 0 for f in held)
    assert all(x.grad[0, f].abs().sum() == 0 for f in range(3 * CAP) if f not in held)


def test_oracle5_episode_reset_empties_the_caches():
    m = _model()
    with torch.no_grad():
        _, state = m(_x(2, CAP + 2), m.initial_state(2))
    cleared = m.reset_rows(state, torch.tensor([True, False]))
    assert m.cache_frames(cleared) == [[], m.cache_frames(state)[1]]
    assert all(int(v[0].sum()) == 0 for v in m.cache_lengths(cleared).values())
    assert int(cleared["count"][0]) == 0
    for key in ("spatial_k", "spatial_v", "semantic_k", "semantic_v"):
        assert not cleared[key][0].any()
        assert torch.equal(cleared[key][1], state[key][1])
    # Through forward: a start at step t0 gives exactly what a fresh episode gives, other rows untouched.
    x = _x(2, 2 * CAP + 1, seed=5)
    t0 = CAP + 1
    starts = torch.zeros(2, x.shape[1], dtype=torch.bool)
    starts[0, t0] = True
    with torch.no_grad():
        y, st = m(x, m.initial_state(2), starts)
        y_fresh, _ = m(x[:1, t0:], m.initial_state(1))
        y_row1, _ = m(x[1:], m.initial_state(1))
    torch.testing.assert_close(y[:1, t0:], y_fresh, **TOL)
    torch.testing.assert_close(y[1:], y_row1, **TOL)
    assert m.cache_frames(st)[0] == retained_frames(x.shape[1] - t0, N_INIT, N_WIN)


# ---------------------------------------------------------------------------------------------- interface


def test_registry_default_config():
    m = make_memory("janus", input_size=7)
    assert isinstance(m, JanusMemory) and m.output_size == 64
    assert (m.cfg.n_init, m.cfg.n_window, m.cfg.fusion_weight) == (8, 48, 0.2)  # paper values
    y, state = m(_x(2, 3)[..., :7], m.initial_state(2))
    assert y.shape == (2, 3, 64) and torch.isfinite(y).all()


def test_step_by_step_equals_whole_with_resets_and_instructions():
    m = _model(instruction_size=8)
    b, t = 3, 3 * CAP
    x = _x(b, t)
    starts = torch.zeros(b, t, dtype=torch.bool)
    starts[0, 4] = starts[2, 0] = starts[2, 9] = True
    ins = _instr(b, 3)[:, None].repeat(1, t, 1, 1)  # per step: the instruction changes with the episode
    ins[0, 4:] = _instr(1, 3, seed=9)
    mask = torch.ones(b, t, 3, dtype=torch.bool)
    mask[1, :, 2] = False
    with torch.no_grad():
        y_whole, s_whole = m(x, m.initial_state(b), starts, instruction=ins, instruction_mask=mask)
        state, ys = m.initial_state(b), []
        for i in range(t):
            sl = slice(i, i + 1)
            y_i, state = m(x[:, sl], state, starts[:, sl], instruction=ins[:, sl], instruction_mask=mask[:, sl])
            ys.append(y_i)
    torch.testing.assert_close(torch.cat(ys, 1), y_whole, **TOL)
    for k in s_whole:
        torch.testing.assert_close(state[k], s_whole[k], **TOL)


def test_float64_step_by_step_is_exact_up_to_rounding():
    m = _model().double()
    x = _x(2, 2 * CAP).double()
    with torch.no_grad():
        y, _ = m(x, m.initial_state(2))
        ys, st = [], m.initial_state(2)
        for i in range(x.shape[1]):
            y_i, st = m(x[:, i : i + 1], st)
            ys.append(y_i)
        y_ref, _ = m.reference_forward(x)
    assert st["spatial_k"].dtype == torch.float64
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(y_ref, y, atol=1e-12, rtol=1e-12)


def test_instruction_is_read_and_padding_is_ignored():
    m = _model(instruction_size=8, max_instruction_tokens=6)
    x = _x(2, CAP)
    ins = _instr(2, 4)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    with torch.no_grad():
        y_ins, s_ins = m(x, m.initial_state(2), instruction=ins, instruction_mask=mask)
        y_none, _ = m(x, m.initial_state(2))
        junk = ins.clone()
        junk[0, 2:] = 100.0  # masked tokens: their values must not matter
        y_junk, _ = m(x, m.initial_state(2), instruction=junk, instruction_mask=mask)
        y_short, _ = m(x[:1], m.initial_state(1), instruction=ins[:1, :2])  # same as unpadded
        # The state remembers the instruction for the next chunk, and an episode start keeps it.
        x2 = _x(2, 3, seed=4)
        first = torch.ones(2, 3, dtype=torch.bool)
        y_next, _ = m(x2, s_ins, first)
        y_next_explicit, _ = m(x2, m.initial_state(2), first, instruction=ins, instruction_mask=mask)
    assert not torch.allclose(y_ins, y_none, atol=1e-4)
    torch.testing.assert_close(y_junk, y_ins, **TOL)
    torch.testing.assert_close(y_short, y_ins[:1], **TOL)
    torch.testing.assert_close(y_next, y_next_explicit, **TOL)
    # set_instruction changes only the chosen rows.
    state = m.initial_state(2)
    state2 = m.set_instruction(state, ins, mask, rows=torch.tensor([False, True]))
    assert not state2["instruction_mask"][0].any() and state2["instruction_mask"][1, :4].all()
    assert torch.equal(state2["instruction"][1, :4], ins[1])


def test_state_moves_between_devices():
    m = _model()
    with torch.no_grad():
        _, state = m(_x(2, CAP + 1), m.initial_state(2))
    meta = state_to(state, "meta")
    assert set(meta) == set(state)
    assert all(v.device.type == "meta" and v.shape == state[k].shape for k, v in meta.items())
    back = state_to(state, torch.device("cpu"))
    assert all(torch.equal(back[k], state[k]) for k in state)
    moved = copy.deepcopy(m).to("meta")
    assert moved.spatial_encoder.rope_cos.device.type == "meta"  # buffers move with the module
    assert m.initial_state(1, "meta")["frames"].device.type == "meta"


def test_synthetic_state_and_step_fn_for_benchmarks():
    m = _model()
    with torch.no_grad():
        _, real = m(_x(2, CAP + 4), m.initial_state(2))
    for length in (0, 3, CAP, CAP + 4, 10_000):
        st = synthetic_state(m, 2, length)
        assert m.cache_frames(st) == [retained_frames(length, N_INIT, N_WIN)] * 2
        assert int(st["count"][0]) == length
        assert state_nbytes(st) == state_nbytes(m.initial_state(2))
    assert torch.equal(synthetic_state(m, 2, CAP + 4)["frames"], real["frames"])  # same ring layout
    step, st = make_step_fn(m, 2, 10_000)
    y = step()
    assert y.shape == (2, 1, m.output_size) and torch.equal(step(), y)  # always the same step


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_rejected():
    m = _model()
    state = m.initial_state(2)
    with pytest.raises(ValueError, match=str(F_IN + 1)):
        m(torch.zeros(2, 3, F_IN + 1), state)
    with pytest.raises(ValueError, match="batch size 4"):
        m(torch.zeros(4, 3, F_IN), state)
    bad = _x(2, 3)
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(bad, state)
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        m(_x(2, 3), state, torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="frames"):
        m(_x(2, 3), {k: v for k, v in state.items() if k != "frames"})
    with pytest.raises(ValueError, match="instruction_size=0"):
        m(_x(2, 3), state, instruction=_instr(2, 2))
    with pytest.raises(ValueError, match="0"):
        m.initial_state(0)


def test_bad_instruction_is_rejected():
    m = _model(instruction_size=8, max_instruction_tokens=4)
    state = m.initial_state(2)
    with pytest.raises(ValueError, match="5 tokens"):
        m(_x(2, 3), state, instruction=_instr(2, 5))
    with pytest.raises(ValueError, match="feature size 7"):
        m(_x(2, 3), state, instruction=_instr(2, 2, size=7))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        m(_x(2, 3), state, instruction=_instr(2, 2), instruction_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="non-finite"):
        m(_x(2, 3), state, instruction=_instr(2, 2) * float("inf"))
    with pytest.raises(ValueError, match="without instruction"):
        m(_x(2, 3), state, instruction_mask=torch.ones(2, 2, dtype=torch.bool))


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(grid=3), "grid must be even.*3"),
        (dict(n_window=0), "n_window.*0"),
        (dict(n_init=-1), "n_init.*-1"),
        (dict(encoder_width=24, encoder_heads=4), "encoder_width=24"),
        (dict(policy_width=30, policy_heads=4), "policy_width=30"),
        (dict(fusion_weight=float("nan")), "nan"),
        (dict(foo=1), "foo"),
    ],
)
def test_bad_config_is_rejected(override, match):
    with pytest.raises(ValueError, match=match):
        JanusMemory(F_IN, **{**SMALL, **override})
    with pytest.raises(ValueError, match="input_size"):
        JanusMemory(0)


@pytest.mark.slow
def test_recall_through_the_sink_frame():
    """Supervised sanity check: a cue in frame 0 is recalled after 11 distractor frames (window of 4).

    Only the sink frame keeps the cue; without it (``n_init=0``) the cue is evicted and no path through
    the one-hop caches reaches it, so accuracy stays at chance. Measured here: 1.00 vs 0.28 (~1 min each).
    """
    f_in, k, length = 8, 4, 12

    def batch(b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = 0.3 * torch.randn(b, length, f_in, generator=g)
        c = torch.randint(0, k, (b,), generator=g)
        x[torch.arange(b), 0, c] += 2.0
        x[:, 0, k] += 2.0  # marks the cue frame
        return x, c

    def train(n_init: int) -> float:
        torch.manual_seed(0)
        m = JanusMemory(
            f_in,
            grid=2,
            encoder_width=16,
            encoder_heads=1,
            spatial_pairs=1,
            semantic_layers=1,
            policy_width=32,
            policy_heads=2,
            policy_layers=1,
            n_init=n_init,
            n_window=4,
        )
        head = torch.nn.Linear(32, k)
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad] + list(head.parameters()), lr=3e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(250):
            x, c = batch(64, g)
            loss = torch.nn.functional.cross_entropy(head(m(x, m.initial_state(64))[0][:, -1]), c)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            x, c = batch(512, torch.Generator().manual_seed(999))
            return (head(m(x, m.initial_state(512))[0][:, -1]).argmax(-1) == c).float().mean().item()

    assert train(n_init=1) > 0.9
    assert train(n_init=0) < 0.45


def test_reencode_baseline_inherits_nothing_of_the_cache():
    """The re-encoding baseline shares the model (JanusModel), not JanusMemory's cache methods: every method it has
    is its own or one written for any state; the cache-only ones say why they do not apply."""
    from chronotope.memory.janus import JanusModel, JanusReencodeMemory
    from chronotope.memory.janus.memory import JanusMemory as CachedMemory

    assert CachedMemory is JanusMemory and issubclass(JanusMemory, JanusModel)
    assert issubclass(JanusReencodeMemory, JanusModel) and not issubclass(JanusReencodeMemory, JanusMemory)
    own = set(vars(JanusReencodeMemory))
    for name in set(vars(JanusMemory)) - set(vars(JanusModel)):  # what the cached memory adds to the model
        if callable(getattr(JanusMemory, name)) and not name.startswith("__"):
            assert name in own or not hasattr(JanusReencodeMemory, name), name
    # the shared model's methods run on the baseline
    m = make_memory("janus_reencode", F_IN, reencode_frames=3, **SMALL).eval()
    x = _x(2, 4)
    with torch.no_grad():
        y, state = m(x, m.initial_state(2))
        y_ref, _ = m.reference_forward(x[:, 1:], evict=False)  # the last 3 frames, frame-causal
    torch.testing.assert_close(y[:, -1], y_ref[:, -1], **TOL)
    frozen = [p for e in m.encoders() for p in e.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    # the cache-only methods are its own and raise NotImplementedError (tests/test_run_safety.py checks the message)
    assert {"set_instruction", "cache_lengths", "attended_keys"} <= own
    with pytest.raises(NotImplementedError, match="janus_reencode"):
        m.cache_lengths(state)
    for name in ("_slot", "_step", "_check_state"):  # cache bookkeeping: absent, not inherited and broken
        assert not hasattr(m, name), name
