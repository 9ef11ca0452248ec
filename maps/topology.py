"""Semantic topology graph (Mem4Nav): places as nodes in embedding space, traversals as weighted edges.

Rules (spec ``mem4nav.md``):

* a new node is created when ``min_u ||v_t - phi(u)||_2 > delta``; otherwise the nearest node's descriptor
  and position move to the count-weighted running mean (``x <- x + (x_t - x) / n``);
* when the current node changes, a directed edge ``prev -> cur`` gets
  ``w = max(0, alpha * ||p_prev - p_cur|| + beta * c_instr)`` with the two nodes' (updated) positions; a
  repeated edge averages ``w <- (w_old + w_new) / 2``;
* planning is Dijkstra over the edge weights (networkx).

Node ids are 0, 1, 2, ... in their own key space, distinct from octree leaf codes (the reference code shared
one space for both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TopologyConfig:
    """Thresholds and edge-weight coefficients."""

    delta: float = 0.6
    """Embedding distance above which an observation starts a new node (spec: 0.5-0.75)."""
    alpha: float = 1.0
    """Weight of the Euclidean distance between node positions in an edge weight."""
    beta: float = 0.3
    """Weight of the instruction cost ``c_instr`` in an edge weight (spec: 0.2-0.5)."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.delta) and self.delta >= 0):
            raise ValueError(f"delta must be a finite number >= 0, got {self.delta}")


@dataclass
class NodeUpdate:
    """Result of one :meth:`TopologyGraph.update`."""

    node: int  # id of the node the observation was assigned to
    created: bool  # whether that node was created by this observation
    distance: float  # embedding distance to the nearest existing node (inf when the graph was empty)
    edge: tuple[int, int] | None  # the edge added or averaged, if the current node changed


class TopologyGraph:
    """Growing graph of places; see the module docstring for the update rules.

    Args:
        dim: embedding width ``d``.
        cfg: thresholds and coefficients.
    """

    def __init__(self, dim: int, cfg: TopologyConfig | None = None) -> None:
        import networkx as nx

        if dim < 1:
            raise ValueError(f"embedding dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.cfg = cfg or TopologyConfig()
        self.graph = nx.DiGraph()
        self._desc = np.zeros((16, self.dim), np.float64)
        self._pos = np.zeros((16, 3), np.float64)
        self._count = np.zeros(16, np.int64)
        self._n = 0
        self.current: int | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def descriptors(self) -> np.ndarray:
        """Node descriptors ``phi(u)``, float64 ``[N, d]``."""
        return self._desc[: self._n]

    @property
    def positions(self) -> np.ndarray:
        """Node positions, float64 ``[N, 3]``."""
        return self._pos[: self._n]

    @property
    def counts(self) -> np.ndarray:
        """Observations merged into each node, int64 ``[N]``."""
        return self._count[: self._n]

    def reset_current(self) -> None:
        """Forgets the current node (e.g. on teleport), so the next update adds no edge."""
        self.current = None

    def nearest(self, v: np.ndarray) -> tuple[int, float]:
        """Nearest node to embedding ``v`` ``[d]`` and its distance; ``(-1, inf)`` for an empty graph."""
        if self._n == 0:
            return -1, float("inf")
        d = np.linalg.norm(self.descriptors - v, axis=1)
        i = int(np.argmin(d))
        return i, float(d[i])

    def update(self, v: np.ndarray, p: np.ndarray, c_instr: float = 0.0) -> NodeUpdate:
        """Assigns observation ``(v [d], p [3])`` to a node, creating one if it is farther than ``delta``."""
        v = np.asarray(v, np.float64).reshape(-1)
        p = np.asarray(p, np.float64).reshape(-1)
        if v.shape != (self.dim,) or not np.isfinite(v).all():
            raise ValueError(f"embedding must be {self.dim} finite numbers, got shape {v.shape}")
        if p.shape != (3,) or not np.isfinite(p).all():
            raise ValueError(f"position must be 3 finite numbers, got {p.tolist()}")
        if not np.isfinite(c_instr):
            raise ValueError(f"c_instr must be finite, got {c_instr}")
        node, dist = self.nearest(v)
        created = dist > self.cfg.delta
        if created:
            node = self._add_node(v, p)
        else:
            self._count[node] += 1
            n = self._count[node]
            self._desc[node] += (v - self._desc[node]) / n
            self._pos[node] += (p - self._pos[node]) / n
        edge = None
        if self.current is not None and self.current != node:
            self.add_edge(self.current, node, c_instr)
            edge = (self.current, node)
        self.current = node
        return NodeUpdate(node=node, created=bool(created), distance=dist, edge=edge)

    def _add_node(self, v: np.ndarray, p: np.ndarray) -> int:
        if self._n == self._desc.shape[0]:
            self._desc = np.concatenate([self._desc, np.zeros_like(self._desc)])
            self._pos = np.concatenate([self._pos, np.zeros_like(self._pos)])
            self._count = np.concatenate([self._count, np.zeros_like(self._count)])
        i = self._n
        self._desc[i], self._pos[i], self._count[i] = v, p, 1
        self._n += 1
        self.graph.add_node(i)
        return i

    def edge_weight(self, u: int, v: int, c_instr: float = 0.0) -> float:
        """``max(0, alpha * ||p_u - p_v|| + beta * c_instr)`` with the nodes' current positions."""
        dist = float(np.linalg.norm(self._pos[u] - self._pos[v]))
        return max(0.0, self.cfg.alpha * dist + self.cfg.beta * float(c_instr))

    def add_edge(self, u: int, v: int, c_instr: float = 0.0) -> float:
        """Adds ``u -> v`` or averages its weight with the new one; returns the stored weight."""
        for n in (u, v):
            if not 0 <= n < self._n:
                raise ValueError(f"node {n} does not exist (graph has {self._n} nodes)")
        w = self.edge_weight(u, v, c_instr)
        if self.graph.has_edge(u, v):
            w = (self.graph[u][v]["weight"] + w) / 2.0
        self.graph.add_edge(u, v, weight=w)
        return w

    def shortest_path(self, source: int, target: int) -> tuple[list[int], float]:
        """Dijkstra path and cost from ``source`` to ``target``; ``([], inf)`` when unreachable."""
        import networkx as nx

        for n in (source, target):
            if not 0 <= n < self._n:
                raise ValueError(f"node {n} does not exist (graph has {self._n} nodes)")
        try:
            cost, path = nx.single_source_dijkstra(self.graph, source, target, weight="weight")
        except nx.NetworkXNoPath:
            return [], float("inf")
        return list(path), float(cost)

    def neighbourhood(self, node: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` out-neighbours of ``node``, cheapest edge first: ids int64 ``[<=k]``, weights ``[<=k]``."""
        if not 0 <= node < self._n:
            raise ValueError(f"node {node} does not exist (graph has {self._n} nodes)")
        items = sorted(((d["weight"], v) for v, d in self.graph[node].items()), key=lambda x: (x[0], x[1]))[:k]
        return np.array([v for _, v in items], np.int64), np.array([w for w, _ in items], np.float64)
