"""Semantic classes, object categories and room types of generated apartments.

Category ids 1-3 are structural (floor, ceiling, wall); object categories start at :data:`FIRST_OBJECT_CATEGORY`.
Each object category is a small assembly of boxes in a unit frame (x forward/depth, y width, z up, all in
[0, 1]) that the generator scales to a sampled size, so that a chair has legs and a back, a table a top and legs.
"""

from __future__ import annotations

from dataclasses import dataclass

VOID, FLOOR, CEILING, WALL = 0, 1, 2, 3
STRUCTURAL_NAMES = {VOID: "void", FLOOR: "floor", CEILING: "ceiling", WALL: "wall"}
FIRST_OBJECT_CATEGORY = 4

Box = tuple[tuple[float, float, float], tuple[float, float, float]]  # (lo, hi) in the unit frame

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "green": (50, 160, 60),
    "blue": (40, 80, 200),
    "yellow": (230, 200, 40),
    "white": (235, 235, 230),
    "black": (30, 30, 35),
    "brown": (120, 80, 45),
    "grey": (128, 128, 128),
    "orange": (235, 130, 30),
    "purple": (130, 60, 160),
    "pink": (230, 140, 170),
    "beige": (215, 195, 160),
}

FLOOR_COLORS = {
    "kitchen": (200, 200, 195),
    "bedroom": (160, 120, 85),
    "bathroom": (170, 200, 210),
    "living room": (150, 110, 75),
    "office": (140, 140, 150),
    "hallway": (185, 170, 150),
    "dining room": (155, 115, 80),
}
WALL_COLOR = (225, 220, 205)
CEILING_COLOR = (245, 245, 245)

_LEGS = [
    ((0.0, 0.0, 0.0), (0.1, 0.1, 0.9)),
    ((0.9, 0.0, 0.0), (1.0, 0.1, 0.9)),
    ((0.0, 0.9, 0.0), (0.1, 1.0, 0.9)),
    ((0.9, 0.9, 0.0), (1.0, 1.0, 0.9)),
]


@dataclass(frozen=True)
class Category:
    """An object category.

    Attributes:
        id: semantic category id.
        name: English name (used in instructions).
        size_min: smallest (depth, width, height) in metres.
        size_max: largest (depth, width, height) in metres.
        colors: colour names it is drawn in.
        parts: boxes in the unit frame; the object's back (x = 0) faces the wall when ``against_wall``.
        against_wall: placed with its back to a wall rather than free-standing.
        rooms: room types where it appears.
    """

    id: int
    name: str
    size_min: tuple[float, float, float]
    size_max: tuple[float, float, float]
    colors: tuple[str, ...]
    parts: tuple[Box, ...]
    against_wall: bool
    rooms: tuple[str, ...]


def _cat(i, name, smin, smax, colors, parts, wall, rooms) -> Category:
    return Category(FIRST_OBJECT_CATEGORY + i, name, smin, smax, tuple(colors), tuple(parts), wall, tuple(rooms))


_BLOCK = [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))]
CATEGORIES: tuple[Category, ...] = (
    _cat(
        0,
        "chair",
        (0.45, 0.45, 0.85),
        (0.55, 0.55, 1.0),
        ["brown", "black", "white", "red"],
        [
            ((0.0, 0.0, 0.45), (1.0, 1.0, 0.55)),
            ((0.0, 0.0, 0.55), (0.15, 1.0, 1.0)),
            *[((a[0], a[1], 0.0), (b[0], b[1], 0.45)) for a, b in _LEGS],
        ],
        False,
        ["kitchen", "office", "living room", "dining room", "bedroom"],
    ),
    _cat(
        1,
        "table",
        (0.8, 0.8, 0.72),
        (1.4, 1.8, 0.78),
        ["brown", "white", "black"],
        [((0.0, 0.0, 0.9), (1.0, 1.0, 1.0)), *_LEGS],
        False,
        ["kitchen", "living room", "dining room", "office"],
    ),
    _cat(
        2,
        "sofa",
        (0.85, 1.6, 0.8),
        (1.0, 2.4, 0.9),
        ["grey", "blue", "red", "green", "beige"],
        [
            ((0.0, 0.0, 0.0), (1.0, 1.0, 0.5)),
            ((0.0, 0.0, 0.5), (0.3, 1.0, 1.0)),
            ((0.3, 0.0, 0.5), (1.0, 0.12, 0.75)),
            ((0.3, 0.88, 0.5), (1.0, 1.0, 0.75)),
        ],
        True,
        ["living room"],
    ),
    _cat(
        3,
        "bed",
        (1.9, 1.4, 0.55),
        (2.1, 1.8, 0.65),
        ["white", "blue", "pink", "beige"],
        [((0.0, 0.0, 0.0), (1.0, 1.0, 0.7)), ((0.0, 0.0, 0.7), (0.06, 1.0, 1.6))],
        True,
        ["bedroom"],
    ),
    _cat(4, "fridge", (0.65, 0.65, 1.7), (0.75, 0.8, 1.9), ["white", "grey", "black"], _BLOCK, True, ["kitchen"]),
    _cat(
        5,
        "plant",
        (0.35, 0.35, 0.8),
        (0.5, 0.5, 1.4),
        ["green"],
        [((0.2, 0.2, 0.0), (0.8, 0.8, 0.35)), ((0.0, 0.0, 0.35), (1.0, 1.0, 1.0))],
        False,
        ["living room", "office", "hallway", "bedroom", "bathroom", "kitchen", "dining room"],
    ),
    _cat(
        6,
        "lamp",
        (0.3, 0.3, 1.4),
        (0.4, 0.4, 1.7),
        ["yellow", "white", "black"],
        [
            ((0.3, 0.3, 0.0), (0.7, 0.7, 0.05)),
            ((0.45, 0.45, 0.05), (0.55, 0.55, 0.8)),
            ((0.0, 0.0, 0.8), (1.0, 1.0, 1.0)),
        ],
        False,
        ["living room", "bedroom", "office"],
    ),
    _cat(
        7,
        "shelf",
        (0.3, 0.8, 1.6),
        (0.4, 1.2, 2.0),
        ["brown", "white", "black"],
        [
            ((0.0, 0.0, 0.0), (1.0, 0.06, 1.0)),
            ((0.0, 0.94, 0.0), (1.0, 1.0, 1.0)),
            ((0.0, 0.0, 0.0), (0.1, 1.0, 1.0)),
            *[((0.0, 0.0, z), (1.0, 1.0, z + 0.04)) for z in (0.0, 0.32, 0.64, 0.96)],
        ],
        True,
        ["living room", "office", "bedroom", "hallway"],
    ),
    _cat(
        8,
        "tv",
        (0.4, 1.0, 1.0),
        (0.5, 1.4, 1.2),
        ["black"],
        [((0.0, 0.0, 0.0), (1.0, 1.0, 0.45)), ((0.3, 0.05, 0.5), (0.45, 0.95, 1.0))],
        True,
        ["living room", "bedroom"],
    ),
    _cat(
        9,
        "toilet",
        (0.65, 0.4, 0.75),
        (0.75, 0.45, 0.85),
        ["white"],
        [((0.0, 0.0, 0.0), (0.3, 1.0, 1.0)), ((0.3, 0.1, 0.0), (1.0, 0.9, 0.55))],
        True,
        ["bathroom"],
    ),
    _cat(
        10,
        "sink",
        (0.45, 0.6, 0.85),
        (0.55, 0.8, 0.95),
        ["white", "grey"],
        [((0.0, 0.0, 0.0), (1.0, 1.0, 0.85)), ((0.0, 0.0, 0.85), (1.0, 1.0, 1.0))],
        True,
        ["bathroom", "kitchen"],
    ),
    _cat(11, "bathtub", (0.75, 1.6, 0.55), (0.85, 1.8, 0.6), ["white"], _BLOCK, True, ["bathroom"]),
    _cat(
        12,
        "desk",
        (0.6, 1.2, 0.74),
        (0.75, 1.6, 0.78),
        ["brown", "white", "black"],
        [
            ((0.0, 0.0, 0.92), (1.0, 1.0, 1.0)),
            ((0.0, 0.0, 0.0), (1.0, 0.06, 0.92)),
            ((0.0, 0.94, 0.0), (1.0, 1.0, 0.92)),
        ],
        True,
        ["office", "bedroom"],
    ),
    _cat(13, "wardrobe", (0.55, 1.0, 1.9), (0.65, 1.6, 2.1), ["brown", "white"], _BLOCK, True, ["bedroom", "hallway"]),
    _cat(14, "stove", (0.6, 0.6, 0.85), (0.65, 0.75, 0.9), ["black", "white", "grey"], _BLOCK, True, ["kitchen"]),
    _cat(
        15,
        "armchair",
        (0.75, 0.75, 0.85),
        (0.9, 0.9, 0.95),
        ["red", "blue", "green", "brown", "grey"],
        [
            ((0.0, 0.0, 0.0), (1.0, 1.0, 0.5)),
            ((0.0, 0.0, 0.5), (0.25, 1.0, 1.0)),
            ((0.25, 0.0, 0.5), (1.0, 0.15, 0.7)),
            ((0.25, 0.85, 0.5), (1.0, 1.0, 0.7)),
        ],
        False,
        ["living room", "office"],
    ),
    _cat(
        16,
        "cabinet",
        (0.4, 0.8, 0.8),
        (0.5, 1.2, 1.0),
        ["white", "brown", "grey"],
        _BLOCK,
        True,
        ["kitchen", "bathroom", "hallway", "dining room", "office"],
    ),
    _cat(
        17,
        "box",
        (0.35, 0.35, 0.3),
        (0.5, 0.5, 0.45),
        ["brown", "red", "blue", "yellow", "green", "purple"],
        _BLOCK,
        False,
        ["office", "hallway", "bedroom", "living room"],
    ),
)

CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
CATEGORY_BY_ID = {c.id: c for c in CATEGORIES}
NUM_CATEGORIES = FIRST_OBJECT_CATEGORY + len(CATEGORIES)  # ids are in [0, NUM_CATEGORIES)
ROOM_TYPES = tuple(FLOOR_COLORS)


def category_name(cat_id: int) -> str:
    if cat_id in STRUCTURAL_NAMES:
        return STRUCTURAL_NAMES[cat_id]
    if cat_id in CATEGORY_BY_ID:
        return CATEGORY_BY_ID[cat_id].name
    raise ValueError(f"unknown category id {cat_id}; valid ids are 0..{NUM_CATEGORIES - 1}")
