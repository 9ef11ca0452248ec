"""Loading a user's own mesh scene (OBJ / PLY / GLB / ...) into a :class:`SceneSpec` via trimesh.

Each named part of the file (a node of a GLB scene, an object/group of an OBJ) becomes one instance. Its category
comes from its name: a catalogue name inside it (``"chair.003"`` -> chair) or a structural word (floor, wall,
ceiling); other parts get the category ``unknown_category`` (default: ``box``). Floors are walkable, ceilings
and parts entirely above the agent's height do not block; everything else is an obstacle.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.spec import MeshPart, SceneSpec

_Y_UP_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)


def category_from_name(name: str, default: int) -> int:
    """Category id guessed from a part name (catalogue names, then floor / wall / ceiling)."""
    low = name.lower()
    for c in sorted(cat.CATEGORIES, key=lambda c: -len(c.name)):
        if re.search(rf"(^|[^a-z]){re.escape(c.name)}", low):
            return c.id
    for word, cid in (("floor", cat.FLOOR), ("ground", cat.FLOOR), ("ceiling", cat.CEILING), ("wall", cat.WALL)):
        if word in low:
            return cid
    return default


def load_mesh_scene(
    path: str | Path,
    up_axis: str | None = None,
    unknown_category: str = "box",
    default_color: tuple[int, int, int] = (180, 180, 180),
) -> SceneSpec:
    """Reads a mesh file into a ``SceneSpec`` whose parts keep the file's per-part semantics.

    Args:
        path: mesh file readable by trimesh (OBJ, PLY, GLB/GLTF, STL, OFF ...).
        up_axis: "z" or "y"; default "y" for GLB/GLTF (their convention) and "z" otherwise.
        unknown_category: catalogue category for parts whose name says nothing.
        default_color: colour of parts without material/vertex colours.

    Raises:
        ValueError: unreadable file, no triangles, bad ``up_axis`` or unknown category (naming the value).
    """
    import trimesh

    path = Path(path)
    if unknown_category not in cat.CATEGORY_BY_NAME:
        raise ValueError(f"unknown_category {unknown_category!r} is not a catalogue category")
    if up_axis is None:
        up_axis = "y" if path.suffix.lower() in (".glb", ".gltf") else "z"
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    try:
        loaded = trimesh.load(str(path), force="scene", process=False)
    except Exception as e:  # trimesh raises many types for bad files
        raise ValueError(f"cannot read mesh scene {str(path)!r}: {type(e).__name__}: {e}") from e
    default_cat = cat.CATEGORY_BY_NAME[unknown_category].id
    parts: list[MeshPart] = []
    next_id = 4
    for node_name in loaded.graph.nodes_geometry:
        transform, geom_name = loaded.graph[node_name]
        geom = loaded.geometry[geom_name]
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        v = trimesh.transformations.transform_points(np.asarray(geom.vertices, float), transform)
        if up_axis == "y":
            v = v @ _Y_UP_TO_Z_UP.T
        color = _part_color(geom, default_color)
        name = str(node_name if node_name != geom_name or not geom_name else geom_name)
        cid = category_from_name(name, default_cat)
        parts.append(
            MeshPart(
                instance_id=next_id,
                category_id=cid,
                name=name,
                color=color,
                vertices=tuple(map(tuple, np.round(v, 6).tolist())),
                faces=tuple(map(tuple, np.asarray(geom.faces, int).tolist())),
                obstacle=cid not in (cat.FLOOR, cat.CEILING),
            )
        )
        next_id += 1
    if not parts:
        raise ValueError(f"mesh scene {str(path)!r} contains no triangles")
    allv = np.concatenate([np.asarray(p.vertices) for p in parts])
    lo, hi = allv.min(0), allv.max(0)
    spec = SceneSpec(
        name=path.stem,
        rooms=(),
        walls=(),
        doors=(),
        objects=(),
        wall_height=float(hi[2] - lo[2]),
        parts=tuple(parts),
        bounds_override=((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))),
        metadata=(("source", str(path)),),
    )
    spec.validate()
    return spec


def _part_color(geom, default) -> tuple[int, int, int]:
    try:
        vis = geom.visual
        if getattr(vis, "kind", None) == "vertex" and len(vis.vertex_colors):
            return tuple(int(c) for c in np.asarray(vis.vertex_colors)[:, :3].mean(0))
        if getattr(vis, "kind", None) == "face" and len(vis.face_colors):
            return tuple(int(c) for c in np.asarray(vis.face_colors)[:, :3].mean(0))
        mat = getattr(vis, "material", None)
        if mat is not None:
            base = getattr(mat, "baseColorFactor", None)
            if base is None:
                base = getattr(mat, "diffuse", None)
            if base is not None:
                base = np.asarray(base, float)[:3]
                base = base * 255 if base.max() <= 1.0 else base
                return tuple(int(c) for c in base)
    except (AttributeError, ValueError, IndexError):
        pass
    return tuple(default)
