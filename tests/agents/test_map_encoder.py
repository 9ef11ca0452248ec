"""MapEncoder: the encoder of egocentric map crops, chosen from the map key's space type; camera images keep
ImageEncoder."""

import numpy as np
import torch
from gymnasium import spaces

from chronotope.agents.encoders import ImageEncoder, MapEncoder, ObservationEncoder, encoder_for
from chronotope.maps.spaces import EgocentricMapBox
from chronotope.maps.wrappers import OccupancyKind


def _occupancy_space(crop: int = 64) -> EgocentricMapBox:
    obs = spaces.Dict({"depth": spaces.Box(0.0, 10.0, (32, 32, 1), np.float32),
                       "semantic": spaces.Box(0, 40, (32, 32, 1), np.int32)})  # fmt: skip
    return OccupancyKind(obs, crop_size=crop).space


def test_map_crops_get_the_map_encoder_and_images_keep_the_camera_cnn():
    space = _occupancy_space()
    # ids up to 40 fit a byte: the crop is uint8 (a quarter of float32's bytes through rollouts and minibatches)
    assert isinstance(space, EgocentricMapBox) and space == spaces.Box(space.low, space.high, dtype=np.uint8)
    enc = encoder_for(space)
    assert isinstance(enc, MapEncoder) and enc.pool == 4
    torch.testing.assert_close(enc.scale, torch.tensor([1.0, 1.0, 40.0]))
    # the same shape as a plain Box (a channel-first camera image) and camera images: ImageEncoder, as before
    for cam in (spaces.Box(0.0, 1.0, (3, 64, 64), np.float32), spaces.Box(0, 255, (64, 64, 3), np.uint8),
                spaces.Box(0.0, 10.0, (64, 64, 1), np.float32)):  # fmt: skip
        assert type(encoder_for(cam)) is ImageEncoder
    obs = ObservationEncoder(spaces.Dict({"occupancy": space, "depth": spaces.Box(0.0, 10.0, (64, 64, 1))}))
    assert isinstance(obs.encoders["occupancy"], MapEncoder) and isinstance(obs.encoders["depth"], ImageEncoder)
    x = {"occupancy": torch.as_tensor(space.sample())[None].repeat(5, 1, 1, 1), "depth": torch.rand(5, 64, 64, 1)}
    assert obs(x).shape == (5, obs.out_dim)


def test_crop_type_is_the_smallest_that_holds_the_ids():
    for max_id, dtype in ((0, np.uint8), (255, np.uint8), (256, np.uint16), (70_000, np.float32)):
        obs = spaces.Dict({"depth": spaces.Box(0.0, 10.0, (8, 8, 1), np.float32),
                           "semantic": spaces.Box(0, max_id, (8, 8, 1), np.int32)})  # fmt: skip
        space = OccupancyKind(obs, crop_size=8).space
        assert space.dtype == dtype and space.high[2].max() == max_id, max_id


def test_map_encoder_pools_then_scales_and_reads_any_crop_size():
    space = _occupancy_space()
    enc = MapEncoder(space)
    x = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    pooled = enc._pooled(x)
    assert pooled.shape == (3, 3, 16, 16)
    ref = torch.nn.functional.avg_pool2d(x / enc.scale[:, None, None], 4)
    torch.testing.assert_close(pooled, ref)
    out = enc(x)
    assert out.shape == (3, 128) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    for crop in (8, 30, 100):  # small crops are not pooled; sizes that do not divide are pooled with partial cells
        e = MapEncoder(_occupancy_space(crop))
        assert e.pool == max(1, crop // 16)
        assert e(torch.rand(2, 3, crop, crop)).shape == (2, 128)


def test_derived_map_crops_give_the_same_features_and_update():
    # the crop's pooling and scaling have no parameters: derive() computes them once per frame (any leading dims,
    # in chunks) and the encoder reads the pooled crop as it would have computed it
    from chronotope.agents.encoders import DERIVED_MAP

    space = spaces.Dict({"occupancy": _occupancy_space(), "gps": spaces.Box(-5.0, 5.0, (2,), np.float32)})
    torch.manual_seed(0)
    enc = ObservationEncoder(space)
    obs = {k: torch.as_tensor(np.stack([space[k].sample() for _ in range(6)])).reshape(2, 3, *space[k].shape)
           for k in space.spaces}  # fmt: skip
    derived = enc.derive(obs, chunk=4)
    assert "occupancy" not in derived and derived["gps"] is obs["gps"]
    assert derived[DERIVED_MAP + "occupancy"].shape == (2, 3, 3, 16, 16)
    flat = lambda o: {k: v.reshape(6, *v.shape[2:]) for k, v in o.items()}  # noqa: E731
    assert torch.equal(enc(flat(derived)), enc(flat(obs)))
    enc(flat(derived)).sum().backward()  # the learned layers still train from the derived inputs
    assert enc.encoders["occupancy"].cnn[0].weight.grad.abs().sum() > 0
    plain = {"gps": obs["gps"]}
    assert ObservationEncoder(spaces.Dict({"gps": space["gps"]})).derive(plain) is plain
