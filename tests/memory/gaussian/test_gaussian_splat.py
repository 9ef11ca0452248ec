"""Splat rasteriser: analytic footprint, tiled == dense, gradients vs finite differences, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.splat import RasterConfig, SplatRenderer, covariance_3d, rasterize

torch.set_num_threads(1)


def random_scene(n: int, channels: int = 3, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 0.5], dtype=dtype)
    means[:, 2] += 4.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.15 + 0.02
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    cols = torch.rand(n, channels, generator=g, dtype=dtype)
    return means, quats, scales, opac, cols


def pixel_centres(intr: CameraIntrinsics, dtype=torch.float64):
    v, u = torch.meshgrid(
        torch.arange(intr.height, dtype=dtype) + 0.5, torch.arange(intr.width, dtype=dtype) + 0.5, indexing="ij"
    )
    return u, v


@pytest.mark.parametrize("mean", [(0.0, 0.0, 2.0), (0.3, -0.2, 2.5)])
def test_isotropic_gaussian_matches_analytic_footprint(mean):
    intr = CameraIntrinsics(48, 64, 70.0)
    cfg = RasterConfig(eps2d=0.3)
    s, o, col = 0.08, 0.7, torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64)
    m = torch.tensor([mean], dtype=torch.float64)
    out = rasterize(
        m,
        torch.tensor([[0.3, -0.5, 0.1, 0.8]], dtype=torch.float64),  # rotation is irrelevant when isotropic
        torch.full((1, 3), s, dtype=torch.float64),
        torch.tensor([o], dtype=torch.float64),
        col,
        torch.eye(4, dtype=torch.float64),
        intr,
        cfg=cfg,
    )
    # Analytic EWA footprint of an isotropic Gaussian: cov2d = s^2 J J^T + eps I with J the pinhole Jacobian.
    x, y, z = mean
    f = intr.fx
    jjt = (f / z) ** 2 * torch.tensor(
        [[1 + x * x / z**2, x * y / z**2], [x * y / z**2, 1 + y * y / z**2]], dtype=torch.float64
    )
    cov = s * s * jjt + cfg.eps2d * torch.eye(2, dtype=torch.float64)
    inv = torch.linalg.inv(cov)
    u, v = pixel_centres(intr)
    du, dv = u - (f * x / z + intr.cx), v - (f * y / z + intr.cy)
    maha = inv[0, 0] * du * du + 2 * inv[0, 1] * du * dv + inv[1, 1] * dv * dv
    expect = o * torch.exp(-0.5 * maha)
    expect = torch.where((maha <= 9) & (expect >= 1 / 255), expect, torch.zeros_like(expect))
    torch.testing.assert_close(out.alpha, expect, rtol=0, atol=1e-10)
    torch.testing.assert_close(out.color, expect[..., None] * col[0], rtol=0, atol=1e-10)
    inside = expect > 0
    assert inside.sum() > 20  # the footprint covers a real area
    torch.testing.assert_close(out.depth[inside], torch.full_like(out.depth[inside], z))
    assert (out.depth[~inside] == 0).all()
    # The peak is where the centre projects: on-axis that is the image centre, between pixel centres.
    if x == 0 and y == 0:
        assert out.alpha[23:25, 31:33].min() == out.alpha.max()


def test_covariance_is_rotated_scale():
    q = torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]], dtype=torch.float64)  # 90 deg z
    cov = covariance_3d(torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64), q)[0]
    torch.testing.assert_close(cov, torch.diag(torch.tensor([1.0, 9.0, 4.0], dtype=torch.float64)))


@pytest.mark.parametrize("tile", [8, 16])
def test_tiled_equals_dense(tile):
    intr = CameraIntrinsics(40, 56, 80.0)  # not a multiple of the tile size
    scene = random_scene(400, channels=5, seed=1)
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    cfg = RasterConfig(tile_size=tile)
    bg = torch.tensor([0.1, 0.2, 0.3, 0.0, 1.0])
    a = rasterize(*scene, pose, intr, bg, cfg, mode="tiled")
    b = rasterize(*scene, pose, intr, bg, cfg, mode="dense")
    assert a.alpha.max() > 0.9 and a.n_pairs < b.n_pairs
    for k in ("color", "depth", "alpha"):
        torch.testing.assert_close(getattr(a, k), getattr(b, k), rtol=0, atol=1e-5)


def test_gradients_match_finite_differences():
    intr = CameraIntrinsics(8, 10, 60.0)
    means = torch.tensor([[0.0, 0.0, 2.0], [0.15, 0.1, 2.4], [-0.2, 0.05, 3.0]], dtype=torch.float64)
    quats = torch.tensor([[1.0, 0.1, 0.0, 0.0], [0.9, 0.0, 0.3, 0.1], [1.0, 0.0, 0.0, 0.4]], dtype=torch.float64)
    scales = torch.tensor([[0.2, 0.1, 0.15], [0.1, 0.25, 0.1], [0.3, 0.2, 0.1]], dtype=torch.float64)
    opac = torch.tensor([0.6, 0.5, 0.8], dtype=torch.float64)
    cols = torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.3], [0.2, 0.1, 1.0]], dtype=torch.float64)
    pose = torch.eye(4, dtype=torch.float64)
    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, cols)]

    def fn(m, q, s, o, c):
        out = rasterize(m, q, s, o, c, pose, intr, cfg=RasterConfig(tile_size=4))
        return out.color, out.depth, out.alpha

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    # The gradient is not trivially zero for any input.
    fn(*inputs)[0].sum().backward()
    assert all(t.grad.abs().sum() > 0 for t in inputs)


def test_front_to_back_order_not_input_order():
    intr = CameraIntrinsics(16, 16, 60.0)
    m = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0]])
    q = torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1)
    s = torch.full((2, 3), 0.3)
    o = torch.tensor([0.95, 0.95])
    c = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # far blue listed first, near red second
    a = rasterize(m, q, s, o, c, torch.eye(4), intr)
    b = rasterize(m.flip(0), q, s, o.flip(0), c.flip(0), torch.eye(4), intr)
    torch.testing.assert_close(a.color, b.color)
    centre = a.color[8, 8]
    assert centre[0] > 0.85 and centre[2] < 0.15  # reversed order would give red ~0.09, blue ~0.9
    # Centre depth lies between the two, close to the near one.
    assert 2.0 <= float(a.depth[8, 8]) < 2.1


def test_channels_share_weights_query_path_reproduces_rgb():
    """Oracle 3: rendering q = colour through the query channels reproduces the RGB render (the weights are the
    same tensor; only the matmul's summation order may differ between columns, hence float rounding)."""
    intr = CameraIntrinsics(24, 24, 90.0)
    means, quats, scales, opac, rgb = random_scene(200, channels=3, seed=3)
    both = rasterize(means, quats, scales, opac, torch.cat([rgb, rgb], -1), torch.eye(4), intr)
    only = rasterize(means, quats, scales, opac, rgb, torch.eye(4), intr)
    torch.testing.assert_close(both.color[..., :3], both.color[..., 3:], rtol=0, atol=1e-6)
    assert both.color[..., :3].max() > 0.5
    torch.testing.assert_close(both.color[..., :3], only.color, rtol=0, atol=1e-6)


def test_culling_behind_and_empty_scene():
    intr = CameraIntrinsics(16, 16, 90.0)
    q = torch.tensor([[1.0, 0, 0, 0]])
    out = rasterize(torch.tensor([[0.0, 0.0, -2.0]]), q, torch.full((1, 3), 0.5), torch.tensor([0.9]),
                    torch.ones(1, 3), torch.eye(4), intr)  # fmt: skip
    assert out.n_visible == 0 and out.alpha.abs().max() == 0
    bg = torch.tensor([0.2, 0.4, 0.6])
    empty = rasterize(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3),
                      torch.eye(4), intr, background=bg)  # fmt: skip
    assert empty.color.shape == (16, 16, 3) and torch.equal(empty.color, bg.expand(16, 16, 3))


def test_bad_input_raises_with_value():
    intr = CameraIntrinsics(8, 8, 90.0)
    means, quats, scales, opac, cols = random_scene(4)
    pose = torch.eye(4)
    bad = scales.clone()
    bad[2, 1] = 0.0
    with pytest.raises(ValueError, match="degenerate covariance.*Gaussian 2"):
        rasterize(means, quats, bad, opac, cols, pose, intr)
    badq = quats.clone()
    badq[1] = 0
    with pytest.raises(ValueError, match="quaternion 1"):
        rasterize(means, badq, scales, opac, cols, pose, intr)
    nanpose = pose.clone()
    nanpose[0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rasterize(means, quats, scales, opac, cols, nanpose, intr)
    with pytest.raises(ValueError, match="orthonormal"):
        rasterize(means, quats, scales, opac, cols, pose * 2, intr)
    nanm = means.clone()
    nanm[3, 0] = float("nan")
    with pytest.raises(ValueError, match="means contains NaN"):
        rasterize(nanm, quats, scales, opac, cols, pose, intr)
    with pytest.raises(ValueError, match="opacities must be in"):
        rasterize(means, quats, scales, opac + 1, cols, pose, intr)
    with pytest.raises(ValueError, match="shape"):
        rasterize(means, quats[:3], scales, opac, cols, pose, intr)
    with pytest.raises(ValueError, match="mode"):
        rasterize(means, quats, scales, opac, cols, pose, intr, mode="fast")


def test_flat_gaussian_without_dilation_is_culled_not_nan():
    """A Gaussian flat along the view axis is degenerate on screen when seen edge-on; without dilation it is
    culled instead of producing NaN/inf."""
    intr = CameraIntrinsics(16, 16, 90.0)
    s = torch.tensor([[1e-9, 0.3, 0.3]])  # a disc whose normal is the camera x axis, seen edge-on...
    m = torch.tensor([[0.0, 0.0, 2.0]])
    out = rasterize(m, torch.tensor([[1.0, 0, 0, 0]]), s, torch.tensor([0.9]), torch.ones(1, 3), torch.eye(4),
                    intr, cfg=RasterConfig(eps2d=0.0))  # fmt: skip
    assert torch.isfinite(out.color).all() and torch.isfinite(out.depth).all()


def test_gsplat_backend_errors_clearly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the gpu test covers the gsplat backend")
    r = SplatRenderer("gsplat")
    with pytest.raises((ImportError, RuntimeError), match="gsplat"):
        r(*random_scene(3), torch.eye(4), CameraIntrinsics(8, 8, 90.0))
    with pytest.raises(ValueError, match="unknown splat backend"):
        SplatRenderer("optix")
    assert SplatRenderer("auto").backend == "torch"


@pytest.mark.gpu
def test_gsplat_matches_torch_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("gsplat")
    intr = CameraIntrinsics(32, 32, 80.0)
    scene = [t.cuda() for t in random_scene(300, seed=4)]
    pose = torch.eye(4, device="cuda")
    a = SplatRenderer("gsplat")(*scene, pose, intr)
    b = SplatRenderer("torch")(*scene, pose, intr)
    # gsplat's radius-based tiles and early stop differ in the far tails: compare loosely.
    assert (a.color - b.color).abs().mean() < 1e-2
