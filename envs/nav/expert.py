"""Shortest-path expert: follows the geodesic distance field with the discrete actions.

For every agent it looks at the 24 headings reachable by turning (15 deg apart) and the point one forward step
along each; it takes the heading whose step ends lowest on the goal's geodesic field (fewer turns break ties),
turns towards it, moves forward when already facing it, and calls STOP inside the success radius. Vectorised
over all N environments of a :class:`~chronotope.envs.nav.core.NavCore`.
"""

from __future__ import annotations

import math

import numpy as np

from chronotope.envs.sim.kinematic import MOVE_FORWARD, STOP, TURN_LEFT, TURN_RIGHT


def step_cells(sim) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 25 headings the expert weighs and where one forward step along each ends.

    Returns ``k`` int [25] (turns from the current heading, -12..12 steps of ``turn_angle``; negative = right),
    ``ok`` bool [N, 25] (the step's segment is free and ends on the grid) and that end's grid ``row`` / ``col``
    int [N, 25]: a geodesic field read at ``[row, col]`` scores each heading."""
    cfg = sim.config
    step_turn = math.radians(cfg.turn_angle)
    k = np.arange(-12, 13)  # turns: negative = right
    headings = sim.yaw[:, None] + k[None, :] * step_turn  # [N, K]
    sub = np.linspace(0.0, 1.0, sim._substeps + 1)[1:]  # [S]
    d = np.stack([np.cos(headings), np.sin(headings)], -1) * cfg.forward_step  # [N, K, 2]
    pts = sim.position[:, None, None, :] + sub[None, None, :, None] * d[:, :, None, :]  # [N, K, S, 2]
    free = sim.stack.navigable_at(sim.scene[:, None, None], pts).all(-1)  # [N, K]
    row, col, inside = sim.stack.cells(sim.scene[:, None], pts[:, :, -1, :])
    return k, free & inside, row, col


class ShortestPathExpert:
    """Oracle policy for navigation cores; ``act(core)`` returns int64 actions [N].

    Args:
        stop_margin: STOP once ``distance_to_goal <= success_radius - stop_margin``.
    """

    def __init__(self, stop_margin: float = 0.0) -> None:
        self.stop_margin = float(stop_margin)

    def act(self, core) -> np.ndarray:
        sim = core.sim
        n = sim.n
        k, ok, row, col = step_cells(sim)
        value = core.fields[np.arange(n)[:, None], row, col].astype(np.float64)
        value = np.where(ok, value, np.inf)
        score = value + 1e-3 * np.abs(k)[None, :]
        best = np.argmin(score, axis=1)
        best_k = k[best]
        improves = value[np.arange(n), best] < core.distance_to_goal - 1e-6
        actions = np.where(best_k == 0, MOVE_FORWARD, np.where(best_k > 0, TURN_LEFT, TURN_RIGHT))
        # Nothing improves (boxed in by discretisation): turn to explore rather than stall.
        actions = np.where(improves, actions, TURN_LEFT)
        at_goal = core.distance_to_goal <= core.success_radius - self.stop_margin
        return np.where(at_goal, STOP, actions).astype(np.int64)
