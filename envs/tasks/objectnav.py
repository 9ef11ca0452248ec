"""ObjectNav: reach any instance of a named object category (habitat ObjectNav convention)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from scipy import ndimage

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.navgrid import _fill_polygon
from chronotope.envs.tasks.base import Episode, Task, register_task
from chronotope.envs.tasks.sensors import CompassSensor, GPSSensor, Sensor


@register_task("objectnav")
class ObjectNavTask(Task):
    """Task sheet.

    Description: find any instance of the goal category and call STOP near it.
    Randomisations: scene (from the pool), start pose, goal category among those present and reachable in the
    scene; start at least ``min_distance`` (geodesic) from the goal region.
    Observations (task sensors): ``objectgoal`` category id (Discrete), ``gps``, ``compass`` (start frame).
    Goal region: the navigable surroundings of every instance of the category, i.e. navigable cells of the
    connected free space within ``agent radius + 0.15 m`` of the instance's footprint (cells within 1.0 m if an
    instance has none). ``distance_to_goal`` is the geodesic distance to that region.
    Success: STOP called with ``distance_to_goal <= 1.0`` m.
    Reward terms: ``progress``, ``success`` (+2.5), ``slack`` (-0.01 / step).
    """

    success_radius = 1.0
    cache_attrs = ("_cache",)

    def __init__(self, min_distance: float = 1.0, success_radius: float = 1.0, **kw):
        super().__init__(**kw)
        self.min_distance = float(min_distance)
        self.success_radius = float(success_radius)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def goal_region(self, core, scene: int, category: int) -> tuple[np.ndarray, np.ndarray]:
        """(goal mask [H, W], geodesic field from it) of ``category`` in ``scene``; cached per scene."""
        key = (scene, category)
        if key not in self._cache:
            grid = core.grids[scene]
            main = core.main_component(scene)
            h, w = grid.shape
            gy, gx = np.meshgrid(
                grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size,
                grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size,
                indexing="ij",
            )
            mask = np.zeros(grid.shape, bool)
            for o in core.scenes[scene].objects:
                if o.category_id != category:
                    continue
                fp = np.zeros(grid.shape, bool)
                _fill_polygon(fp, gx, gy, o.footprint())
                dist = ndimage.distance_transform_edt(~fp) * grid.cell_size
                ring = main & (dist <= core.agent.radius + 0.15)
                if not ring.any():
                    ring = main & (dist <= 1.0)
                mask |= ring
            field = grid.distance_field(goal_mask=mask) if mask.any() else None
            self._cache[key] = (mask, field)
        return self._cache[key]

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        for _ in range(100):
            scene = int(rng.integers(len(core.scenes)))
            spec = core.scenes[scene]
            cats = sorted({o.category_id for o in spec.objects})
            if not cats:
                continue
            category = cats[int(rng.integers(len(cats)))]
            mask, field = self.goal_region(core, scene, category)
            if field is None:
                continue
            grid = core.grids[scene]
            ok = core.main_component(scene) & (field >= self.success_radius + self.min_distance) & np.isfinite(field)
            if not ok.any():
                continue
            start = grid.sample_navigable(rng, 1, ok)[0]
            d0 = float(grid.lookup(field, start))
            # the nearest instance as a reference point for the privileged state
            inst = [o for o in spec.objects if o.category_id == category]
            near = min(inst, key=lambda o: np.linalg.norm(np.asarray(o.center) - start))
            return Episode(
                scene,
                start,
                float(rng.uniform(-np.pi, np.pi)),
                np.asarray(near.center, float),
                field,
                d0,
                max(d0 - self.success_radius, 0.0),
                goal_category=category,
            )
        raise RuntimeError("could not sample an ObjectNav episode in 100 tries")

    def declare_sensors(self, core) -> list[Sensor]:
        return [
            Sensor(
                "objectgoal",
                lambda c: spaces.Discrete(cat.NUM_CATEGORIES),
                lambda c: c.goal_category.astype(np.int64),
            ),
            GPSSensor(),
            CompassSensor(),
        ]
