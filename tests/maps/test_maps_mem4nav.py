import numpy as np
import pytest
import torch

from chronotope.maps.mem4nav import (
    LongTermMemory,
    Mem4NavConfig,
    Mem4NavFusion,
    Mem4NavMemory,
    ReversibleTransformer,
    ShortTermMemory,
)
from chronotope.maps.octree import OctreeConfig

SMALL = Mem4NavConfig(dim=32, blocks=3, heads=2, chunks=2, stm_capacity=4)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_reversible_inverse_is_exact(dtype, tol):
    torch.manual_seed(0)
    r = ReversibleTransformer(384, blocks=6, heads=8, mlp_ratio=4, chunks=4).to(dtype).eval()
    x = torch.randn(8, 768, dtype=dtype)
    with torch.no_grad():
        y = r(x)
        assert (y - x).abs().max() > 0.1  # R is not the identity
        assert (r.inverse(y) - x).abs().max() < tol
        assert (r(r.inverse(x)) - x).abs().max() < tol


def test_ltm_round_trip_and_chaining():
    torch.manual_seed(1)
    ltm = LongTermMemory(SMALL).eval()
    v = torch.randn(5, 32)
    keys = [("leaf", 10), ("leaf", 11), ("node", 10), ("node", 3), ("leaf", 99)]
    tokens = ltm.write(keys, v)
    for j, k in enumerate(keys):
        with torch.no_grad():
            r = ltm.read_token(tokens[j])
        assert r.keys[0] == k and r.distances[0] == 0
        assert (r.v_hat[0] - v[j]).abs().max() < 1e-5
        assert r.theta_hat[0].abs().max() < 1e-5  # first write: theta_prev = 0
        assert r.positions.shape == (3, 3) and r.descriptors.shape == (3, 32)
    # a second write under the same key chains the first half of the previous token (not zero)
    v2 = torch.randn(1, 32)
    new = ltm.write([keys[0]], v2)
    with torch.no_grad():
        x = ltm.R.inverse(new)
    assert (x[0, :32] - tokens[0, :32]).abs().max() < 1e-5
    assert (x[0, 32:] - v2[0]).abs().max() < 1e-5
    assert len(ltm) == 5
    # leaf and node ids live in separate key spaces
    assert not torch.equal(ltm.token(("leaf", 10)), ltm.token(("node", 10)))
    with pytest.raises(ValueError, match="distinct"):
        ltm.write([("leaf", 1), ("leaf", 1)], torch.randn(2, 32))


def test_encode_query_finds_the_written_embedding():
    torch.manual_seed(2)
    ltm = LongTermMemory(Mem4NavConfig(dim=32, blocks=2, heads=2, chunks=2, query_mode="encode")).eval()
    v = torch.randn(6, 32)
    ltm.write([("leaf", i) for i in range(6)], v)
    with torch.no_grad():
        r = ltm.read(v[4], np.zeros(3))
    assert r.keys[0] == ("leaf", 4)
    assert (r.v_hat[0] - v[4]).abs().max() < 1e-5


def test_cycle_loss_trains_pi_v():
    torch.manual_seed(3)
    ltm = LongTermMemory(SMALL)
    opt = torch.optim.Adam(ltm.parameters(), lr=2e-2)
    theta, v = torch.randn(64, 32), torch.randn(64, 32)
    first = ltm.cycle_loss(theta, v).item()
    for _ in range(40):
        opt.zero_grad()
        loss = ltm.cycle_loss(theta, v)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def _stm_score(freq, tau, t, lam=0.5):
    return lam * freq - (1 - lam) * (t - tau)


def test_stm_capacity_eviction_and_refresh():
    stm = ShortTermMemory(capacity=3, dim=4, lam=0.5)
    e = np.eye(4)
    stm.insert("a", 1, np.zeros(3), e[0], t=0)
    stm.insert("b", 2, np.zeros(3), e[1], t=1)
    stm.insert("c", 3, np.zeros(3), e[2], t=2)
    for t in (3, 4, 5):  # "a" becomes frequent
        stm.insert("a", 1, np.ones(3), e[0], t=t)
    assert len(stm) == 3 and stm.freq[stm._slot_of["a"]] == 4 and stm.tau[stm._slot_of["a"]] == 5
    np.testing.assert_array_equal(stm.p_rel[stm._slot_of["a"]], np.ones(3))
    # hand-computed: a: 0.5*4 - 0.5*(6-5) = 1.5, b: 0.5 - 0.5*5 = -2.0, c: 0.5 - 0.5*4 = -1.5 -> evict b
    scores = {k: _stm_score(stm.freq[s], stm.tau[s], 6) for k, s in stm._slot_of.items()}
    assert scores == {"a": 1.5, "b": -2.0, "c": -1.5}
    assert stm.insert("d", 4, np.zeros(3), e[3], t=6) == "b"
    assert len(stm) == 3 and set(stm._slot_of) == {"a", "c", "d"}
    rng = np.random.default_rng(0)
    for t in range(7, 60):
        stm.insert(int(rng.integers(0, 10)), 0, np.zeros(3), rng.normal(size=4), t=t)
        assert len(stm) <= 3


def test_stm_retrieval_filters_by_eps_and_sorts_by_cosine():
    stm = ShortTermMemory(capacity=8, dim=3, eps=3.0, top_k=3)
    q = np.array([1.0, 0.0, 0.0])
    vecs = {"near_best": [1, 0.1, 0], "near_mid": [1, 1, 0], "near_low": [0, 1, 0], "near_neg": [-1, 0, 0],
            "far_best": [1, 0, 0]}  # fmt: skip
    pos = {"far_best": [10.0, 0, 0]}
    for t, (k, v) in enumerate(vecs.items()):
        stm.insert(k, 0, np.array(pos.get(k, [1.0, 1.0, 0.0])), np.array(v, float), t)
    r = stm.retrieve(q, np.zeros(3))
    assert r.keys == ["near_best", "near_mid", "near_low"]
    assert (np.diff(r.similarities.numpy()) <= 0).all()
    assert (np.linalg.norm(r.p_rel, axis=1) <= 3.0).all()
    assert stm.retrieve(q, np.array([50.0, 0, 0])).keys == []


def test_gate_uses_stm_exactly_when_max_cosine_reaches_tau():
    torch.manual_seed(4)
    cfg = Mem4NavConfig(dim=4, blocks=1, heads=1, chunks=1, gate_tau=0.7, stm_eps=3.0)
    mem = Mem4NavMemory(cfg, OctreeConfig(origin=(-10, -10, -10), size=20.0, depth=6))
    mem.observe(torch.tensor([1.0, 0, 0, 0]), np.zeros(3))
    for c in (0.3, 0.69, 0.7, 0.71, 0.95):
        q = torch.tensor([c, float(np.sqrt(1 - c * c)), 0, 0])
        sim = float(mem.stm.retrieve(q, np.zeros(3)).similarities.max())
        assert mem.retrieve(q, np.zeros(3)).source == ("stm" if sim >= 0.7 else "ltm")
        # the boundary itself: tau equal to the best similarity passes, the next float up does not
        mem.cfg.gate_tau = sim
        assert mem.retrieve(q, np.zeros(3)).source == "stm"
        mem.cfg.gate_tau = float(np.nextafter(np.float32(sim), np.float32(2.0)))
        assert mem.retrieve(q, np.zeros(3)).source == "ltm"
        mem.cfg.gate_tau = 0.7
    # a matching embedding but far away (outside eps): LTM fallback
    assert mem.retrieve(torch.tensor([1.0, 0, 0, 0]), np.array([5.0, 0, 0])).source == "ltm"
    feat = mem.feature(torch.tensor([1.0, 0, 0, 0]), np.zeros(3))
    assert feat.shape == (6,) and feat[4] == 1.0 and feat[5] == 0.0
    np.testing.assert_allclose(feat[:4], [1, 0, 0, 0])


def test_observe_writes_leaf_tokens_node_tokens_and_stm():
    torch.manual_seed(5)
    mem = Mem4NavMemory(SMALL, OctreeConfig(origin=(-10, -10, -10), size=20.0, depth=6))
    rng = np.random.default_rng(0)
    for t in range(10):
        out = mem.observe(torch.randn(32), rng.uniform(-2, 2, 3), object_id=t % 3)
        leaf = mem.octree.query_point(mem.octree.centers([out["leaf"]])[0])
        np.testing.assert_allclose(leaf.token, mem.ltm.token(("leaf", out["leaf"])).numpy())
        assert mem.ltm.token(("node", out["node"])) is not None
    assert len(mem.stm) == 4  # capacity
    outside = mem.observe(torch.randn(32), np.array([50.0, 0, 0]))
    assert outside["leaf"] == -1
    mem.reset()
    assert len(mem.ltm) == 0 and len(mem.stm) == 0 and len(mem.octree) == 0


def test_fusion_head_shapes():
    head = Mem4NavFusion(dim=8, waypoint_dim=2, out_dim=5)
    out = head(torch.randn(3, 4, 8), torch.randn(3, 8), torch.randn(3, 2))
    assert out.shape == (3, 5)
    assert head(torch.randn(3, 0, 8), torch.randn(3, 8), torch.randn(3, 2)).shape == (3, 5)
