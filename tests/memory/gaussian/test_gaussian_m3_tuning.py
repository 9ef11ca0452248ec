"""The scene-memory changes that raised held-out PSNR (disc initialisation, separate colour / feature heads,
mean-colour background, consolidation) and the evaluation library (raw-feature baseline, CI over seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.encoders import RandomConvEncoder
from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig, rotmat_to_quat
from chronotope.memory.gaussian.splat import quat_to_rotmat, rasterize
from chronotope.memory.gaussian.synthetic import box_room, orbit_poses, raycast_boxes
from chronotope.scripts.experiments.gaussian_eval import RawFeatureMemory, backproject, compression, mean_ci, psnr

torch.set_num_threads(1)
INTR = CameraIntrinsics(32, 32, 90.0)


def test_rotmat_to_quat_round_trip_including_half_turns():
    q = torch.nn.functional.normalize(torch.randn(500, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    rot = quat_to_rotmat(q)
    half_turns = torch.stack([torch.diag(torch.tensor(d)) for d in ([1.0, -1, -1], [-1.0, 1, -1], [-1.0, -1, 1])])
    for r in (rot, half_turns, torch.eye(3)[None]):
        back = quat_to_rotmat(rotmat_to_quat(r))
        torch.testing.assert_close(back, r, atol=1e-5, rtol=0)


def _plane_depth(slope: float, z0: float = 2.0) -> np.ndarray:
    """z-depth of the plane z = z0 + slope * x seen by a camera at the origin looking along +z: [H, W]."""
    u = (np.arange(INTR.width) + 0.5 - INTR.cx) / INTR.fx
    v = np.zeros(INTR.height)
    dx = u[None, :] + 0 * v[:, None]
    return (z0 / (1 - slope * dx)).astype(np.float32)  # along the ray (dx, dy, 1): z = z0 + slope * z * dx


def test_disc_initialisation_lies_in_the_surface_plane():
    """Seeded Gaussians on a slanted plane are flat discs whose thin axis is the plane normal, wider along the
    slant (the pixel footprint grows as 1 / cos of the incidence angle)."""
    slope = 1.0  # plane at 45 degrees about the camera's y axis
    depth = _plane_depth(slope)
    rgb = np.full((INTR.height, INTR.width, 3), 128, np.uint8)
    mem = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=0, init_stride=2))
    mem.add_frame(rgb, depth, np.eye(4))
    g = mem.gaussians()
    rot = quat_to_rotmat(g["quats"])  # columns: the Gaussian's axes in the world
    thin = g["scales"].argmin(-1)
    axis = rot[torch.arange(len(thin)), :, thin]  # [N, 3]
    normal = torch.nn.functional.normalize(torch.tensor([-slope, 0.0, 1.0]), dim=0)
    interior = (g["means"][:, 0].abs() < 0.8) & (g["means"][:, 1].abs() < 0.8)  # away from the image border
    assert interior.sum() > 20
    cos = (axis[interior] @ normal).abs()
    assert float(cos.min()) > 0.999, float(cos.min())
    s = g["scales"][interior].sort(-1).values
    assert torch.all(s[:, 0] <= 0.11 * s[:, 1])  # thickness = 0.1 x the smaller in-plane std
    # On the optical axis the plane is at 45 degrees: the footprint along the slant is sqrt(2) x the frontal one
    # (the other in-plane axis is frontal).
    m = g["means"][interior]
    centre = (m[:, 0] / m[:, 2]).abs() < 0.1
    assert centre.sum() >= 4
    ratio = s[centre, 2] / s[centre, 1]
    assert torch.all((ratio > 1.2) & (ratio < 1.65)), ratio
    # The means are the back-projected pixels: they lie on the plane.
    m = g["means"]
    torch.testing.assert_close(m[:, 2], 2.0 + slope * m[:, 0], atol=1e-4, rtol=1e-4)
    iso = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=0, init_shape="iso"))
    iso.add_frame(rgb, depth, np.eye(4))
    si = iso.gaussians()["scales"]
    assert torch.allclose(si[:, 0], si[:, 1]) and torch.allclose(si[:, 1], si[:, 2])
    with pytest.raises(ValueError, match="'cone'"):
        GaussianSceneMemory(INTR, SceneMemoryConfig(init_shape="cone")).add_frame(rgb, depth, np.eye(4))


def _two_gaussians(requires_grad: bool = True):
    g = torch.Generator().manual_seed(1)
    t = {
        "means": torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.05, 2.5]]),
        "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.2, 0.0]]),
        "scales": torch.tensor([[0.2, 0.15, 0.1], [0.3, 0.2, 0.2]]),
        "opacities": torch.tensor([0.6, 0.8]),
        "colors": torch.rand(2, 5, generator=g),
    }
    return {k: v.clone().requires_grad_(requires_grad) for k, v in t.items()}


def test_stop_grad_channels_same_values_no_geometry_gradient():
    a, b = _two_gaussians(), _two_gaussians()
    ra = rasterize(*(a[k] for k in ("means", "quats", "scales", "opacities", "colors")), torch.eye(4), INTR)
    rb = rasterize(
        *(b[k] for k in ("means", "quats", "scales", "opacities", "colors")), torch.eye(4), INTR,
        stop_grad_channels=(3, 5),
    )  # fmt: skip
    assert torch.equal(ra.color, rb.color) and torch.equal(ra.alpha, rb.alpha)
    # A loss on the stopped channels trains those channels only.
    rb.color[..., 3:].square().sum().backward()
    for k in ("means", "quats", "scales", "opacities"):
        assert b[k].grad is None or torch.all(b[k].grad == 0), k
    assert b["colors"].grad[:, 3:].abs().sum() > 0 and torch.all(b["colors"].grad[:, :3] == 0)
    ra.color[..., 3:].square().sum().backward()
    assert a["means"].grad.abs().sum() > 0  # without the stop the same loss moves the geometry
    # The colour channels keep their full gradient.
    a2, b2 = _two_gaussians(), _two_gaussians()
    for t, stop in ((a2, None), (b2, (3, 5))):
        out = rasterize(*(t[k] for k in ("means", "quats", "scales", "opacities", "colors")), torch.eye(4), INTR,
                        stop_grad_channels=stop)  # fmt: skip
        out.color[..., :3].sum().backward()
    torch.testing.assert_close(a2["means"].grad, b2["means"].grad)
    c = _two_gaussians(False)
    with pytest.raises(ValueError, match=r"stop_grad_channels .*\(4, 9\)"):
        rasterize(*(c[k] for k in ("means", "quats", "scales", "opacities", "colors")), torch.eye(4), INTR,
                  stop_grad_channels=(4, 9))  # fmt: skip


def _build(encoder=None, frames: int = 3, steps: int = 3, **cfg) -> GaussianSceneMemory:
    mem = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=steps, **cfg), encoder=encoder)
    for p in orbit_poses(frames):
        rgb, depth, _ = raycast_boxes(box_room(), p, INTR)
        mem.add_frame(rgb, depth, p)
    return mem


def test_feature_loss_does_not_move_the_geometry():
    """Separate heads: with ``feature_stop_grad`` the feature loss weight changes the queries only."""
    enc = RandomConvEncoder(feature_dim=8, seed=0)
    a = _build(enc, frames=2, w_feature=0.5)
    b = _build(enc, frames=2, w_feature=0.0)
    for k in ("means", "log_scales", "quats", "opacity_logits", "rgb_logits"):
        assert torch.equal(a.params[k], b.params[k]), k
    assert not torch.equal(a.params["queries"], b.params["queries"])
    c = _build(enc, frames=2, w_feature=0.5, feature_stop_grad=False)
    assert not torch.equal(a.params["means"], c.params["means"])


def test_mean_background_fills_unseen_pixels():
    mem = _build(frames=2, steps=1)
    mean = (mem.rgb_sum / mem.rgb_count).float()
    away = np.eye(4)
    away[:3, 3] = (0.0, 0.0, 50.0)  # far above the room, looking up at nothing
    r = mem.render_view(away)
    assert float(r["alpha"].max()) == 0.0
    torch.testing.assert_close(r["rgb"], mean.expand(INTR.height, INTR.width, 3))
    black = _build(frames=2, steps=1, background="black")
    assert float(black.render_view(away)["rgb"].abs().max()) == 0.0
    with pytest.raises(ValueError, match="'grey'"):
        GaussianSceneMemory(INTR, SceneMemoryConfig(background="grey"))


def test_consolidate_lowers_the_loss_over_all_keyframes():
    mem = _build(frames=3, steps=1)
    before = np.mean([float(mem.loss(k)) for k in mem.keyframes])
    mem.consolidate(25)
    after = np.mean([float(mem.loss(k)) for k in mem.keyframes])
    assert after < 0.9 * before, (before, after)
    with pytest.raises(ValueError, match="-1"):
        mem.consolidate(-1)
    with pytest.raises(ValueError, match="add frames"):
        GaussianSceneMemory(INTR).consolidate(1)


def test_raw_feature_memory_finds_the_stored_point():
    enc = RandomConvEncoder(feature_dim=8, seed=0)
    frames = []
    for p in orbit_poses(2):
        rgb, depth, inst = raycast_boxes(box_room(), p, INTR)
        frames.append({"rgb": rgb, "depth": depth, "semantic": inst, "pose": p})
    raw = RawFeatureMemory.build(frames, enc, INTR, max_depth=10.0, stride=2)
    n_valid = sum(int((f["depth"][::2, ::2] < 10.0).sum()) for f in frames)
    assert raw.points.shape == (n_valid, 3) and raw.features.shape == (n_valid, 8)
    assert raw.nbytes() == 4 * n_valid * (3 + 8)
    # Querying with a stored feature returns that feature's point (cosine 1).
    pts, score = raw.locate(raw.features[[5, 77]])
    assert torch.all(score > 0.9999)
    assert torch.equal(pts, raw.points[[5, 77]])
    # The points are the back-projected pixels of the frames.
    f = frames[0]
    grid = np.zeros(f["depth"].shape, bool)
    grid[::2, ::2] = True
    first = backproject(f["depth"], f["pose"], INTR, grid & (f["depth"] < 10.0))
    np.testing.assert_allclose(raw.points[: len(first)].numpy(), first, atol=1e-5)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        RawFeatureMemory.build(frames, enc, INTR, 10.0, stride=0)
    with pytest.raises(ValueError, match=r"queries must be \[Q, 8\]"):
        raw.locate(torch.zeros(3, 5))
    # Whole-memory bytes: M3 = per-Gaussian bytes x N + bank; ratio against the raw store.
    mem = _build(enc, frames=2, steps=1)
    comp = compression(mem, raw)
    assert comp["bytes_total"] == mem.bytes_per_gaussian() * mem.n_gaussians + 4 * mem.bank.numel()
    assert comp["compression_vs_raw_store"] == pytest.approx(raw.nbytes() / comp["bytes_total"])


def test_mean_ci_and_psnr_oracles():
    s = mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0) and s["n"] == 3
    assert s["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2 dof)
    one = mean_ci([5.0, float("nan")])
    assert one["mean"] == 5.0 and one["n"] == 1 and math.isnan(one["ci95"])
    assert mean_ci([])["n"] == 0
    a = np.zeros((4, 4, 3))
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    b = a.copy()
    b[1:, :] = 1.0  # large errors outside the mask do not count
    assert psnr(b + 0.01 * mask[..., None], a, mask) == pytest.approx(40.0)


def test_heldout_strip_shows_ground_truth_above_the_render(tmp_path):
    import imageio.v3 as iio

    from chronotope.scripts.experiments.gaussian_eval import heldout_strip

    mem = _build(frames=2, steps=1)
    frames = []
    for p in orbit_poses(3, phase=0.3):
        rgb, depth, inst = raycast_boxes(box_room(), p, INTR)
        frames.append({"rgb": rgb, "depth": depth, "semantic": inst, "pose": p})
    path = tmp_path / "strip.png"
    heldout_strip(mem, frames, str(path), n=2, zoom=2)
    img = iio.imread(path)
    assert img.shape == (2 * 32 * 2, 2 * 32 * 2, 3)
    np.testing.assert_array_equal(img[:64:2, 64::2], frames[1]["rgb"])  # top row, second view: ground truth
    render = (mem.render_view(frames[0]["pose"])["rgb"].numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(img[64::2, :64:2], render)
    with pytest.raises(ValueError, match="at least one frame"):
        heldout_strip(mem, [], str(path))
