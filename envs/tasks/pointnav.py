"""PointNav: reach a goal point given in polar coordinates relative to the start (habitat convention)."""

from __future__ import annotations

import numpy as np

from chronotope.envs.tasks.base import Episode, Task, polar, register_task
from chronotope.envs.tasks.sensors import CompassSensor, GPSSensor, Sensor, polar_box


@register_task("pointnav")
class PointNavTask(Task):
    """Task sheet.

    Description: the agent starts at a random navigable pose and must reach a goal point, then call STOP.
    Randomisations: scene (from the pool), start position and heading, goal with geodesic distance in
    ``[min_distance, max_distance]`` from the start, in the same connected free space.
    Observations (task sensors): ``pointgoal`` (distance, angle) of the goal relative to the *start* pose;
    ``gps`` (x forward, y left) position in the start frame; ``compass`` heading relative to the start.
    Success: STOP called within ``success_radius`` = 0.2 m (geodesic) of the goal.
    Reward terms: ``progress`` (decrease of geodesic distance), ``success`` (+2.5), ``slack`` (-0.01 / step).
    """

    success_radius = 0.2

    def __init__(self, min_distance: float = 1.0, max_distance: float = 12.0, success_radius: float = 0.2, **kw):
        super().__init__(**kw)
        if not (0 <= min_distance < max_distance):
            raise ValueError(f"need 0 <= min_distance < max_distance, got {min_distance!r}, {max_distance!r}")
        if not success_radius > 0:
            raise ValueError(f"success_radius must be > 0, got {success_radius!r}")
        self.min_distance = float(min_distance)
        self.max_distance = float(max_distance)
        self.success_radius = float(success_radius)

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        for _ in range(100):
            scene = int(rng.integers(len(core.scenes)))
            grid = core.grids[scene]
            main = core.main_component(scene)
            # Geodesic distance is symmetric: one fast-marching solve from the goal serves both the start
            # sampling and the episode's distance-to-goal.
            goal = grid.sample_navigable(rng, 1, main)[0]
            field = grid.distance_field(goals_xy=goal[None])
            ok = main & (field >= self.min_distance) & (field <= self.max_distance)
            if not ok.any():
                continue
            start = grid.sample_navigable(rng, 1, ok)[0]
            d0 = float(grid.lookup(field, start))
            return Episode(scene, start, float(rng.uniform(-np.pi, np.pi)), goal, field, d0, d0)
        raise RuntimeError("could not sample a PointNav episode in 100 tries: scenes too small for min_distance")

    def declare_sensors(self, core) -> list[Sensor]:
        return [
            Sensor(
                "pointgoal",
                lambda c: polar_box(c.max_extent),
                lambda c: polar(c.start_position, c.start_yaw, c.goal_position).astype(np.float32),
            ),
            GPSSensor(),
            CompassSensor(),
        ]
