"""Compiled (numba) loops of the batched map updates: the per-step work of the map wrappers.

A map update reads every pixel of every frame (16 frames of 64 x 64 depth: 65,536 points per step). In numpy
each stage of it is a full pass over the points (quantise, encode, sort, group, scatter), and the grouping sort
of ~10^5 packed keys alone cost more than the whole update does here. These kernels make one pass per frame:

* :func:`octree_group`: quantises, Morton-encodes and groups one frame's points by leaf with an open-addressing
  hash table (no sort of the points; only each frame's distinct leaves, ~1/4 of its points, are sorted), adding
  each leaf's points in input order as ``np.bincount`` does;
* :func:`octree_merge`: one tree's side of an insertion: the leaves' slots (a merge with the tree's sorted
  index, new slots where missing) and the scatter of counts, point sums and label histograms;
* :func:`occupancy_integrate`: one map's height-band classification, hit counts, semantic labels and free-space
  carving (one vote per frame per cell);
* :func:`occupancy_crop`: one map's agent-centred crop.

Every floating-point operation is the one the numpy code of ``maps/octree.py`` and ``maps/occupancy.py`` did,
in the same order (numba compiles without fast-math, so nothing is reassociated or contracted), and the single
and batched map updates both call these kernels: a map comes out bit for bit the same whether it was updated alone
or in a batch (tests/maps/test_maps_batched.py, tests/maps/test_map_kernels.py). Compiled on first use and cached
on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_HASH_MUL = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 (Fibonacci hashing), as a signed int64
NO_LABELS = np.zeros(0, np.int64)
"""The ``labels`` argument of the kernels that take optional labels, when there are none."""


@numba.njit(cache=True, inline="always")
def _spread3(v: np.int64) -> np.int64:
    """The low 21 bits of ``v`` two zero bits apart (``morton._split_by_3``)."""
    v = v & np.int64(0x1FFFFF)
    v = (v | (v << np.int64(32))) & np.int64(0x001F00000000FFFF)
    v = (v | (v << np.int64(16))) & np.int64(0x001F0000FF0000FF)
    v = (v | (v << np.int64(8))) & np.int64(0x100F00F00F00F00F)
    v = (v | (v << np.int64(4))) & np.int64(0x10C30C30C30C30C3)
    v = (v | (v << np.int64(2))) & np.int64(0x1249249249249249)
    return v


@numba.njit(cache=True, nogil=True)
def _radix_order(codes, n, bits, a, b):
    """The order ``[n]`` of ``codes[:n]`` (non-negative, below ``2**bits``): an LSD radix sort by byte, stable."""
    for i in range(n):
        a[i] = i
    count = np.empty(257, np.int64)
    shift = 0
    while shift < bits:
        count[:] = 0
        for i in range(n):
            count[((codes[a[i]] >> shift) & 255) + 1] += 1
        for d in range(256):
            count[d + 1] += count[d]
        for i in range(n):
            d = (codes[a[i]] >> shift) & 255
            b[count[d]] = a[i]
            count[d] += 1
        a, b = b, a
        shift += 8
    return a[:n].copy()


@numba.njit(cache=True, nogil=True)
def octree_group(x, y, z, bounds, origin, scale, res, labels, num_labels):
    """Groups B frames' points by octree leaf, frame by frame.

    Args:
        x, y, z: float64 ``[M]`` world coordinates, grouped by frame.
        bounds: int64 ``[B + 1]``: frame b's points are ``bounds[b]:bounds[b + 1]``.
        origin: float64 ``[3]`` cube corner; ``scale``: ``resolution / size``; ``res``: ``2**depth``.
        labels: int64 ``[M]`` in ``[0, num_labels)``, or ``[0]`` for none.
        num_labels: histogram bins (0: none).

    Returns:
        codes int64 ``[m]`` (each frame's distinct leaves, sorted), cuts int64 ``[B + 1]`` (frame b's leaves
        are ``cuts[b]:cuts[b + 1]``), counts int64 ``[m]``, point sums float64 ``[m, 3]`` (each leaf's points
        added in input order, from 0), voxel coordinates int32 ``[m, 3]``, label histograms int64
        ``[m, num_labels]`` (``[0, 0]`` without labels). Points outside the cube (or NaN) are dropped.
    """
    n_frames = bounds.shape[0] - 1
    m_all = x.shape[0]
    # pass 1, per frame: each point's leaf (a hash table of the frame's codes), each leaf's rank in code order
    point_leaf = np.full(m_all, -1, np.int64)  # the point's leaf as its index in the output
    codes = np.empty(m_all, np.int64)
    ijk = np.empty((m_all, 3), np.int32)
    cuts = np.zeros(n_frames + 1, np.int64)
    max_n = 1
    for b in range(n_frames):
        max_n = max(max_n, bounds[b + 1] - bounds[b])
    bits = 4
    while (1 << bits) < 2 * max_n:
        bits += 1
    mask = np.int64((1 << bits) - 1)
    table = np.full(1 << bits, -1, np.int64)  # slot -> the frame's leaf number, -1 empty
    used = np.empty(max_n, np.int64)
    leaf_code = np.empty(max_n, np.int64)
    leaf_ijk = np.empty((max_n, 3), np.int32)
    rank = np.empty(max_n, np.int64)
    order_a = np.empty(max_n, np.int64)
    order_b = np.empty(max_n, np.int64)
    code_bits = 0
    while (np.int64(1) << code_bits) < res:
        code_bits += 1
    code_bits *= 3
    out = 0
    for b in range(n_frames):
        n_leaf = 0
        last_code = np.int64(-1)
        last_leaf = np.int64(-1)
        for p in range(bounds[b], bounds[b + 1]):
            u0 = (x[p] - origin[0]) * scale
            u1 = (y[p] - origin[1]) * scale
            u2 = (z[p] - origin[2]) * scale
            if not (u0 >= 0 and u0 < res and u1 >= 0 and u1 < res and u2 >= 0 and u2 < res):
                continue  # NaN compares False
            i = min(np.int64(u0), res - 1)
            j = min(np.int64(u1), res - 1)
            k = min(np.int64(u2), res - 1)
            code = _spread3(i) | (_spread3(j) << np.int64(1)) | (_spread3(k) << np.int64(2))
            if code != last_code:  # neighbouring pixels often share a leaf
                h = ((code * _HASH_MUL) >> np.int64(64 - bits)) & mask
                while True:
                    leaf = table[h]
                    if leaf < 0:
                        leaf = n_leaf
                        table[h] = leaf
                        used[leaf] = h
                        leaf_code[leaf] = code
                        leaf_ijk[leaf, 0] = i
                        leaf_ijk[leaf, 1] = j
                        leaf_ijk[leaf, 2] = k
                        n_leaf += 1
                        break
                    if leaf_code[leaf] == code:
                        break
                    h = (h + 1) & mask
                last_code = code
                last_leaf = leaf
            point_leaf[p] = last_leaf
        for q in range(n_leaf):
            table[used[q]] = -1
        # the leaves in code order (distinct codes: any sort is the stable one); a radix sort by byte is several
        # times faster than numba's comparison sorts on a frame's ~10^3 leaves
        if code_bits <= 48:
            order = _radix_order(leaf_code, n_leaf, code_bits, order_a, order_b)
        else:
            order = np.argsort(leaf_code[:n_leaf])
        for r in range(n_leaf):
            leaf = order[r]
            rank[leaf] = out + r
            codes[out + r] = leaf_code[leaf]
            ijk[out + r, 0] = leaf_ijk[leaf, 0]
            ijk[out + r, 1] = leaf_ijk[leaf, 1]
            ijk[out + r, 2] = leaf_ijk[leaf, 2]
        for p in range(bounds[b], bounds[b + 1]):
            if point_leaf[p] >= 0:
                point_leaf[p] = rank[point_leaf[p]]
        out += n_leaf
        cuts[b + 1] = out
    # pass 2: counts, sums and histograms, every point in input order
    has_labels = labels.shape[0] == m_all and num_labels > 0
    counts = np.zeros(out, np.int64)
    sums = np.zeros((out, 3), np.float64)
    hist = np.zeros((out if has_labels else 0, num_labels if has_labels else 0), np.int64)
    for p in range(m_all):
        g = point_leaf[p]
        if g < 0:
            continue
        counts[g] += 1
        sums[g, 0] += x[p]
        sums[g, 1] += y[p]
        sums[g, 2] += z[p]
        if has_labels:
            hist[g, labels[p]] += 1
    return codes[:out], cuts, counts, sums, ijk[:out], hist


@numba.njit(cache=True, nogil=True)
def octree_merge(keys, slots, n, ukeys, counts, sums, uijk, hist, slot_keys, slot_ijk, count, point_sum, labels):
    """One tree's side of an insertion of its sorted distinct leaves ``ukeys`` (``SparseOctree``'s arrays,
    grown beforehand to hold ``n + len(ukeys)`` slots).

    Existing leaves keep their slots; missing ones get the next free slots in key order. Adds ``counts``,
    ``sums`` (``point_sum[slot] += sums``) and ``hist`` (when ``labels`` has rows) into the slots.

    Returns:
        the new sorted index ``(keys, slots)`` (the same arrays when nothing was added) and the leaf count.
    """
    m = ukeys.shape[0]
    n_keys = keys.shape[0]
    pos = np.empty(m, np.int64)  # each key's insertion point in ``keys`` (its place when found)
    where = np.empty(m, np.int64)
    n_new = 0
    lo = 0
    for i in range(m):
        key = ukeys[i]
        # galloping search forward from the previous key's place (ukeys ascend): O(log gap) per key
        step = 1
        hi = lo
        while hi < n_keys and keys[hi] < key:
            lo = hi + 1
            hi = lo + step
            step *= 2
        hi = min(hi, n_keys)
        while lo < hi:  # first index in [lo, hi) with keys[index] >= key
            mid = (lo + hi) // 2
            if keys[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        pos[i] = lo
        if lo < n_keys and keys[lo] == key:
            where[i] = slots[lo]
        else:
            where[i] = -1
            n_new += 1
    new_slot = n
    for i in range(m):
        if where[i] < 0:
            s = new_slot
            new_slot += 1
            where[i] = s
            slot_keys[s] = ukeys[i]
            slot_ijk[s, 0] = uijk[i, 0]
            slot_ijk[s, 1] = uijk[i, 1]
            slot_ijk[s, 2] = uijk[i, 2]
        s = where[i]
        count[s] += counts[i]
        point_sum[s, 0] += sums[i, 0]
        point_sum[s, 1] += sums[i, 1]
        point_sum[s, 2] += sums[i, 2]
    if labels.shape[0] > 0 and hist.shape[0] == m:
        for i in range(m):
            labels[where[i], :] += hist[i, :]
    if n_new == 0:
        return keys, slots, n
    # merge: both sorted; the runs of old keys between new ones copied as blocks
    keys_out = np.empty(n_keys + n_new, np.int64)
    slots_out = np.empty(n_keys + n_new, np.int64)
    a = 0
    o = 0
    for i in range(m):
        p = pos[i]
        if p < n_keys and keys[p] == ukeys[i]:
            continue
        run = p - a
        keys_out[o : o + run] = keys[a:p]
        slots_out[o : o + run] = slots[a:p]
        o += run
        a = p
        keys_out[o] = ukeys[i]
        slots_out[o] = where[i]
        o += 1
    keys_out[o:] = keys[a:]
    slots_out[o:] = slots[a:]
    return keys_out, slots_out, new_slot


@numba.njit(cache=True, nogil=True)
def occupancy_integrate(
    x, y, z, labels, sensor_x, sensor_y, carve, floor_hits, obstacle_hits, carved, semantic, mark, token, params
):
    """One frame into one occupancy map (``OccupancyMap.integrate_points``' evidence).

    Args:
        x, y, z: float64 ``[N]`` world points (non-finite ones are skipped).
        labels: int ``[N]`` ids (0: none) or ``[0]`` for none.
        sensor_x, sensor_y: the camera's floor position; ``carve``: walk the floor rays.
        floor_hits, obstacle_hits, carved, semantic: the map's flat int32 grids (updated in place).
        mark: int64 scratch ``[rows * cols]`` of cell stamps; ``token``: a value no cell holds yet (one vote per
            frame per carved cell).
        params: float64 ``[floor_z, floor_band, obstacle_min_z, obstacle_max_z, origin_x, origin_y, cell_size,
            rows, cols]``.

    Returns:
        int64 ``[5]``: finite points, floor points, obstacle points, ignored (outside both bands), in a band
        but outside the grid.
    """
    floor_z, band, omin, omax = params[0], params[1], params[2], params[3]
    ox, oy, cs = params[4], params[5], params[6]
    rows, cols = np.int64(params[7]), np.int64(params[8])
    n = x.shape[0]
    has_labels = labels.shape[0] == n
    stats = np.zeros(5, np.int64)
    fx = np.empty(n, np.float64)  # floor points inside the grid, in input order (the carve's ray ends)
    fy = np.empty(n, np.float64)
    n_f = 0
    for p in range(n):
        if not (math.isfinite(x[p]) and math.isfinite(y[p]) and math.isfinite(z[p])):
            continue
        stats[0] += 1
        h = z[p] - floor_z
        floor = abs(h) <= band
        obst = h >= omin and h <= omax
        if not (floor or obst):
            stats[3] += 1
            continue
        col = np.int64(math.floor((x[p] - ox) / cs))
        row = np.int64(math.floor((y[p] - oy) / cs))
        if not (row >= 0 and row < rows and col >= 0 and col < cols):
            stats[4] += 1
            continue
        cell = row * cols + col
        if floor:
            stats[1] += 1
            floor_hits[cell] += 1
            fx[n_f] = x[p]
            fy[n_f] = y[p]
            n_f += 1
        if obst:
            stats[2] += 1
            obstacle_hits[cell] += 1
            if has_labels and labels[p] != 0:
                semantic[cell] = labels[p]  # the last one wins
    if not carve or n_f == 0:
        return stats
    # OccupancyMap._carve: only the farthest floor point per direction bin is walked
    step = cs / 2
    longest = 0.0
    for q in range(n_f):
        length = math.hypot(fx[q] - sensor_x, fy[q] - sensor_y)
        if length > longest:
            longest = length
    if longest < step:
        return stats
    k_bins = longest / step
    lo = np.int64(math.floor(-math.pi * k_bins)) - 1
    n_bins = np.int64(math.floor(math.pi * k_bins)) + 2 - lo
    best = np.full(n_bins, -1, np.int64)
    best_len = np.zeros(n_bins, np.float64)
    for q in range(n_f):
        vx = fx[q] - sensor_x
        vy = fy[q] - sensor_y
        length = math.hypot(vx, vy)
        bin_ = np.int64(math.floor(math.atan2(vy, vx) * k_bins)) - lo
        if best[bin_] < 0 or length >= best_len[bin_]:  # the longest; of equal ones the last
            best[bin_] = q
            best_len[bin_] = length
    for bin_ in range(n_bins):
        q = best[bin_]
        if q < 0:
            continue
        vx = fx[q] - sensor_x
        vy = fy[q] - sensor_y
        length = best_len[bin_]
        n_samples = np.int64(math.ceil(length / step))
        for s in range(n_samples):
            frac = s / n_samples
            if not frac * length <= length - step:
                continue
            col = np.int64(math.floor((sensor_x + frac * vx - ox) / cs))
            row = np.int64(math.floor((sensor_y + frac * vy - oy) / cs))
            if row >= 0 and row < rows and col >= 0 and col < cols:
                cell = row * cols + col
                if mark[cell] != token:
                    mark[cell] = token
                    carved[cell] += 1
    return stats


@numba.njit(cache=True, nogil=True)
def occupancy_crop(px, py, ca, sa, fwd, left, origin_x, origin_y, cs, rows, cols, min_hits,
                   floor_hits, obstacle_hits, carved, semantic, out):  # fmt: skip
    """One map's agent-centred crop into ``out`` ``[3, S * S]`` (``OccupancyMap.crop``'s values): occupied,
    observed free, semantic id; cells outside the grid read 0."""
    for q in range(fwd.shape[0]):
        wx = px + ca * fwd[q] - sa * left[q]
        wy = py + sa * fwd[q] + ca * left[q]
        col = np.int64(math.floor((wx - origin_x) / cs))
        row = np.int64(math.floor((wy - origin_y) / cs))
        if row >= 0 and row < rows and col >= 0 and col < cols:
            cell = row * cols + col
            occ = obstacle_hits[cell] >= min_hits
            seen = floor_hits[cell] > 0 or carved[cell] > 0
            out[0, q] = occ
            out[1, q] = seen and not occ
            out[2, q] = semantic[cell]
        else:
            out[0, q] = 0
            out[1, q] = 0
            out[2, q] = 0


@numba.njit(cache=True, nogil=True)
def backproject(depth, rx, ry, rot, trans, max_depth):
    """World points of the pixels of B z-depth frames that hit something (``0 < depth < max_depth``, finite).

    Args:
        depth: ``[B, P]`` z-depth per flat pixel (any float dtype; read as float64).
        rx, ry: float64 ``[P]``: each pixel's camera ray scaled to z == 1.
        rot: float64 ``[B, 3, 3]`` camera-to-world rotations; ``trans``: float64 ``[B, 3]`` camera positions.
        max_depth: the renderer's depth clip.

    Returns:
        the points by coordinate float64 ``[3, M]`` (grouped by frame), their frame int64 ``[M]`` and flat pixel
        index int64 ``[M]``. A point is ``rot @ (rx * d, ry * d, d) + trans``, each row's products added left to
        right, then the translation: its value does not depend on the rest of the batch.
    """
    n_frames, n_pix = depth.shape
    m = 0
    for b in range(n_frames):
        for q in range(n_pix):
            d = np.float64(depth[b, q])
            if d > 0 and d < max_depth and math.isfinite(d):
                m += 1
    cols = np.empty((3, m), np.float64)
    frame = np.empty(m, np.int64)
    idx = np.empty(m, np.int64)
    o = 0
    for b in range(n_frames):
        for q in range(n_pix):
            d = np.float64(depth[b, q])
            if not (d > 0 and d < max_depth and math.isfinite(d)):
                continue
            cx = rx[q] * d
            cy = ry[q] * d
            for a in range(3):
                cols[a, o] = (cx * rot[b, a, 0] + cy * rot[b, a, 1] + d * rot[b, a, 2]) + trans[b, a]
            frame[o] = b
            idx[o] = q
            o += 1
    return cols, frame, idx


@numba.njit(cache=True, nogil=True)
def octree_knn(keys, slots, slot_ijk, u, k, start_level, depth):
    """The ``min(k, M)`` leaves nearest to the point ``u`` (voxel units, inside or outside the cube) of one tree:
    the block search of ``SparseOctree.query_knn`` and :func:`~chronotope.maps.octree.query_knn_batch`, from
    ``start_level`` up.

    At each level the candidates are the leaves of the 3 x 3 x 3 block of cells (``2**level`` voxels wide) around
    the point's cell: contiguous runs of the sorted Morton index. The answer is final once the k-th squared
    distance is below the squared distance to the block's faces (faces on the cube's boundary have nothing beyond
    them); the last level is the whole cube. Ranking: squared distance to the leaf centre (``(ijk + 0.5 - u)``
    squared, the three terms added in order), equal distances by Morton code: a total order, so the answer does
    not depend on the level it came from.

    Returns:
        the slots int64 ``[min(k, M)]``, nearest first, and the k-th squared distance (voxel units).
    """
    n_keys = keys.shape[0]
    kk = min(k, n_keys)
    best_d = np.empty(kk, np.float64)
    best_key = np.empty(kk, np.int64)
    best_slot = np.empty(kk, np.int64)
    lo_run = np.empty(27, np.int64)
    hi_run = np.empty(27, np.int64)
    if kk == 0:
        return best_slot, 0.0
    level = start_level
    while True:
        side = np.int64(1) << level
        cells = (np.int64(1) << depth) >> level
        cc0 = np.int64(math.floor(u[0] / side))
        cc1 = np.int64(math.floor(u[1] / side))
        cc2 = np.int64(math.floor(u[2] / side))
        n_runs = 0
        n_cand = 0
        if level < depth:
            shift = np.int64(3 * level)
            for a in range(-1, 2):
                for b in range(-1, 2):
                    for c in range(-1, 2):
                        x, y, z = cc0 + a, cc1 + b, cc2 + c
                        if x < 0 or x >= cells or y < 0 or y >= cells or z < 0 or z >= cells:
                            continue
                        prefix = _spread3(x) | (_spread3(y) << np.int64(1)) | (_spread3(z) << np.int64(2))
                        lo = np.searchsorted(keys, prefix << shift)
                        hi = np.searchsorted(keys, (prefix + 1) << shift)
                        lo_run[n_runs] = lo
                        hi_run[n_runs] = hi
                        n_runs += 1
                        n_cand += hi - lo
        if n_runs == 0:  # the whole cube (the last level, or no cell of the block inside it)
            lo_run[0] = 0
            hi_run[0] = n_keys
            n_runs = 1
            n_cand = n_keys
            bound = np.inf
        else:
            bound = np.inf
            for d, cc in ((0, cc0), (1, cc1), (2, cc2)):
                if cc - 1 >= 0:
                    bound = min(bound, u[d] - (cc - 1) * side)
                if cc + 2 <= cells:
                    bound = min(bound, (cc + 2) * side - u[d])
        if n_cand < kk and bound < np.inf:
            level += 1
            continue
        n_best = 0
        for r in range(n_runs):
            for i in range(lo_run[r], hi_run[r]):
                s = slots[i]
                d0 = slot_ijk[s, 0] + 0.5 - u[0]
                d1 = slot_ijk[s, 1] + 0.5 - u[1]
                d2 = slot_ijk[s, 2] + 0.5 - u[2]
                dist = d0 * d0 + d1 * d1 + d2 * d2
                key = keys[i]
                if n_best == kk and not (dist < best_d[kk - 1] or (dist == best_d[kk - 1] and key < best_key[kk - 1])):
                    continue
                j = n_best if n_best < kk else kk - 1  # insertion into the sorted best list
                while j > 0 and (best_d[j - 1] > dist or (best_d[j - 1] == dist and best_key[j - 1] > key)):
                    if j < kk:
                        best_d[j] = best_d[j - 1]
                        best_key[j] = best_key[j - 1]
                        best_slot[j] = best_slot[j - 1]
                    j -= 1
                best_d[j] = dist
                best_key[j] = key
                best_slot[j] = s
                if n_best < kk:
                    n_best += 1
        if bound < np.inf and not best_d[kk - 1] < bound * bound:
            level += 1
            continue
        return best_slot, best_d[kk - 1]
