"""Placing a pool of scenes side by side in one world so that one acceleration structure serves them all.

Each scene is translated onto its own cell of a square grid in the xy plane; cells are separated by more than
twice the depth range, so a ray of length ``max_depth`` cast from anywhere inside a scene's bounds cannot reach
another scene. A camera looking into scene ``i`` is shifted by the same offset as the scene.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from chronotope.envs.scene.mesh import SceneMesh


def pool_offsets(meshes: Sequence[SceneMesh], max_depth: float, margin: float = 1.0) -> np.ndarray:
    """World translation of each scene of a pool.

    Args:
        meshes: the K scenes.
        max_depth: depth range of the cameras, metres.
        margin: extra gap between neighbouring cells, metres.

    Returns:
        float64 [K, 3] offsets (z always 0; whole metres so that the shift itself adds no rounding). A pool
        of one scene is not moved.
    """
    k = len(meshes)
    if k == 0:
        raise ValueError("a scene pool needs at least one mesh")
    if not (np.isfinite(max_depth) and max_depth > 0):
        raise ValueError(f"max_depth must be a positive finite number, got {max_depth!r}")
    if k == 1:
        return np.zeros((1, 3))
    lo = np.stack([m.bounds[0] if m.vertices.shape[0] else np.zeros(3) for m in meshes]).astype(np.float64)  # [K, 3]
    hi = np.stack([m.bounds[1] if m.vertices.shape[0] else np.zeros(3) for m in meshes]).astype(np.float64)
    cell = (hi - lo)[:, :2].max(axis=0) + 2.0 * max_depth + margin  # [2]
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    idx = np.arange(k)
    grid = np.stack([idx % cols - (cols - 1) / 2.0, idx // cols - (rows - 1) / 2.0], axis=1)  # [K, 2]
    centre = (lo + hi)[:, :2] / 2.0
    out = np.zeros((k, 3))
    out[:, :2] = np.round(grid * np.ceil(cell) - centre)
    return out


def merge_pool(meshes: Sequence[SceneMesh], offsets: np.ndarray) -> tuple[SceneMesh, np.ndarray]:
    """All scenes of a pool in one mesh, each translated by its offset.

    Returns:
        (merged mesh, face_start int64 [K + 1]): triangles of scene ``i`` are ``face_start[i]:face_start[i+1]``.
    """
    moved = [
        SceneMesh(m.vertices + off.astype(np.float32), m.faces, m.face_instance, m.face_color)
        for m, off in zip(meshes, offsets, strict=True)
    ]
    face_start = np.concatenate([[0], np.cumsum([m.num_faces for m in meshes])]).astype(np.int64)
    return SceneMesh.concatenate(moved), face_start
