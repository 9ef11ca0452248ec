"""Shared machinery of the memory tasks: what the agent can see, object goal regions, rooms, cue painting.

Visibility is computed without rendering, so the ``state`` observation mode can expose exactly what the camera
would show: a point is visible when it lies inside the camera's horizontal field of view, within ``max_depth``,
and the straight segment from the eye to it crosses no wall (sampled on a walls-only grid rasterised from
:meth:`SceneSpec.wall_boxes`). Furniture does not occlude in this test (it is low and sparse); the rendered
pixels remain the ground truth in pixel modes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from chronotope.envs.scene.navgrid import _fill_polygon
from chronotope.envs.tasks.base import Task, polar

# Saturated cue colours (RGB) used by the memory tasks; index = colour id of the ``target_color`` observation.
PALETTE = np.array(
    [
        (230, 25, 25),  # red
        (25, 200, 40),  # green
        (30, 60, 240),  # blue
        (250, 225, 20),  # yellow
        (235, 30, 235),  # magenta
        (20, 225, 235),  # cyan
        (250, 130, 10),  # orange
        (130, 30, 220),  # purple
    ],
    np.uint8,
)
# "partial": the cue is shown only in its phase (the memory task); "full": the observability twin, the cue stays
# in the observation for the whole episode so the same task needs no memory.
OBSERVABILITY = ("partial", "full")
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple")


class WallGrid:
    """Walls-only occupancy of every scene of a pool, aligned with the pool's stacked navigation grids.

    Args:
        scenes: the scene pool (``SceneSpec`` list).
        stack: the core's ``StackedGrids`` (same origin and cell per scene).
    """

    def __init__(self, scenes, stack) -> None:
        self.stack = stack
        s, (h, w) = len(scenes), stack.shape
        self.walls = np.zeros((s, h, w), bool)  # [S, H, W]
        cell = stack.cell
        for k, spec in enumerate(scenes):
            o = stack.origin[k]
            xs = o[0] + (np.arange(w) + 0.5) * cell
            ys = o[1] + (np.arange(h) + 0.5) * cell
            for lo, hi in spec.wall_boxes():
                if lo[2] > 1e-6:  # lintels above doors do not block a view through the door at eye level
                    continue
                # Half a cell of slack so thin walls always cover at least one cell across.
                cols = (xs >= lo[0] - cell / 2) & (xs <= hi[0] + cell / 2)
                rows = (ys >= lo[1] - cell / 2) & (ys <= hi[1] + cell / 2)
                self.walls[k][np.ix_(rows, cols)] = True

    def line_of_sight(self, scene: np.ndarray, eye: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """True where the segment eye -> point crosses no wall cell.

        Args:
            scene: int [N] scene index per environment.
            eye: float [N, 2] eye positions.
            pts: float [N, M, 2] target points.

        Returns:
            bool [N, M].
        """
        n, m = pts.shape[:2]
        if n == 0 or m == 0:
            return np.ones((n, m), bool)
        length = np.linalg.norm(pts - eye[:, None, :], axis=-1)  # [N, M]
        k = max(2, int(math.ceil(float(length.max()) / (0.5 * self.stack.cell))))
        t = (np.arange(k) + 0.5) / k  # [K] interior fractions of each segment
        samples = eye[:, None, None, :] + t[None, None, :, None] * (pts - eye[:, None, :])[:, :, None, :]
        row, col, inside = self.stack.cells(scene[:, None, None], samples)  # [N, M, K]
        blocked = self.walls[np.broadcast_to(scene[:, None, None], row.shape), row, col] & inside
        return ~blocked.any(-1)

    def visible(
        self,
        scene: np.ndarray,
        eye: np.ndarray,
        yaw: np.ndarray,
        pts: np.ndarray,
        hfov_deg: float,
        max_depth: float,
    ) -> np.ndarray:
        """Visibility bool [N, M] of points ``pts`` [N, M, 2] from cameras at ``eye`` [N, 2] looking along ``yaw`` [N].

        A point is visible when its bearing is within half the horizontal FOV, its distance is at most
        ``max_depth`` and no wall lies between it and the eye.
        """
        n, m = pts.shape[:2]
        rel = pts - eye[:, None, :]
        dist = np.linalg.norm(rel, axis=-1)
        bearing = np.arctan2(rel[..., 1], rel[..., 0]) - yaw[:, None]
        bearing = np.pi - np.mod(np.pi - bearing, 2 * np.pi)
        ok = (np.abs(bearing) <= math.radians(hfov_deg) / 2) & (dist <= max_depth)
        out = np.zeros((n, m), bool)
        rows, cols = np.nonzero(ok)
        if rows.size:  # walls are checked only for the pairs in view and range, each as its own segment
            out[rows, cols] = self.line_of_sight(scene[rows], eye[rows], pts[rows, cols][:, None, :])[:, 0]
        return out


def relative_polar(core, pts: np.ndarray) -> np.ndarray:
    """(distance, angle) float [N, M, 2] of points ``pts`` [N, M, 2] seen from every agent of ``core``."""
    n, m = pts.shape[:2]
    pos = np.repeat(core.sim.position, m, 0)
    yaw = np.repeat(core.sim.yaw, m, 0)
    return polar(pos, yaw, pts.reshape(n * m, 2)).reshape(n, m, 2)


def paint(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray, strength: float = 0.85) -> None:
    """Recolours ``rgb`` [H, W, 3] uint8 in place where ``mask`` [H, W]: the cue colour keeps the shading."""
    if not mask.any():
        return
    px = rgb[mask].astype(np.float32)  # [P, 3]
    lum = px.mean(-1, keepdims=True) / 255.0
    tinted = colour[None, :].astype(np.float32) * (0.45 + 0.55 * lum)
    rgb[mask] = np.clip((1 - strength) * px + strength * tinted, 0, 255).astype(np.uint8)


class MemoryTask(Task):
    """Base of the memory tasks: per-environment state arrays, goal regions of single objects, room lookups.

    Subclasses keep per-environment arrays (allocated by :meth:`ensure`), and the random generator of each
    environment (handed to ``on_reset``) for in-episode sampling (teleports, new goals), so single and vector envs
    consume randomness identically.
    """

    name = "memory"
    success_radius = 1.0
    # ObjectRecallTask's per-room candidate fields and choice guides are such caches too.
    cache_attrs = ("_regions", "_rooms", "_candidate_fields", "_guides")

    def __init__(self, success_radius: float = 1.0, observability: str = "partial", **kw) -> None:
        super().__init__(**kw)
        if not success_radius > 0:
            raise ValueError(f"success_radius must be > 0, got {success_radius!r}")
        if observability not in OBSERVABILITY:
            raise ValueError(f"observability must be one of {OBSERVABILITY}, got {observability!r}")
        self.success_radius = float(success_radius)
        self.observability = observability
        self._regions: dict[tuple[int, int], np.ndarray | None] = {}
        self._rooms: dict[int, np.ndarray] = {}
        self._walls: WallGrid | None = None
        self._n = 0
        self._rngs: list[np.random.Generator | None] = []

    # ----------------------------------------------------------------------------------------- per-env state
    def ensure(self, core) -> None:
        """Allocates per-environment arrays on first use (``core.n`` is fixed for a core's lifetime)."""
        if self._n != core.n:
            self._n = core.n
            self._rngs = [None] * core.n
            self.allocate(core.n)

    def allocate(self, n: int) -> None:
        raise NotImplementedError

    def expert(self):
        """The perfect-memory oracle of the task (it remembers everything the agent has seen)."""
        from chronotope.envs.nav import oracles

        return oracles.make_oracle(self.name, "perfect")

    def remember_rngs(self, idx: np.ndarray, rngs) -> None:
        for i in idx:
            self._rngs[int(i)] = rngs[int(i)]

    # ----------------------------------------------------------------------------------------- geometry
    def walls(self, core) -> WallGrid:
        if self._walls is None:
            self._walls = WallGrid(core.scenes, core.sim.stack)
        return self._walls

    def visible(self, core, pts: np.ndarray) -> np.ndarray:
        """bool [N, M]: which of the points ``pts`` [N, M, 2] each agent's camera sees now."""
        return self.walls(core).visible(
            core.sim.scene, core.sim.position, core.sim.yaw, pts, core.cfg.hfov, core.max_depth
        )

    def object_field(self, core, scene: int, instance: int) -> np.ndarray | None:
        """Geodesic field float32 [H, W] (padded to the pool's grid) to one object's navigable surroundings.

        The region is ObjectNav's: connected free cells within ``agent radius + 0.15`` m of the footprint (within
        1.0 m if none). None when the object cannot be reached. Cached per (scene, instance).
        """
        key = (scene, instance)
        if key not in self._regions:
            grid = core.grids[scene]
            main = core.main_component(scene)
            o = core.scenes[scene].object_by_instance(instance)
            h, w = grid.shape
            gy, gx = np.meshgrid(
                grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size,
                grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size,
                indexing="ij",
            )
            fp = np.zeros(grid.shape, bool)
            _fill_polygon(fp, gx, gy, o.footprint())
            dist = ndimage.distance_transform_edt(~fp) * grid.cell_size
            ring = main & (dist <= core.agent.radius + 0.15)
            if not ring.any():
                ring = main & (dist <= 1.0)
            self._regions[key] = self._pad(core, grid.distance_field(goal_mask=ring)) if ring.any() else None
        return self._regions[key]

    def point_field(self, core, scene: int, xy: np.ndarray) -> np.ndarray:
        """Geodesic field float32 [H, W] (padded) to one navigable point (not cached: goals are random)."""
        return self._pad(core, core.grids[scene].distance_field(goals_xy=np.asarray(xy, float)[None]))

    @staticmethod
    def _pad(core, field: np.ndarray) -> np.ndarray:
        out = np.full(core.sim.stack.shape, np.inf, np.float32)
        out[: field.shape[0], : field.shape[1]] = field
        return out

    def room_map(self, core, scene: int) -> np.ndarray:
        """int [H, W] room id of every cell of ``scene``'s grid (-1 outside rooms); cached."""
        if scene not in self._rooms:
            grid = core.grids[scene]
            h, w = grid.shape
            xs = grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size
            ys = grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size
            out = np.full((h, w), -1, np.int64)
            for r in core.scenes[scene].rooms:
                cols = (xs >= r.lo[0]) & (xs <= r.hi[0])
                rows = (ys >= r.lo[1]) & (ys <= r.hi[1])
                out[np.ix_(rows, cols)] = r.id
            self._rooms[scene] = out
        return self._rooms[scene]

    def room_of(self, core, i: int) -> int:
        """Room id the agent of environment ``i`` stands in (-1 in a doorway)."""
        grid = core.grids[int(core.sim.scene[i])]
        r, c = grid.world_to_cell(core.sim.position[i])
        rooms = self.room_map(core, int(core.sim.scene[i]))
        h, w = rooms.shape
        return int(rooms[r, c]) if 0 <= r < h and 0 <= c < w else -1

    def sample_in_rooms(self, core, scene: int, rng: np.random.Generator, rooms: list[int]) -> np.ndarray:
        """A random navigable point [2] of the main free space inside one of ``rooms``."""
        grid = core.grids[scene]
        mask = core.main_component(scene) & np.isin(self.room_map(core, scene), rooms)
        # Prefer open floor: a pose wedged between furniture can trap the discrete-action experts.
        open_mask = mask & (grid.clearance > grid.agent_radius + 0.2)
        return grid.sample_navigable(rng, 1, open_mask if open_mask.any() else mask)[0]

    def set_goal_field(self, core, i: int, field: np.ndarray, goal_xy: np.ndarray) -> None:
        """Points environment ``i``'s geodesic goal (followed by the experts) at a new field."""
        core.fields[i] = field
        core.goal_position[i] = goal_xy

    def teleport(self, core, i: int, xy: np.ndarray, yaw: float) -> None:
        core.sim.set_pose([i], np.asarray(xy, float)[None], [yaw])
