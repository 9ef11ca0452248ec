"""The compiled map kernels (chronotope.maps.kernels) against plain numpy references of the same updates: the
occupancy evidence, free-space carving and crop of one frame, and octree insertion at every tree depth.

The references are the vectorised numpy updates the kernels replaced, with one change: the direction of a
floor ray is ``math.atan2`` per ray (numpy's SIMD ``arctan2`` differs from libm's in the last bit for ~7% of
inputs, enough to move a ray into the next direction bin)."""

import math

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)
from chronotope.maps.geometry import camera_yaw
from chronotope.maps.occupancy import OccupancyConfig, OccupancyMap
from chronotope.maps.octree import OctreeConfig, SparseOctree, insert_batch
from chronotope.maps.wrappers import Frames

_atan2 = np.frompyfunc(math.atan2, 2, 1)


def _reference_integrate(m: OccupancyMap, pts: np.ndarray, labels, sensor) -> dict:
    """Evidence of one frame in numpy: hit counts per height band, the last label per obstacle cell, and the
    carving of the farthest floor ray per direction bin (one vote per cell)."""
    c = m.cfg
    ok = np.isfinite(pts).all(axis=1)
    pts, labels = pts[ok], None if labels is None else labels[ok]
    h = pts[:, 2] - c.floor_z
    floor = np.abs(h) <= c.floor_band
    obst = (h >= c.obstacle_min_z) & (h <= c.obstacle_max_z)
    col = np.floor((pts[:, 0] - m.origin[0]) / m.cell_size).astype(np.int64)
    row = np.floor((pts[:, 1] - m.origin[1]) / m.cell_size).astype(np.int64)
    inside = (row >= 0) & (row < m.shape[0]) & (col >= 0) & (col < m.shape[1])
    flat = row * m.shape[1] + col
    n_cells = m.shape[0] * m.shape[1]
    out = {
        "floor_hits": np.bincount(flat[floor & inside], minlength=n_cells),
        "obstacle_hits": np.bincount(flat[obst & inside], minlength=n_cells),
        "carved": np.zeros(n_cells, bool),  # one vote per cell per frame, however many rays pass over it
        "semantic": np.zeros(n_cells, np.int64),
    }
    if labels is not None:
        keep = obst & inside & (labels != 0)
        out["semantic"][flat[keep]] = labels[keep]  # numpy assigns in order: the last wins
    f = floor & inside
    if sensor is None or not c.carve_free or not f.any():
        return out
    step = m.cell_size / 2
    vec = pts[f, :2] - sensor[:2]
    length = np.hypot(vec[:, 0], vec[:, 1])
    longest = float(length.max())
    if longest < step:
        return out
    angle = _atan2(vec[:, 1], vec[:, 0]).astype(np.float64)
    bins = np.floor(angle * (longest / step)).astype(np.int64)
    order = np.lexsort((length, bins))  # by bin, then length: the last of each bin is its farthest (ties: last)
    sb = bins[order]
    far = order[np.flatnonzero(np.concatenate([sb[1:] != sb[:-1], [True]]))]
    for v, ln in zip(vec[far], length[far]):
        n = math.ceil(ln / step)
        frac = np.arange(n) / n
        frac = frac[frac * ln <= ln - step]
        cx = np.floor((sensor[0] + frac * v[0] - m.origin[0]) / m.cell_size).astype(np.int64)
        cy = np.floor((sensor[1] + frac * v[1] - m.origin[1]) / m.cell_size).astype(np.int64)
        ok = (cy >= 0) & (cy < m.shape[0]) & (cx >= 0) & (cx < m.shape[1])
        out["carved"][cy[ok] * m.shape[1] + cx[ok]] = True
    return out


def _reference_crop(m: OccupancyMap, position, yaw: float, size: int) -> np.ndarray:
    off = (size / 2.0 - np.arange(size) - 0.5) * m.cell_size
    fwd, left = (a.reshape(-1) for a in np.meshgrid(off, off, indexing="ij"))
    ca, sa = math.cos(yaw), math.sin(yaw)
    wx = position[0] + ca * fwd - sa * left
    wy = position[1] + sa * fwd + ca * left
    col = np.floor((wx - m.origin[0]) / m.cell_size).astype(np.int64)
    row = np.floor((wy - m.origin[1]) / m.cell_size).astype(np.int64)
    ok = (row >= 0) & (row < m.shape[0]) & (col >= 0) & (col < m.shape[1])
    flat = (row * m.shape[1] + col)[ok]
    out = np.zeros((3, size * size), np.float32)
    occ = m.obstacle_hits.reshape(-1)[flat] >= m.cfg.min_hits
    out[0, ok] = occ
    out[1, ok] = ((m.floor_hits.reshape(-1)[flat] > 0) | (m.carved.reshape(-1)[flat] > 0)) & ~occ
    out[2, ok] = m.semantic.reshape(-1)[flat]
    return out.reshape(3, size, size)


def _check_frame(m: OccupancyMap, pts, labels, sensor, where) -> None:
    """Integrates one frame into a fresh copy of ``m``'s evidence and compares it with the reference."""
    before = {k: getattr(m, k).reshape(-1).copy() for k in ("floor_hits", "obstacle_hits", "carved", "semantic")}
    stats = m.integrate_points(pts, labels, sensor)
    ref = _reference_integrate(m, pts, labels, sensor)
    for k in ("floor_hits", "obstacle_hits", "carved"):
        np.testing.assert_array_equal(m.__dict__[k].reshape(-1) - before[k], ref[k], err_msg=f"{where} {k}")
    sem = m.semantic.reshape(-1)
    written = ref["semantic"] != 0
    np.testing.assert_array_equal(sem[written], ref["semantic"][written], err_msg=f"{where} semantic")
    np.testing.assert_array_equal(sem[~written], before["semantic"][~written], err_msg=f"{where} semantic kept")
    assert stats.n_floor == ref["floor_hits"].sum() and stats.n_obstacle == ref["obstacle_hits"].sum()


def test_occupancy_kernel_equals_numpy_reference_on_env_frames():
    env = gym.make("chronotope/PointNav-v0", obs_mode="depth", semantic=True, resolution=(32, 32), num_scenes=2)
    obs, info = env.reset(seed=3)
    u = env.unwrapped
    m = OccupancyMap()
    rng = np.random.default_rng(0)
    carved = 0
    for t in range(25):
        fr = Frames({k: v[None] for k, v in obs.items()}, info["camera_pose"][None], u.intrinsics, u.max_depth)
        pts, idx = fr.points(0)
        labels = fr.semantic[0].reshape(-1)[idx]
        _check_frame(m, pts, labels, info["camera_pose"][:3, 3], t)
        pos, yaw = info["camera_pose"][:3, 3], camera_yaw(info["camera_pose"])
        np.testing.assert_array_equal(m.crop(pos, yaw, 48), _reference_crop(m, pos, yaw, 48), err_msg=str(t))
        carved = int(m.carved.sum())
        obs, _, term, trunc, info = env.step(int(rng.integers(1, 4)))
        if term or trunc:
            obs, info = env.reset()
    assert carved > 100 and m.obstacle_hits.sum() > 0 and (m.semantic > 0).any()
    env.close()


@pytest.mark.parametrize("band", [0.05, 0.3])
def test_occupancy_kernel_equals_numpy_reference_on_edge_cases(band):
    """Points outside the grid, non-finite points, many points per cell, equal ray lengths in one direction bin
    (the last wins), a sensor off the grid, overlapping height bands (a point both floor and obstacle), no
    sensor and a sensor closer than half a cell to every floor point."""
    cfg = OccupancyConfig(cell_size=0.1, shape=(30, 40), origin=(-1.0, -1.0), floor_band=band, obstacle_min_z=0.2)
    rng = np.random.default_rng(1)
    m = OccupancyMap(cfg)
    for step in range(12):
        n = int(rng.integers(1, 400))
        pts = rng.uniform(-1.5, 3.5, (n, 3))
        pts[:, 2] = rng.choice([0.0, 0.02, 0.25, 0.5, 2.0], n)
        pts[rng.random(n) < 0.03, int(rng.integers(0, 3))] = np.nan
        dup = rng.random(n) < 0.4
        pts[dup, :2] = np.round(pts[dup, :2], 1)
        labels = rng.integers(0, 4, n)
        sensor = [rng.uniform(-0.5, 2.5, 3), rng.uniform(5.0, 6.0, 3), None][step % 3]
        _check_frame(m, pts, labels if step % 2 else None, sensor, step)
        yaw = float(rng.uniform(-math.pi, math.pi))
        pos = rng.uniform(-2.0, 4.0, 2)
        np.testing.assert_array_equal(m.crop(pos, yaw, 17), _reference_crop(m, pos, yaw, 17))
    near = np.array([[0.51, 0.5, 0.0], [0.5, 0.52, 0.0]])
    before = m.carved.copy()
    m.integrate_points(near, sensor=np.array([0.5, 0.5, 1.0]))
    np.testing.assert_array_equal(m.carved, before)  # every floor ray shorter than half a cell: nothing walked


@pytest.mark.parametrize("depth", [3, 11, 12, 21])
def test_octree_batched_kernel_equals_insert_at_every_depth(depth):
    """The hash-grouped batched insertion against ``insert`` (numpy's unique) per tree, with coordinates that use
    every bit of the Morton code (depth 21: 63-bit codes), points outside the cube and many points per leaf."""
    cfg = OctreeConfig(origin=(-1.0, -2.0, -3.0), size=8.0, depth=depth, num_labels=3)
    rng = np.random.default_rng(depth)
    trees_b = [SparseOctree(cfg) for _ in range(3)]
    trees_s = [SparseOctree(cfg) for _ in range(3)]
    for step in range(4):
        sizes = rng.integers(0, 3000, 3)
        frame = np.repeat(np.arange(3), sizes)
        pts = rng.uniform(-4.0, 7.0, (frame.shape[0], 3))
        coarse = rng.random(pts.shape[0]) < 0.5
        pts[coarse] = np.round(pts[coarse], 1)  # many points per leaf at the coarser depths
        pts[rng.random(pts.shape[0]) < 0.2] = rng.uniform(-1.0, 5.0, 3)  # one shared point: one leaf at any depth
        labels = rng.integers(0, 3, pts.shape[0])
        insert_batch(trees_b, pts, frame, labels)
        for b in range(3):
            trees_s[b].insert(pts[frame == b], labels[frame == b])
            for f in ("_keys", "_slots"):
                np.testing.assert_array_equal(getattr(trees_b[b], f), getattr(trees_s[b], f), err_msg=f"{step} {f}")
            n = len(trees_s[b])
            assert len(trees_b[b]) == n
            for f in ("_slot_keys", "_slot_ijk", "_count", "_point_sum"):
                np.testing.assert_array_equal(getattr(trees_b[b], f)[:n], getattr(trees_s[b], f)[:n], err_msg=f)
            np.testing.assert_array_equal(trees_b[b].label_histograms(np.arange(n)),
                                          trees_s[b].label_histograms(np.arange(n)))  # fmt: skip
    assert max(len(t) for t in trees_s) > (50 if depth > 3 else 10)


def test_occupancy_updates_from_concurrent_threads_equal_sequential_ones():
    """The kernels release the GIL and VectorMapWrapper runs map kinds in worker threads: maps of one grid size
    updated from several threads at once (each thread its own carving scratch) equal the same updates in turn."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = OccupancyConfig(cell_size=0.05, shape=(200, 200), origin=(-5.0, -5.0))
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(30):
        pts = rng.uniform(-4.0, 4.0, (3000, 3))
        pts[:, 2] = rng.choice([0.0, 0.5], 3000)
        frames.append((pts, rng.uniform(-1.0, 1.0, 3)))

    def run(m: OccupancyMap) -> OccupancyMap:
        for pts, sensor in frames:
            m.integrate_points(pts, sensor=sensor)
        return m

    ref = run(OccupancyMap(cfg))
    with ThreadPoolExecutor(4) as pool:
        maps = list(pool.map(run, [OccupancyMap(cfg) for _ in range(4)]))
    assert ref.carved.sum() > 1000
    for m in maps:
        for k in ("floor_hits", "obstacle_hits", "carved"):
            np.testing.assert_array_equal(getattr(m, k), getattr(ref, k), err_msg=k)
