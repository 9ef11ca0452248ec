"""The Open3D renderer's compiled ray fill and shading (envs/render/kernels.py) against the numpy passes they
replaced, bit for bit: ray directions in float32 in the same order, and the hit look-ups with their "no hit"
row for misses and hits beyond the depth clip."""

import numpy as np

from chronotope.envs.render import kernels
from chronotope.envs.render.camera import CameraIntrinsics


def test_fill_rays_equals_the_broadcast_arithmetic():
    rng = np.random.default_rng(0)
    intr = CameraIntrinsics(height=12, width=20, hfov_deg=79.0)
    grid = intr.camera_rays()
    x, y = np.ascontiguousarray(grid[0, :, 0]), np.ascontiguousarray(grid[:, 0, 1])
    n = 5
    rot = np.stack([np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(n)]).astype(np.float32)
    origin = rng.uniform(-30, 30, (n, 3)).astype(np.float32)
    out = np.full((n, 12, 20, 6), np.nan, np.float32)
    kernels.fill_rays(origin, rot, x, y, out)
    col = rot[:, None, :, 0] * x[None, :, None] + rot[:, None, :, 2]  # [N, W, 3] float32
    row = rot[:, None, :, 1] * y[None, :, None]  # [N, H, 3]
    assert col.dtype == row.dtype == np.float32
    np.testing.assert_array_equal(out[..., 3:], col[:, None, :, :] + row[:, :, None, :])
    np.testing.assert_array_equal(out[..., :3], np.broadcast_to(origin[:, None, None, :], (n, 12, 20, 3)))
    # the centre ray of a camera is its optical axis (z == 1 at the principal point, here between pixels)
    d = out[0, 5:7, 9:11, 3:].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(d / np.linalg.norm(d), rot[0, :, 2], atol=0.06)


def test_shade_equals_the_masked_lookups():
    rng = np.random.default_rng(1)
    m, n_faces, max_depth = 5000, 40, np.float32(6.0)
    t_hit = rng.uniform(0.1, 9.0, m).astype(np.float32)
    face = rng.integers(0, n_faces, m).astype(np.int32)
    miss = rng.random(m) < 0.2
    t_hit[miss], face[miss] = np.inf, -1  # Embree's miss: t inf, id 0xFFFFFFFF read as int32
    instance_table = np.append(rng.integers(1, 9, n_faces), 0).astype(np.int32)
    color_table = rng.integers(0, 256, (n_faces + 1, 3)).astype(np.uint8)
    depth, sem, rgb = np.empty(m, np.float32), np.empty(m, np.int32), np.empty((m, 3), np.uint8)
    kernels.shade(t_hit, face.copy(), max_depth, instance_table, color_table, depth, sem, rgb)
    ref_face = np.where(t_hit > max_depth, -1, face)
    np.testing.assert_array_equal(depth, np.minimum(t_hit, max_depth))
    np.testing.assert_array_equal(sem, instance_table[ref_face])
    np.testing.assert_array_equal(rgb, color_table[ref_face])
    beyond = (t_hit > max_depth) & ~miss
    assert beyond.any() and (sem[beyond] == 0).all() and (depth[beyond] == max_depth).all()
