"""The VLN memory experiment (issue 13 items 2-3): the re-encoding baseline against its oracle, per-row masks of
the full-sequence Janus passes, the seed aggregation, and a quick end-to-end run."""

import json
import math

import pytest
import torch

from chronotope.memory.base import make_memory
from chronotope.memory.janus import JanusMemory, retention_mask, state_nbytes


def _double(state):
    return {k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}


@pytest.mark.parametrize("use_spatial", [True, False])
def test_reencode_equals_a_full_pass_over_the_last_k_frames(use_spatial):
    """Oracle: the output at step t is JanusMemory.reference_forward (no eviction) over frames
    [max(start, t-K+1), t] of the current episode; an episode start empties the window."""
    torch.manual_seed(0)
    k, f = 4, 10
    m = make_memory("janus_reencode", f, reencode_frames=k, use_spatial=use_spatial, n_init=1, n_window=3).double()
    x = torch.randn(2, 11, f, dtype=torch.float64)
    starts = torch.zeros(2, 11, dtype=torch.bool)
    starts[1, 6] = True  # row 1 starts a new episode at step 6
    y, state = m(x, _double(m.initial_state(2)), starts)
    for b in range(2):
        ep0 = 6 if (b == 1) else 0
        for t in range(11):
            s0 = ep0 if t >= ep0 else 0
            lo = max(s0, t - k + 1)
            ref, _ = m.reference_forward(x[b : b + 1, lo : t + 1], evict=False)
            torch.testing.assert_close(y[b, t], ref[0, -1], atol=1e-10, rtol=0)
    assert state["valid"].all() and state["window"].shape == (2, k, f)
    torch.testing.assert_close(state["window"][0], x[0, -k:])


def test_reencode_state_is_k_frames_and_janus_state_is_constant_in_length():
    f = 16
    for k in (4, 8):
        m = make_memory("janus_reencode", f, reencode_frames=k)
        assert state_nbytes(m.initial_state(1)) == k * f * 4 + k  # float32 frames + bool validity
    m = make_memory("janus", f, n_init=2, n_window=3)
    sizes = set()
    state = m.initial_state(1)
    with torch.no_grad():
        for _ in range(9):
            _, state = m(torch.randn(1, 1, f), state)
            sizes.add(state_nbytes(state))
    assert len(sizes) == 1
    with pytest.raises(ValueError, match="reencode_frames.*0"):
        make_memory("janus_reencode", f, reencode_frames=0)


def test_full_passes_accept_one_mask_per_row():
    """[B, T, T] masks give, row by row, what the [T, T] mask of that row gives (spatial encoder and policy)."""
    torch.manual_seed(1)
    m = JanusMemory(8, n_init=1, n_window=2).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    masks = torch.stack([retention_mask(5, 0, None), retention_mask(5, 1, 2), retention_mask(5, 0, 1)])
    tokens = m.spatial_encoder.tokenizer(x)
    batched = m.spatial_encoder.forward_full(tokens, masks)
    vis = m.semantic_encoder(x)
    pol = m.policy.forward_full(vis, None, None, masks)
    for b in range(3):
        torch.testing.assert_close(batched[b], m.spatial_encoder.forward_full(tokens[b : b + 1], masks[b])[0])
        torch.testing.assert_close(pol[b], m.policy.forward_full(vis[b : b + 1], None, None, masks[b])[0])
    assert not torch.allclose(batched[0], batched[1])  # the masks matter


def test_aggregate_is_the_t_interval_over_seed_means():
    from chronotope.scripts.experiments.vln_memory import aggregate

    runs = [
        {"variant": "octree", "seed": s, "metrics": {"success": v}, "train_cpu_s": 1.0, "history": [{"loss": 0.5}]}
        for s, v in enumerate([0.1, 0.2, 0.6])
    ]
    a = aggregate(runs)["octree"]["success"]
    sd = math.sqrt(((0.1 - 0.3) ** 2 + (0.2 - 0.3) ** 2 + (0.6 - 0.3) ** 2) / 2)
    assert a["mean"] == pytest.approx(0.3)
    assert a["ci95"] == pytest.approx(4.302652729911275 * sd / math.sqrt(3))  # t(0.975, 2)


def test_unknown_variant_is_named():
    from chronotope.scripts.experiments.vln_memory import Config, run

    with pytest.raises(ValueError, match="'octopus'"):
        run(Config(quick=True, variants=("octopus",)))


def test_quick_run_of_one_variant(tmp_path):
    """The cheapest end-to-end path (one GRU variant, no cost table): train, evaluate, aggregate, write."""
    from chronotope.scripts.experiments.vln_memory import Config, run

    res = run(Config(quick=True, variants=("no_map",), out=tmp_path, images=tmp_path))
    assert res["aggregate"]["no_map"]["success"]["per_seed"] == [res["runs"][0]["metrics"]["success"]]
    assert res["step_cost"] == [] and (tmp_path / "vln_memory_mem4nav.png").is_file()
    assert 0.0 <= res["forward_then_stop"]["success"] <= 1.0


@pytest.mark.slow
def test_quick_run_writes_tables_plots_and_reuses_finished_runs(tmp_path):
    from chronotope.scripts.experiments.vln_memory import Config, run

    cfg = Config(quick=True, variants=("topology", "janus_semantic"), out=tmp_path / "out", images=tmp_path / "img")
    res = run(cfg)
    assert set(res["aggregate"]) == {"topology", "janus_semantic"}
    for name in ("topology", "janus_semantic"):
        a = res["aggregate"][name]
        assert a["seeds"] == [0] and 0.0 <= a["success"]["mean"] <= 1.0 and 0.0 < a["ndtw"]["mean"] <= 1.0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["variants"]["topology"]["wrappers"] == "depth,topology"
    assert {r["core"] for r in saved["step_cost"]} >= {"janus_dual", "janus_semantic", "janus_reencode K=4"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Mem4Nav ablation" in md and "JanusVLN" in md
    for group in ("mem4nav", "janus"):
        assert (tmp_path / "img" / f"vln_memory_{group}.png").stat().st_size > 0
    done = tmp_path / "out" / "runs" / "topology-s0" / "result.json"
    stamp = done.stat().st_mtime_ns
    run(Config(quick=True, variants=("topology",), out=tmp_path / "out", images=tmp_path / "img"))
    assert done.stat().st_mtime_ns == stamp  # reused, not retrained
