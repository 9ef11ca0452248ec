"""63-bit Morton (Z-order) codes: 21 bits per axis, x -> bit 0, y -> bit 1, z -> bit 2 of every level.

Vectorised with the standard "split by 3" magic masks on uint64, so a million codes cost a few
milliseconds. Codes are returned as int64 (bit 63 is always 0), which keeps them sortable and usable with
``np.searchsorted``. The parent of a code one level up is ``code >> 3``; ``k`` levels up, ``code >> 3k``.
"""

from __future__ import annotations

import numpy as np

MAX_LEVEL = 21
"""Bits per axis; 3 * 21 = 63 bits fit a non-negative int64."""

AXIS_MAX = (1 << MAX_LEVEL) - 1

_M = np.uint64
_MASKS = (
    (_M(32), _M(0x001F00000000FFFF)),
    (_M(16), _M(0x001F0000FF0000FF)),
    (_M(8), _M(0x100F00F00F00F00F)),
    (_M(4), _M(0x10C30C30C30C30C3)),
    (_M(2), _M(0x1249249249249249)),
)


def _split_by_3_masks(v: np.ndarray) -> np.ndarray:
    """Spreads the low 21 bits of ``v`` (uint64) two zero bits apart, with the magic masks."""
    v = v & _M(AXIS_MAX)
    for shift, mask in _MASKS:
        v = (v | (v << shift)) & mask
    return v


_SPLIT_BITS = 11
_SPLIT_TABLE = _split_by_3_masks(np.arange(1 << _SPLIT_BITS, dtype=np.uint64))
"""Every 11-bit value spread two zero bits apart (2048 entries)."""
_SPLIT_TABLE.flags.writeable = False


def _split_by_3(v: np.ndarray) -> np.ndarray:
    """Spreads the low 21 bits of ``v`` (uint64) two zero bits apart.

    Two lookups in a table of the spread 11-bit values (the low 11 bits, and the high 10 shifted up by 33)
    instead of five shift-or-mask rounds: the same codes in ~6 array operations instead of ~16, which is what
    counts for the small arrays of the per-step map queries.
    """
    lo = _SPLIT_TABLE[(v & _M((1 << _SPLIT_BITS) - 1)).astype(np.intp)]
    hi = _SPLIT_TABLE[((v >> _M(_SPLIT_BITS)) & _M((1 << (MAX_LEVEL - _SPLIT_BITS)) - 1)).astype(np.intp)]
    return lo | (hi << _M(3 * _SPLIT_BITS))


def _compact_by_3(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_split_by_3`: gathers every third bit of ``v`` (uint64) into the low 21 bits."""
    v = v & _MASKS[-1][1]
    # Undo the spreading steps in reverse order; after undoing step i the mask of step i - 1 applies.
    undo_masks = [m for _, m in _MASKS[:-1]][::-1] + [_M(AXIS_MAX)]
    for (shift, _), mask in zip(_MASKS[::-1], undo_masks):
        v = (v | (v >> shift)) & mask
    return v


def _check_coords(name: str, c: np.ndarray) -> np.ndarray:
    c = np.asarray(c)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"Morton {name} coordinates must be integers, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or c.max() > AXIS_MAX):
        bad = c[(c < 0) | (c > AXIS_MAX)].reshape(-1)[0]
        raise ValueError(f"Morton {name} coordinate {int(bad)} outside [0, {AXIS_MAX}]")
    return c.astype(np.uint64)


def encode(x: np.ndarray | int, y: np.ndarray | int, z: np.ndarray | int) -> np.ndarray:
    """Interleaves integer voxel coordinates into Morton codes.

    Args:
        x, y, z: integer arrays of one broadcastable shape ``[...]``, each in ``[0, 2^21)``.

    Returns:
        int64 ``[...]`` codes.

    Raises:
        ValueError: a coordinate is negative, too large, or not an integer.
    """
    xs, ys, zs = (_check_coords(n, c) for n, c in (("x", x), ("y", y), ("z", z)))
    code = _split_by_3(xs) | (_split_by_3(ys) << _M(1)) | (_split_by_3(zs) << _M(2))
    return code.astype(np.int64)


def encode_points(ijk: np.ndarray) -> np.ndarray:
    """Morton codes of integer voxel coordinates ``ijk`` int ``[N, 3]`` -> int64 ``[N]``."""
    ijk = np.asarray(ijk)
    if ijk.ndim != 2 or ijk.shape[1] != 3:
        raise ValueError(f"voxel coordinates must have shape [N, 3], got {ijk.shape}")
    return encode(ijk[:, 0], ijk[:, 1], ijk[:, 2])


def encode_unchecked(ijk: np.ndarray) -> np.ndarray:
    """:func:`encode_points` without range checks, for callers that already guarantee ``[0, 2^21)``."""
    u = ijk.astype(np.uint64)
    code = _split_by_3(u[:, 0]) | (_split_by_3(u[:, 1]) << _M(1)) | (_split_by_3(u[:, 2]) << _M(2))
    return code.astype(np.int64)


def encode_columns(i: np.ndarray, j: np.ndarray, k: np.ndarray, bits: int = MAX_LEVEL) -> np.ndarray:
    """:func:`encode_unchecked` of coordinates given as three int arrays ``[N]`` (contiguous, no ``[N, 3]``
    column reads): the same int64 codes. Coordinates known to lie in ``[0, 2**bits)`` with ``bits <= 11`` (an
    octree of depth <= 11) need one table lookup per axis instead of two."""
    if bits <= _SPLIT_BITS:
        code = _SPLIT_TABLE[i] | (_SPLIT_TABLE[j] << _M(1))
        return (code | (_SPLIT_TABLE[k] << _M(2))).astype(np.int64)
    code = _split_by_3(i.astype(np.uint64)) | (_split_by_3(j.astype(np.uint64)) << _M(1))
    return (code | (_split_by_3(k.astype(np.uint64)) << _M(2))).astype(np.int64)


def decode(codes: np.ndarray | int) -> np.ndarray:
    """Inverse of :func:`encode`: int64 codes ``[...]`` -> int64 voxel coordinates ``[..., 3]``.

    Raises:
        ValueError: a code is negative (bit 63 set), which no 63-bit code can be.
    """
    c = np.asarray(codes)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"Morton codes must be integers, got dtype {c.dtype}")
    if c.size and c.min() < 0:
        raise ValueError(f"Morton code {int(c.min())} is negative")
    c = c.astype(np.uint64)
    out = np.stack([_compact_by_3(c >> _M(axis)) for axis in range(3)], axis=-1)
    return out.astype(np.int64)


def parent(codes: np.ndarray | int, levels: int = 1) -> np.ndarray:
    """Code of the ancestor ``levels`` levels up (a cell ``2^levels`` times larger per axis)."""
    if not 0 <= levels <= MAX_LEVEL:
        raise ValueError(f"levels must be in [0, {MAX_LEVEL}], got {levels}")
    return np.asarray(codes, dtype=np.int64) >> np.int64(3 * levels)


def children(codes: np.ndarray | int) -> np.ndarray:
    """The 8 child codes of each code: int64 ``[..., 8]``."""
    c = np.asarray(codes, dtype=np.int64)
    if c.size and c.max() >= (1 << 60):
        raise ValueError("codes at the finest level have no children")
    return (c[..., None] << np.int64(3)) | np.arange(8, dtype=np.int64)


def group_sorted(keys: np.ndarray, key_bits: int, return_first: bool = False) -> tuple[np.ndarray, ...]:
    """``np.unique(keys, return_inverse=True, return_counts=True)`` for non-negative int64 keys below
    ``2**key_bits``: the same sorted distinct keys, inverse and counts (integers, so identical), several times
    faster on the ~10^4-10^5 keys of a batched map update. With ``return_first``, also the index of the first
    occurrence of each distinct key (``np.unique``'s ``return_index``).

    The position of every key is packed into its low bits so that one ``np.sort`` (not ``argsort``, a few times
    slower) orders keys and finds each one's place; keys too wide for the packing go through ``argsort``.
    """
    uniq, perm, group, counts = sort_groups(keys, key_bits)
    inv = np.empty(perm.shape[0], np.int64)
    inv[perm] = group
    if return_first:  # the sort is stable (positions break ties), so a group's first entry is its first occurrence
        return uniq, inv, counts, perm[np.cumsum(counts) - counts]
    return uniq, inv, counts


def sort_groups(keys: np.ndarray, key_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_sorted` without the inverse: the sorted distinct keys, the stable sorting permutation
    ``perm`` (``keys[perm]`` sorted, equal keys in input order), the group of every sorted position
    (``inverse[perm]``, non-decreasing) and the counts.

    Per-group sums in input order are ``np.bincount(group, weights=w[perm])`` (bincount adds in index order,
    and each group's sorted positions are its inputs in order: the same sums, bit for bit, as
    ``np.bincount(inverse, weights=w)``), without the scatter that makes the inverse (the costliest step of
    :func:`group_sorted` on a map update's ~6 * 10^4 keys). A group's first input is ``perm[starts]``, with
    ``starts = cumsum(counts) - counts``.
    """
    keys = np.asarray(keys, np.int64).reshape(-1)
    n = keys.shape[0]
    if n == 0:
        empty = np.zeros(0, np.int64)
        return keys.copy(), empty, empty, empty
    idx_bits = max(1, int(n - 1).bit_length())
    if key_bits + idx_bits <= 63:
        packed = np.sort((keys << np.int64(idx_bits)) | np.arange(n, dtype=np.int64))
        perm = packed & np.int64((1 << idx_bits) - 1)
        ordered = packed >> np.int64(idx_bits)
    else:
        perm = np.argsort(keys, kind="stable")
        ordered = keys[perm]
    first = np.empty(n, bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    counts = np.diff(np.append(starts, n))
    return ordered[starts], perm, group, counts


def count_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_counts=True)`` (sorted distinct keys and their counts) through one ``np.sort``."""
    s = np.sort(np.asarray(keys).reshape(-1))
    if s.shape[0] == 0:
        return s, np.zeros(0, np.int64)
    first = np.empty(s.shape[0], bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return s[starts], np.diff(np.append(starts, s.shape[0]))
