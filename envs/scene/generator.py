"""Procedural apartments: binary space partition into rooms, doors on a spanning tree, furniture by room type.

Deterministic for a seed. Guarantees (checked here, tested over hundreds of seeds): every room is reachable
from every other by an agent of the configured radius, objects do not overlap each other or the walls, and
every object can be approached to within ``interaction_radius`` from the connected free space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.spec import Door, Room, SceneObject, SceneSpec, Wall

GRID = 0.25  # room corners and splits snap to this (m)


@dataclass(frozen=True)
class ApartmentConfig:
    """Knobs of :func:`generate_apartment`.

    Attributes:
        num_rooms: exact room count, or an inclusive (min, max) range sampled per seed.
        room_area: (min, max) area per room in m^2, used to size the apartment when ``size`` is None.
        min_room_size: smallest side of a room (m).
        size: fixed (width, depth) of the apartment in metres; None sizes it from the room count.
        objects_per_room: inclusive (min, max) pieces of furniture per room.
        extra_door_prob: probability of a door between adjacent rooms beyond the spanning tree.
        door_width: width of door openings (m).
        wall_thickness: wall thickness (m).
        wall_height: ceiling height (m).
        agent_radius: radius the navigability guarantees are made for (m).
        interaction_radius: every object must be reachable within this distance of its footprint (m).
        nav_cell: grid cell used for the guarantees (m).
    """

    num_rooms: int | tuple[int, int] = (3, 6)
    room_area: tuple[float, float] = (10.0, 20.0)
    min_room_size: float = 2.5
    size: tuple[float, float] | None = None
    objects_per_room: tuple[int, int] = (2, 5)
    extra_door_prob: float = 0.3
    door_width: float = 1.0
    wall_thickness: float = 0.1
    wall_height: float = 2.5
    agent_radius: float = 0.18
    interaction_radius: float = 1.0
    nav_cell: float = 0.05

    def validate(self) -> None:
        lo, hi = (self.num_rooms, self.num_rooms) if isinstance(self.num_rooms, int) else self.num_rooms
        if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and 1 <= lo <= hi):
            raise ValueError(f"num_rooms must be an int >= 1 or a (min, max) range, got {self.num_rooms!r}")
        if not (self.min_room_size >= 2 * (self.agent_radius + self.wall_thickness) + 0.5):
            raise ValueError(f"min_room_size {self.min_room_size!r} is too small for the agent radius")
        if self.door_width <= 2 * self.agent_radius + 0.1 or self.door_width > self.min_room_size - 0.5:
            raise ValueError(
                f"door_width {self.door_width!r} must exceed the agent's diameter + 0.1 and leave 0.25 m of wall "
                f"on each side in a room of min_room_size {self.min_room_size!r}"
            )
        if not (0 < self.room_area[0] <= self.room_area[1]):
            raise ValueError(f"room_area must be a (min, max) range of positive areas, got {self.room_area!r}")
        if self.objects_per_room[0] < 0 or self.objects_per_room[0] > self.objects_per_room[1]:
            raise ValueError(f"objects_per_room must be a (min, max) range >= 0, got {self.objects_per_room!r}")
        if self.size is not None:
            w, d = self.size
            if not (w > 0 and d > 0):
                raise ValueError(f"size must be positive, got {self.size!r}")
            if w * d < lo * self.min_room_size**2 or min(w, d) < self.min_room_size:
                raise ValueError(
                    f"an apartment of size {self.size!r} cannot fit {lo} rooms of at least "
                    f"{self.min_room_size} m x {self.min_room_size} m"
                )


def generate_apartment(seed: int, config: ApartmentConfig | None = None, max_attempts: int = 20) -> SceneSpec:
    """Generates an apartment, deterministic for ``seed``.

    Raises:
        ValueError: the configuration cannot be satisfied (names the value), e.g. rooms that cannot fit.
    """
    config = config or ApartmentConfig()
    config.validate()
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    last_error: Exception | None = None
    for attempt in range(max_attempts):
        rng = np.random.default_rng([int(seed), attempt])
        try:
            return _generate(int(seed), rng, config)
        except _Retry as e:
            last_error = e
        except ValueError as e:
            # a fixed size may still fit with other split positions; give up only after every attempt
            if config.size is None or attempt == max_attempts - 1:
                raise
            last_error = e
    raise ValueError(f"could not generate an apartment for seed {seed} with {config}: {last_error}")


class _Retry(Exception):
    pass


def _snap(v: float) -> float:
    return round(v / GRID) * GRID


def _generate(seed: int, rng: np.random.Generator, cfg: ApartmentConfig) -> SceneSpec:
    n_rooms = (
        cfg.num_rooms if isinstance(cfg.num_rooms, int) else int(rng.integers(cfg.num_rooms[0], cfg.num_rooms[1] + 1))
    )
    if cfg.size is None:
        area = float(rng.uniform(*cfg.room_area, size=n_rooms).sum())
        aspect = float(rng.uniform(1.0, 1.6))
        width = max(_snap(math.sqrt(area * aspect)), cfg.min_room_size)
        depth = max(_snap(area / width), cfg.min_room_size)
    else:
        width, depth = map(float, cfg.size)
    rects, splits = _partition(rng, width, depth, n_rooms, cfg.min_room_size)
    if len(rects) < n_rooms and cfg.size is None:
        raise _Retry(f"the partition fitted only {len(rects)} of {n_rooms} rooms")
    if len(rects) < n_rooms:
        raise ValueError(
            f"cannot fit {n_rooms} rooms of min_room_size {cfg.min_room_size} m into {width} m x {depth} m "
            f"(only {len(rects)} fit)"
        )
    doors = _doors(rng, rects, cfg)
    types = _room_types(rng, rects, doors)
    rooms = tuple(Room(i, types[i], (r[0], r[1]), (r[2], r[3])) for i, r in enumerate(rects))
    walls = [
        Wall((0.0, 0.0), (width, 0.0)),
        Wall((0.0, depth), (width, depth)),
        Wall((0.0, 0.0), (0.0, depth)),
        Wall((width, 0.0), (width, depth)),
    ]
    walls += [Wall(a, b) for a, b in splits]
    base = SceneSpec(
        name=f"apartment-{seed}",
        rooms=rooms,
        walls=tuple(walls),
        doors=tuple(doors),
        objects=(),
        wall_height=cfg.wall_height,
        wall_thickness=cfg.wall_thickness,
        seed=seed,
    )
    grid = base.navgrid(cfg.agent_radius, cfg.nav_cell)
    if not _connected(grid, rooms):
        raise _Retry("rooms not connected through doors")
    objects = _furnish(rng, base, cfg, grid)
    spec = SceneSpec(
        name=base.name,
        rooms=rooms,
        walls=base.walls,
        doors=base.doors,
        objects=tuple(objects),
        wall_height=cfg.wall_height,
        wall_thickness=cfg.wall_thickness,
        seed=seed,
    )
    spec.validate()
    return spec


def _partition(rng, width, depth, n, min_size):
    """Binary space partition of [0, width] x [0, depth] into ``n`` rooms; returns rects and split segments."""
    rects = [(0.0, 0.0, width, depth)]
    splits = []
    while len(rects) < n:
        order = sorted(range(len(rects)), key=lambda i: -(rects[i][2] - rects[i][0]) * (rects[i][3] - rects[i][1]))
        for i in order:
            x0, y0, x1, y1 = rects[i]
            w, d = x1 - x0, y1 - y0
            if max(w, d) < 2 * min_size:
                continue
            vertical = w >= d if abs(w - d) > 1e-9 else bool(rng.integers(2))
            length = w if vertical else d
            lo_, hi_ = min_size, length - min_size
            pos = _snap(float(rng.uniform(lo_, hi_)))
            pos = min(max(pos, math.ceil(lo_ / GRID) * GRID), math.floor(hi_ / GRID) * GRID)
            if vertical:
                c = x0 + pos
                rects[i : i + 1] = [(x0, y0, c, y1), (c, y0, x1, y1)]
                splits.append(((c, y0), (c, y1)))
            else:
                c = y0 + pos
                rects[i : i + 1] = [(x0, y0, x1, c), (x0, c, x1, y1)]
                splits.append(((x0, c), (x1, c)))
            break
        else:
            break
    return rects, splits


def _shared_edge(a, b):
    """Shared boundary of two rectangles: (axis of the wall, coordinate across it, lo, hi) or None."""
    for ax, (ia, ib) in (("y", (2, 0)), ("y", (0, 2)), ("x", (3, 1)), ("x", (1, 3))):
        coord_idx = 0 if ax == "y" else 1
        if abs(a[ia] - b[ib]) < 1e-9:
            along = (1, 3) if ax == "y" else (0, 2)
            lo, hi = max(a[along[0]], b[along[0]]), min(a[along[1]], b[along[1]])
            if hi > lo:
                return ax, a[ia], lo, hi
        del coord_idx
    return None


def _doors(rng, rects, cfg):
    margin = cfg.wall_thickness / 2 + 0.25
    need = cfg.door_width + 2 * margin
    candidates = []
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            e = _shared_edge(rects[i], rects[j])
            if e is not None and e[3] - e[2] >= need:
                candidates.append((i, j, e))
    # Random spanning tree (Kruskal over a shuffled edge list), then extra doors by chance.
    parent = list(range(len(rects)))

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    order = rng.permutation(len(candidates))
    doors = []
    for k in order:
        i, j, (ax, c, lo, hi) = candidates[k]
        tree = find(i) != find(j)
        if tree:
            parent[find(i)] = find(j)
        elif rng.random() >= cfg.extra_door_prob:
            continue
        pos = float(rng.uniform(lo + margin + cfg.door_width / 2, hi - margin - cfg.door_width / 2))
        center = (c, pos) if ax == "y" else (pos, c)
        doors.append(Door(center, cfg.door_width, ax, (i, j)))
    if len({find(k) for k in range(len(rects))}) != 1:
        raise _Retry("room adjacency graph is disconnected")
    return doors


def _room_types(rng, rects, doors):
    n = len(rects)
    degree = np.zeros(n, int)
    for d in doors:
        degree[d.rooms[0]] += 1
        degree[d.rooms[1]] += 1
    area = np.array([(r[2] - r[0]) * (r[3] - r[1]) for r in rects])
    aspect = np.array([max(r[2] - r[0], r[3] - r[1]) / min(r[2] - r[0], r[3] - r[1]) for r in rects])
    types = [""] * n
    free = set(range(n))

    def take(idx, t):
        types[idx] = t
        free.discard(idx)

    take(int(np.argmax(area + 0.01 * degree)), "living room")
    if n >= 4:
        hall = [i for i in free if aspect[i] >= 2.0 and degree[i] >= 2]
        if hall:
            take(max(hall, key=lambda i: degree[i]), "hallway")
    if free and n >= 2:
        take(min(free, key=lambda i: area[i]), "bathroom")
    if free and n >= 3:
        take(int(rng.choice(sorted(free))), "kitchen")
    pool = ["bedroom", "office", "bedroom", "dining room", "bathroom", "office"]
    for i in sorted(free):
        types[i] = pool[int(rng.integers(len(pool)))]
    return types


def _connected(grid, rooms) -> bool:
    labels, _ = grid.components()
    return _rooms_connected(labels, grid, rooms)


def _room_cells(grid, room, shrink: float = 0.0):
    h, w = grid.shape
    lo = grid.world_to_cell(np.array(room.lo) + shrink)
    hi = grid.world_to_cell(np.array(room.hi) - shrink)
    return (slice(max(lo[0], 0), min(hi[0] + 1, h)), slice(max(lo[1], 0), min(hi[1] + 1, w)))


def _furnish(rng, base: SceneSpec, cfg: ApartmentConfig, grid) -> list[SceneObject]:
    """Places furniture room by room, keeping door approaches clear and the free space connected."""
    from chronotope.envs.scene.navgrid import _fill_polygon

    t = cfg.wall_thickness
    obstacle = grid.obstacle.copy()
    gy, gx = np.meshgrid(
        grid.origin[1] + (np.arange(grid.shape[0]) + 0.5) * grid.cell_size,
        grid.origin[0] + (np.arange(grid.shape[1]) + 0.5) * grid.cell_size,
        indexing="ij",
    )
    # Door approaches: 1 m deep on both sides, never furnished.
    keep_clear = np.zeros(grid.shape, bool)
    for d in base.doors:
        half = d.width / 2 + 0.15
        if d.axis == "y":  # wall along y at x = c
            lo, hi = (d.center[0] - 1.0, d.center[1] - half), (d.center[0] + 1.0, d.center[1] + half)
        else:
            lo, hi = (d.center[0] - half, d.center[1] - 1.0), (d.center[0] + half, d.center[1] + 1.0)
        keep_clear |= (gx >= lo[0]) & (gx <= hi[0]) & (gy >= lo[1]) & (gy <= hi[1])
    objects: list[SceneObject] = []
    approaches: list[np.ndarray] = []  # per object: cells within interaction radius of its footprint
    nav = grid.navigable.copy()
    next_id = 4
    clearance = 0.05
    for room in base.rooms:
        choices = [c for c in cat.CATEGORIES if room.type in c.rooms]
        if not choices:
            continue
        k = int(rng.integers(cfg.objects_per_room[0], cfg.objects_per_room[1] + 1))
        for _ in range(k):
            category = choices[int(rng.integers(len(choices)))]
            for _try in range(12):
                size = tuple(float(v) for v in rng.uniform(category.size_min, category.size_max))
                d, w = size[0], size[1]
                inner_lo = np.array(room.lo) + t / 2 + 0.02
                inner_hi = np.array(room.hi) - t / 2 - 0.02
                if category.against_wall:
                    side = int(rng.integers(4))  # 0: west wall (faces +x), 1: east, 2: south (faces +y), 3: north
                    yaw = (0.0, math.pi, math.pi / 2, -math.pi / 2)[side]
                    ext_along = w  # extent along the wall
                    if side < 2:
                        y_lo, y_hi = inner_lo[1] + ext_along / 2, inner_hi[1] - ext_along / 2
                        if y_hi < y_lo:
                            continue
                        cy = float(rng.uniform(y_lo, y_hi))
                        cx = inner_lo[0] + d / 2 if side == 0 else inner_hi[0] - d / 2
                    else:
                        x_lo, x_hi = inner_lo[0] + ext_along / 2, inner_hi[0] - ext_along / 2
                        if x_hi < x_lo:
                            continue
                        cx = float(rng.uniform(x_lo, x_hi))
                        cy = inner_lo[1] + d / 2 if side == 2 else inner_hi[1] - d / 2
                else:
                    yaw = float(rng.integers(4)) * math.pi / 2
                    ex, ey = (d, w) if int(round(yaw / (math.pi / 2))) % 2 == 0 else (w, d)
                    margin = 2 * cfg.agent_radius + 0.15  # leave a walkable gap to the walls
                    x_lo, x_hi = inner_lo[0] + ex / 2 + margin, inner_hi[0] - ex / 2 - margin
                    y_lo, y_hi = inner_lo[1] + ey / 2 + margin, inner_hi[1] - ey / 2 - margin
                    if x_hi < x_lo or y_hi < y_lo:
                        continue
                    cx, cy = float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi))
                color = category.colors[int(rng.integers(len(category.colors)))]
                obj = SceneObject(
                    next_id,
                    category.id,
                    color,
                    (round(cx, 4), round(cy, 4)),
                    yaw,
                    tuple(round(v, 4) for v in size),
                    room.id,
                )
                # Overlap test on the grid (with clearance), then connectivity and reachability.
                grown = _grow(obj.footprint(), clearance)
                mask = np.zeros(grid.shape, bool)
                _fill_polygon(mask, gx, gy, grown)
                if (mask & keep_clear).any() or (mask & obstacle & ~grid.obstacle).any():
                    continue
                if category.against_wall:
                    # only walls may touch the back; anything else structural means it pokes into a wall/door
                    core = np.zeros(grid.shape, bool)
                    _fill_polygon(core, gx, gy, _grow(obj.footprint(), -0.01))
                    if (core & grid.obstacle).any():
                        continue
                elif (mask & obstacle).any():
                    continue
                fp = np.zeros(grid.shape, bool)
                _fill_polygon(fp, gx, gy, obj.footprint())
                if not fp.any():
                    continue
                win = _window(fp, cfg.interaction_radius + cfg.agent_radius, grid.cell_size)
                dist = np.full(grid.shape, np.inf)
                dist[win] = ndimage.distance_transform_edt(~fp[win]) * grid.cell_size
                trial_nav = nav & (dist > cfg.agent_radius + 1e-6)
                approach = dist <= cfg.interaction_radius
                labels, _ = ndimage.label(trial_nav, structure=np.ones((3, 3)))
                if not _rooms_connected(labels, grid, base.rooms):
                    continue
                main = labels == _main_label(labels)
                if not all((main & a).any() for a in approaches + [approach]):
                    continue
                nav = trial_nav
                obstacle |= fp
                approaches.append(approach)
                objects.append(obj)
                next_id += 1
                break
    return objects


def _grow(corners: np.ndarray, amount: float) -> np.ndarray:
    c = corners.mean(0)
    v = corners - c
    # grow a rectangle by ``amount`` along both of its axes
    e1 = (corners[1] - corners[0]) / max(np.linalg.norm(corners[1] - corners[0]), 1e-9)
    e2 = (corners[3] - corners[0]) / max(np.linalg.norm(corners[3] - corners[0]), 1e-9)
    return c + v + amount * (np.sign(v @ e1)[:, None] * e1 + np.sign(v @ e2)[:, None] * e2)


def _window(mask: np.ndarray, reach: float, cell: float) -> tuple[slice, slice]:
    """Bounding box of ``mask`` grown by ``reach`` metres (+2 cells), clipped to the grid."""
    rows, cols = np.nonzero(mask)
    pad = int(np.ceil(reach / cell)) + 2
    h, w = mask.shape
    return (
        slice(max(rows.min() - pad, 0), min(rows.max() + pad + 1, h)),
        slice(max(cols.min() - pad, 0), min(cols.max() + pad + 1, w)),
    )


def _main_label(labels: np.ndarray) -> int:
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return int(counts.argmax())


def _rooms_connected(labels: np.ndarray, grid, rooms) -> bool:
    """All rooms have navigable cells and they all lie in one 8-connected component."""
    seen = set()
    for r in rooms:
        labs = np.unique(labels[_room_cells(grid, r)])
        labs = labs[labs > 0]
        if labs.size == 0:
            return False
        seen.update(int(v) for v in labs)
    return len(seen) == 1
