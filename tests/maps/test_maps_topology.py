import itertools

import numpy as np
import pytest

from chronotope.maps.topology import TopologyConfig, TopologyGraph


def test_node_created_exactly_when_distance_exceeds_delta():
    g = TopologyGraph(2, TopologyConfig(delta=0.5))
    assert g.update(np.zeros(2), np.zeros(3)).created
    # exactly delta: merged (the rule is strict ">")
    upd = g.update(np.array([0.5, 0.0]), np.array([2.0, 0.0, 0.0]))
    assert not upd.created and upd.node == 0 and upd.distance == pytest.approx(0.5)
    # running mean of descriptor and position over the 2 observations
    np.testing.assert_allclose(g.descriptors[0], [0.25, 0.0])
    np.testing.assert_allclose(g.positions[0], [1.0, 0.0, 0.0])
    # distance to the (moved) node is 0.25 + 0.2500001 > 0.5: new node
    upd = g.update(np.array([0.5000001 + 0.25, 0.0]), np.zeros(3))
    assert upd.created and upd.node == 1 and len(g) == 2
    np.testing.assert_array_equal(g.counts, [2, 1])


def test_edges_weights_and_averaging():
    cfg = TopologyConfig(delta=0.1, alpha=1.0, beta=0.5)
    g = TopologyGraph(1, cfg)
    g.update(np.array([0.0]), np.array([0.0, 0.0, 0.0]))
    upd = g.update(np.array([1.0]), np.array([3.0, 4.0, 0.0]), c_instr=2.0)
    assert upd.edge == (0, 1)
    assert g.graph[0][1]["weight"] == pytest.approx(5.0 + 0.5 * 2.0)
    g.update(np.array([0.0]), np.zeros(3))  # back to node 0: edge 1 -> 0
    assert g.graph[1][0]["weight"] == pytest.approx(5.0)
    # repeated 0 -> 1 with a negative instruction cost: w_new = max(0, 5 - 0.5 * 20) = 0, averaged
    g.update(np.array([1.0]), np.array([3.0, 4.0, 0.0]), c_instr=-20.0)
    assert g.graph[0][1]["weight"] == pytest.approx((6.0 + 0.0) / 2)
    # staying on the same node adds no edge
    assert g.update(np.array([1.0]), np.array([3.0, 4.0, 0.0])).edge is None
    assert g.graph.number_of_edges() == 2


def _brute_shortest(n, edges, s, t):
    best = float("inf")
    for k in range(0, n - 1):
        for mid in itertools.permutations([v for v in range(n) if v not in (s, t)], k):
            path = (s, *mid, t)
            if all((a, b) in edges for a, b in zip(path, path[1:])):
                best = min(best, sum(edges[(a, b)] for a, b in zip(path, path[1:])))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_dijkstra_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 6
    g = TopologyGraph(n, TopologyConfig(delta=0.5))
    for i in range(n):
        g.update(np.eye(n)[i], rng.uniform(0, 5, 3))  # orthonormal embeddings: n distinct nodes
    g.reset_current()
    for a, b in rng.permutation(list(itertools.permutations(range(n), 2)))[:14]:
        g.add_edge(int(a), int(b), c_instr=float(rng.uniform(-1, 3)))
    edges = {(a, b): d["weight"] for a, b, d in g.graph.edges(data=True)}  # includes the walk's chain edges
    for s, t in itertools.permutations(range(n), 2):
        path, cost = g.shortest_path(s, t)
        ref = _brute_shortest(n, edges, s, t)
        assert cost == pytest.approx(ref)
        if path:
            assert path[0] == s and path[-1] == t
            assert cost == pytest.approx(sum(edges[(a, b)] for a, b in zip(path, path[1:])))
        else:
            assert ref == float("inf")


def test_bad_input():
    g = TopologyGraph(3)
    with pytest.raises(ValueError, match="3 finite"):
        g.update(np.zeros(3), np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        g.update(np.zeros(4), np.zeros(3))
    g.update(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="node 5"):
        g.shortest_path(0, 5)
