"""Helpers shared by the robot tasks: spec builders for blocks and goal markers, spawn sampling."""

from __future__ import annotations

import mujoco
import numpy as np

BLOCK_HALF = 0.02
"""Half edge (m) of the cube blocks: 4 cm cubes fit the 8 cm open gripper."""
BLOCK_MASS = 0.05
SPAWN_LOW = np.array([0.35, -0.2])
"""Lower xy corner (m) of the area where objects are placed on the table."""
SPAWN_HIGH = np.array([0.6, 0.2])


def add_block(spec: mujoco.MjSpec, name: str, rgba: tuple[float, ...] | np.ndarray, pos=(0.45, 0.0, BLOCK_HALF)):
    """Adds a free cube ``name`` (free joint ``name``, geom ``name``) to the world body."""
    body = spec.worldbody.add_body(name=name, pos=list(pos))
    body.add_freejoint(name=name)
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[BLOCK_HALF] * 3,
        mass=BLOCK_MASS,
        rgba=list(rgba),
        friction=[1.0, 0.005, 0.0001],
        contype=1,
        conaffinity=3,
        condim=4,
    )
    return body


def add_goal_marker(spec: mujoco.MjSpec, name: str, rgba=(0.1, 0.9, 0.2, 0.45), radius: float = 0.02):
    """Adds a mocap body with a non-colliding translucent sphere (moved through ``data.mocap_pos``)."""
    body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.45, 0.0, 0.2])
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[radius, 0, 0],
        rgba=list(rgba),
        contype=0,
        conaffinity=0,
        group=1,
    )
    return body


def sample_separated_xy(
    rng: np.random.Generator, n: int, min_dist: float, low=SPAWN_LOW, high=SPAWN_HIGH, max_tries: int = 1000
) -> np.ndarray:
    """Samples ``n`` xy points [n, 2] in the box, pairwise at least ``min_dist`` apart (rejection sampling)."""
    pts: list[np.ndarray] = []
    for _ in range(max_tries):
        p = rng.uniform(low, high)
        if all(np.linalg.norm(p - q) >= min_dist for q in pts):
            pts.append(p)
            if len(pts) == n:
                return np.stack(pts)
    raise ValueError(f"could not place {n} points {min_dist} m apart in {low}..{high}")
