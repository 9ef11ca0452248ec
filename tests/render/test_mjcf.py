"""The SceneMesh -> MuJoCo model conversion used by the MuJoCo backends, and the scene-pool layout."""

from __future__ import annotations

import numpy as np
import pytest
from render_scenes import build

from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
from chronotope.envs.render.mjcf import cv_to_mujoco_cam, geom_instance_table, mesh_to_mjspec
from chronotope.envs.render.pool import merge_pool, pool_offsets
from chronotope.envs.scene.mesh import SceneMesh

mujoco = pytest.importorskip("mujoco")


def test_geoms_map_back_to_instances():
    """One geom per (instance, colour); names carry the instance id for segmentation look-ups."""
    mesh = SceneMesh.concatenate(
        [
            SceneMesh.box([0, 0, 0], [1, 1, 1], 5, (255, 0, 0)),
            SceneMesh.box([2, 0, 0], [3, 1, 1], 5, (0, 255, 0)),  # same instance, other colour
            SceneMesh.box([4, 0, 0], [5, 1, 1], 9, (0, 0, 255)),
        ]
    )
    spec, geom_instance = mesh_to_mjspec(mesh)
    model = spec.compile()
    np.testing.assert_array_equal(geom_instance, [5, 5, 9])
    table = geom_instance_table(model)
    np.testing.assert_array_equal(table, [0, 5, 5, 9])
    # groups come sorted by (instance, r, g, b)
    np.testing.assert_allclose(model.geom_rgba[:, :3], [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert model.nmeshface == mesh.num_faces
    assert (model.geom_contype == 0).all() and (model.geom_conaffinity == 0).all()


def test_degenerate_groups_compile():
    """A lone triangle (3 vertices: MuJoCo wants 4) and a zero-area triangle do not break compilation."""
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0]], np.float32)
    mesh = SceneMesh(verts, np.array([[0, 1, 2], [3, 4, 5]]), np.array([3, 4]), np.array([[9, 9, 9]] * 2))
    spec, geom_instance = mesh_to_mjspec(mesh)
    model = spec.compile()
    np.testing.assert_array_equal(geom_instance, [3])  # the collinear triangle is dropped
    assert model.nmeshface == 1
    spec2, _ = mesh_to_mjspec(mesh, double_sided=True)
    assert spec2.compile().nmeshface == 2


def test_camera_matches_intrinsics_and_opencv_flip():
    intr = CameraIntrinsics(48, 64, 90.0)
    spec, _ = mesh_to_mjspec(SceneMesh.box([1, -1, -1], [2, 1, 1], 1, (1, 2, 3)), intr)
    model = spec.compile()
    assert model.cam_fovy[0] == pytest.approx(intr.vfov_deg)
    np.testing.assert_array_equal(model.cam_resolution[0], [64, 48])
    pose = camera_poses(np.array([[0.0, 0.0, 1.0]]), np.array([0.3]))
    pos, rot = cv_to_mujoco_cam(pose)
    # MuJoCo looks along -z_cam: that must be the OpenCV +z (forward) axis; MuJoCo +y is OpenCV -y (up).
    np.testing.assert_allclose(-rot[0][:, 2], pose[0, :3, 2])
    np.testing.assert_allclose(rot[0][:, 1], -pose[0, :3, 1])
    np.testing.assert_allclose(pos[0], [0, 0, 1])


@pytest.mark.parametrize("backend", ["mujoco", "mjwarp"])
def test_non_convex_instance_renders_its_real_triangles(backend):
    """An L-shaped instance (one geom, one colour): a ray into the notch of the L passes through it,
    as it would not if MuJoCo drew the convex hull."""
    ell = SceneMesh.concatenate(
        [
            SceneMesh.box([3, -2, 0], [3.5, 2, 2], 4, (100, 150, 200)),  # back slab, face at x = 3
            SceneMesh.box([1, -2, 0], [3, 0, 2], 4, (100, 150, 200)),  # arm on the y < 0 side, face at x = 1
        ]
    )
    intr = CameraIntrinsics(16, 16, 20.0)
    r = build(backend, [ell], intr)
    # Looking along +x at y = +1 (the notch): the hull would put a face at x = 1; the real mesh at x = 3.
    out = r.render(camera_poses(np.array([[0.0, 1.0, 1.0]]), np.zeros(1)))
    np.testing.assert_allclose(out.depth.cpu().numpy(), 3.0, atol=1e-3)
    assert (out.semantic.cpu().numpy() == 4).all()
    r.close()


def test_pool_layout_separates_scenes_by_more_than_the_depth_range():
    rng = np.random.default_rng(0)
    meshes = [
        SceneMesh.box(lo, lo + rng.uniform(1, 6, 3), 1, (0, 0, 0))
        for lo in rng.uniform(-3, 3, (5, 3)).astype(np.float32)
    ]
    max_depth = 7.0
    off = pool_offsets(meshes, max_depth)
    assert off.shape == (5, 3) and (off[:, 2] == 0).all()
    boxes = [(m.bounds[0] + o, m.bounds[1] + o) for m, o in zip(meshes, off)]
    for i in range(5):
        for j in range(i + 1, 5):
            gap = np.maximum(boxes[j][0] - boxes[i][1], boxes[i][0] - boxes[j][1])[:2].max()
            assert gap > max_depth, (i, j, gap)
    merged, start = merge_pool(meshes, off)
    assert start.tolist() == [0, 12, 24, 36, 48, 60] and merged.num_faces == 60
    np.testing.assert_array_equal(pool_offsets(meshes[:1], max_depth), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="nan"):
        pool_offsets(meshes, float("nan"))
