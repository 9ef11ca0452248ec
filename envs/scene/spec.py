"""``SceneSpec``: a scene as frozen, pure data that round-trips through JSON.

A scene is a set of axis-aligned rooms on a floor at z = 0, walls (centre-line segments with door
openings cut out), and objects (boxes assemblies from :mod:`.catalogue`, or triangle parts loaded from a user's
mesh). Instance ids: 1 floor, 2 ceiling, 3 walls, objects from 4 on; each instance has a category id.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.mesh import SceneMesh

FLOOR_INSTANCE, CEILING_INSTANCE, WALL_INSTANCE = 1, 2, 3
FORMAT_VERSION = 1

Vec2 = tuple[float, float]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Room:
    """An axis-aligned room: ``lo``/``hi`` are its inner corners (x, y) on the wall centre lines."""

    id: int
    type: str
    lo: Vec2
    hi: Vec2

    @property
    def center(self) -> Vec2:
        return ((self.lo[0] + self.hi[0]) / 2, (self.lo[1] + self.hi[1]) / 2)

    @property
    def area(self) -> float:
        return (self.hi[0] - self.lo[0]) * (self.hi[1] - self.lo[1])

    def contains(self, x: float, y: float) -> bool:
        return self.lo[0] <= x <= self.hi[0] and self.lo[1] <= y <= self.hi[1]


@dataclass(frozen=True)
class Door:
    """An opening of ``width`` centred at ``center`` in a wall running along ``axis`` ("x" or "y")."""

    center: Vec2
    width: float
    axis: str
    rooms: tuple[int, int]


@dataclass(frozen=True)
class Wall:
    """A straight wall from ``start`` to ``end`` (axis-aligned centre line); doors are cut where they lie on it."""

    start: Vec2
    end: Vec2

    @property
    def axis(self) -> str:
        return "x" if abs(self.end[1] - self.start[1]) < 1e-9 else "y"


@dataclass(frozen=True)
class SceneObject:
    """A piece of furniture.

    Attributes:
        instance_id: unique id (>= 4) written in semantic images.
        category_id: id from :mod:`.catalogue`.
        color: colour name.
        center: (x, y) of the footprint centre.
        yaw: rotation about z in radians; the unit frame's +x (away from the wall) turned by yaw.
        size: (depth, width, height) in metres.
        room_id: the room it stands in (-1 if unknown).
    """

    instance_id: int
    category_id: int
    color: str
    center: Vec2
    yaw: float
    size: Vec3
    room_id: int = -1

    @property
    def category(self) -> str:
        return cat.category_name(self.category_id)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return cat.COLORS[self.color]

    def footprint(self) -> np.ndarray:
        """Corners [4, 2] of the footprint rectangle in world coordinates."""
        d, w = self.size[0], self.size[1]
        local = np.array([[-d / 2, -w / 2], [d / 2, -w / 2], [d / 2, w / 2], [-d / 2, w / 2]])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return local @ np.array([[c, s], [-s, c]]) + np.asarray(self.center)


@dataclass(frozen=True)
class MeshPart:
    """Triangles of one instance loaded from a user's mesh (vertices and faces as nested tuples)."""

    instance_id: int
    category_id: int
    name: str
    color: tuple[int, int, int]
    vertices: tuple[Vec3, ...]
    faces: tuple[tuple[int, int, int], ...]
    obstacle: bool = True


@dataclass(frozen=True)
class SceneSpec:
    """A whole scene; pure data. See the module docstring for the id conventions."""

    name: str
    rooms: tuple[Room, ...]
    walls: tuple[Wall, ...]
    doors: tuple[Door, ...]
    objects: tuple[SceneObject, ...]
    wall_height: float = 2.5
    wall_thickness: float = 0.1
    door_height: float = 2.1
    seed: int | None = None
    parts: tuple[MeshPart, ...] = ()
    bounds_override: tuple[Vec2, Vec2] | None = None
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    # ----------------------------------------------------------------------------------------- geometry
    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo [2], hi [2]) of the floor plan including wall thickness."""
        if self.bounds_override is not None:
            return np.asarray(self.bounds_override[0], float), np.asarray(self.bounds_override[1], float)
        lo = np.min([r.lo for r in self.rooms], axis=0) - self.wall_thickness / 2
        hi = np.max([r.hi for r in self.rooms], axis=0) + self.wall_thickness / 2
        return lo, hi

    def instance_categories(self) -> dict[int, int]:
        """Instance id -> category id for every instance in the scene."""
        out = {FLOOR_INSTANCE: cat.FLOOR, CEILING_INSTANCE: cat.CEILING, WALL_INSTANCE: cat.WALL}
        out.update({o.instance_id: o.category_id for o in self.objects})
        out.update({p.instance_id: p.category_id for p in self.parts})
        return out

    def instance_category_table(self, size: int | None = None) -> np.ndarray:
        """Lookup array int32 [max_instance + 1] (or ``size``) mapping instance id -> category id (0 = void)."""
        mapping = self.instance_categories()
        n = max(mapping) + 1 if size is None else size
        table = np.zeros(n, dtype=np.int32)
        for k, v in mapping.items():
            table[k] = v
        return table

    def object_by_instance(self, instance_id: int) -> SceneObject:
        for o in self.objects:
            if o.instance_id == instance_id:
                return o
        raise KeyError(f"no object with instance id {instance_id} in scene {self.name!r}")

    def room_at(self, x: float, y: float) -> Room | None:
        for r in self.rooms:
            if r.contains(x, y):
                return r
        return None

    def wall_boxes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Solid wall pieces as boxes (lo [3], hi [3]) after cutting the doors; lintels above doors included."""
        t, h, dh = self.wall_thickness, self.wall_height, self.door_height
        boxes = []
        for wall in self.walls:
            ax = 0 if wall.axis == "x" else 1
            other = 1 - ax
            a, b = sorted((wall.start[ax], wall.end[ax]))
            c = wall.start[other]
            cuts = sorted(
                (d.center[ax] - d.width / 2, d.center[ax] + d.width / 2)
                for d in self.doors
                if d.axis == wall.axis and abs(d.center[other] - c) < 1e-6 and a - 1e-6 <= d.center[ax] <= b + 1e-6
            )
            pieces, cur = [], a - t / 2
            for lo, hi in cuts:
                pieces.append((cur, lo, 0.0, h))
                pieces.append((lo, hi, dh, h))  # lintel
                cur = hi
            pieces.append((cur, b + t / 2, 0.0, h))
            for lo, hi, z0, z1 in pieces:
                if hi - lo <= 1e-6:
                    continue
                blo, bhi = np.zeros(3), np.zeros(3)
                blo[ax], bhi[ax] = lo, hi
                blo[other], bhi[other] = c - t / 2, c + t / 2
                blo[2], bhi[2] = z0, z1
                boxes.append((blo, bhi))
        return boxes

    # ----------------------------------------------------------------------------------------- exports
    def to_mesh(self, ceiling: bool = True) -> SceneMesh:
        """Triangle mesh with per-triangle instance id and colour (ceiling optional, e.g. for top-down views)."""
        parts: list[SceneMesh] = []
        for r in self.rooms:
            lo = np.array([r.lo[0] - self.wall_thickness / 2, r.lo[1] - self.wall_thickness / 2])
            hi = np.array([r.hi[0] + self.wall_thickness / 2, r.hi[1] + self.wall_thickness / 2])
            color = cat.FLOOR_COLORS.get(r.type, (160, 160, 160))
            parts.append(_quad(lo, hi, 0.0, FLOOR_INSTANCE, color, up=True))
            if ceiling:
                parts.append(_quad(lo, hi, self.wall_height, CEILING_INSTANCE, cat.CEILING_COLOR, up=False))
        for blo, bhi in self.wall_boxes():
            parts.append(SceneMesh.box(blo, bhi, WALL_INSTANCE, cat.WALL_COLOR))
        for o in self.objects:
            parts.append(object_mesh(o))
        for p in self.parts:
            n = len(p.faces)
            parts.append(
                SceneMesh(
                    np.asarray(p.vertices, np.float32).reshape(-1, 3),
                    np.asarray(p.faces, np.int32).reshape(-1, 3),
                    np.full(n, p.instance_id, np.int32),
                    np.tile(np.asarray(p.color, np.uint8), (n, 1)),
                )
            )
        return SceneMesh.concatenate(parts)

    def to_mjspec(self):
        """A MuJoCo model (``mujoco.MjSpec``) of the same triangles, one geom per instance (visual only)."""
        from chronotope.envs.render.mjcf import mesh_to_mjspec

        return mesh_to_mjspec(self.to_mesh())

    def navgrid(self, agent_radius: float = 0.18, cell_size: float = 0.05, agent_height: float = 1.5):
        """The 2D navigability grid inflated by ``agent_radius`` (see :class:`.navgrid.NavGrid`)."""
        from chronotope.envs.scene.navgrid import NavGrid

        return NavGrid.from_scene(self, agent_radius=agent_radius, cell_size=cell_size, agent_height=agent_height)

    # ----------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format": "chronotope-scene", "version": FORMAT_VERSION, **asdict(self)}

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        """Serialises to JSON; writes atomically to ``path`` (``.gz`` compresses) when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            path = Path(path)
            tmp = path.with_name(path.name + ".tmp")
            data = text.encode()
            tmp.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
            tmp.replace(path)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneSpec:
        if not isinstance(d, dict) or d.get("format") != "chronotope-scene":
            raise ValueError("not a chronotope scene: missing 'format': 'chronotope-scene'")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported scene format version {d.get('version')!r} (expected {FORMAT_VERSION})")
        try:
            kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
            kw["rooms"] = tuple(Room(r["id"], r["type"], _t(r["lo"]), _t(r["hi"])) for r in d["rooms"])
            kw["walls"] = tuple(Wall(_t(w["start"]), _t(w["end"])) for w in d["walls"])
            kw["doors"] = tuple(Door(_t(x["center"]), x["width"], x["axis"], _t(x["rooms"])) for x in d["doors"])
            kw["objects"] = tuple(
                SceneObject(
                    o["instance_id"],
                    o["category_id"],
                    o["color"],
                    _t(o["center"]),
                    o["yaw"],
                    _t(o["size"]),
                    o.get("room_id", -1),
                )
                for o in d["objects"]
            )
            kw["parts"] = tuple(
                MeshPart(
                    p["instance_id"],
                    p["category_id"],
                    p["name"],
                    _t(p["color"]),
                    tuple(_t(v) for v in p["vertices"]),
                    tuple(_t(f) for f in p["faces"]),
                    p.get("obstacle", True),
                )
                for p in d.get("parts", ())
            )
            if d.get("bounds_override") is not None:
                kw["bounds_override"] = tuple(_t(b) for b in d["bounds_override"])
            kw["metadata"] = tuple(_t(m) for m in d.get("metadata", ()))
            spec = cls(**kw)
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"corrupt scene description: {type(e).__name__}: {e}") from e
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> SceneSpec:
        """Loads from a JSON string or a ``.json`` / ``.json.gz`` file."""
        src = str(text_or_path)
        try:
            if src.lstrip().startswith("{"):
                d = json.loads(src)
            else:
                raw = Path(src).read_bytes()
                d = json.loads(gzip.decompress(raw) if src.endswith(".gz") else raw)
        except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as e:
            raise ValueError(f"cannot read scene {src[:80]!r}: {e}") from e
        return cls.from_dict(d)

    def validate(self) -> None:
        """Checks the invariants a loaded scene must satisfy; raises ValueError naming the bad value."""
        if not self.rooms and not self.parts:
            raise ValueError(f"scene {self.name!r} has neither rooms nor mesh parts")
        ids = [o.instance_id for o in self.objects] + [p.instance_id for p in self.parts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"scene {self.name!r}: duplicate instance ids")
        for i in ids:
            if i <= WALL_INSTANCE:
                raise ValueError(f"scene {self.name!r}: object instance id {i} collides with structural ids 1-3")
        for o in self.objects:
            if o.category_id not in cat.CATEGORY_BY_ID:
                raise ValueError(f"scene {self.name!r}: unknown category id {o.category_id}")
            if o.color not in cat.COLORS:
                raise ValueError(f"scene {self.name!r}: unknown colour {o.color!r}")
            if not all(math.isfinite(v) for v in (*o.center, o.yaw, *o.size)) or min(o.size) <= 0:
                raise ValueError(f"scene {self.name!r}: object {o.instance_id} has invalid pose/size")
        for r in self.rooms:
            if not (r.hi[0] > r.lo[0] and r.hi[1] > r.lo[1]):
                raise ValueError(f"scene {self.name!r}: room {r.id} has empty extent {r.lo}..{r.hi}")
        for w in self.walls:
            if abs(w.start[0] - w.end[0]) > 1e-9 and abs(w.start[1] - w.end[1]) > 1e-9:
                raise ValueError(f"scene {self.name!r}: wall {w} is not axis-aligned")


def _t(x):
    return tuple(_t(v) for v in x) if isinstance(x, (list, tuple)) else x


def _quad(lo: np.ndarray, hi: np.ndarray, z: float, instance: int, color, up: bool) -> SceneMesh:
    v = np.array([[lo[0], lo[1], z], [hi[0], lo[1], z], [hi[0], hi[1], z], [lo[0], hi[1], z]], np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]] if up else [[0, 2, 1], [0, 3, 2]], np.int32)
    return SceneMesh(v, f, np.full(2, instance, np.int32), np.tile(np.asarray(color, np.uint8), (2, 1)))


def object_mesh(o: SceneObject) -> SceneMesh:
    """The object's part boxes scaled to its size, turned by its yaw and moved to its centre."""
    category = cat.CATEGORY_BY_ID[o.category_id]
    size = np.asarray(o.size)
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    offset = np.array([o.center[0], o.center[1], 0.0])
    base = np.asarray(o.rgb, float)
    meshes = []
    for k, (lo, hi) in enumerate(category.parts):
        lo_m = (np.asarray(lo) - [0.5, 0.5, 0.0]) * size
        hi_m = (np.asarray(hi) - [0.5, 0.5, 0.0]) * size
        box = SceneMesh.box(lo_m, hi_m, o.instance_id, (0, 0, 0))
        # Slightly darker secondary parts (legs, frames) keep shapes readable in RGB.
        shade = 1.0 if k == 0 else 0.82
        color = np.clip(base * shade, 0, 255).astype(np.uint8)
        meshes.append(
            SceneMesh(
                (box.vertices @ rot.T + offset).astype(np.float32),
                box.faces,
                box.face_instance,
                np.tile(color, (box.num_faces, 1)),
            )
        )
    return SceneMesh.concatenate(meshes)
