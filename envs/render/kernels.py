"""Compiled (numba) loops around the Open3D ray cast: filling the ray buffer before it and turning the hits into
depth, instance ids and colours after it (``Open3DRenderer``).

A step of the batched nav env at N = 64 and 64 x 64 casts 262,144 rays; the cast runs on every core (Embree),
and what a step adds around it runs on one. In numpy that work was several full passes over the pixels (ray
directions from a broadcast add, a mask, a clip, two table look-ups); here it is one pass each way. The values
are those of the numpy passes, element by element (float32 arithmetic in the same order, no fast-math):
``tests/render/test_render_kernels.py``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def fill_rays(origin, rot, x, y, out):
    """Rays of N pinhole cameras into ``out`` float32 ``[N, H, W, 6]`` (origin, direction).

    Args:
        origin: float32 ``[N, 3]`` camera centres; ``rot``: float32 ``[N, 3, 3]`` camera-to-world rotations.
        x: float32 ``[W]`` camera-frame x of each column, ``y``: float32 ``[H]`` of each row (z == 1).

    The direction of pixel (r, c) is ``(rot[:, 0] * x[c] + rot[:, 2]) + rot[:, 1] * y[r]``, in float32.
    """
    n, h, w = out.shape[0], out.shape[1], out.shape[2]
    col = np.empty((w, 3), np.float32)
    for b in range(n):
        for c in range(w):
            for a in range(3):
                col[c, a] = rot[b, a, 0] * x[c] + rot[b, a, 2]
        for r in range(h):
            for a in range(3):
                ya = rot[b, a, 1] * y[r]
                for c in range(w):
                    out[b, r, c, a] = origin[b, a]
                    out[b, r, c, 3 + a] = col[c, a] + ya


@numba.njit(cache=True)
def shade(t_hit, face, max_depth, instance_table, color_table, depth, semantic, rgb):
    """Depth, instance id and colour of every ray from its hit (flat ``[M]`` arrays; ``rgb`` ``[M, 3]``).

    A ray that hits nothing (``t_hit`` inf, face id -1) or hits beyond ``max_depth`` reads ``max_depth`` and the
    tables' last row ("no hit").
    """
    no_hit = instance_table.shape[0] - 1
    for i in range(t_hit.shape[0]):
        t = t_hit[i]
        f = face[i]
        if t > max_depth or f < 0:
            f = no_hit
        depth[i] = min(t, max_depth)
        semantic[i] = instance_table[f]
        rgb[i, 0] = color_table[f, 0]
        rgb[i, 1] = color_table[f, 1]
        rgb[i, 2] = color_table[f, 2]
