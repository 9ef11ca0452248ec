"""Navigation measures in the habitat-lab style, batched: each measure holds one value per environment.

Definitions follow ``shared/specs/nav-metrics.md`` (habitat-lab, VLN-CE, Ilharco et al. 2019). A measure has a
``uuid``, ``reset_metric(idx, ctx)`` for the environments in ``idx`` that start an episode and
``update_metric(ctx)`` after every step of all environments; ``value`` is float64 [N]. Measures listed later may
read earlier ones through ``ctx.measures``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class MeasureContext(Protocol):
    """What measures read from the batched core after each step (all arrays have leading dim N)."""

    n: int
    distance_to_goal: np.ndarray  # [N] geodesic distance to the goal (m)
    called_stop: np.ndarray  # [N] bool, STOP taken this step
    collided: np.ndarray  # [N] bool, motion blocked this step
    moved: np.ndarray  # [N] distance moved this step (m)
    success_radius: float
    start_distance: np.ndarray  # [N] d_0
    shortest_path: np.ndarray  # [N] l
    measures: dict[str, Measure]


class Measure:
    """Base class; ``value`` float64 [N]."""

    uuid: str = ""

    def __init__(self, n: int) -> None:
        self.value = np.zeros(n)

    def reset_metric(self, idx: np.ndarray, ctx: MeasureContext) -> None:
        self.value[idx] = 0.0

    def update_metric(self, ctx: MeasureContext) -> None:
        raise NotImplementedError


class DistanceToGoal(Measure):
    """d_t: geodesic distance from the agent to the goal (navigation error at the end)."""

    uuid = "distance_to_goal"

    def reset_metric(self, idx, ctx) -> None:
        self.value[idx] = ctx.distance_to_goal[idx]

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.distance_to_goal


class Success(Measure):
    """S = 1 iff STOP was called with d_T <= r."""

    uuid = "success"

    def update_metric(self, ctx) -> None:
        self.value[:] = (ctx.called_stop & (ctx.distance_to_goal <= ctx.success_radius)).astype(float)


class OracleSuccess(Measure):
    """1 iff d_t <= r at any step so far (no STOP needed)."""

    uuid = "oracle_success"

    def reset_metric(self, idx, ctx) -> None:
        self.value[idx] = (ctx.distance_to_goal[idx] <= ctx.success_radius).astype(float)

    def update_metric(self, ctx) -> None:
        self.value[:] = np.maximum(self.value, (ctx.distance_to_goal <= ctx.success_radius).astype(float))


class PathLength(Measure):
    """p: sum of the distances actually moved."""

    uuid = "path_length"

    def update_metric(self, ctx) -> None:
        self.value += ctx.moved


class Collisions(Measure):
    """Number of steps whose motion was blocked."""

    uuid = "collisions"

    def update_metric(self, ctx) -> None:
        self.value += ctx.collided


class Steps(Measure):
    """Steps taken in the episode."""

    uuid = "steps"

    def update_metric(self, ctx) -> None:
        self.value += 1.0


class SPL(Measure):
    """S * l / max(p, l) (Anderson et al. 2018)."""

    uuid = "spl"

    def update_metric(self, ctx) -> None:
        s = ctx.measures["success"].value
        p = ctx.measures["path_length"].value
        self.value[:] = spl(s, ctx.shortest_path, p)


class SoftSPL(Measure):
    """max(0, 1 - d_T / d_0) * l / max(p, l)."""

    uuid = "soft_spl"

    def update_metric(self, ctx) -> None:
        p = ctx.measures["path_length"].value
        progress = np.clip(1.0 - ctx.distance_to_goal / np.maximum(ctx.start_distance, 1e-9), 0.0, 1.0)
        self.value[:] = spl(progress, ctx.shortest_path, p)


def spl(success: np.ndarray, shortest: np.ndarray, path: np.ndarray) -> np.ndarray:
    """S * l / max(p, l); 0 where l == p == 0 and S == 0, S where both are 0 (already at the goal)."""
    success = np.asarray(success, float)
    shortest = np.asarray(shortest, float)
    path = np.asarray(path, float)
    denom = np.maximum(path, shortest)
    return np.where(denom > 0, success * shortest / np.where(denom > 0, denom, 1.0), success)


def dtw(query: np.ndarray, reference: np.ndarray) -> float:
    """Exact dynamic-time-warping distance with Euclidean point cost (O(|Q||R|))."""
    if len(query) == 0 or len(reference) == 0:
        raise ValueError(f"DTW needs non-empty paths, got |Q|={len(query)}, |R|={len(reference)}")
    q = np.asarray(query, float).reshape(len(query), -1)
    r = np.asarray(reference, float).reshape(len(reference), -1)
    cost = np.linalg.norm(q[:, None, :] - r[None, :, :], axis=-1)
    acc = np.full((len(q) + 1, len(r) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(q) + 1):
        row_prev = acc[i - 1]
        row = acc[i]
        c = cost[i - 1]
        for j in range(1, len(r) + 1):
            row[j] = c[j - 1] + min(row_prev[j], row[j - 1], row_prev[j - 1])
    return float(acc[-1, -1])


def ndtw(query: np.ndarray, reference: np.ndarray, success_distance: float = 3.0) -> float:
    """exp(-DTW(Q, R) / (|R| * r))."""
    return float(np.exp(-dtw(query, reference) / (len(reference) * success_distance)))


NAV_MEASURES: tuple[type[Measure], ...] = (
    DistanceToGoal,
    Success,
    OracleSuccess,
    PathLength,
    Collisions,
    Steps,
    SPL,
    SoftSPL,
)
