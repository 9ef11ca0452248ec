import numpy as np
import pytest
from maps_box_env import ROOM, BoxRoomEnv, surface_distance

from chronotope.maps import morton
from chronotope.maps.octree import OctreeConfig, SparseOctree

CFG = OctreeConfig(origin=(-2.0, -2.0, -2.0), size=4.0, depth=5, num_labels=3, feature_dim=2)  # 12.5 cm voxels


def _cloud(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # clustered so that many points share voxels and many voxels stay empty
    centres = rng.uniform(-1.8, 1.8, size=(20, 3))
    return centres[rng.integers(0, 20, n)] + rng.normal(scale=0.2, size=(n, 3))


def _brute_leaves(tree: SparseOctree, pts: np.ndarray):
    ijk = np.floor((pts - tree.origin) / tree.voxel_size).astype(np.int64)
    ok = ((ijk >= 0) & (ijk < tree.resolution)).all(axis=1)
    keys = np.unique(morton.encode_points(ijk[ok]))
    return keys, tree.centers(keys)


def test_leaf_count_and_payloads_match_brute_force():
    pts = _cloud(0)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, len(pts))
    feats = rng.normal(size=(len(pts), 2))
    tree = SparseOctree(CFG)
    stats = tree.insert(pts, labels, feats)
    keys, _ = _brute_leaves(tree, pts)
    assert len(tree) == keys.size == stats.n_new_leaves
    assert stats.n_inserted + stats.n_out_of_bounds == len(pts)
    np.testing.assert_array_equal(tree.keys, keys)
    ijk = np.floor((pts - tree.origin) / tree.voxel_size).astype(np.int64)
    for j in rng.choice(len(pts), 50):
        if not ((ijk[j] >= 0) & (ijk[j] < tree.resolution)).all():
            assert tree.query_point(pts[j]) is None
            continue
        same = (ijk == ijk[j]).all(axis=1)
        leaf = tree.query_point(pts[j])
        assert leaf.count == same.sum()
        np.testing.assert_array_equal(leaf.label_hist, np.bincount(labels[same], minlength=3))
        np.testing.assert_allclose(leaf.feature, feats[same].mean(axis=0))
        np.testing.assert_allclose(leaf.centroid, pts[same].mean(axis=0))
        # every point of the voxel reaches the same leaf
        assert set(tree.query_points(pts[same]).tolist()) == {leaf.slot}


def test_incremental_insert_equals_single_insert_and_slots_are_stable():
    pts = _cloud(2)
    a, b = SparseOctree(CFG), SparseOctree(CFG)
    a.insert(pts)
    slots_before = {}
    for chunk in np.array_split(pts, 7):
        b.insert(chunk)
        slots_before.update({int(k): int(s) for k, s in zip(b.keys, b.lookup(b.keys))})
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.counts(a.lookup(a.keys)), b.counts(b.lookup(b.keys)))
    # a key keeps the slot it was given when created
    assert all(int(b.lookup(np.array([k]))[0]) == s for k, s in slots_before.items())


def test_label_histograms_of_unlabelled_then_labelled_inserts():
    # the histograms are made only once labels arrive; before that every histogram reads empty, after it they
    # hold the labelled points only, as in a tree whose histograms existed from the start
    pts = _cloud(3)
    labels = np.random.default_rng(4).integers(0, 3, len(pts))
    lazy, eager = SparseOctree(CFG), SparseOctree(CFG)
    eager._label_store()
    for t in (lazy, eager):
        t.insert(pts[:1500])
    slots = lazy.lookup(lazy.keys)
    hist = lazy.label_histograms(slots)
    assert hist.shape == (len(lazy), 3) and hist.dtype == np.int64 and not hist.any()
    assert lazy.leaf(int(slots[0])).label_hist.tolist() == [0, 0, 0]
    for t in (lazy, eager):
        t.insert(pts[1500:], labels[1500:])
    np.testing.assert_array_equal(lazy.keys, eager.keys)
    hist = lazy.label_histograms(lazy.lookup(lazy.keys))
    np.testing.assert_array_equal(hist, eager.label_histograms(eager.lookup(eager.keys)))
    assert hist.sum() == np.count_nonzero(lazy.quantize(pts[1500:])[2])  # every labelled in-cube point, once


def test_unvisited_cells_return_none():
    tree = SparseOctree(CFG)
    tree.insert(np.array([[0.01, 0.01, 0.01]]))
    assert tree.query_point(np.array([0.01, 0.01, 0.01])) is not None
    assert tree.query_point(np.array([0.2, 0.01, 0.01])) is None
    assert tree.query_point(np.array([9.0, 0.0, 0.0])) is None  # outside the cube


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_box_knn_equal_brute_force(seed):
    pts = _cloud(seed)
    tree = SparseOctree(CFG)
    tree.insert(pts)
    keys, centres = _brute_leaves(tree, pts)
    rng = np.random.default_rng(seed + 10)
    for _ in range(20):
        q = rng.uniform(-2.2, 2.2, 3)
        r = rng.uniform(0.0, 1.5)
        d = np.linalg.norm(centres - q, axis=1)
        slots, dist = tree.query_radius(q, r)
        assert set(tree.slot_keys(slots).tolist()) == set(keys[d <= r].tolist())
        assert (np.diff(dist) >= 0).all()
        lo, hi = np.sort(rng.uniform(-2.2, 2.2, (2, 3)), axis=0)
        inside = ((centres >= lo) & (centres <= hi)).all(axis=1)
        np.testing.assert_array_equal(tree.slot_keys(tree.query_box(lo, hi)), keys[inside])
        k = int(rng.integers(1, 12))
        slots, dist = tree.query_knn(q, k)
        np.testing.assert_allclose(dist, np.sort(d)[:k])
        np.testing.assert_allclose(np.linalg.norm(tree.centers(tree.slot_keys(slots)) - q, axis=1), dist)


def _ray_brute(centres, half, o, d, max_range):
    """Entry distance of the ray into every leaf box (slab test); nearest leaf within range or None."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (centres - half - o) / d, (centres + half - o) / d
    t_near = np.nanmax(np.minimum(t1, t2), axis=1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=1)
    t_near = np.maximum(t_near, 0.0)
    hit = (t_near <= t_far) & (t_near <= max_range)
    if not hit.any():
        return None, None
    i = np.flatnonzero(hit)[np.argmin(t_near[hit])]
    return i, t_near[i]


def test_raycast_equals_brute_force():
    pts = _cloud(3, 1500)
    tree = SparseOctree(CFG)
    tree.insert(pts)
    keys, centres = _brute_leaves(tree, pts)
    rng = np.random.default_rng(4)
    n_hits = 0
    for j in range(80):
        o = rng.uniform(-2.5, 2.5, 3)
        # half the rays aim near a leaf so that hits are exercised as well as misses
        d = rng.normal(size=3) if j % 2 else centres[rng.integers(len(centres))] - o + rng.normal(scale=0.05, size=3)
        d /= np.linalg.norm(d)
        hit = tree.raycast(o, d, 3.0)
        i, t = _ray_brute(centres, tree.voxel_size / 2, o, d, 3.0)
        if i is None:
            assert hit is None
        else:
            n_hits += 1
            assert hit is not None and hit.key == keys[i]
            assert hit.t == pytest.approx(t, abs=1e-9)
    assert n_hits > 20  # the test exercised hits, not only misses


def test_coarser_levels():
    pts = _cloud(5)
    tree = SparseOctree(CFG)
    tree.insert(pts)
    for k in (1, 2, 3):
        cells, counts = tree.level_keys(k)
        ijk = np.floor((pts - tree.origin) / (tree.voxel_size * 2**k)).astype(np.int64)
        ok = ((ijk >= 0) & (ijk < tree.resolution >> k)).all(axis=1)
        ref, ref_counts = np.unique(morton.encode_points(ijk[ok]), return_counts=True)
        np.testing.assert_array_equal(cells, ref)
        np.testing.assert_array_equal(counts, ref_counts)
        np.testing.assert_array_equal(cells, np.unique(tree.keys >> (3 * k)))


def test_nan_inf_and_out_of_bounds_are_dropped_and_counted():
    tree = SparseOctree(CFG)
    pts = np.array([[0.1, 0.1, 0.1], [np.nan, 0, 0], [0, np.inf, 0], [5.0, 0, 0], [-2.0, -2.0, -2.0], [2.0, 0, 0]])
    stats = tree.insert(pts, labels=np.array([0, 1, 2, 1, 1, 1]))
    assert (stats.n_inserted, stats.n_nonfinite, stats.n_out_of_bounds) == (2, 2, 2)  # upper face is outside
    assert len(tree) == 2
    strict = SparseOctree(OctreeConfig(**{**CFG.__dict__, "on_invalid": "raise"}))
    with pytest.raises(ValueError, match="non-finite"):
        strict.insert(pts)
    assert len(strict) == 0  # nothing was inserted by the failed call
    with pytest.raises(ValueError, match="label 7"):
        tree.insert(np.zeros((1, 3)), labels=np.array([7]))
    with pytest.raises(ValueError, match="shape"):
        tree.insert(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="radius"):
        tree.query_radius(np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="center"):
        tree.query_radius(np.array([np.nan, 0, 0]), 1.0)


def _frames(n_views: int = 8):
    env = BoxRoomEnv(32, 32, max_depth=8.0)
    env.reset(seed=0)
    frames = []
    for i in range(n_views):
        obs, _, _, _, info = env.step(1 if i else 0)
        frames.append((obs["depth"], obs["semantic"], info["camera_pose"]))
    return env, frames


def _repeat_frames(n_frames: int):
    env, frames = _frames()
    tree = SparseOctree(OctreeConfig(origin=(-0.8, -0.8, -0.8), size=8.0, depth=6, num_labels=8))
    ref = set()
    for depth, sem, pose in frames:
        s = tree.insert_depth(depth, env.intrinsics, pose, env.max_depth, semantic=sem)
        ref |= set(tree.keys_of(_points(env, depth, pose)).tolist())
        assert s.n_nonfinite == 0 and s.n_out_of_bounds == 0
    n0 = len(tree)
    assert n0 == len(ref)
    for i in range(n_frames):
        depth, sem, pose = frames[i % len(frames)]
        assert tree.insert_depth(depth, env.intrinsics, pose, env.max_depth, semantic=sem).n_new_leaves == 0
    assert len(tree) == n0
    total = sum(int((d < env.max_depth).sum()) for d, _, _ in frames)
    assert tree.counts(np.arange(len(tree))).sum() == total * (1 + n_frames / len(frames))
    return tree, env


def _points(env, depth, pose):
    from chronotope.maps.geometry import backproject_depth

    return backproject_depth(depth, env.intrinsics, pose, env.max_depth)[0]


def test_memory_bounded_repeated_frames_fast():
    _repeat_frames(1_000)


@pytest.mark.slow
def test_memory_bounded_repeated_frames_100k():
    _repeat_frames(100_000)


def test_depth_map_voxels_lie_on_true_surfaces():
    env, frames = _frames()
    tree = SparseOctree(OctreeConfig(origin=(-0.8, -0.8, -0.8), size=8.0, depth=7))  # 6.25 cm voxels
    for depth, _, pose in frames:
        tree.insert_depth(depth, env.intrinsics, pose, env.max_depth)
    centres = tree.centers(tree.keys)
    assert len(tree) > 500
    assert ((centres > -tree.voxel_size) & (centres < ROOM + tree.voxel_size)).all()
    # every occupied voxel centre lies within one voxel (its half diagonal, plus float slack) of a surface
    assert surface_distance(np.clip(centres, 0, ROOM)).max() <= np.sqrt(3) / 2 * tree.voxel_size + 1e-9
