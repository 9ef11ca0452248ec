"""A triangle mesh with per-triangle semantics: the form every renderer backend consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SceneMesh:
    """Triangles of one scene in world coordinates (metres, z up).

    Attributes:
        vertices: float32 [V, 3] positions.
        faces: int32 [F, 3] vertex indices.
        face_instance: int32 [F] instance id of each triangle (> 0; 0 is reserved for "no hit").
        face_color: uint8 [F, 3] albedo of each triangle.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_instance: np.ndarray
    face_color: np.ndarray

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float32)
        f = np.ascontiguousarray(self.faces, dtype=np.int32)
        inst = np.ascontiguousarray(self.face_instance, dtype=np.int32)
        col = np.ascontiguousarray(self.face_color, dtype=np.uint8)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices must have shape [V, 3], got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must have shape [F, 3], got {f.shape}")
        if inst.shape != (f.shape[0],):
            raise ValueError(f"face_instance must have shape [{f.shape[0]}], got {inst.shape}")
        if col.shape != (f.shape[0], 3):
            raise ValueError(f"face_color must have shape [{f.shape[0]}, 3], got {col.shape}")
        if not np.isfinite(v).all():
            raise ValueError("vertices contain NaN or inf")
        if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
            raise ValueError(f"faces index vertices outside [0, {v.shape[0]}): range {f.min()}..{f.max()}")
        if inst.size and inst.min() <= 0:
            raise ValueError(f"instance ids must be > 0 (0 means no hit), found {inst.min()}")
        for name, arr in (("vertices", v), ("faces", f), ("face_instance", inst), ("face_color", col)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds (min [3], max [3])."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def face_normals(self) -> np.ndarray:
        """Unit normals float32 [F, 3] from the winding (v1 - v0) x (v2 - v0)."""
        tri = self.vertices[self.faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        return (n / np.maximum(norm, 1e-12)).astype(np.float32)

    @staticmethod
    def concatenate(meshes: list[SceneMesh]) -> SceneMesh:
        offset = 0
        faces = []
        for m in meshes:
            faces.append(m.faces + offset)
            offset += m.vertices.shape[0]
        return SceneMesh(
            vertices=np.concatenate([m.vertices for m in meshes]),
            faces=np.concatenate(faces),
            face_instance=np.concatenate([m.face_instance for m in meshes]),
            face_color=np.concatenate([m.face_color for m in meshes]),
        )

    @staticmethod
    def box(lo: np.ndarray, hi: np.ndarray, instance: int, color: tuple[int, int, int]) -> SceneMesh:
        """An axis-aligned box of 12 outward-wound triangles."""
        lo = np.asarray(lo, np.float32)
        hi = np.asarray(hi, np.float32)
        corners = np.array([[(hi if (i >> k) & 1 else lo)[k] for k in range(3)] for i in range(8)], dtype=np.float32)
        # corner index bit k set -> coordinate k at hi
        # counter-clockwise seen from outside, so (v1 - v0) x (v2 - v0) points out of the box
        quads = [(0, 4, 6, 2), (1, 3, 7, 5), (0, 1, 5, 4), (2, 6, 7, 3), (0, 2, 3, 1), (4, 5, 7, 6)]
        faces = []
        for a, b, c, d in quads:
            faces += [(a, b, c), (a, c, d)]
        f = np.array(faces, np.int32)
        return SceneMesh(
            corners, f, np.full(len(f), instance, np.int32), np.tile(np.array(color, np.uint8), (len(f), 1))
        )
