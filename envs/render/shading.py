"""One shading model for every renderer backend: double-sided Lambert under a fixed directional light.

``colour = albedo * (ambient + diffuse * |n . l|)``, with ``n`` the triangle's normal and ``l`` the direction
towards the light, both in world coordinates. The absolute value makes a triangle look the same from either
side (scene meshes are not guaranteed to be consistently wound). Because the light is directional and fixed in
the world, the shade of a triangle does not depend on the viewer: it is computed once per triangle and each
render is a table look-up by hit triangle id (the ray-casting backends), or reproduced by the engine's own
lights (the MuJoCo backends: two directional lights ``+l`` and ``-l`` sum to ``|n . l|``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lighting:
    """A fixed directional light plus ambient term."""

    direction: tuple[float, float, float] = (0.35, 0.55, 1.0)
    """Direction *towards* the light in world coordinates (z up); normalised on use. Not axis-aligned, so
    floor, x-facing and y-facing surfaces get three different shades."""
    ambient: float = 0.35
    """Fraction of the albedo seen on a surface facing away from (perpendicular to) the light."""
    diffuse: float = 0.65
    """Weight of the Lambert term; ``ambient + diffuse = 1`` keeps a surface facing the light at its albedo."""
    background: tuple[int, int, int] = (0, 0, 0)
    """RGB of pixels that hit nothing within the depth range."""

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) < 1e-9:
            raise ValueError(f"light direction must be a finite non-zero 3-vector, got {self.direction!r}")
        if not (self.ambient >= 0 and self.diffuse >= 0):
            raise ValueError(f"ambient and diffuse must be >= 0, got {self.ambient!r}, {self.diffuse!r}")

    def unit_direction(self) -> np.ndarray:
        """Unit direction towards the light, float64 [3]."""
        d = np.asarray(self.direction, dtype=np.float64)
        return d / np.linalg.norm(d)


def lambert_intensity(normals: np.ndarray, lighting: Lighting = Lighting()) -> np.ndarray:
    """Double-sided Lambert intensity per normal.

    Args:
        normals: float [..., 3] unit normals in world coordinates.
        lighting: the light.

    Returns:
        float32 [...] intensity ``ambient + diffuse * |n . l|``.
    """
    ndotl = np.abs(np.asarray(normals, dtype=np.float64) @ lighting.unit_direction())
    return (lighting.ambient + lighting.diffuse * ndotl).astype(np.float32)


def shade_faces(face_color: np.ndarray, face_normals: np.ndarray, lighting: Lighting = Lighting()) -> np.ndarray:
    """Shaded colour of every triangle.

    Args:
        face_color: uint8 [F, 3] albedo.
        face_normals: float [F, 3] unit normals (world).
        lighting: the light.

    Returns:
        uint8 [F, 3] shaded colour, rounded and clipped to [0, 255].
    """
    shade = lambert_intensity(face_normals, lighting)  # [F]
    rgb = face_color.astype(np.float32) * shade[:, None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def shaded_color_table(face_color: np.ndarray, face_normals: np.ndarray, lighting: Lighting = Lighting()) -> np.ndarray:
    """Per-triangle shaded colours with the background appended as the last row.

    Indexing the table with a hit triangle id gives the pixel colour; indexing with ``-1`` (a miss) gives
    the background, so a render needs no separate miss mask for colour.

    Returns:
        uint8 [F + 1, 3].
    """
    table = np.empty((face_color.shape[0] + 1, 3), dtype=np.uint8)
    table[:-1] = shade_faces(face_color, face_normals, lighting)
    table[-1] = lighting.background
    return table


def shade_hits(
    face_ids: np.ndarray, face_color: np.ndarray, face_normals: np.ndarray, lighting: Lighting = Lighting()
) -> np.ndarray:
    """Colour of hit pixels from their triangle ids (``-1`` for no hit).

    Args:
        face_ids: int [...] hit triangle per pixel, ``-1`` where nothing was hit.
        face_color: uint8 [F, 3] albedo.
        face_normals: float [F, 3] unit normals (world).
        lighting: the light.

    Returns:
        uint8 [..., 3].
    """
    face_ids = np.asarray(face_ids)
    if face_ids.size and (face_ids.min() < -1 or face_ids.max() >= face_color.shape[0]):
        raise ValueError(f"face ids must be in [-1, {face_color.shape[0]}), got {face_ids.min()}..{face_ids.max()}")
    return shaded_color_table(face_color, face_normals, lighting)[face_ids]
