"""Renderer backends against analytic oracles, against each other, and on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_scenes import BACKENDS, build, random_poses, room

from chronotope.envs.render.base import make_renderer
from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
from chronotope.envs.render.shading import Lighting, lambert_intensity, shade_faces
from chronotope.envs.scene.mesh import SceneMesh

WALL_X = 2.5


def wall() -> SceneMesh:
    """A large wall whose near face is the plane x = 2.5."""
    return SceneMesh.box([WALL_X, -20, -20], [WALL_X + 0.2, 20, 20], 7, (200, 100, 50))


@pytest.fixture(scope="module")
def intrinsics() -> CameraIntrinsics:
    return CameraIntrinsics(height=48, width=64, hfov_deg=90.0)


@pytest.fixture(scope="module")
def scene() -> SceneMesh:
    return room()


@pytest.fixture(scope="module")
def renderers(scene, intrinsics):
    """One renderer per backend on the room, shared by the module (MuJoCo Warp builds are slow)."""
    out = {}
    yield out
    for r in out.values():
        r.close()


def get(renderers, backend, scene, intrinsics):
    if backend not in renderers:
        renderers[backend] = build(backend, [scene], intrinsics)
    return renderers[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_wall_depth_is_exact_z_depth(backend, intrinsics):
    """A camera at the origin facing a wall at x = 2.5: every pixel's z-depth is 2.5 (not the ray length),
    and for a yawed camera each pixel matches the analytic ray-plane intersection, to 1 mm."""
    r = build(backend, [wall()], intrinsics)
    yaw = np.array([0.0, 0.5])  # radians; 0.5 rad = 28.6 deg, all rays still reach the wall
    poses = camera_poses(np.zeros((2, 3)), yaw)
    out = r.render(poses)
    depth = out.depth.cpu().numpy()
    np.testing.assert_allclose(depth[0], WALL_X, atol=1e-3)
    # Analytic: world ray d = R (x, y, 1); hit when t * d_x = 2.5, and z-depth equals t because z_cam = 1.
    rays = intrinsics.camera_rays().astype(np.float64)  # [H, W, 3]
    d_world = rays @ poses[1, :3, :3].T
    np.testing.assert_allclose(depth[1], WALL_X / d_world[..., 0], atol=1e-3)
    corner_ray_length = WALL_X * np.linalg.norm(rays[0, 0])
    assert abs(depth[0, 0, 0] - corner_ray_length) > 0.5  # z-depth, not distance along the ray
    assert (out.semantic.cpu().numpy() == 7).all()
    r.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_hit_is_background_at_max_depth(backend, intrinsics):
    """Looking away from the wall, or at a wall beyond max_depth: depth = max_depth, id 0, black."""
    r = build(backend, [wall()], intrinsics, max_depth=2.0)
    poses = camera_poses(np.zeros((2, 3)), np.array([np.pi, 0.0]))  # away from the wall; wall at 2.5 > 2.0
    out = r.render(poses)
    assert (out.depth.cpu() == 2.0).all()
    assert (out.semantic.cpu() == 0).all()
    assert (out.rgb.cpu() == 0).all()
    r.close()


@pytest.mark.parametrize("other", ["mjwarp", "mujoco"])
def test_backends_agree_with_open3d(other, renderers, scene, intrinsics):
    """Same scene, 16 random poses: depth within 1 cm and identical instance ids on >= 99.5% of pixels."""
    poses = random_poses(np.random.default_rng(0), 16)
    ref = get(renderers, "open3d", scene, intrinsics).render(poses)
    out = get(renderers, other, scene, intrinsics).render(poses)
    depth_ok = (ref.depth.cpu() - out.depth.cpu()).abs() <= 0.01
    ids_ok = ref.semantic.cpu() == out.semantic.cpu()
    assert depth_ok.float().mean().item() >= 0.995, depth_ok.float().mean().item()
    assert ids_ok.float().mean().item() >= 0.995, ids_ok.float().mean().item()
    # The scene is closed, so nearly every pixel is a hit: the agreement is not on background alone.
    assert (ref.semantic > 0).float().mean().item() > 0.9
    # Same light, same formula: colours agree up to rounding on the agreeing pixels.
    diff = (ref.rgb.cpu().int() - out.rgb.cpu().int()).abs().amax(-1)
    assert (diff[ids_ok] <= 2).float().mean().item() >= 0.99


@pytest.mark.parametrize("backend", BACKENDS)
def test_scene_pool_cameras_see_only_their_scene(backend, intrinsics):
    """Four open scenes (a floor and a few boxes, no walls) in one pool, cameras looking out over the edges:
    a camera in scene s sees only scene s's ids, and exactly what a renderer of scene s alone sees."""
    scenes = [
        SceneMesh.concatenate(
            [
                SceneMesh.box([-3, -3, -0.1], [3, 3, 0], 100 * s + 1, (150, 150, 150)),
                SceneMesh.box([1.0 + 0.3 * s, -0.5, 0], [1.5 + 0.3 * s, 0.5, 1.0], 100 * s + 2, (200, 50, 50)),
            ]
        )
        for s in range(4)
    ]
    max_depth = 8.0
    pool = build(backend, scenes, intrinsics, max_depth=max_depth)
    rng = np.random.default_rng(1)
    n = 8
    pos = np.c_[rng.uniform(-2.5, 2.5, (n, 2)), np.full(n, 1.2)]
    poses = camera_poses(pos, rng.uniform(-np.pi, np.pi, n), np.full(n, -0.2))
    ids = np.arange(n) % 4
    out = pool.render(poses, ids)
    sem = out.semantic.cpu().numpy()
    for i in range(n):
        seen = np.unique(sem[i])
        assert set(seen.tolist()) <= {0, 100 * ids[i] + 1, 100 * ids[i] + 2}, (i, ids[i], seen)
        assert 0 in seen  # looking past the edge of the floor: there is something to leak into
    alone = build(backend, [scenes[1]], intrinsics, max_depth=max_depth)
    solo = alone.render(poses[ids == 1])
    np.testing.assert_allclose(out.depth.cpu().numpy()[ids == 1], solo.depth.cpu().numpy(), atol=2e-3)
    assert (sem[ids == 1] == solo.semantic.cpu().numpy()).mean() >= 0.999
    pool.close()
    alone.close()


def test_rgb_is_shaded_and_aligned_with_semantic_and_depth(renderers, scene, intrinsics):
    """Each hit pixel has the shaded colour of a triangle of its instance; one box shows several shades;
    background pixels (none here: closed room) would be black at max depth."""
    r = get(renderers, "open3d", scene, intrinsics)
    poses = random_poses(np.random.default_rng(2), 8)
    out = r.render(poses)
    rgb, sem, depth = out.rgb.numpy(), out.semantic.numpy(), out.depth.numpy()
    shaded = shade_faces(scene.face_color, scene.face_normals(), r.lighting)  # [F, 3]
    for inst in np.unique(sem):
        mask = sem == inst
        if inst == 0:
            assert (rgb[mask] == 0).all() and (depth[mask] == r.max_depth).all()
            continue
        allowed = {tuple(c) for c in shaded[scene.face_instance == inst]}
        seen = {tuple(c) for c in np.unique(rgb[mask], axis=0)}
        assert seen <= allowed, (inst, seen - allowed)
        assert (depth[mask] < r.max_depth).all()
    # Walls facing x, walls facing y, floor and ceiling get different shades of comparable albedo.
    floor = rgb[sem == 1]
    assert len(np.unique(floor, axis=0)) == 1
    box_ids = [i for i in np.unique(sem) if i >= 10]
    assert any(len(np.unique(rgb[sem == i], axis=0)) >= 2 for i in box_ids)


def test_batched_equals_one_by_one_and_outputs_are_not_reused(renderers, scene, intrinsics):
    """N cameras in one call equal N single-camera calls; a later call does not overwrite earlier results."""
    r = get(renderers, "open3d", scene, intrinsics)
    poses = random_poses(np.random.default_rng(3), 5)
    batch = r.render(poses)
    kept = [t.clone() for t in (batch.rgb, batch.depth, batch.semantic)]
    for i in range(5):
        one = r.render(poses[i : i + 1])
        assert torch.equal(one.semantic[0], batch.semantic[i])
        assert torch.equal(one.rgb[0], batch.rgb[i])
        np.testing.assert_allclose(one.depth[0].numpy(), batch.depth[i].numpy(), atol=1e-5)
    r.render(random_poses(np.random.default_rng(4), 5))
    for a, b in zip(kept, (batch.rgb, batch.depth, batch.semantic)):
        assert torch.equal(a, b)
    assert batch.rgb.dtype == torch.uint8 and batch.depth.dtype == torch.float32
    assert batch.semantic.dtype == torch.int32
    assert batch.rgb.shape == (5, intrinsics.height, intrinsics.width, 3)


def test_lambert_formula():
    light = Lighting(direction=(0.0, 0.0, 2.0), ambient=0.3, diffuse=0.6)
    n = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, 0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(lambert_intensity(n, light), [0.9, 0.9, 0.3, 0.3 + 0.6 * 0.8], rtol=1e-6)
    col = np.array([[100, 200, 255]] * 4, dtype=np.uint8)
    np.testing.assert_array_equal(shade_faces(col, n, light)[0], [90, 180, 230])
    with pytest.raises(ValueError, match="direction"):
        Lighting(direction=(0.0, 0.0, 0.0))


def test_bad_input_names_the_value(intrinsics):
    with pytest.raises(ValueError, match="'vulkan'"):
        make_renderer("vulkan", [wall()], intrinsics)
    with pytest.raises(ValueError, match="0"):
        CameraIntrinsics(height=0, width=64)
    with pytest.raises(ValueError, match="-8"):
        CameraIntrinsics(height=64, width=-8)
    r = make_renderer("open3d", [wall()], intrinsics)
    poses = camera_poses(np.zeros((3, 3)), np.zeros(3))
    poses[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*\[1\]"):
        r.render(poses)
    with pytest.raises(ValueError, match="3"):
        r.render(camera_poses(np.zeros((1, 3)), np.zeros(1)), np.array([3]))
    with pytest.raises(ValueError, match="nthreads"):
        make_renderer("open3d", [wall()], intrinsics, nthreads=-1)
