"""Allocentric 2D occupancy + semantic map from depth and pose, with agent-centred crops.

Depth is back-projected to world points (``geometry.backproject_depth``) and split by height:

* floor band ``|z - floor_z| <= floor_band``: evidence that the cell is free floor;
* obstacle band ``floor_z + obstacle_min_z <= z <= floor_z + obstacle_max_z``: evidence of an obstacle the
  agent would hit (ceilings and overhangs above the agent are ignored).

Grid convention: ``grid[row, col]`` covers world ``x in [ox + col*cs, ox + (col+1)*cs)`` and
``y in [oy + row*cs, oy + (row+1)*cs)``, i.e. rows grow with +y, columns with +x.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from dataclasses import dataclass

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.maps import kernels
from chronotope.maps.geometry import backproject_depth

_STAMPS = threading.local()  # per thread: grid cells -> a stamp per cell, the scratch of every map that size
_TOKENS = itertools.count(1)  # next() is atomic: no two integrations get the same token, whatever the threads


def _carve_stamps(n_cells: int) -> tuple[np.ndarray, int]:
    """The carving kernel's scratch for a grid of ``n_cells``: one stamp per cell and a token no cell holds yet
    (a cell is counted once per integration: stamped with that integration's token). Shared by every map of that
    size in one thread, so a map carries no scratch; per thread, because the kernels release the GIL and maps may
    be updated from several threads at once (``VectorMapWrapper`` updates its map kinds concurrently)."""
    by_size = getattr(_STAMPS, "by_size", None)
    if by_size is None:
        by_size = _STAMPS.by_size = {}
    stamps = by_size.get(n_cells)
    if stamps is None:
        stamps = by_size[n_cells] = np.zeros(n_cells, np.int64)
    return stamps, next(_TOKENS)


@dataclass
class OccupancyConfig:
    """Extent, resolution and height bands of the map."""

    cell_size: float = 0.05
    """Cell side, metres."""
    shape: tuple[int, int] = (512, 512)
    """Grid size (rows along y, columns along x)."""
    origin: tuple[float, float] = (-12.8, -12.8)
    """World (x, y) of the outer corner of cell [0, 0], metres."""
    floor_z: float = 0.0
    """World height of the floor, metres."""
    floor_band: float = 0.05
    """Points within this height of the floor count as floor (free) evidence, metres."""
    obstacle_min_z: float = 0.1
    """Lowest obstacle height above the floor, metres (below: floor clutter the agent steps over)."""
    obstacle_max_z: float = 1.5
    """Highest obstacle height above the floor, metres (above: ceiling, overhangs above the agent)."""
    min_hits: int = 1
    """Obstacle points needed before a cell counts as occupied."""
    carve_free: bool = True
    """Also mark free the cells a floor-hitting ray passed over (the ray crossed them inside the obstacle
    band without hitting anything); without it only the sparse cells hit by floor pixels are free."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.cell_size) and self.cell_size > 0):
            raise ValueError(f"cell_size must be a positive finite number, got {self.cell_size}")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"shape must be two positive ints, got {self.shape}")
        if not self.obstacle_min_z < self.obstacle_max_z:
            raise ValueError(f"obstacle band [{self.obstacle_min_z}, {self.obstacle_max_z}] is empty")
        if self.floor_band < 0 or self.min_hits < 1:
            raise ValueError(f"floor_band must be >= 0 and min_hits >= 1, got {self.floor_band}, {self.min_hits}")


@dataclass
class IntegrateStats:
    """Where the points of one integration went."""

    n_points: int = 0
    n_floor: int = 0
    n_obstacle: int = 0
    n_ignored: int = 0  # outside both height bands
    n_outside_map: int = 0  # inside a band but outside the grid
    n_nonfinite: int = 0


class OccupancyMap:
    """Hit-count occupancy grid with floor (free) evidence and the last semantic label per obstacle cell."""

    def __init__(self, cfg: OccupancyConfig | None = None) -> None:
        self.cfg = cfg or OccupancyConfig()
        self.cell_size = float(self.cfg.cell_size)
        self.origin = np.asarray(self.cfg.origin, np.float64)
        self.shape = tuple(int(s) for s in self.cfg.shape)
        self.clear()

    def clear(self) -> None:
        """Forgets everything."""
        self.floor_hits = np.zeros(self.shape, np.int32)
        self.obstacle_hits = np.zeros(self.shape, np.int32)
        self.carved = np.zeros(self.shape, np.int32)  # floor rays that passed over each cell
        self.semantic = np.zeros(self.shape, np.int32)  # 0 = unknown / no label
        c = self.cfg
        self._params = np.array(
            [c.floor_z, c.floor_band, c.obstacle_min_z, c.obstacle_max_z, *self.origin, self.cell_size, *self.shape],
            np.float64,
        )

    # ------------------------------------------------------------- conversion
    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """Cell indices ``(row, col)`` int64 ``[N, 2]`` of world points ``[N, 2]`` (or ``[N, 3]``, z ignored).

        Points outside the grid get indices outside ``[0, shape)``; check with :meth:`in_bounds`.
        """
        xy = np.asarray(xy, np.float64).reshape(-1, np.shape(xy)[-1])[:, :2]
        if not np.isfinite(xy).all():
            raise ValueError("world_to_cell got NaN or inf coordinates")
        cr = np.floor((xy - self.origin) / self.cell_size).astype(np.int64)  # (col, row)
        return cr[:, ::-1].copy()

    def cell_to_world(self, rc: np.ndarray) -> np.ndarray:
        """World (x, y) float64 ``[N, 2]`` of the centres of cells ``(row, col)`` ``[N, 2]``."""
        rc = np.asarray(rc, np.float64).reshape(-1, 2)
        return self.origin + (rc[:, ::-1] + 0.5) * self.cell_size

    def in_bounds(self, rc: np.ndarray) -> np.ndarray:
        """Whether cells ``(row, col)`` ``[N, 2]`` lie in the grid: bool ``[N]``."""
        rc = np.asarray(rc).reshape(-1, 2)
        return (rc[:, 0] >= 0) & (rc[:, 0] < self.shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < self.shape[1])

    def cell_centers(self) -> np.ndarray:
        """World (x, y) of every cell centre, float64 ``[rows, cols, 2]``."""
        cols = self.origin[0] + (np.arange(self.shape[1]) + 0.5) * self.cell_size
        rows = self.origin[1] + (np.arange(self.shape[0]) + 0.5) * self.cell_size
        xx, yy = np.meshgrid(cols, rows)
        return np.stack([xx, yy], axis=-1)

    # ------------------------------------------------------------ integration
    def integrate_points(
        self, points: np.ndarray, labels: np.ndarray | None = None, sensor: np.ndarray | None = None
    ) -> IntegrateStats:
        """Adds world points ``[N, 3]`` (and optional int labels ``[N]``, 0 = none) as evidence.

        With ``sensor`` (the camera position ``[3]``) and ``cfg.carve_free``, cells under the segment from the
        sensor to each floor point are marked as passed over (free unless occupied). Floor points seen in (nearly)
        the same direction from the sensor lie on one line from it (every pixel of an image column does, for a
        level camera), so only the farthest end per direction is walked: the directions are binned at
        ``step / longest`` radians (``step`` = half a cell), within which the nearer segments stray at most
        ``step`` from the farthest one -- the sampling's own tolerance; each walked segment is sampled every
        ``<= step`` up to ``step`` short of its end (the end cell was hit directly), one vote per cell per call.
        """
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.shape[0] != pts.shape[0]:
                raise ValueError(f"got {labels.shape[0]} labels for {pts.shape[0]} points")
        x, y, z = np.ascontiguousarray(pts.T)
        counts = self._integrate(x, y, z, labels, None if sensor is None else np.asarray(sensor, np.float64))
        return IntegrateStats(
            n_points=pts.shape[0],
            n_floor=int(counts[1]),
            n_obstacle=int(counts[2]),
            n_ignored=int(counts[3]),
            n_outside_map=int(counts[4]),
            n_nonfinite=int(pts.shape[0] - counts[0]),
        )

    def _integrate(self, x, y, z, labels, sensor) -> np.ndarray:
        """The compiled update (``kernels.occupancy_integrate``) of one frame's point coordinates."""
        c = self.cfg
        mark, token = _carve_stamps(self.shape[0] * self.shape[1])
        carve = sensor is not None and c.carve_free
        sx, sy = (float(sensor.reshape(-1)[0]), float(sensor.reshape(-1)[1])) if carve else (0.0, 0.0)
        return kernels.occupancy_integrate(
            x, y, z, kernels.NO_LABELS if labels is None else labels, sx, sy, carve,
            self.floor_hits.reshape(-1), self.obstacle_hits.reshape(-1), self.carved.reshape(-1),
            self.semantic.reshape(-1), mark, token, self._params,
        )  # fmt: skip

    def integrate_depth(
        self,
        depth: np.ndarray,
        intrinsics: CameraIntrinsics,
        cam_to_world: np.ndarray,
        max_depth: float,
        semantic: np.ndarray | None = None,
    ) -> IntegrateStats:
        """Back-projects a z-depth image ``[H, W(, 1)]`` (and optional ids ``[H, W(, 1)]``) into the map."""
        pts, idx = backproject_depth(depth, intrinsics, cam_to_world, max_depth)
        labels = None if semantic is None else np.asarray(semantic).reshape(-1)[idx]
        return self.integrate_points(pts, labels, sensor=np.asarray(cam_to_world, np.float64)[:3, 3])

    # ------------------------------------------------------------------ masks
    @property
    def occupied_mask(self) -> np.ndarray:
        """Cells with at least ``min_hits`` obstacle points, bool ``[rows, cols]``."""
        return self.obstacle_hits >= self.cfg.min_hits

    @property
    def observed_free_mask(self) -> np.ndarray:
        """Cells seen as floor (hit by, or passed over by, a floor ray) and not occupied, bool ``[rows, cols]``."""
        return ((self.floor_hits > 0) | (self.carved > 0)) & ~self.occupied_mask

    @property
    def explored_mask(self) -> np.ndarray:
        """Cells with any evidence, bool ``[rows, cols]``."""
        return (self.floor_hits > 0) | (self.carved > 0) | (self.obstacle_hits > 0)

    # ------------------------------------------------------------------- crop
    def crop(
        self, position: np.ndarray, yaw: float, size: int, rotate: bool = True, dtype: np.dtype = np.float32
    ) -> np.ndarray:
        """Agent-centred crop ``[3, size, size]`` of ``dtype`` (float32 by default; any dtype that holds the
        semantic ids): occupied, observed free, semantic id.

        Crop pixel ``(r, c)`` shows the point ``forward = (size/2 - r - 0.5) * cs``,
        ``left = (size/2 - c - 0.5) * cs`` from the agent: the heading points up (row 0) when ``rotate``;
        otherwise world +x points up and +y left. Cells outside the grid read 0.
        """
        if size < 1:
            raise ValueError(f"crop size must be >= 1, got {size}")
        pos = np.asarray(position, np.float64).reshape(-1)[:2]
        if not (np.isfinite(pos).all() and np.isfinite(yaw)):
            raise ValueError(f"crop position/yaw must be finite, got {pos.tolist()}, {yaw}")
        fwd, left = _crop_offsets(size, self.cell_size)  # [S * S] each
        a = yaw if rotate else 0.0
        out = np.empty((3, size * size), dtype)
        self._crop_into(pos, math.cos(a), math.sin(a), fwd, left, out)
        return out.reshape(3, size, size)

    def _crop_into(self, pos, ca: float, sa: float, fwd: np.ndarray, left: np.ndarray, out: np.ndarray) -> None:
        kernels.occupancy_crop(
            float(pos[0]), float(pos[1]), ca, sa, fwd, left, self._params[4], self._params[5], self.cell_size,
            self.shape[0], self.shape[1], self.cfg.min_hits, self.floor_hits.reshape(-1),
            self.obstacle_hits.reshape(-1), self.carved.reshape(-1), self.semantic.reshape(-1), out,
        )  # fmt: skip


@functools.lru_cache(maxsize=8)
def _crop_offsets(size: int, cell_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward and left offsets (metres) of every crop pixel, float64 ``[size * size]`` each, row-major
    (read-only; cached per crop size and cell size)."""
    off = (size / 2.0 - np.arange(size) - 0.5) * cell_size
    fwd, left = np.meshgrid(off, off, indexing="ij")  # [S, S] each
    fwd, left = fwd.reshape(-1), left.reshape(-1)
    fwd.flags.writeable = False
    left.flags.writeable = False
    return fwd, left


def integrate_points_batch(
    maps: list[OccupancyMap],
    points: np.ndarray,
    frame: np.ndarray,
    labels: np.ndarray | None = None,
    sensors: np.ndarray | None = None,
    columns: np.ndarray | None = None,
) -> None:
    """Integrates B frames into B maps: ``maps[b]`` gets the points of ``frame == b``, the same evidence as
    ``maps[b].integrate_points(points[frame == b], labels[frame == b], sensors[b])``, read from contiguous
    coordinate rows (one compiled pass per map, no per-map copies of the points).

    Args:
        maps: B maps.
        points: world points float ``[M, 3]``, grouped by frame (frame 0's first).
        frame: the map index int ``[M]`` of each point, non-decreasing.
        labels: optional int ``[M]`` (0 = none).
        sensors: optional camera positions float ``[B, 3]`` (carving, as ``sensor`` of ``integrate_points``).
        columns: ``points.T`` as a contiguous float64 ``[3, M]`` when the caller has it (else made here).
    """
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    frame = np.asarray(frame, np.int64).reshape(-1)
    if not maps or pts.shape[0] == 0:
        return
    x, y, z = np.ascontiguousarray(pts.T) if columns is None else columns
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != pts.shape[0]:
            raise ValueError(f"got {labels.shape[0]} labels for {pts.shape[0]} points")
    cuts = np.searchsorted(frame, np.arange(len(maps) + 1))
    for b, m in enumerate(maps):
        if cuts[b] < cuts[b + 1]:
            s = slice(cuts[b], cuts[b + 1])
            sensor = None if sensors is None else np.asarray(sensors[b], np.float64)
            m._integrate(x[s], y[s], z[s], None if labels is None else labels[s], sensor)


def crop_batch(
    maps: list[OccupancyMap],
    positions: np.ndarray,
    yaws: np.ndarray,
    size: int,
    rotate: bool = True,
    dtype: np.dtype = np.float32,
) -> np.ndarray:
    """``np.stack([maps[b].crop(positions[b], yaws[b], size, rotate, dtype) for b])``, ``[B, 3, size, size]``,
    written straight into one array."""
    n_maps = len(maps)
    pos = np.asarray(positions, np.float64).reshape(n_maps, -1)[:, :2]
    yaws = np.asarray(yaws, np.float64).reshape(n_maps)
    if size < 1 or not (np.isfinite(pos).all() and np.isfinite(yaws).all()):
        return np.stack([m.crop(pos[b], float(yaws[b]), size, rotate, dtype) for b, m in enumerate(maps)])
    out = np.empty((n_maps, 3, size * size), dtype)
    for b, m in enumerate(maps):
        fwd, left = _crop_offsets(size, m.cell_size)
        a = float(yaws[b]) if rotate else 0.0
        m._crop_into(pos[b], math.cos(a), math.sin(a), fwd, left, out[b])
    return out.reshape(n_maps, 3, size, size)
