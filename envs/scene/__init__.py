"""Scenes: the apartment generator, mesh import, the scene description and its navigability grid.

The names below are loaded on first use (PEP 562), so ``import chronotope.envs.scene`` stays cheap:

- ``generate_apartment(seed, ApartmentConfig(...))`` -> ``SceneSpec`` (:mod:`.generator`)
- ``load_mesh_scene(path)`` -> ``SceneSpec`` from your own OBJ/PLY/GLB (:mod:`.mesh_io`)
- ``SceneSpec`` and its parts (:mod:`.spec`), ``NavGrid`` (:mod:`.navgrid`), ``SceneMesh`` (:mod:`.mesh`)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "generate_apartment": "generator",
    "ApartmentConfig": "generator",
    "load_mesh_scene": "mesh_io",
    "SceneSpec": "spec",
    "SceneObject": "spec",
    "Room": "spec",
    "Door": "spec",
    "Wall": "spec",
    "NavGrid": "navgrid",
    "SceneMesh": "mesh",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
