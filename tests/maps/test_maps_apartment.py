"""Issue 7 on a real generated apartment: maps built by the expert's walk against the scene's ground truth.

* Occupancy coverage: the navigable nav-grid cells the walk *saw* (ground truth: in a ray cast of the scene
  mesh from the walk's camera poses at 4x the agent's resolution, a pixel whose instance id is the floor
  back-projects into the cell) must be observed free in the occupancy map built from
  depth + camera pose by ``OccupancyMapWrapper``: coverage = |observed_free & seen| / |seen| >= 95 %.
* Octree accuracy: every occupied leaf of ``OctreeWrapper``'s octree contains a depth hit, so its centre lies
  within half a voxel diagonal (< one voxel) of the true scene surface (distance to the mesh triangles of
  ``spec.to_mesh()``, Open3D ``RaycastingScene.compute_distance``).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import chronotope.envs  # noqa: F401
from chronotope.envs.nav.expert import ShortestPathExpert
from chronotope.envs.scene.spec import FLOOR_INSTANCE
from chronotope.maps.geometry import backproject_depth
from chronotope.maps.occupancy import OccupancyConfig
from chronotope.maps.octree import OctreeConfig
from chronotope.maps.wrappers import OccupancyMapWrapper, OctreeWrapper

OCT = OctreeConfig(num_labels=64)  # 5 cm voxels over a 51.2 m cube around the origin


def expert_walk(scene_seed: int, episodes: int, max_steps: int = 150):
    """Walks the expert through ``episodes`` PointNav episodes of one apartment with both map wrappers.

    Returns (wrapped env, frames [(obs, camera_pose)]); the maps accumulate over all episodes (``new_map`` is
    called only on the first reset) so that one map covers the whole walk.
    """
    env = gym.make(
        "chronotope/PointNav-v0",
        obs_mode="rgbd",
        semantic=True,
        scene_seeds=(scene_seed,),
        resolution=(64, 64),
        max_episode_steps=max_steps,
    )
    env = OctreeWrapper(OccupancyMapWrapper(env, OccupancyConfig(), crop_size=32), OCT, k=8)
    expert = ShortestPathExpert()
    frames = []
    for ep in range(episodes):
        obs, info = env.reset(seed=ep)
        if ep == 0:
            occ, octree = env.env.map, env.map
        else:  # keep integrating into the first episode's maps
            env.env.map, env.map = occ, octree
            env.env.integrate(obs, np.asarray(info["camera_pose"]))
            env.integrate(obs, np.asarray(info["camera_pose"]))
        frames.append((obs, np.asarray(info["camera_pose"])))
        while True:
            obs, _, term, trunc, info = env.step(int(expert.act(env.unwrapped.core)[0]))
            frames.append((obs, np.asarray(info["camera_pose"])))
            if term or trunc:
                break
    return env, frames


def seen_navigable(spec, frames, intrinsics, max_depth: float):
    """Navigable nav-grid cells hit by at least one floor pixel of the walk: (navgrid, bool mask [H, W])."""
    grid = spec.navgrid()
    seen = np.zeros(grid.shape, bool)
    for obs, pose in frames:
        pts, idx = backproject_depth(obs["depth"], intrinsics, pose, max_depth)
        floor = obs["semantic"].reshape(-1)[idx] == FLOOR_INSTANCE
        rc = grid.world_to_cell(pts[floor, :2])
        ok = (rc[:, 0] >= 0) & (rc[:, 0] < grid.shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < grid.shape[1])
        seen[rc[ok, 0], rc[ok, 1]] = True
    return grid, seen & grid.navigable


def coverage(env, frames, upsample: int = 4) -> tuple[float, int]:
    """Coverage of the seen navigable floor; "seen" is decided on a fresh ray cast of the scene mesh from the
    walk's poses at ``upsample`` x the agent's resolution (stricter than the agent's own 64x64 pixels)."""
    from chronotope.envs.render.base import make_renderer
    from chronotope.envs.render.camera import CameraIntrinsics

    base = env.unwrapped
    intr = CameraIntrinsics(
        base.intrinsics.height * upsample, base.intrinsics.width * upsample, base.intrinsics.hfov_deg
    )
    renderer = make_renderer("open3d", [base.scene.to_mesh()], intr, max_depth=base.max_depth)
    poses = np.stack([p for _, p in frames])
    out = renderer.render(poses, np.zeros(len(poses), np.int64))
    dense = [
        ({"depth": out.depth[i].numpy(), "semantic": out.semantic[i].numpy()}, poses[i]) for i in range(len(poses))
    ]
    renderer.close()
    grid, seen = seen_navigable(base.scene, dense, intr, base.max_depth)
    occ = env.env.map
    rows, cols = np.nonzero(seen)
    centres = grid.cell_to_world(np.stack([rows, cols], -1))
    rc = occ.world_to_cell(centres)
    assert occ.in_bounds(rc).all()
    free = occ.observed_free_mask[rc[:, 0], rc[:, 1]]
    return float(free.mean()), int(seen.sum())


def surface_distances(env) -> np.ndarray:
    import open3d as o3d

    mesh = env.unwrapped.scene.to_mesh()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    octree = env.map
    centres = octree.centers(octree.keys).astype(np.float32)
    return scene.compute_distance(o3d.core.Tensor(centres)).numpy()


@pytest.fixture(scope="module")
def walk():
    return expert_walk(scene_seed=0, episodes=2)


def test_occupancy_covers_seen_navigable_floor(walk):
    env, frames = walk
    cov, n_seen = coverage(env, frames)
    print(f"coverage {cov:.4f} of {n_seen} seen navigable cells over {len(frames)} frames")
    assert n_seen > 500  # the walk saw a real part of the apartment
    assert cov >= 0.95, cov


def test_octree_leaves_lie_on_true_surfaces(walk):
    env, _ = walk
    d = surface_distances(env)
    vs = env.map.voxel_size
    print(f"{d.size} leaves: surface distance mean {d.mean():.4f} m, p99 {np.quantile(d, 0.99):.4f}, max {d.max():.4f}")
    assert d.size > 1000
    # a leaf holds a depth hit on the surface, so its centre is within half the voxel diagonal of it
    assert d.max() <= math.sqrt(3) / 2 * vs + 1e-4, (d.max(), vs)


def test_occupancy_has_no_free_space_inside_walls(walk):
    """The converse oracle: no observed-free cell centre lies inside a wall (shrunk by half a cell)."""
    env, _ = walk
    occ = env.env.map
    rows, cols = np.nonzero(occ.observed_free_mask)
    xy = occ.cell_to_world(np.stack([rows, cols], -1))
    h = occ.cell_size / 2
    inside = np.zeros(len(xy), bool)
    for lo, hi in env.unwrapped.scene.wall_boxes():
        if lo[2] > 0.1:
            continue  # lintels above doors: the floor below them is free
        inside |= np.all((xy > lo[:2] + h) & (xy < hi[:2] - h), axis=1)
    assert len(xy) > 5000
    assert not inside.any(), xy[inside][:5]


@pytest.mark.slow
@pytest.mark.parametrize("scene_seed", [1, 2])
def test_coverage_and_surfaces_other_apartments(scene_seed):
    env, frames = expert_walk(scene_seed, episodes=4)
    cov, n_seen = coverage(env, frames)
    d = surface_distances(env)
    print(f"seed {scene_seed}: coverage {cov:.4f} of {n_seen}; octree max distance {d.max():.4f} m")
    assert cov >= 0.95
    assert d.max() <= math.sqrt(3) / 2 * env.map.voxel_size + 1e-4
