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
import math
from dataclasses import dataclass

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.maps.geometry import backproject_depth
from chronotope.maps.morton import count_sorted, sort_groups


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
        sensor to each floor point are marked as passed over (free unless occupied).
        """
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        # column-wise: numpy reductions along a length-3 axis are several times slower
        finite = np.isfinite(pts[:, 0]) & np.isfinite(pts[:, 1]) & np.isfinite(pts[:, 2])
        all_finite = bool(finite.all())
        stats = IntegrateStats(n_points=pts.shape[0], n_nonfinite=int((~finite).sum()))
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.shape[0] != pts.shape[0]:
                raise ValueError(f"got {labels.shape[0]} labels for {pts.shape[0]} points")
            labels = labels if all_finite else labels[finite]
        pts = pts if all_finite else pts[finite]
        c = self.cfg
        h = pts[:, 2] - c.floor_z
        floor = np.abs(h) <= c.floor_band
        obst = (h >= c.obstacle_min_z) & (h <= c.obstacle_max_z)
        stats.n_ignored = int((~floor & ~obst).sum())
        rc = np.floor((pts[:, :2] - self.origin) / self.cell_size).astype(np.int64)[:, ::-1]
        inside = self.in_bounds(rc)
        stats.n_outside_map = int(((floor | obst) & ~inside).sum())
        flat = rc[:, 0] * self.shape[1] + rc[:, 1]
        f = floor & inside
        o = obst & inside
        stats.n_floor, stats.n_obstacle = int(f.sum()), int(o.sum())
        _add_counts(self.floor_hits, flat[f])
        _add_counts(self.obstacle_hits, flat[o])
        if sensor is not None and self.cfg.carve_free and f.any():
            self._carve(np.asarray(sensor, np.float64).reshape(3)[:2], pts[f, :2])
        if labels is not None:
            lab = labels[o]
            keep = lab != 0
            # duplicates within one batch: one of them wins (numpy assigns in order, so the last)
            self.semantic.reshape(-1)[flat[o][keep]] = lab[keep]
        return stats

    def _carve(self, start: np.ndarray, ends: np.ndarray) -> None:
        """Counts the cells under 2D segments ``start -> ends [N, 2]`` (end cells excluded: hit directly).

        Floor points seen in (nearly) the same direction from the sensor lie on one line from it (every pixel
        of an image column does, for a level camera), so only the farthest end per direction is walked: the
        directions are binned at ``step / longest`` radians, within which the nearer segments stray at most
        ``step`` (half a cell) from the farthest one -- the sampling's own tolerance. This cuts the samples
        from (floor pixels x length) to (image columns x length).
        """
        step = self.cell_size / 2  # half-cell steps miss at most corner-clipped cells
        vec = ends - start
        length = np.hypot(vec[:, 0], vec[:, 1])
        longest = float(length.max()) if length.size else 0.0
        if longest < step:
            return
        angle = np.arctan2(vec[:, 1], vec[:, 0])
        bins = np.floor(angle * (longest / step)).astype(np.int64)
        order = np.lexsort((length, bins))  # by direction bin, then length: the last of each bin is its farthest
        sb = bins[order]
        last = np.flatnonzero(np.concatenate([sb[1:] != sb[:-1], [True]]))
        far = order[last]
        vec, length = vec[far], length[far]
        # ragged sampling: segment i gets n_i = ceil(L_i / step) samples at k * L_i / n_i, k < n_i, each kept
        # while at least ``step`` short of its end cell
        n = np.ceil(length / step).astype(np.int64)
        seg = np.repeat(np.arange(n.shape[0]), n)
        k = np.arange(seg.shape[0]) - np.repeat(np.cumsum(n) - n, n)
        frac = k / n[seg]
        keep = frac * length[seg] <= length[seg] - step
        seg, frac = seg[keep], frac[keep]
        xy = start + frac[:, None] * vec[seg]
        col = np.floor((xy[:, 0] - self.origin[0]) / self.cell_size).astype(np.int64)
        row = np.floor((xy[:, 1] - self.origin[1]) / self.cell_size).astype(np.int64)
        ok = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        # ``a[idx] += 1`` adds once per distinct index however often it repeats: one vote per frame per cell
        self.carved.reshape(-1)[(row * self.shape[1] + col)[ok]] += 1

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
        ca, sa = math.cos(a), math.sin(a)
        wx = pos[0] + ca * fwd - sa * left
        wy = pos[1] + sa * fwd + ca * left
        # world_to_cell, per coordinate (wx, wy are finite: position and yaw were checked)
        col = np.floor((wx - self.origin[0]) / self.cell_size).astype(np.int64)
        row = np.floor((wy - self.origin[1]) / self.cell_size).astype(np.int64)
        ok = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        out = np.zeros((3, size * size), dtype)
        flat = (row * self.shape[1] + col)[ok]
        # the masks of the cells in view only (the whole-grid masks cost more than the crop)
        occ = self.obstacle_hits.reshape(-1)[flat] >= self.cfg.min_hits
        seen = (self.floor_hits.reshape(-1)[flat] > 0) | (self.carved.reshape(-1)[flat] > 0)
        out[0, ok] = occ
        out[1, ok] = seen & ~occ
        out[2, ok] = self.semantic.reshape(-1)[flat]
        return out.reshape(3, size, size)


def _add_counts(grid: np.ndarray, flat: np.ndarray) -> None:
    """``np.add.at(grid.reshape(-1), flat, 1)``: one count per occurrence of each flat index (via the distinct
    indices and their counts, several times faster than ``np.add.at`` on a few thousand indices)."""
    if flat.size == 0:
        return
    cells, n = np.unique(flat, return_counts=True)
    grid.reshape(-1)[cells] += n.astype(grid.dtype)


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
    """Integrates B frames into B maps in one pass: ``maps[b]`` gets the points of ``frame == b``.

    The same evidence, bit for bit, as ``maps[b].integrate_points(points[frame == b], labels[frame == b],
    sensors[b])`` for each b in turn (tests/maps/test_maps_batched.py), but the classification, cell indices and
    carving run once over all B clouds, on contiguous coordinate rows; per map only the scatter into its grids
    remains. Maps with differing configs are integrated one by one.

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
    n_maps = len(maps)
    c = maps[0].cfg if maps else None
    if any(m.cfg != c for m in maps):
        bounds = np.searchsorted(frame, np.arange(n_maps + 1))
        for b, m in enumerate(maps):
            s = slice(bounds[b], bounds[b + 1])
            m.integrate_points(pts[s], None if labels is None else labels[s], None if sensors is None else sensors[b])
        return
    if not maps or pts.shape[0] == 0:
        return
    m0 = maps[0]
    x, y, z = np.ascontiguousarray(pts.T) if columns is None else columns
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != pts.shape[0]:
            raise ValueError(f"got {labels.shape[0]} labels for {pts.shape[0]} points")
    if not finite.all():
        x, y, z, frame = x[finite], y[finite], z[finite], frame[finite]
        labels = None if labels is None else labels[finite]
    h = z - c.floor_z
    floor = np.abs(h) <= c.floor_band
    obst = (h >= c.obstacle_min_z) & (h <= c.obstacle_max_z)
    rows, cols = m0.shape
    col = np.floor((x - m0.origin[0]) / m0.cell_size).astype(np.int64)
    row = np.floor((y - m0.origin[1]) / m0.cell_size).astype(np.int64)
    inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
    flat = row * cols + col
    f = floor & inside
    o = obst & inside
    n_cells = rows * cols
    key = frame * n_cells + flat
    for name, sel in (("floor_hits", f), ("obstacle_hits", o)):
        # one count per occurrence: the distinct (map, cell) pairs of the whole batch and their counts
        keys, n = count_sorted(key[sel])
        cuts = np.searchsorted(keys, np.arange(n_maps + 1) * n_cells)
        for b, m in enumerate(maps):
            if cuts[b] < cuts[b + 1]:
                s = slice(cuts[b], cuts[b + 1])
                grid = getattr(m, name).reshape(-1)
                grid[keys[s] - b * n_cells] += n[s].astype(grid.dtype)
    if sensors is not None and c.carve_free:
        _carve_batch(maps, np.asarray(sensors, np.float64).reshape(n_maps, 3), x[f], y[f], frame[f])
    if labels is not None:
        keep = o & (labels != 0)
        lab, where, fr = labels[keep], flat[keep], frame[keep]
        cuts = np.searchsorted(fr, np.arange(n_maps + 1))
        for b, m in enumerate(maps):
            s = slice(cuts[b], cuts[b + 1])
            # duplicates within one frame: the last wins, as in integrate_points
            m.semantic.reshape(-1)[where[s]] = lab[s]


def _carve_batch(maps: list[OccupancyMap], sensors: np.ndarray, ex: np.ndarray, ey: np.ndarray, frame: np.ndarray):
    """:meth:`OccupancyMap._carve` of every map at once: ``maps[b]`` from ``sensors[b]`` (x, y) to the ends
    ``(ex, ey)`` of ``frame == b`` (non-decreasing), the same samples as one call per map (every arithmetic step
    is the per-map one, element by element; the per-map direction binning uses each frame's own longest
    segment)."""
    if frame.shape[0] == 0:
        return
    m0 = maps[0]
    step = m0.cell_size / 2
    vx = ex - sensors[frame, 0]
    vy = ey - sensors[frame, 1]
    length = np.hypot(vx, vy)
    first = np.flatnonzero(np.concatenate([[True], frame[1:] != frame[:-1]]))
    longest = np.maximum.reduceat(length, first)  # per frame that has floor points
    per_point = np.repeat(longest, np.diff(np.append(first, frame.shape[0])))
    walk = per_point >= step  # frames whose longest segment is shorter than a step carve nothing
    if not walk.all():
        vx, vy, length, frame, per_point = vx[walk], vy[walk], length[walk], frame[walk], per_point[walk]
        if frame.shape[0] == 0:
            return
    angle = np.arctan2(vy, vx)
    bins = np.floor(angle * (per_point / step)).astype(np.int64)
    far = _farthest_per_bin(frame, bins, length)
    vx, vy, length, fr = vx[far], vy[far], length[far], frame[far]
    n = np.ceil(length / step).astype(np.int64)
    seg = np.repeat(np.arange(n.shape[0]), n)
    k = np.arange(seg.shape[0]) - np.repeat(np.cumsum(n) - n, n)
    frac = k / n[seg]
    ls = length[seg]
    keep = frac * ls <= ls - step
    seg, frac = seg[keep], frac[keep]
    fs = fr[seg]
    sx, sy = sensors[fr, 0], sensors[fr, 1]  # per segment, then per sample: the same values as sensors[fs, a]
    px = sx[seg] + frac * vx[seg]
    py = sy[seg] + frac * vy[seg]
    col = np.floor((px - m0.origin[0]) / m0.cell_size).astype(np.int64)
    row = np.floor((py - m0.origin[1]) / m0.cell_size).astype(np.int64)
    ok = (row >= 0) & (row < m0.shape[0]) & (col >= 0) & (col < m0.shape[1])
    flat = (row * m0.shape[1] + col)[ok]
    cuts = np.searchsorted(fs[ok], np.arange(len(maps) + 1))
    for b, m in enumerate(maps):
        if cuts[b] < cuts[b + 1]:
            # ``a[idx] += 1`` adds once per distinct index: one vote per frame per cell, as per map
            m.carved.reshape(-1)[flat[cuts[b] : cuts[b + 1]]] += 1


def _farthest_per_bin(frame: np.ndarray, bins: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``order[last]`` of ``order = np.lexsort((length, bins, frame))`` with ``last`` the final position of each
    (frame, bin) run: per (frame, bin), in that order, the index of the longest segment (of equal longest ones the
    last, as the stable sort leaves it). One stable grouping of (frame, bin) keys (:func:`morton.sort_groups`, a
    packed ``np.sort``) and per-run maxima instead of the three-key ``lexsort``, which costs several times more."""
    n = frame.shape[0]
    lo = int(bins.min())
    bin_bits = max(1, int(int(bins.max()) - lo).bit_length())
    key_bits = max(1, int(frame.max()).bit_length()) + bin_bits
    _, order, _, counts = sort_groups((frame << np.int64(bin_bits)) | (bins - lo), key_bits)  # then by index
    starts = np.cumsum(counts) - counts
    sl = length[order]
    is_max = sl == np.repeat(np.maximum.reduceat(sl, starts), counts)
    # the last position of each run holding its longest length (positions increase with the index in a run)
    pos = np.maximum.reduceat(np.where(is_max, np.arange(n), -1), starts)
    return order[pos]


def crop_batch(
    maps: list[OccupancyMap],
    positions: np.ndarray,
    yaws: np.ndarray,
    size: int,
    rotate: bool = True,
    dtype: np.dtype = np.float32,
) -> np.ndarray:
    """``np.stack([maps[b].crop(positions[b], yaws[b], size, rotate, dtype) for b])``, ``[B, 3, size, size]``,
    with the crop geometry computed once for the batch (the same values bit for bit; maps with differing grids
    are cropped one by one)."""
    n_maps = len(maps)
    pos = np.asarray(positions, np.float64).reshape(n_maps, -1)[:, :2]
    yaws = np.asarray(yaws, np.float64).reshape(n_maps)
    if n_maps == 0:
        return np.zeros((0, 3, size, size), dtype)
    m0 = maps[0]
    if size < 1 or any(m.cfg != m0.cfg for m in maps) or not (np.isfinite(pos).all() and np.isfinite(yaws).all()):
        return np.stack([m.crop(pos[b], float(yaws[b]), size, rotate, dtype) for b, m in enumerate(maps)])
    fwd, left = _crop_offsets(size, m0.cell_size)
    a = yaws if rotate else np.zeros(n_maps)
    # math.cos / math.sin per map, as crop computes them (numpy's vectorised cos may differ in the last bit)
    ca = np.array([math.cos(v) for v in a])[:, None]
    sa = np.array([math.sin(v) for v in a])[:, None]
    # crop's arithmetic, operation by operation, in place: wx = pos_x + ca * fwd - sa * left, ...
    wx = ca * fwd  # [B, S * S]
    np.add(pos[:, :1], wx, out=wx)
    wx -= sa * left
    wy = sa * fwd
    np.add(pos[:, 1:], wy, out=wy)
    wy += ca * left
    for w, o in ((wx, m0.origin[0]), (wy, m0.origin[1])):  # floor((w - origin) / cell_size)
        w -= o
        w /= m0.cell_size
        np.floor(w, out=w)
    col, row = wx.astype(np.int64), wy.astype(np.int64)
    ok = (row >= 0) & (row < m0.shape[0]) & (col >= 0) & (col < m0.shape[1])
    flat = row
    flat *= m0.shape[1]
    flat += col
    flat[~ok] = 0  # out-of-grid pixels read cell 0, then masked
    obst = np.empty(flat.shape, m0.obstacle_hits.dtype)
    seen = np.empty(flat.shape, bool)
    sem = np.empty(flat.shape, m0.semantic.dtype)
    for b, m in enumerate(maps):
        fb = flat[b]
        np.take(m.obstacle_hits.reshape(-1), fb, out=obst[b])
        seen[b] = (np.take(m.floor_hits.reshape(-1), fb) > 0) | (np.take(m.carved.reshape(-1), fb) > 0)
        np.take(m.semantic.reshape(-1), fb, out=sem[b])
    occ = (obst >= m0.cfg.min_hits) & ok
    out = np.empty((n_maps, 3, size * size), dtype)
    out[:, 0] = occ
    out[:, 1] = seen & ok & ~occ
    out[:, 2] = np.where(ok, sem, 0)
    return out.reshape(n_maps, 3, size, size)
