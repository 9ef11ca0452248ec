"""VLN episodes: reference paths on the geodesic field, episode sampling, and R2R-VLN-CE style dataset files.

An episode is a start pose, a goal next to a landmark object, the reference path (the geodesic shortest path
from start to goal, extracted from the goal's distance field and resampled to ``waypoint_spacing``) and a
generated instruction (:mod:`.instructions`).

Dataset files (``.json.gz`` or ``.json``) follow the R2R-VLN-CE episode schema::

    {"format": "chronotope-vln", "version": 1, "split": "val_unseen", "scene_config": {...},
     "coordinate_frame": "chronotope world: x, y on the floor, z up (metres)",
     "instruction_vocab": {"word_list": [...], "PAD_INDEX": 0, "UNK_INDEX": 1, "num_vocab": V},
     "episodes": [{"episode_id": 0, "trajectory_id": 0, "scene_id": "apartment/seed=10000",
                   "start_position": [x, y, 0], "start_rotation": [qx, qy, qz, qw],
                   "goals": [{"position": [x, y, 0], "radius": 3.0}],
                   "reference_path": [[x, y, 0], ...],
                   "instruction": {"instruction_text": "...", "instruction_tokens": [...]},
                   "info": {"geodesic_distance": d0, "goal_instance_id": i, "goal_object": "white fridge"}}]}

``scene_id`` names the apartment generator seed; together with the file's ``scene_config`` (keyword arguments of
``ApartmentConfig``) it regenerates the scene exactly. Unlike habitat (y up) positions are in the chronotope
world frame with z up; rotations are quaternions about z.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from chronotope.envs.scene.navgrid import NavGrid, _fill_polygon
from chronotope.envs.tasks.instructions import default_tokenizer, describe_route

FORMAT = "chronotope-vln"
VERSION = 1
SPLITS = ("train", "val_seen", "val_unseen")
# Scene seeds per split: train and val_seen share scenes (different episodes), val_unseen never overlaps them.
UNSEEN_SEED_OFFSET = 100_000
_SCENE_ID = re.compile(r"^apartment/seed=(\d+)$")

_NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])
_STEP = np.linalg.norm(_NEIGHBOURS, axis=1)
_DIAGONALS = (0, 2, 5, 7)


# ------------------------------------------------------------------------------------------------ paths
def descend_field(grid: NavGrid, field: np.ndarray, start_xy: np.ndarray) -> np.ndarray:
    """Cell path [K, 2] (row, col) from the start's cell down the distance field to a goal cell (field 0).

    Each move goes to the 8-neighbour of steepest descent (drop in distance per metre moved); fast marching
    leaves no local minimum besides the goal, so the walk always arrives.
    """
    h, w = field.shape
    rc = grid.world_to_cell(np.asarray(start_xy, float))
    r, c = int(rc[0]), int(rc[1])
    if not (0 <= r < h and 0 <= c < w) or not np.isfinite(field[r, c]):
        raise ValueError(f"start {np.asarray(start_xy).tolist()} is not connected to the goal of this field")
    cells = [(r, c)]
    for _ in range(h * w):
        here = field[r, c]
        if here <= 0.0:
            return np.asarray(cells, np.int64)
        nr, nc = r + _NEIGHBOURS[:, 0], c + _NEIGHBOURS[:, 1]
        ok = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        vals = np.full(8, np.inf)
        vals[ok] = field[nr[ok], nc[ok]]
        # no corner cutting: a diagonal move needs both orthogonal neighbours free, so every segment between
        # consecutive cells stays inside free cells
        for k in _DIAGONALS:
            dr, dc = _NEIGHBOURS[k]
            if ok[k] and not (np.isfinite(field[r + dr, c]) and np.isfinite(field[r, c + dc])):
                vals[k] = np.inf
        slope = (vals - here) / _STEP
        k = int(np.argmin(slope))
        if not slope[k] < 0:
            raise RuntimeError(f"distance field has a local minimum at cell {(r, c)} (value {here})")
        r, c = int(nr[k]), int(nc[k])
        cells.append((r, c))
    raise RuntimeError("distance-field descent did not reach the goal")


def segment_free(grid: NavGrid, a: np.ndarray, b: np.ndarray) -> bool:
    """True if every point of segment a-b (sampled at a quarter cell) is navigable."""
    n = max(2, int(math.ceil(np.linalg.norm(b - a) / (0.25 * grid.cell_size))) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return bool(grid.is_navigable(a + t * (b - a)).all())


def string_pull(grid: NavGrid, points: np.ndarray) -> np.ndarray:
    """Shortens a free polyline [K, 2] by line of sight: corners [M, 2] of the taut path (same ends)."""
    pts = np.asarray(points, float)
    out = [pts[0]]
    i = 0
    while i < len(pts) - 1:
        j = i + 1
        while j + 1 < len(pts) and segment_free(grid, pts[i], pts[j + 1]):
            j += 1
        out.append(pts[j])
        i = j
    return np.asarray(out)


def resample(path: np.ndarray, spacing: float) -> np.ndarray:
    """Points [M, 2] every ``spacing`` metres of arc length along ``path`` [K, 2], both ends included."""
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing!r}")
    p = np.asarray(path, float)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    if s[-1] <= 0:
        return p[:1].copy()
    n = int(math.ceil(s[-1] / spacing - 1e-9))
    at = np.minimum(np.arange(n + 1) * spacing, s[-1])
    return np.stack([np.interp(at, s, p[:, 0]), np.interp(at, s, p[:, 1])], -1)


def densify(path: np.ndarray, spacing: float) -> np.ndarray:
    """Keeps every point of ``path`` [K, 2] and inserts evenly spaced points so no gap exceeds ``spacing``."""
    p = np.asarray(path, float)
    out = [p[:1]]
    for a, b in zip(p[:-1], p[1:]):
        k = max(1, int(math.ceil(np.linalg.norm(b - a) / spacing - 1e-9)))
        t = (np.arange(1, k + 1) / k)[:, None]
        out.append(a + t * (b - a))
    return np.concatenate(out)


def reference_path(
    grid: NavGrid, field: np.ndarray, start: np.ndarray, goal: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """(waypoints [M, 2], taut corners [C, 2]) of the geodesic path from start to goal.

    The waypoints are the corners with evenly spaced points inserted so that no gap exceeds ``spacing``.
    """
    cells = descend_field(grid, field, start)
    pts = grid.cell_to_world(cells)
    pts[0] = start
    pts = np.concatenate([pts, np.asarray(goal, float)[None]])
    corners = string_pull(grid, pts)
    # the corners stay in: the taut path hugs obstacles there, and a chord across a corner may clip them
    return densify(corners, spacing), corners


# ------------------------------------------------------------------------------------------------ episodes
@dataclass
class VLNEpisodeData:
    """A generated VLN episode (scene-independent numbers; the scene is named by the caller).

    Attributes:
        start_position: (x, y) [2].
        start_yaw: radians.
        goal_position: (x, y) [2], navigable, next to the goal landmark.
        field: geodesic distance field [H, W] from the goal.
        geodesic_distance: d_0 (m).
        reference_path: waypoints [M, 2], start first, goal last.
        goal_instance_id: instance id of the stop landmark.
        instruction: English text.
    """

    start_position: np.ndarray
    start_yaw: float
    goal_position: np.ndarray
    field: np.ndarray
    geodesic_distance: float
    reference_path: np.ndarray
    goal_instance_id: int
    instruction: str


def approach_masks(spec, grid: NavGrid, main: np.ndarray, reach: float) -> dict[int, np.ndarray]:
    """Instance id -> bool [H, W]: cells of the connected free space within ``reach`` m of that object."""
    h, w = grid.shape
    gx, gy = np.meshgrid(
        grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size,
        grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size,
    )
    out = {}
    for o in spec.objects:
        fp = np.zeros(grid.shape, bool)
        _fill_polygon(fp, gx, gy, o.footprint())
        if not fp.any():
            continue
        dist = ndimage.distance_transform_edt(~fp) * grid.cell_size
        mask = main & (dist <= reach)
        if mask.any():
            out[o.instance_id] = mask
    return out


def sample_vln_episode(
    spec,
    grid: NavGrid,
    main: np.ndarray,
    rng: np.random.Generator,
    approach: dict[int, np.ndarray],
    min_distance: float = 5.0,
    max_distance: float = 20.0,
    waypoint_spacing: float = 0.5,
    max_tokens: int = 80,
    tries: int = 30,
) -> VLNEpisodeData | None:
    """Draws a landmark goal, a start at geodesic distance in [min, max] and builds path and instruction.

    Returns None when no start fits after ``tries`` goals (e.g. a scene too small for ``min_distance``).
    """
    by_id = {o.instance_id: o for o in spec.objects}
    ids = sorted(approach)
    for _ in range(tries):
        if not ids:
            return None
        goal_obj = by_id[ids[int(rng.integers(len(ids)))]]
        goal = grid.sample_navigable(rng, 1, approach[goal_obj.instance_id])[0]
        field = grid.distance_field(goals_xy=goal[None])
        ok = main & (field >= min_distance) & (field <= max_distance)
        if not ok.any():
            continue
        start = grid.sample_navigable(rng, 1, ok)[0]
        yaw = float(rng.uniform(-np.pi, np.pi))
        try:
            path, _ = reference_path(grid, field, start, goal, waypoint_spacing)
        except RuntimeError:  # a descent trapped by the no-corner-cutting rule: draw another episode
            continue
        text = describe_route(spec, path, yaw, goal_obj, rng, max_tokens=max_tokens)
        d0 = float(grid.lookup(field, start))
        return VLNEpisodeData(start, yaw, goal, field, d0, path, goal_obj.instance_id, text)
    return None


# ------------------------------------------------------------------------------------------------ datasets
def scene_id(seed: int) -> str:
    return f"apartment/seed={int(seed)}"


def parse_scene_id(sid: str) -> int:
    """The generator seed named by a ``scene_id``; ValueError for anything else."""
    m = _SCENE_ID.match(str(sid))
    if m is None:
        raise ValueError(f"scene_id {sid!r} does not name a generated apartment ('apartment/seed=<int>')")
    return int(m.group(1))


def split_scene_seeds(split: str, num_scenes: int) -> list[int]:
    """Scene seeds of a split: train / val_seen use 0..num_scenes-1, val_unseen a disjoint range."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {SPLITS}")
    if num_scenes <= 0:
        raise ValueError(f"num_scenes must be positive, got {num_scenes!r}")
    base = UNSEEN_SEED_OFFSET if split == "val_unseen" else 0
    return [base + k for k in range(num_scenes)]


def _xyz(p) -> list[float]:
    return [round(float(p[0]), 4), round(float(p[1]), 4), 0.0]


def yaw_to_quaternion(yaw: float) -> list[float]:
    """[x, y, z, w] of a rotation by ``yaw`` about z."""
    return [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]


def quaternion_to_yaw(q) -> float:
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def episode_record(episode_id: int, seed: int, ep: VLNEpisodeData, success_radius: float, goal_object: str) -> dict:
    """One R2R-VLN-CE style episode dict."""
    tok = default_tokenizer()
    return {
        "episode_id": int(episode_id),
        "trajectory_id": int(episode_id),
        "scene_id": scene_id(seed),
        "start_position": _xyz(ep.start_position),
        "start_rotation": yaw_to_quaternion(ep.start_yaw),
        "goals": [{"position": _xyz(ep.goal_position), "radius": float(success_radius)}],
        "reference_path": [_xyz(p) for p in ep.reference_path],
        "instruction": {
            "instruction_text": ep.instruction,
            "instruction_tokens": tok.encode(ep.instruction).tolist(),
        },
        "info": {
            "geodesic_distance": round(ep.geodesic_distance, 4),
            "goal_instance_id": int(ep.goal_instance_id),
            "goal_object": goal_object,
        },
    }


@dataclass
class DatasetConfig:
    """What :func:`generate_dataset` builds.

    Attributes:
        split: "train", "val_seen" or "val_unseen".
        episodes: number of episodes.
        num_scenes: scenes of the split (seeds from :func:`split_scene_seeds`).
        seed: base seed of episode sampling (each split offsets it so val_seen episodes differ from train).
        scene_config: keyword arguments of ``ApartmentConfig`` (None: defaults).
        min_distance: smallest start-goal geodesic distance (m).
        max_distance: largest start-goal geodesic distance (m).
        waypoint_spacing: reference path resolution (m).
        success_radius: goal radius written into ``goals`` (VLN-CE: 3.0 m).
        max_tokens: instruction length budget (tokens).
    """

    split: str = "train"
    episodes: int = 100
    num_scenes: int = 20
    seed: int = 0
    scene_config: dict | None = None
    min_distance: float = 5.0
    max_distance: float = 20.0
    waypoint_spacing: float = 0.5
    success_radius: float = 3.0
    max_tokens: int = 80


def generate_dataset(cfg: DatasetConfig) -> dict:
    """Generates a split (episodes spread round-robin over the split's scenes) as a JSON-ready dict."""
    from chronotope.envs.nav.core import NavConfig, _navgrid, load_scene_pool
    from chronotope.envs.sim.kinematic import AgentConfig

    if cfg.episodes <= 0:
        raise ValueError(f"episodes must be positive, got {cfg.episodes!r}")
    seeds = split_scene_seeds(cfg.split, cfg.num_scenes)
    sc = dict(cfg.scene_config or {})
    # the same scene pool an env replaying this file builds (same normalisation of scene_config)
    specs = dict(zip(seeds, load_scene_pool(NavConfig(scene_seeds=tuple(seeds), scene_config=sc or None))))
    agent = AgentConfig()
    rng = np.random.default_rng([cfg.seed, SPLITS.index(cfg.split)])
    episodes = []
    cache: dict[int, tuple] = {}
    attempts = 0
    while len(episodes) < cfg.episodes:
        seed = seeds[attempts % len(seeds)]
        attempts += 1
        if attempts > 20 * cfg.episodes + len(seeds):
            raise RuntimeError(f"could not sample {cfg.episodes} episodes: scenes too small for {cfg.min_distance} m")
        if seed not in cache:
            spec = specs[seed]
            grid = _navgrid(spec, agent.radius, agent.nav_cell, agent.height)
            main = grid.largest_component()
            cache[seed] = (spec, grid, main, approach_masks(spec, grid, main, agent.radius + 0.4))
        spec, grid, main, approach = cache[seed]
        ep = sample_vln_episode(
            spec, grid, main, rng, approach, cfg.min_distance, cfg.max_distance, cfg.waypoint_spacing, cfg.max_tokens
        )
        if ep is None:
            continue
        obj = spec.object_by_instance(ep.goal_instance_id)
        episodes.append(episode_record(len(episodes), seed, ep, cfg.success_radius, f"{obj.color} {obj.category}"))
    tok = default_tokenizer()
    return {
        "format": FORMAT,
        "version": VERSION,
        "split": cfg.split,
        "scene_config": sc,
        "coordinate_frame": "chronotope world: x, y on the floor, z up (metres)",
        "instruction_vocab": {
            "word_list": list(tok.words),
            "PAD_INDEX": 0,
            "UNK_INDEX": 1,
            "num_vocab": len(tok),
        },
        "episodes": episodes,
    }


def save_dataset(data: dict, path: str | Path) -> Path:
    """Writes a dataset dict as JSON (gzip when the name ends in ``.gz``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data).encode()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    tmp.replace(path)
    return path


def load_dataset(path: str | Path) -> dict:
    """Reads and checks a dataset file; ValueError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"episodes_file {str(path)!r} does not exist")
    try:
        raw = p.read_bytes()
        data = json.loads(gzip.decompress(raw) if p.name.endswith(".gz") else raw)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read VLN episodes file {str(path)!r}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a chronotope VLN dataset (missing 'format': {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"{str(path)!r}: unsupported VLN dataset version {data.get('version')!r}")
    eps = data.get("episodes")
    if not isinstance(eps, list) or not eps:
        raise ValueError(f"{str(path)!r} has no episodes")
    required = ("episode_id", "scene_id", "start_position", "start_rotation", "goals", "reference_path", "instruction")
    for e in eps:
        missing = [k for k in required if k not in e]
        if missing:
            raise ValueError(f"{str(path)!r}: episode {e.get('episode_id')!r} lacks {missing}")
        parse_scene_id(e["scene_id"])
    return data
