"""Sparse voxel octree keyed by 63-bit Morton codes (Mem4Nav's spatial map, but vectorised and exact).

Only occupied leaves exist. Storage is two-level:

* **Slots** (stable, append-only, capacity doubling) hold the per-leaf payload: point count, point sum (for
  the centroid), semantic label histogram, feature running sum, and the LTM token slot. A slot id never
  changes, so other structures (Mem4Nav, wrappers) may keep it.
* **A sorted Morton index** ``(_keys, _slots)`` gives O(log M) point lookup with ``np.searchsorted``. New
  keys are merged in with ``np.insert`` (one O(M) memcpy per batch that creates leaves; batches that only
  revisit known voxels cost O(N log M)). Coarser levels are ``key >> 3k`` over this sorted array, which stays
  sorted, so a level's cells and counts come out in one linear pass.

Radius and box queries go through a ``scipy.spatial.cKDTree`` over leaf centres (in
integer voxel units, so distances are exact), rebuilt lazily the first time a geometric query follows an
insertion that created leaves. Why a k-d tree rather than descending the Morton hierarchy: its queries are
O(log M + output) in compiled code, whereas a level-by-level numpy descent pays ~10 numpy calls per level
per query; and the rebuild (O(M log M), ~3 ms for 2*10^4 leaves) is paid only when geometry changed. k nearest
leaves (the map wrappers' query, one per insertion, which would rebuild the tree every time) instead search the
sorted index around the point (:meth:`SparseOctree.query_knn`). Ray
traversal does not need the tree: it walks the voxels a ray crosses (Amanatides-Woo, vectorised) and looks
them up in the sorted index, so it stops at the first occupied voxel exactly.

Out-of-cube and non-finite points are dropped and counted (or raise, by config) -- never clipped onto the
boundary, which would silently pile far points into border voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.maps import kernels, morton
from chronotope.maps.geometry import backproject_depth


@dataclass
class OctreeConfig:
    """World cube, resolution and per-leaf payload sizes."""

    origin: tuple[float, float, float] = (-25.6, -25.6, -3.2)
    """Minimum corner of the world cube, metres."""
    size: float = 51.2
    """Side ``L`` of the world cube, metres."""
    depth: int = 10
    """Tree depth ``Lambda`` (<= 21); the voxel side is ``size / 2**depth`` (5 cm by default)."""
    num_labels: int = 0
    """Bins of the per-leaf semantic label histogram (0: no histogram)."""
    feature_dim: int = 0
    """Length of the per-leaf feature vector, kept as a running mean (0: none)."""
    token_dim: int = 0
    """Length of the per-leaf LTM token slot (Mem4Nav uses 2d; 0: none)."""
    on_invalid: str = "drop"
    """What to do with NaN/inf or out-of-cube points: "drop" (and count them) or "raise"."""

    def __post_init__(self) -> None:
        if not 1 <= int(self.depth) <= morton.MAX_LEVEL:
            raise ValueError(f"octree depth must be in [1, {morton.MAX_LEVEL}], got {self.depth}")
        if not (np.isfinite(self.size) and self.size > 0):
            raise ValueError(f"octree size must be a positive finite number, got {self.size}")
        if len(self.origin) != 3 or not np.isfinite(self.origin).all():
            raise ValueError(f"octree origin must be 3 finite numbers, got {self.origin}")
        for name in ("num_labels", "feature_dim", "token_dim"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.on_invalid not in ("drop", "raise"):
            raise ValueError(f"on_invalid must be 'drop' or 'raise', got {self.on_invalid!r}")


@dataclass
class InsertStats:
    """What one insertion did with its points."""

    n_input: int = 0
    """Points passed in."""
    n_inserted: int = 0
    """Points that landed in a leaf."""
    n_nonfinite: int = 0
    """Points dropped for NaN/inf coordinates."""
    n_out_of_bounds: int = 0
    """Finite points dropped for lying outside the world cube."""
    n_new_leaves: int = 0
    """Leaves created by this insertion."""


@dataclass
class Leaf:
    """A snapshot of one occupied leaf."""

    key: int
    slot: int
    center: np.ndarray  # float64 [3]
    count: int
    centroid: np.ndarray  # float64 [3], mean of the points inserted into this leaf
    label_hist: np.ndarray | None = None  # int64 [num_labels]
    feature: np.ndarray | None = None  # float64 [feature_dim], running mean
    token: np.ndarray | None = None  # float32 [token_dim], None while unwritten


@dataclass
class RayHit:
    """First occupied leaf along a ray."""

    key: int
    t: float  # distance along the (normalised) ray where it enters the leaf, metres
    point: np.ndarray = field(default_factory=lambda: np.zeros(3))  # entry point, float64 [3]


class SparseOctree:
    """Occupied-leaf octree over a world cube; see the module docstring for the design."""

    def __init__(self, cfg: OctreeConfig | None = None) -> None:
        self.cfg = cfg or OctreeConfig()
        self.origin = np.asarray(self.cfg.origin, dtype=np.float64)
        self.depth = int(self.cfg.depth)
        self.resolution = 1 << self.depth  # voxels per axis
        self.voxel_size = float(self.cfg.size) / self.resolution
        self.clear()

    # ------------------------------------------------------------------ storage
    def clear(self) -> None:
        """Removes every leaf."""
        cap = 1024
        c = self.cfg
        self._n = 0
        self._slot_keys = np.zeros(cap, np.int64)
        self._slot_ijk = np.zeros((cap, 3), np.int32)  # voxel coordinates of each slot's key (decoded once)
        self._count = np.zeros(cap, np.int64)
        self._point_sum = np.zeros((cap, 3), np.float64)
        self._labels: np.ndarray | None = None  # [cap, num_labels] int64, made by the first labelled insert
        self._feat_sum = np.zeros((cap, c.feature_dim), np.float64)
        self._tokens = np.zeros((cap, c.token_dim), np.float32)
        self._has_token = np.zeros(cap, bool)
        self._keys = np.zeros(0, np.int64)  # sorted Morton codes of occupied leaves
        self._slots = np.zeros(0, np.int64)  # slot of each sorted key
        self._tree = None
        self._tree_slots = None
        self._knn_level = 0  # query_knn_batch's search hint: the level that answered the last query (0: none)

    def _remember_knn(self, kd: float) -> None:
        """:func:`query_knn_batch`'s hint for the next query from this one's k-th distance ``kd`` (voxel units): the
        level to start the block search at (the finest with cells wider than ``kd``)."""
        first = min(3, self.depth)
        self._knn_level = max(first, int(np.floor(np.log2(kd))) + 1) if kd >= 1.0 else first

    def _grow(self, need: int) -> None:
        cap = self._slot_keys.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        names = ("_slot_keys", "_slot_ijk", "_count", "_point_sum", "_labels", "_feat_sum", "_tokens", "_has_token")
        for name in names:
            old = getattr(self, name)
            if old is None:  # label histograms not made yet (no labelled insert so far)
                continue
            arr = np.zeros((new_cap, *old.shape[1:]), old.dtype)
            arr[: self._n] = old[: self._n]
            setattr(self, name, arr)

    def __len__(self) -> int:
        return self._n

    @property
    def n_leaves(self) -> int:
        return self._n

    @property
    def keys(self) -> np.ndarray:
        """Sorted Morton codes of all occupied leaves, int64 ``[M]`` (a read-only view)."""
        v = self._keys.view()
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------ quantisation
    def quantize(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel coordinates of points.

        Args:
            points: float ``[N, 3]`` world coordinates.

        Returns:
            ``ijk`` int64 ``[N, 3]`` (zeros where invalid), ``finite`` bool ``[N]``, ``inside`` bool ``[N]``
            (finite and inside the world cube).
        """
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points must have shape [N, 3], got {p.shape}")
        u = p - self.origin
        u *= self.resolution / self.cfg.size
        with np.errstate(invalid="ignore"):
            # NaN compares False, so non-finite rows fail ``inside`` without a separate pass
            # column-wise: numpy reductions along a length-3 axis are several times slower
            inside = (u[:, 0] >= 0) & (u[:, 0] < self.resolution)
            for a in (1, 2):
                inside &= (u[:, a] >= 0) & (u[:, a] < self.resolution)
        if inside.all():
            finite = inside
            ijk = u.astype(np.int64)  # truncation == floor for non-negative values
        else:
            finite = np.isfinite(p).all(axis=1)
            ijk = np.zeros(p.shape, np.int64)
            ijk[inside] = u[inside].astype(np.int64)
        # a value just below ``resolution`` can round up to it in float64
        np.minimum(ijk, self.resolution - 1, out=ijk)
        return ijk, finite, inside

    def keys_of(self, points: np.ndarray) -> np.ndarray:
        """Leaf Morton codes of points, int64 ``[N]``; -1 for NaN/inf or out-of-cube points."""
        ijk, _, inside = self.quantize(points)
        keys = np.full(ijk.shape[0], -1, np.int64)
        keys[inside] = morton.encode_points(ijk[inside])
        return keys

    def centers(self, keys: np.ndarray) -> np.ndarray:
        """Centres of the leaves with these codes, float64 ``[N, 3]``."""
        return self.origin + (morton.decode(np.asarray(keys, np.int64).reshape(-1)) + 0.5) * self.voxel_size

    # ---------------------------------------------------------------- insertion
    def insert(
        self,
        points: np.ndarray,
        labels: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> InsertStats:
        """Adds a point cloud; every point increments the count of the leaf containing it.

        Args:
            points: float ``[N, 3]`` world coordinates.
            labels: optional int ``[N]`` semantic labels in ``[0, num_labels)``.
            features: optional float ``[N, feature_dim]``, averaged per leaf.

        Returns:
            counts of inserted, dropped (NaN/inf, out of cube) points and of new leaves.
        """
        ijk, finite, inside = self.quantize(points)
        n = ijk.shape[0]
        c = self.cfg
        stats = InsertStats(
            n_input=n, n_nonfinite=int(n - finite.sum()), n_out_of_bounds=int(finite.sum() - inside.sum())
        )
        if c.on_invalid == "raise" and (stats.n_nonfinite or stats.n_out_of_bounds):
            bad = int(np.flatnonzero(~inside)[0])
            raise ValueError(
                f"{stats.n_nonfinite} non-finite and {stats.n_out_of_bounds} out-of-cube points; first bad point "
                f"#{bad} = {np.asarray(points)[bad].tolist()} (cube origin {self.origin.tolist()}, size {c.size})"
            )
        if labels is not None:
            if c.num_labels == 0:
                raise ValueError("labels given but the octree was built with num_labels=0")
            labels = np.asarray(labels).reshape(-1)
            if labels.shape[0] != n:
                raise ValueError(f"got {labels.shape[0]} labels for {n} points")
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
            labels = labels[inside]
            if labels.size and (labels.min() < 0 or labels.max() >= c.num_labels):
                bad_label = labels[(labels < 0) | (labels >= c.num_labels)][0]
                raise ValueError(f"label {int(bad_label)} outside [0, {c.num_labels})")
        if features is not None:
            features = np.asarray(features, dtype=np.float64)
            if features.shape != (n, c.feature_dim) or c.feature_dim == 0:
                raise ValueError(f"features must have shape [{n}, {c.feature_dim}], got {features.shape}")
            features = features[inside]
            if not np.isfinite(features).all():
                raise ValueError("features of in-cube points contain NaN or inf")
        if not inside.any():
            return stats
        all_in = stats.n_nonfinite == 0 and stats.n_out_of_bounds == 0
        pts = np.asarray(points, dtype=np.float64)
        pts = pts if all_in else pts[inside]
        keys = morton.encode_unchecked(ijk if all_in else ijk[inside])
        ukeys, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
        uijk = np.empty((ukeys.shape[0], 3), np.int64)
        uijk[inv] = ijk if all_in else ijk[inside]  # each distinct key's voxel (its points share it)
        slots = self._slots_for_new_or_existing(ukeys, stats, uijk)

        self._count[slots] += cnt
        m = ukeys.shape[0]
        for d in range(3):
            self._point_sum[slots, d] += np.bincount(inv, weights=pts[:, d], minlength=m)
        if labels is not None:
            hist = np.bincount(inv * c.num_labels + labels, minlength=m * c.num_labels)
            self._label_store()[slots] += hist.reshape(m, c.num_labels)
        if features is not None:
            order = np.argsort(inv, kind="stable")
            starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            self._feat_sum[slots] += np.add.reduceat(features[order], starts, axis=0)
        stats.n_inserted = int(pts.shape[0])
        return stats

    def _slots_for_new_or_existing(self, ukeys: np.ndarray, stats: InsertStats, uijk=None) -> np.ndarray:
        """Slots of sorted unique keys, creating leaves (and merging them into the index) where missing.
        ``uijk``: the keys' voxel coordinates ``[n, 3]`` when the caller has them, or a function giving those of
        the keys selected by a bool mask (else decoded)."""
        pos = np.searchsorted(self._keys, ukeys)
        if self._keys.shape[0]:
            # a key past the last one (pos == M) meets the last key, which is smaller: not found
            found = np.take(self._keys, pos, mode="clip") == ukeys
            slots = np.take(self._slots, pos, mode="clip")  # overwritten below where not found
        else:
            found = np.zeros(ukeys.shape[0], bool)
            slots = np.empty(ukeys.shape[0], np.int64)
        new = ~found
        n_new = int(np.count_nonzero(new))
        if n_new:
            self._grow(self._n + n_new)
            new_slots = np.arange(self._n, self._n + n_new, dtype=np.int64)
            self._slot_keys[new_slots] = ukeys[new]
            if uijk is None:
                self._slot_ijk[new_slots] = morton.decode(ukeys[new])
            else:
                self._slot_ijk[new_slots] = uijk(new) if callable(uijk) else uijk[new]
            slots[new] = new_slots
            self._n += n_new
            # ukeys is sorted, so the new keys' final positions are their insertion points shifted by the
            # number of new keys before them: one O(M + n) merge, no sort (np.insert would argsort).
            dest = pos[new] + np.arange(n_new)
            old_mask = np.ones(self._keys.shape[0] + n_new, bool)
            old_mask[dest] = False
            keys_out = np.empty(old_mask.shape[0], np.int64)
            slots_out = np.empty(old_mask.shape[0], np.int64)
            keys_out[dest], slots_out[dest] = ukeys[new], new_slots
            keys_out[old_mask], slots_out[old_mask] = self._keys, self._slots
            self._keys, self._slots = keys_out, slots_out
            self._tree = None
        stats.n_new_leaves = n_new
        return slots

    def insert_depth(
        self,
        depth: np.ndarray,
        intrinsics: CameraIntrinsics,
        cam_to_world: np.ndarray,
        max_depth: float,
        semantic: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> InsertStats:
        """Back-projects a z-depth image (pixels at ``max_depth`` dropped) and inserts its points.

        Args:
            depth: ``[H, W]`` or ``[H, W, 1]`` metres.
            intrinsics: camera of the image.
            cam_to_world: float ``[4, 4]`` pose.
            max_depth: renderer clip (pixels at or beyond it hit nothing).
            semantic: optional int ``[H, W(, 1)]`` labels in ``[0, num_labels)``.
            features: optional float ``[H, W, feature_dim]`` per-pixel features.
        """
        pts, idx = backproject_depth(depth, intrinsics, cam_to_world, max_depth)
        labels = None if semantic is None else np.asarray(semantic).reshape(-1)[idx]
        feats = None if features is None else np.asarray(features).reshape(-1, self.cfg.feature_dim)[idx]
        return self.insert(pts, labels, feats)

    # ------------------------------------------------------------------ lookup
    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of leaf codes, int64 ``[N]``; -1 where no leaf is stored. O(N log M)."""
        keys = np.asarray(keys, np.int64).reshape(-1)
        pos = np.searchsorted(self._keys, keys)
        out = np.full(keys.shape[0], -1, np.int64)
        ok = (pos < self._keys.shape[0]) & (keys >= 0)
        ok[ok] = self._keys[pos[ok]] == keys[ok]
        out[ok] = self._slots[pos[ok]]
        return out

    def query_points(self, points: np.ndarray) -> np.ndarray:
        """Slots of the leaves containing each point, int64 ``[N]``; -1 if unoccupied/invalid/outside."""
        return self.lookup(self.keys_of(points))

    def query_point(self, point: np.ndarray) -> Leaf | None:
        """The leaf containing ``point`` float ``[3]``, or None if that voxel is unoccupied."""
        slot = int(self.query_points(np.asarray(point, np.float64).reshape(1, 3))[0])
        return None if slot < 0 else self.leaf(slot)

    def leaf(self, slot: int) -> Leaf:
        """Snapshot of the leaf in ``slot``."""
        if not 0 <= slot < self._n:
            raise ValueError(f"slot {slot} outside [0, {self._n})")
        c = self.cfg
        key = int(self._slot_keys[slot])
        count = int(self._count[slot])
        return Leaf(
            key=key,
            slot=slot,
            center=self.centers(np.array([key]))[0],
            count=count,
            centroid=self._point_sum[slot] / max(count, 1),
            label_hist=self.label_histograms(np.array([slot]))[0] if c.num_labels else None,
            feature=self._feat_sum[slot] / max(count, 1) if c.feature_dim else None,
            token=self._tokens[slot].copy() if (c.token_dim and self._has_token[slot]) else None,
        )

    def slot_keys(self, slots: np.ndarray) -> np.ndarray:
        """Morton codes of slots, int64 ``[N]``."""
        return self._slot_keys[np.asarray(slots, np.int64)]

    def counts(self, slots: np.ndarray) -> np.ndarray:
        """Point counts of slots, int64 ``[N]``."""
        return self._count[np.asarray(slots, np.int64)]

    def label_histograms(self, slots: np.ndarray) -> np.ndarray:
        """Label histograms of slots, int64 ``[N, num_labels]``."""
        slots = np.asarray(slots, np.int64)
        if self._labels is None:  # nothing labelled inserted yet: every histogram is empty
            return np.zeros((*slots.shape, self.cfg.num_labels), np.int64)
        return self._labels[slots]

    def _label_store(self) -> np.ndarray:
        """The label histograms int64 ``[capacity, num_labels]``, made (zeros) on first use: a tree that is never
        given labels (e.g. maps of an env without semantics) does not carry or copy them as it grows."""
        if self._labels is None:
            self._labels = np.zeros((self._slot_keys.shape[0], self.cfg.num_labels), np.int64)
        return self._labels

    # ------------------------------------------------------------- LTM tokens
    def set_tokens(self, slots: np.ndarray, tokens: np.ndarray) -> None:
        """Stores LTM tokens float ``[N, token_dim]`` in leaf slots ``[N]``."""
        slots = np.asarray(slots, np.int64).reshape(-1)
        tokens = np.asarray(tokens, np.float32).reshape(slots.shape[0], -1)
        if tokens.shape[1] != self.cfg.token_dim or self.cfg.token_dim == 0:
            raise ValueError(f"tokens must have width token_dim={self.cfg.token_dim}, got {tokens.shape[1]}")
        if slots.size and (slots.min() < 0 or slots.max() >= self._n):
            raise ValueError(f"slots must be in [0, {self._n}), got {slots.tolist()}")
        self._tokens[slots] = tokens
        self._has_token[slots] = True

    def get_tokens(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens float32 ``[N, token_dim]`` of slots (zeros where unwritten) and bool ``[N]`` written flags."""
        slots = np.asarray(slots, np.int64).reshape(-1)
        return self._tokens[slots].copy(), self._has_token[slots].copy()

    # -------------------------------------------------------------- hierarchy
    def level_keys(self, levels_up: int) -> tuple[np.ndarray, np.ndarray]:
        """Occupied cells ``levels_up`` levels above the leaves (cell side ``voxel_size * 2**levels_up``).

        Returns:
            sorted unique codes int64 ``[C]`` (``leaf_key >> 3*levels_up``) and their total point counts ``[C]``.
        """
        if not 0 <= levels_up <= self.depth:
            raise ValueError(f"levels_up must be in [0, {self.depth}], got {levels_up}")
        if self._keys.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        par = morton.parent(self._keys, levels_up)  # still sorted
        starts = np.flatnonzero(np.concatenate([[True], par[1:] != par[:-1]]))
        return par[starts], np.add.reduceat(self._count[self._slots], starts)

    def level_centers(self, keys: np.ndarray, levels_up: int) -> np.ndarray:
        """Centres of cells ``levels_up`` levels above the leaves, float64 ``[N, 3]``."""
        side = self.voxel_size * (1 << levels_up)
        return self.origin + (morton.decode(np.asarray(keys, np.int64).reshape(-1)) + 0.5) * side

    # -------------------------------------------------------- geometric queries
    def _kdtree(self):
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree_slots = self._slots.copy()
            self._tree = cKDTree(morton.decode(self._keys).astype(np.float64), leafsize=16, balanced_tree=False)
        return self._tree

    def _to_voxel_units(self, p: np.ndarray) -> np.ndarray:
        # leaf (i, j, k) has its centre at integer coordinates (i, j, k) in these units
        return (np.asarray(p, np.float64) - self.origin) / self.voxel_size - 0.5

    @staticmethod
    def _check_point(name: str, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float64).reshape(-1)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise ValueError(f"{name} must be 3 finite numbers, got {p.tolist()}")
        return p

    def query_radius(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Leaves whose centres lie within ``radius`` of ``center``.

        Returns:
            slots int64 ``[K]`` and distances float64 ``[K]``, sorted by distance (ties by key).
        """
        center = self._check_point("center", center)
        if not (np.isfinite(radius) and radius >= 0):
            raise ValueError(f"radius must be a finite number >= 0, got {radius}")
        if self._n == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        tree = self._kdtree()
        q = self._to_voxel_units(center)
        # a hair of slack so that centres exactly on the sphere are not lost to rounding; filtered below
        idx = np.asarray(tree.query_ball_point(q, radius / self.voxel_size + 1e-9), np.int64)
        d = np.linalg.norm(self.centers(self._keys[idx]) - center, axis=1)
        keep = d <= radius
        idx, d = idx[keep], d[keep]
        order = np.lexsort((idx, d))
        return self._tree_slots[idx[order]], d[order]

    def query_box(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Slots of leaves whose centres lie in the closed box ``[lo, hi]``, sorted by Morton code."""
        lo, hi = self._check_point("lo", lo), self._check_point("hi", hi)
        if (lo > hi).any():
            raise ValueError(f"box lo {lo.tolist()} exceeds hi {hi.tolist()}")
        if self._n == 0:
            return np.zeros(0, np.int64)
        tree = self._kdtree()
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        idx = np.asarray(
            tree.query_ball_point(self._to_voxel_units(mid), half.max() / self.voxel_size + 1e-9, p=np.inf), np.int64
        )
        c = self.centers(self._keys[idx])
        keep = ((c >= lo) & (c <= hi)).all(axis=1)
        return self._tree_slots[np.sort(idx[keep])]

    def query_knn(self, point: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``min(k, M)`` leaves whose centres are nearest to ``point``: slots and distances, nearest first
        (equal distances by Morton code).

        No k-d tree (:func:`chronotope.maps.kernels.octree_knn`, compiled, the search :func:`query_knn_batch`
        runs too): the leaves of the 3 x 3 x 3 block of coarse cells around the point are contiguous runs of the
        sorted Morton index (a cell's leaves share its code as prefix), so they are found with 54 binary searches
        and ranked exactly. The answer is final once the k-th distance is below the point's distance to
        the block's faces (nothing outside can be nearer); otherwise the cells double in size, up to the whole
        cube. A map queried once per insertion (the wrappers) thus never pays for a tree rebuild; when a tree is
        already built (no leaf added since a radius or box query), it answers instead.
        """
        point = self._check_point("point", point)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(int(k), self._n)
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        if self._tree is not None:  # a tree built since the last new leaf (radius/box queries): use it
            d, idx = self._tree.query(self._to_voxel_units(point), k=k)
            idx, d = np.atleast_1d(idx).astype(np.int64), np.atleast_1d(d)
            order = np.lexsort((self._keys[idx], d))
            return self._tree_slots[idx[order]], d[order] * self.voxel_size
        u = (point - self.origin) / self.voxel_size  # voxel units: leaf i spans [i, i + 1)
        slots, _ = kernels.octree_knn(self._keys, self._slots, self._slot_ijk, u, k, min(3, self.depth), self.depth)
        d = self._slot_ijk[slots] + 0.5 - u  # the leaves' centres, without decoding their keys
        d *= d
        return slots, np.sqrt(d[:, 0] + d[:, 1] + d[:, 2]) * self.voxel_size

    def raycast(self, origin: np.ndarray, direction: np.ndarray, max_range: float) -> RayHit | None:
        """First occupied leaf along a ray (exact voxel traversal), or None within ``max_range`` metres."""
        o = self._check_point("origin", origin)
        d = self._check_point("direction", direction)
        norm = np.linalg.norm(d)
        if norm == 0:
            raise ValueError("ray direction must be non-zero")
        if not (np.isfinite(max_range) and max_range > 0):
            raise ValueError(f"max_range must be a positive finite number, got {max_range}")
        d = d / norm
        if self._n == 0:
            return None
        u0 = (o - self.origin) / self.voxel_size
        t_max = max_range / self.voxel_size
        # every t (voxel units) where the ray crosses an integer plane within [0, t_max]
        ts = [np.array([0.0, t_max])]
        for a in range(3):
            if d[a] == 0:
                continue
            end = u0[a] + d[a] * t_max
            lo, hi = sorted((u0[a], end))
            planes = np.arange(np.ceil(lo), np.floor(hi) + 1)
            ts.append((planes - u0[a]) / d[a])
        t = np.unique(np.clip(np.concatenate(ts), 0.0, t_max))
        t0, t1 = t[:-1], t[1:]
        seg = t1 - t0 > 1e-12
        t0, t1 = t0[seg], t1[seg]
        mid = u0 + ((t0 + t1) / 2)[:, None] * d  # strictly inside one voxel per segment
        ijk = np.floor(mid).astype(np.int64)
        inside = ((ijk >= 0) & (ijk < self.resolution)).all(axis=1)
        if not inside.any():
            return None
        t0, ijk = t0[inside], ijk[inside]
        keys = morton.encode_points(ijk)
        slots = self.lookup(keys)
        hit = np.flatnonzero(slots >= 0)
        if hit.size == 0:
            return None
        i = hit[0]
        t_hit = float(t0[i] * self.voxel_size)
        return RayHit(key=int(keys[i]), t=t_hit, point=o + t_hit * d)


_NO_STORE = np.zeros((0, 0), np.int64)  # insert_batch's kernel without a label store


def insert_batch(
    trees: list[SparseOctree],
    points: np.ndarray,
    frame: np.ndarray,
    labels: np.ndarray | None = None,
    columns: np.ndarray | None = None,
) -> None:
    """Inserts B point clouds into B octrees in one pass: ``trees[b]`` gets the points of ``frame == b``.

    Leaves, slots, counts, point sums and label histograms come out bit for bit as from
    ``trees[b].insert(points[frame == b], labels[frame == b])`` for each b in turn (tests/maps/test_maps_batched.py):
    compiled loops (:mod:`chronotope.maps.kernels`) quantise, encode and group each frame's points by leaf with a
    hash table, adding each leaf's points in input order as ``insert``'s ``bincount`` does, then merge each
    tree's distinct leaves into its sorted index and scatter counts, sums and histograms into its slots. Trees
    with differing configs, invalid points under ``on_invalid="raise"``, or labels out of range go one by one
    (and raise there as ``insert`` does).

    Args:
        trees: B octrees.
        points: world points float ``[M, 3]``, grouped by frame (frame 0's first).
        frame: the tree index int ``[M]`` of each point, non-decreasing.
        labels: optional int ``[M]`` in ``[0, num_labels)``.
        columns: ``points.T`` as a contiguous float64 ``[3, M]`` when the caller has it (else made here).
    """
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    frame = np.asarray(frame, np.int64).reshape(-1)
    n_trees = len(trees)
    if n_trees == 0:
        return
    t0 = trees[0]
    c = t0.cfg
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
    xyz = np.ascontiguousarray(pts.T) if columns is None else columns
    scale = t0.resolution / c.size

    def inside() -> np.ndarray:  # SparseOctree.quantize's test, coordinate by coordinate
        with np.errstate(invalid="ignore"):
            u = [(xyz[d] - t0.origin[d]) * scale for d in range(3)]
            ok = (u[0] >= 0) & (u[0] < t0.resolution)
            for d in (1, 2):
                ok &= (u[d] >= 0) & (u[d] < t0.resolution)
        return ok

    one_by_one = any(t.cfg != c for t in trees) or (c.on_invalid == "raise" and not inside().all())
    if labels is not None and not one_by_one:
        one_by_one = c.num_labels == 0 or labels.shape[0] != pts.shape[0] or not np.issubdtype(labels.dtype, np.integer)
        if not one_by_one and labels.size and (labels.min() < 0 or labels.max() >= c.num_labels):
            lab_in = labels[inside()]  # only the labels of points that land in a leaf must be in range
            one_by_one = bool(lab_in.size and (lab_in.min() < 0 or lab_in.max() >= c.num_labels))
    if one_by_one:
        bounds = np.searchsorted(frame, np.arange(n_trees + 1))
        for b, t in enumerate(trees):
            s = slice(bounds[b], bounds[b + 1])
            t.insert(pts[s], None if labels is None else labels[s])
        return
    # per frame: its points grouped by leaf (kernels.octree_group), then each tree's side of the insertion
    bounds = np.searchsorted(frame, np.arange(n_trees + 1))
    no_labels = labels is None
    codes, cuts, cnt, sums, uijk, hist = kernels.octree_group(
        xyz[0], xyz[1], xyz[2], bounds, t0.origin, scale, t0.resolution,
        kernels.NO_LABELS if no_labels else labels.astype(np.int64, copy=False), 0 if no_labels else c.num_labels,
    )  # fmt: skip
    for b, t in enumerate(trees):
        if cuts[b] == cuts[b + 1]:
            continue
        s = slice(cuts[b], cuts[b + 1])
        t._grow(t._n + int(cuts[b + 1] - cuts[b]))
        store = _NO_STORE if no_labels else t._label_store()
        n_before = t._n
        t._keys, t._slots, t._n = kernels.octree_merge(
            t._keys, t._slots, t._n, codes[s], cnt[s], sums[s], uijk[s], hist[s] if not no_labels else hist,
            t._slot_keys, t._slot_ijk, t._count, t._point_sum, store,
        )  # fmt: skip
        if t._n != n_before:
            t._tree = None


def query_knn_batch(trees: list[SparseOctree], points: np.ndarray, k: int) -> list[np.ndarray]:
    """``[trees[b].query_knn(points[b], k)[0] for b]`` (the slots, nearest first; equal distances by code), each
    tree's block search compiled (:func:`chronotope.maps.kernels.octree_knn`).

    Any level whose stopping test passes holds the exact k nearest leaves, ranked by (distance, code) as
    ``query_knn`` ranks them, so the answer does not depend on the level it came from. Each tree's search
    therefore starts at the level its previous answer predicts (kept as ``tree._knn_level``): the finest level
    whose cells are wider than that answer's k-th distance, which passes for sure for the same point and leaves
    (the block then holds the ball of that radius, and its faces are at least a cell away), and usually after a
    step of a walking agent, instead of climbing from the finest level. Trees with a built k-d tree or a
    non-finite point are answered by ``query_knn`` itself.
    """
    pts = np.asarray(points, np.float64).reshape(len(trees), 3)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out: list[np.ndarray] = []
    for b, t in enumerate(trees):
        if t._tree is not None or not np.isfinite(pts[b]).all() or t._n == 0:
            out.append(t.query_knn(pts[b], k)[0])
            continue
        u = (pts[b] - t.origin) / t.voxel_size  # voxel units, as query_knn computes them
        first = min(3, t.depth)
        found, kth = kernels.octree_knn(t._keys, t._slots, t._slot_ijk, u, int(k), max(first, t._knn_level), t.depth)
        out.append(found)
        t._remember_knn(float(np.sqrt(kth)))
    return out
