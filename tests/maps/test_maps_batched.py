"""The batched map updates (one pass over the N back-projected clouds of a step) against the per-map update they
replace: the same map state and the same features, bit for bit."""

import math

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401  (registers the ids)
from chronotope.maps.geometry import camera_yaw, world_to_agent_xy
from chronotope.maps.occupancy import OccupancyConfig, OccupancyMap, crop_batch, integrate_points_batch
from chronotope.maps.octree import OctreeConfig, SparseOctree, insert_batch, query_knn_batch
from chronotope.maps.wrappers import Frames, OccupancyKind, OctreeKind, apply_vector_wrappers

KW = {"obs_mode": "depth", "semantic": True, "resolution": (24, 24), "num_scenes": 2}
OCC_FIELDS = ("floor_hits", "obstacle_hits", "carved", "semantic")
OCT_FIELDS = ("_slot_keys", "_slot_ijk", "_count", "_point_sum", "label_histograms", "_keys", "_slots")


def _occupancy_per_map(kind: OccupancyKind, maps: list, frames: Frames) -> np.ndarray:
    """The per-map update the batched one replaced (OccupancyKind.observe before batching)."""
    out = np.empty((len(frames), *kind.space.shape), np.float32)
    for b, m in enumerate(maps):
        pts, idx = frames.points(b)
        labels = None if frames.semantic is None else frames.semantic[b].reshape(-1)[idx]
        m.integrate_points(pts, labels, sensor=frames.poses[b, :3, 3])
        pose = frames.poses[b]
        out[b] = m.crop(pose[:3, 3], camera_yaw(pose), kind.crop_size, kind.rotate)
    return out


def _octree_per_map(kind: OctreeKind, maps: list, frames: Frames) -> np.ndarray:
    """The per-map update the batched one replaced (OctreeKind.observe before batching)."""
    out = np.zeros((len(frames), kind.k, 6), np.float32)
    sem = None
    if frames.semantic is not None and kind.cfg.num_labels:
        sem = np.clip(frames.semantic, 0, kind.cfg.num_labels - 1)
    for b, m in enumerate(maps):
        pts, idx = frames.points(b)
        m.insert(pts, None if sem is None else sem[b].reshape(-1)[idx])
        pose = frames.poses[b]
        cam = pose[:3, 3]
        slots, _ = m.query_knn(cam, kind.k)
        n = slots.shape[0]
        if n == 0:
            continue
        off = m.centers(m.slot_keys(slots)) - cam
        out[b, :n, :2] = world_to_agent_xy(off[:, :2], camera_yaw(pose))
        out[b, :n, 2] = off[:, 2]
        out[b, :n, 3] = np.log1p(m.counts(slots))
        out[b, :n, 4] = m.label_histograms(slots).argmax(axis=1) if kind.cfg.num_labels else -1
        out[b, :n, 5] = 1.0
    return out


def _assert_same_state(a, b, fields, where) -> None:
    for f in fields:
        x, y = getattr(a, f), getattr(b, f)
        if f == "label_histograms":  # public: the histograms are made on the first labelled insert
            x, y = x(np.arange(len(a))), y(np.arange(len(b)))
        elif f.startswith("_slot") or f in ("_count", "_point_sum"):
            x, y = x[: len(a)], y[: len(b)]
        np.testing.assert_array_equal(x, y, err_msg=f"{where} {f}")
        assert x.dtype == y.dtype, (where, f)


@pytest.mark.parametrize("semantic", [True, False])
def test_batched_map_update_equals_per_map_update_on_env_frames(semantic):
    n = 4
    venv = apply_vector_wrappers(
        gym.make_vec("chronotope/PointNav-v0", num_envs=n, vectorization_mode="vector_entry_point",
                     **{**KW, "semantic": semantic}),
        "occupancy,octree",
    )  # fmt: skip
    occ, octk = venv.kinds
    assert isinstance(occ, OccupancyKind) and isinstance(octk, OctreeKind)
    obs, info = venv.reset(seed=5)
    batched = {k.key: [k.new_map() for _ in range(n)] for k in venv.kinds}
    single = {k.key: [k.new_map() for _ in range(n)] for k in venv.kinds}
    rng = np.random.default_rng(1)
    for t in range(12):
        frames = Frames(obs, info["camera_pose"], venv.intrinsics, venv.max_depth)
        ref = Frames(obs, info["camera_pose"], venv.intrinsics, venv.max_depth)
        np.testing.assert_array_equal(occ.observe(batched["occupancy"], frames),
                                      _occupancy_per_map(occ, single["occupancy"], ref), err_msg=str(t))  # fmt: skip
        np.testing.assert_array_equal(octk.observe(batched["octree_knn"], frames),
                                      _octree_per_map(octk, single["octree_knn"], ref), err_msg=str(t))  # fmt: skip
        for i in range(n):
            _assert_same_state(batched["occupancy"][i], single["occupancy"][i], OCC_FIELDS, (t, i))
            _assert_same_state(batched["octree_knn"][i], single["octree_knn"][i], OCT_FIELDS, (t, i))
        obs, _, _, _, info = venv.step(rng.integers(1, 4, n))
    assert sum(len(m) for m in batched["octree_knn"]) > 0
    assert sum(int(m.carved.sum()) for m in batched["occupancy"]) > 0
    venv.close()


def _clouds(rng, n_maps: int, lo: float, hi: float, sizes=None):
    sizes = rng.integers(0, 300, n_maps) if sizes is None else np.asarray(sizes)
    frame = np.repeat(np.arange(n_maps), sizes)
    pts = rng.uniform(lo, hi, (frame.shape[0], 3))
    return pts, frame


def test_batched_updates_equal_per_map_updates_on_edge_cases():
    """Empty clouds, points outside the grid / cube, non-finite points, duplicate cells and repeated updates."""
    rng = np.random.default_rng(0)
    ocfg = OccupancyConfig(cell_size=0.1, shape=(30, 40), origin=(-1.0, -1.0), floor_band=0.3)
    tcfg = OctreeConfig(origin=(-1.0, -1.0, -1.0), size=4.0, depth=6, num_labels=5)
    n_maps = 5
    occ_b, occ_s = [OccupancyMap(ocfg) for _ in range(n_maps)], [OccupancyMap(ocfg) for _ in range(n_maps)]
    oct_b, oct_s = [SparseOctree(tcfg) for _ in range(n_maps)], [SparseOctree(tcfg) for _ in range(n_maps)]
    for step in range(6):
        sizes = [0, 250, 1, 400, 90] if step % 2 == 0 else None
        pts, frame = _clouds(rng, n_maps, -1.5, 3.5, sizes)
        pts[rng.random(pts.shape[0]) < 0.02, rng.integers(0, 3)] = np.nan
        dup = rng.random(pts.shape[0]) < 0.3
        pts[dup] = np.round(pts[dup], 1)  # many points in the same cells and leaves
        labels = rng.integers(0, 5, pts.shape[0])
        sensors = rng.uniform(0.0, 2.0, (n_maps, 3))
        integrate_points_batch(occ_b, pts, frame, labels, sensors)
        ok = np.isfinite(pts).all(axis=1)
        insert_batch(oct_b, pts, frame, labels)
        for b in range(n_maps):
            s = frame == b
            occ_s[b].integrate_points(pts[s], labels[s], sensors[b])
            oct_s[b].insert(pts[s], labels[s])
            _assert_same_state(occ_b[b], occ_s[b], OCC_FIELDS, (step, b))
            _assert_same_state(oct_b[b], oct_s[b], OCT_FIELDS, (step, b))
        assert ok.sum() < pts.shape[0] or step % 2
        yaws = rng.uniform(-math.pi, math.pi, n_maps)
        pos = rng.uniform(-2.0, 4.0, (n_maps, 3))
        for rotate in (True, False):
            crops = crop_batch(occ_b, pos, yaws, 17, rotate)
            for b in range(n_maps):
                np.testing.assert_array_equal(crops[b], occ_s[b].crop(pos[b], yaws[b], 17, rotate))


def test_batched_knn_equals_per_tree_knn():
    """Trees of all sizes (empty, fewer leaves than k, dense clusters), query points inside and outside the cube,
    and a tree whose k-d tree is built (a radius query since its last new leaf)."""
    rng = np.random.default_rng(3)
    cfg = OctreeConfig(origin=(0.0, 0.0, 0.0), size=6.4, depth=7)
    trees = [SparseOctree(cfg) for _ in range(7)]
    sizes = [0, 3, 40, 2000, 500, 1500, 800]
    for t, n in zip(trees, sizes):
        if n:
            t.insert(rng.uniform(0.0, 6.4, (n, 3)))
            t.insert(rng.uniform(2.0, 2.4, (n // 4, 3)))
    trees[6].query_radius(np.array([1.0, 1.0, 1.0]), 0.5)  # builds its k-d tree
    for q in range(30):
        pts = rng.uniform(-1.0, 7.4, (len(trees), 3)) if q % 3 else rng.uniform(2.0, 2.4, (len(trees), 3))
        for k in (1, 16, 60):
            got = query_knn_batch(trees, pts, k)
            for b, t in enumerate(trees):
                np.testing.assert_array_equal(got[b], t.query_knn(pts[b], k)[0], err_msg=f"{q} {k} {b}")


def test_batched_backprojection_equals_the_reference_arithmetic():
    """backproject_depth_batch (a compiled pass) against the same arithmetic in numpy (fancy rows, divmod), bit for
    bit, and against the matrix product to rounding."""
    from chronotope.envs.render.camera import CameraIntrinsics
    from chronotope.maps.geometry import backproject_depth_batch

    rng = np.random.default_rng(2)
    intr = CameraIntrinsics(height=12, width=20, hfov_deg=79.0)
    depth = rng.uniform(-0.5, 6.0, (5, 12, 20, 1)).astype(np.float32)
    depth[1] = 5.0  # a frame that hits nothing (max_depth)
    depth[2, 3, 4] = np.nan
    poses = np.tile(np.eye(4), (5, 1, 1))
    for p in poses:
        p[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        p[:3, 3] = rng.uniform(-3, 3, 3)
    pts, frame, idx = backproject_depth_batch(depth, intr, poses, 5.0)
    d = depth.astype(np.float64)[..., 0]
    flat = d.reshape(-1)
    with np.errstate(invalid="ignore"):
        lin = np.flatnonzero(np.isfinite(flat) & (flat > 0) & (flat < 5.0))
    ref_frame, ref_idx = np.divmod(lin, 12 * 20)
    pc = intr.camera_rays().reshape(-1, 3).astype(np.float64)[ref_idx] * flat[lin, None]
    rot, t = poses[ref_frame, :3, :3], poses[ref_frame, :3, 3]
    # each row's products added left to right, then the translation (elementwise ufuncs: no fused multiply-add)
    ref = (pc[:, None, 0] * rot[:, :, 0] + pc[:, None, 1] * rot[:, :, 1] + pc[:, None, 2] * rot[:, :, 2]) + t
    np.testing.assert_allclose(ref, np.einsum("mij,mj->mi", rot, pc) + t, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(frame, ref_frame)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(pts, ref)


def test_batched_knn_level_hint_equals_per_tree_knn():
    """The search from the level the previous answer predicts (query_knn_batch's ``_knn_level``) of walking points
    over growing trees, with equal distances (grid-aligned leaves and points), answers as query_knn does, from
    levels below, at and above the one that answers."""
    rng = np.random.default_rng(5)
    cfg = OctreeConfig(origin=(0.0, 0.0, 0.0), size=6.4, depth=7)
    trees = [SparseOctree(cfg) for _ in range(5)]
    for t in trees:
        t.insert(rng.uniform(0.0, 6.4, (3000, 3)))
        t.insert((rng.integers(40, 60, (400, 3)) + 0.5) * 0.05)  # a dense cluster of whole voxels
    pos = rng.uniform(2.0, 3.0, (len(trees), 3))
    pos[0] = (50 + 0.5) * 0.05  # a voxel centre: many leaves at equal distances
    answered = 0
    for q in range(40):
        k = 16 if q < 30 else 5  # a hint of another k is only a first guess
        if q % 4 == 0:  # new leaves between queries
            for t in trees:
                t.insert(rng.uniform(1.5, 3.5, (200, 3)))
        if q % 5 != 0:
            pos[1:] += rng.normal(0.0, 0.05, (len(trees) - 1, 3))
        if q == 20:
            pos[2] = rng.uniform(0.0, 6.4, 3)  # a jump: the hint's ball misses, the block search answers
        if q % 7 == 3:  # a stale hint far too coarse or too fine: only the search's first level
            trees[3]._knn_level = cfg.depth
            trees[4]._knn_level = 0
        hinted = [t._knn_level for t in trees]
        got = query_knn_batch(trees, pos, k)
        for b, t in enumerate(trees):
            np.testing.assert_array_equal(got[b], t.query_knn(pos[b], k)[0], err_msg=f"{q} {b}")
        answered += sum(h > 3 for h in hinted)
    assert answered >= 10  # queries that started above the first level (the hint of a sparse neighbourhood)
