"""2D navigability grid inflated by the agent radius, and geodesic distance fields (fast marching, scikit-fmm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(eq=False)
class NavGrid:
    """Occupancy of a floor plan on a regular grid.

    Cell (i, j) covers x in [origin_x + j*cell, origin_x + (j+1)*cell), y likewise with i (row = y).

    Attributes:
        obstacle: bool [H, W], true where a wall or object (below agent height) stands or outside the scene.
        navigable: bool [H, W], cells whose centre is farther than ``agent_radius`` from every obstacle.
        clearance: float32 [H, W], distance (m) from each cell centre to the nearest obstacle cell.
        origin: (x, y) of the grid's lower corner.
        cell_size: metres per cell.
        agent_radius: inflation radius used for ``navigable``.
    """

    obstacle: np.ndarray
    navigable: np.ndarray
    clearance: np.ndarray
    origin: np.ndarray
    cell_size: float
    agent_radius: float

    @classmethod
    def from_obstacles(cls, obstacle: np.ndarray, origin, cell_size: float, agent_radius: float) -> NavGrid:
        obstacle = np.asarray(obstacle, bool)
        clearance = ndimage.distance_transform_edt(~obstacle).astype(np.float32) * cell_size
        navigable = clearance > agent_radius + 1e-6
        return cls(
            obstacle, navigable, clearance, np.asarray(origin, np.float64), float(cell_size), float(agent_radius)
        )

    @classmethod
    def from_scene(
        cls, spec, agent_radius: float = 0.18, cell_size: float = 0.05, agent_height: float = 1.5
    ) -> NavGrid:
        if not (cell_size > 0 and np.isfinite(cell_size)):
            raise ValueError(f"cell_size must be positive, got {cell_size!r}")
        if not (agent_radius >= 0 and np.isfinite(agent_radius)):
            raise ValueError(f"agent_radius must be >= 0, got {agent_radius!r}")
        lo, hi = spec.bounds
        pad = 2
        origin = lo - pad * cell_size
        shape = (
            int(np.ceil((hi[1] - lo[1]) / cell_size)) + 2 * pad,
            int(np.ceil((hi[0] - lo[0]) / cell_size)) + 2 * pad,
        )
        # Outside every room is blocked; rooms' floor rectangles (inner extents) are open.
        obstacle = np.ones(shape, bool)
        xs = origin[0] + (np.arange(shape[1]) + 0.5) * cell_size
        ys = origin[1] + (np.arange(shape[0]) + 0.5) * cell_size
        if spec.rooms:
            for r in spec.rooms:
                jx = (xs >= r.lo[0]) & (xs <= r.hi[0])
                iy = (ys >= r.lo[1]) & (ys <= r.hi[1])
                obstacle[np.ix_(iy, jx)] = False
        else:
            # A mesh scene: walkable where a floor part lies below; all open if it names no floor.
            from chronotope.envs.scene import catalogue as cat

            floors = [p for p in spec.parts if p.category_id == cat.FLOOR]
            if floors:
                for p in floors:
                    v = np.asarray(p.vertices, np.float64).reshape(-1, 3)
                    f = np.asarray(p.faces, np.int64).reshape(-1, 3)
                    _rasterize_triangles(obstacle, origin, cell_size, v[f], value=False)
            else:
                obstacle[pad:-pad, pad:-pad] = False
        gx, gy = np.meshgrid(xs, ys)
        for blo, bhi in spec.wall_boxes():
            if blo[2] >= agent_height:
                continue  # lintels above doors do not block
            _fill_rect(obstacle, gx, gy, blo[:2], bhi[:2])
        for o in spec.objects:
            _fill_polygon(obstacle, gx, gy, o.footprint())
        floor_z = min((np.asarray(p.vertices)[:, 2].min() for p in spec.parts), default=0.0)
        for p in spec.parts:
            if not p.obstacle:
                continue
            tri = np.asarray(p.vertices, np.float64).reshape(-1, 3)[np.asarray(p.faces, np.int64).reshape(-1, 3)]
            # only what stands between just above the floor and the agent's head blocks
            keep = (tri[:, :, 2].min(1) < floor_z + agent_height) & (tri[:, :, 2].max(1) > floor_z + 0.05)
            _rasterize_triangles(obstacle, origin, cell_size, tri[keep], value=True)
        return cls.from_obstacles(obstacle, origin, cell_size, agent_radius)

    # ------------------------------------------------------------------------------- coordinates
    @property
    def shape(self) -> tuple[int, int]:
        return self.obstacle.shape

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """Integer (row, col) [..., 2] of world points [..., 2] (may be out of range)."""
        xy = np.asarray(xy, np.float64)
        col = np.floor((xy[..., 0] - self.origin[0]) / self.cell_size).astype(np.int64)
        row = np.floor((xy[..., 1] - self.origin[1]) / self.cell_size).astype(np.int64)
        return np.stack([row, col], axis=-1)

    def cell_to_world(self, rc: np.ndarray) -> np.ndarray:
        """Centres (x, y) [..., 2] of cells (row, col) [..., 2]."""
        rc = np.asarray(rc, np.float64)
        return np.stack(
            [
                self.origin[0] + (rc[..., 1] + 0.5) * self.cell_size,
                self.origin[1] + (rc[..., 0] + 0.5) * self.cell_size,
            ],
            axis=-1,
        )

    def is_navigable(self, xy: np.ndarray) -> np.ndarray:
        """Bool [...] for world points [..., 2]; false outside the grid."""
        rc = self.world_to_cell(xy)
        h, w = self.shape
        inside = (rc[..., 0] >= 0) & (rc[..., 0] < h) & (rc[..., 1] >= 0) & (rc[..., 1] < w)
        out = np.zeros(rc.shape[:-1], bool)
        out[inside] = self.navigable[rc[..., 0][inside], rc[..., 1][inside]]
        return out

    def largest_component(self) -> np.ndarray:
        """Bool [H, W] mask of the largest 8-connected navigable component."""
        labels, n = ndimage.label(self.navigable, structure=np.ones((3, 3)))
        if n == 0:
            return np.zeros_like(self.navigable)
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        return labels == counts.argmax()

    def components(self) -> tuple[np.ndarray, int]:
        return ndimage.label(self.navigable, structure=np.ones((3, 3)))

    # ------------------------------------------------------------------------------- geodesics
    def distance_field(self, goals_xy: np.ndarray | None = None, goal_mask: np.ndarray | None = None) -> np.ndarray:
        """Geodesic distance (m) float64 [H, W] from every navigable cell to the nearest goal, inf elsewhere.

        Goals are world points [K, 2] (snapped to their cells) or a boolean cell mask; solved by fast marching
        (scikit-fmm) on the navigable cells, so distances follow the free space, not straight lines.
        """
        import skfmm

        if goal_mask is None:
            if goals_xy is None:
                raise ValueError("distance_field needs goals_xy or goal_mask")
            goals = np.asarray(goals_xy, np.float64).reshape(-1, 2)
            if not np.isfinite(goals).all():
                raise ValueError(f"goal positions contain NaN or inf: {goals.tolist()}")
            goal_mask = np.zeros(self.shape, bool)
            rc = self.world_to_cell(goals)
            h, w = self.shape
            ok = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
            if not ok.all():
                raise ValueError(f"goal positions outside the grid: {goals[~ok].tolist()}")
            goal_mask[rc[:, 0], rc[:, 1]] = True
        goal_mask = goal_mask & self.navigable
        if not goal_mask.any():
            raise ValueError("no navigable goal cell: the goal lies in an obstacle or outside the free space")
        # The zero level set is the goal cells' boundary (half a cell away from their centres): add it back.
        phi = np.where(goal_mask, -1.0, 1.0)
        phi = np.ma.MaskedArray(phi, mask=~self.navigable)
        d = skfmm.distance(phi, dx=self.cell_size)
        out = np.full(self.shape, np.inf)
        valid = ~np.ma.getmaskarray(d)
        out[valid] = np.asarray(d)[valid] + 0.5 * self.cell_size
        out[goal_mask] = 0.0
        return out

    def lookup(self, field: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Values of a cell field at world points [..., 2] (nearest cell; inf outside the grid)."""
        rc = self.world_to_cell(xy)
        h, w = self.shape
        inside = (rc[..., 0] >= 0) & (rc[..., 0] < h) & (rc[..., 1] >= 0) & (rc[..., 1] < w)
        out = np.full(rc.shape[:-1], np.inf)
        out[inside] = field[rc[..., 0][inside], rc[..., 1][inside]]
        return out

    def sample_navigable(self, rng: np.random.Generator, n: int = 1, mask: np.ndarray | None = None) -> np.ndarray:
        """``n`` uniformly random world points [n, 2] at centres of navigable cells (within ``mask``)."""
        m = self.navigable if mask is None else (self.navigable & mask)
        idx = np.flatnonzero(m)
        if idx.size == 0:
            raise ValueError("no navigable cell to sample from")
        pick = idx[rng.integers(0, idx.size, size=n)]
        rc = np.stack(np.unravel_index(pick, self.shape), axis=-1)
        return self.cell_to_world(rc)


def _fill_rect(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray, lo, hi) -> None:
    grid |= (gx >= lo[0]) & (gx <= hi[0]) & (gy >= lo[1]) & (gy <= hi[1])


def _fill_polygon(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray, corners: np.ndarray) -> None:
    """Marks cells whose centre lies inside a convex polygon (counter-clockwise or clockwise corners)."""
    lo, hi = corners.min(0), corners.max(0)
    sub = (gx >= lo[0]) & (gx <= hi[0]) & (gy >= lo[1]) & (gy <= hi[1])
    if not sub.any():
        return
    px, py = gx[sub], gy[sub]
    x, y = corners[:, 0], corners[:, 1]
    orient = np.sign(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) or 1.0  # shoelace: +1 counter-clockwise
    inside = np.ones(px.shape, bool)
    for k in range(len(corners)):
        a, b = corners[k], corners[(k + 1) % len(corners)]
        cross = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])
        inside &= cross * orient >= -1e-12
    idx = np.flatnonzero(sub)
    grid.ravel()[idx[inside]] = True


def _rasterize_triangles(grid: np.ndarray, origin, cell: float, tri: np.ndarray, value: bool) -> None:
    """Sets the cells under the 2D projection of triangles [T, 3, 3] (vertical ones included) to ``value``.

    Each triangle is sampled on a barycentric lattice finer than half a cell, so thin and vertical triangles
    (walls seen from above are line segments) mark every cell they cross.
    """
    h, w = grid.shape
    for t in tri:
        e = max(
            np.linalg.norm(t[1, :2] - t[0, :2]),
            np.linalg.norm(t[2, :2] - t[0, :2]),
            np.linalg.norm(t[2, :2] - t[1, :2]),
        )
        k = max(2, int(np.ceil(e / (0.4 * cell))) + 1)
        a, b = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
        m = a + b <= 1.0
        a, b = a[m], b[m]
        pts = t[0, :2] + a[:, None] * (t[1, :2] - t[0, :2]) + b[:, None] * (t[2, :2] - t[0, :2])
        col = np.floor((pts[:, 0] - origin[0]) / cell).astype(np.int64)
        row = np.floor((pts[:, 1] - origin[1]) / cell).astype(np.int64)
        ok = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        grid[row[ok], col[ok]] = value
