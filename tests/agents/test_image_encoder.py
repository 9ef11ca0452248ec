"""Image encoders: the CNN choice (``image_encoder``) and one CNN over equal-size images stacked (``fuse_images``),
from the encoder up to a PPO run on pixels that evaluates from its folder."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.encoders import ImageEncoder, MapEncoder, ObservationEncoder
from chronotope.agents.evaluate import EvalConfig, evaluate
from chronotope.agents.ppo.trainer import PPOTrainer
from chronotope.maps.spaces import EgocentricMapBox

RGB = spaces.Box(0, 255, (64, 64, 3), np.uint8)
DEPTH = spaces.Box(0.0, 10.0, (64, 64, 1), np.float32)


def _obs(b: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "rgb": torch.randint(0, 256, (b, 64, 64, 3), dtype=torch.uint8, generator=gen),
        "depth": 10.0 * torch.rand(b, 64, 64, 1, generator=gen),
    }


@pytest.mark.parametrize("arch", ["nature", "small"])
def test_fused_cnn_reads_each_channel_scaled_by_its_own_bound(arch):
    enc = ObservationEncoder(spaces.Dict({"rgb": RGB, "depth": DEPTH}), image_arch=arch, fuse_images=True)
    assert enc.keys == ["depth+rgb"] and enc.fused == {"depth+rgb": ["depth", "rgb"]}
    cnn = enc.encoders["depth+rgb"]
    assert cnn.cnn[0].in_channels == 4
    o = _obs(3, torch.Generator().manual_seed(0))
    # the stacked input by hand: depth / 10 m, rgb / 255, channels first
    x = torch.cat([o["depth"] / 10.0, o["rgb"].float() / 255.0], -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(enc(o), cnn.fc(cnn.cnn(x)))
    enc(o).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_fused_stack_of_more_than_four_channels_stays_channel_last():
    """rgb + depth + segmentation (the arm cameras) stack to 5 channels: still [H, W, C], not read as [C, H, W]."""
    seg = spaces.Box(0, 20, (64, 64, 1), np.int32)
    enc = ObservationEncoder(
        spaces.Dict({"rgb": RGB, "depth": DEPTH, "seg": seg}), image_arch="small", fuse_images=True
    )
    cnn = enc.encoders["depth+rgb+seg"]
    assert cnn.channel_last and cnn.cnn[0].in_channels == 5
    o = _obs(2, torch.Generator().manual_seed(2))
    o["seg"] = torch.randint(0, 21, (2, 64, 64, 1), dtype=torch.int32)
    x = torch.cat([o["depth"] / 10.0, o["rgb"].float() / 255.0, o["seg"].float() / 20.0], -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(enc(o), cnn.fc(cnn.cnn(x)))


def test_only_channel_last_images_of_one_size_are_fused():
    crop = EgocentricMapBox(np.zeros((3, 64, 64), np.float32), np.ones((3, 64, 64), np.float32), dtype=np.float32)
    space = spaces.Dict(
        {
            "rgb": RGB,
            "depth": DEPTH,
            "small_rgb": spaces.Box(0, 255, (32, 32, 3), np.uint8),  # alone at its size: its own CNN
            "occupancy": crop,  # a map crop keeps the map encoder
            "pose": spaces.Box(-1.0, 1.0, (3,), np.float32),
        }
    )
    fused = ObservationEncoder(space, fuse_images=True)
    assert fused.keys == ["depth+rgb", "occupancy", "pose", "small_rgb"]
    assert isinstance(fused.encoders["occupancy"], MapEncoder)
    assert type(fused.encoders["small_rgb"]) is ImageEncoder
    o = _obs(2, torch.Generator().manual_seed(1))
    o.update(small_rgb=torch.zeros(2, 32, 32, 3, dtype=torch.uint8), occupancy=torch.rand(2, 3, 64, 64),
             pose=torch.zeros(2, 3))  # fmt: skip
    assert fused(o).shape == (2, fused.out_dim) == (2, 128 * 3 + 64)
    # off (the default): one encoder per key, named as before, so earlier checkpoints load unchanged
    plain = ObservationEncoder(space)
    assert plain.keys == sorted(space.spaces) and not plain.fused
    assert plain(o).shape == (2, 128 * 4 + 64)


@pytest.mark.parametrize("shape", [(64, 64, 4), (16, 16, 4)])
def test_small_cnn_is_the_cheaper_one(shape):
    space = spaces.Box(0.0, 1.0, shape, np.float32)
    nature, small = ImageEncoder(space, arch="nature"), ImageEncoder(space, arch="small")
    convs = [m for m in small.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32]
    x = torch.rand(2, *shape)
    assert small(x).shape == nature(x).shape == (2, 128)
    conv_params = lambda e: sum(p.numel() for p in e.cnn.parameters())  # noqa: E731
    assert conv_params(small) < conv_params(nature) / 3
    with pytest.raises(ValueError, match="'resnet'"):
        ImageEncoder(space, arch="resnet")


def test_pixel_run_with_a_fused_small_cnn_trains_resumes_and_evaluates(tmp_path):
    cfg = TrainConfig(
        env="chronotope/PointNav-v0",
        agent="gru",
        steps=2 * 2 * 8,
        num_envs=2,
        rollout_len=8,
        bptt_len=8,
        epochs=1,
        minibatches=1,
        env_kwargs=json.dumps({"obs_mode": "rgbd", "resolution": [64, 64], "num_scenes": 1}),
        name="px",
        out_dir=tmp_path,
        progress=False,
        checkpoint_every=1,
        image_encoder="small",
        fuse_images=True,
    )
    tr = PPOTrainer(cfg)
    assert "depth+rgb" in tr.model.encoder.encoders
    tr.train()
    tr.venv.close()
    saved = json.loads((tmp_path / "px" / "config.json").read_text())
    assert saved["image_encoder"] == "small" and saved["fuse_images"] is True
    # the run folder rebuilds the same model: its checkpoint loads strictly and evaluates
    s = evaluate(EvalConfig(run=tmp_path / "px", episodes=2, num_envs=2, seed=3, out=tmp_path / "ev"))
    assert s["success"]["n"] == 2


ROWS_SPACE = spaces.Dict(
    {"img": spaces.Box(0.0, 1.0, (16, 16, 3), np.float32), "rows": spaces.Box(-1.0, 1.0, (3, 2), np.float32)}
)


def _tinted_column_batch(b: int, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rows give each object's image column u in [-1, 1] (and a distractor value); the image shows a magenta
    column at one object's u. Label: that object's row."""
    u = torch.rand(b, 3, generator=gen) * 2 - 1
    target = torch.randint(0, 3, (b,), generator=gen)
    img = 0.3 * torch.rand(b, 16, 16, 3, generator=gen)
    col = ((u[torch.arange(b), target] + 1) / 2 * 15).round().long()
    img[torch.arange(b), :, col, 0] = 1.0
    img[torch.arange(b), :, col, 2] = 1.0
    return {"img": img, "rows": torch.stack([u, torch.rand(b, 3, generator=gen)], -1)}, target


def test_row_vision_attends_per_row_and_is_permutation_equivariant():
    enc = ObservationEncoder(ROWS_SPACE, row_vision="rows")
    assert enc.keys == ["img+rows"] and enc.out_dim == 128 + 64
    rv = enc.encoders["img+rows"]
    o, _ = _tinted_column_batch(4, torch.Generator().manual_seed(0))
    x = rv.image.prepare(o["img"])
    perm = torch.tensor([2, 0, 1])

    def seen(rows):  # the per-row attended values, taken from the rows MLP's input
        captured = {}
        hook = rv.rows.register_forward_hook(lambda m, i, out: captured.setdefault("in", i[0]))
        rv(x, rows)
        hook.remove()
        return captured["in"].reshape(4, 3, -1)[..., 2:]

    torch.testing.assert_close(seen(o["rows"][:, perm]), seen(o["rows"])[:, perm])
    other = rv.image.prepare(torch.rand(4, 16, 16, 3))
    assert not torch.allclose(rv(other, o["rows"]), rv(x, o["rows"]))
    with pytest.raises(ValueError, match="'missing'"):
        ObservationEncoder(ROWS_SPACE, row_vision="missing")
    with pytest.raises(ValueError, match="needs readout_key"):
        TrainConfig(env="chronotope/ObjectRecall-v0", row_vision=True).validate()


def _marked_row_accuracy(enc: ObservationEncoder, batch, steps: int) -> float:
    """Trains ``enc`` + a linear head for ``steps`` batches of 64 to name the marked row (``batch(b, gen)`` ->
    obs, label), one torch thread, seeded; the held-out accuracy on 512."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        head = torch.nn.Linear(enc.out_dim, 3)
        opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], 2e-3)
        gen = torch.Generator().manual_seed(1)
        for _ in range(steps):
            o, y = batch(64, gen)
            loss = torch.nn.functional.cross_entropy(head(enc(o)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        o, y = batch(512, torch.Generator().manual_seed(99))
        with torch.no_grad():
            return (head(enc(o)).argmax(-1) == y).float().mean().item()
    finally:
        torch.set_num_threads(threads)


def test_row_vision_learns_which_row_the_image_marks_where_a_global_cnn_does_not():
    """Supervised: name the row whose column the image tints. With the rows attending over the feature map the
    encoder learns it in a few hundred steps; the same CNN's global feature beside the rows' MLP stays near chance
    (1/3) in as many steps."""
    acc = {}
    for rv in (True, False):
        torch.manual_seed(0)
        enc = ObservationEncoder(ROWS_SPACE, row_vision="rows" if rv else None, image_arch="small")
        acc[rv] = _marked_row_accuracy(enc, _tinted_column_batch, 400)
    assert acc[True] > 0.6 and acc[False] < 0.45, acc


def test_row_glimpse_reads_the_pixel_column_where_each_object_projects():
    # channel 0 of column j holds j / 15: a row reads the column its (forward, left) position projects to through
    # a 90-degree pinhole camera; objects behind the camera or outside the view read zeros
    space = spaces.Dict(
        {"img": spaces.Box(0.0, 1.0, (16, 16, 3), np.float32), "rows": spaces.Box(-9.0, 9.0, (4, 2), np.float32)}
    )
    rv = ObservationEncoder(space, image_arch="pool", row_vision="rows", row_glimpse=(0, 1, 90.0)).encoders["img+rows"]
    img = torch.zeros(1, 16, 16, 3)
    img[..., 0] = torch.arange(16.0) / 15
    centre = lambda j: (j + 0.5) / 8 - 1  # noqa: E731  pixel column j's centre in [-1, 1]
    # left = -u * forward * tan(45 deg): columns 3 and 12 at 2 m and 5 m; one behind; one 60 degrees to the left
    rows = torch.tensor([[[2.0, -centre(3) * 2.0], [5.0, -centre(12) * 5.0], [-2.0, 0.0], [1.0, 1.8]]])
    cols = rv.look_at_rows(rv.image.prepare(img), rows).reshape(1, 4, 3, 16)
    torch.testing.assert_close(cols[0, 0, 0], torch.full((16,), 3 / 15))
    torch.testing.assert_close(cols[0, 1, 0], torch.full((16,), 12 / 15))
    assert not cols[0, 2:].any()
    with pytest.raises(ValueError, match="row_glimpse must be 'X,Y,HFOV'"):
        TrainConfig(env="e", readout_key="rows", aux_coef=1.0, row_vision=True, row_glimpse="1,1,90").validate()
    with pytest.raises(ValueError, match="needs row_vision"):
        TrainConfig(env="e", readout_key="rows", aux_coef=1.0, row_glimpse="1,2,90").validate()


def test_row_glimpse_learns_which_row_the_image_marks_without_a_cnn():
    """The tinted-column task of the test above with rows that give (forward, left) positions: looking where each
    object projects, the rows name the tinted one in 150 steps, over only pooled pixels (no convolution)."""
    space = spaces.Dict(
        {"img": spaces.Box(0.0, 1.0, (16, 16, 3), np.float32), "rows": spaces.Box(-2.0, 2.0, (3, 2), np.float32)}
    )
    torch.manual_seed(0)
    enc = ObservationEncoder(space, image_arch="pool", row_vision="rows", row_glimpse=(0, 1, 90.0))

    def batch(b, gen):
        o, y = _tinted_column_batch(b, gen)
        u = o["rows"][..., 0] * 15 / 16  # the tinted pixel's centre (the batch rounds (u + 1) / 2 * 15)
        return {"img": o["img"], "rows": torch.stack([torch.ones_like(u), -u], -1)}, y

    acc = _marked_row_accuracy(enc, batch, 150)
    assert acc > 0.9, acc


def test_derived_glimpse_inputs_give_the_same_features_and_update():
    # with glimpse over the pool encoder nothing before the learned layers has parameters: derive() computes it
    # once per frame (any leading dims) and the encoder reads it as it would have computed it
    space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (16, 16, 3), np.uint8),
            "depth": spaces.Box(0.0, 10.0, (16, 16, 1), np.float32),
            "rows": spaces.Box(-5.0, 5.0, (3, 4), np.float32),
        }
    )
    torch.manual_seed(0)
    enc = ObservationEncoder(space, image_arch="pool", fuse_images=True, row_vision="rows", row_glimpse=(1, 2, 90.0))
    obs = {k: torch.as_tensor(np.stack([space[k].sample() for _ in range(6)])).reshape(2, 3, *space[k].shape)
           for k in space.spaces}  # fmt: skip
    derived = enc.derive(obs, chunk=4)
    assert "rgb" not in derived and "depth" not in derived and derived["rows"] is obs["rows"]
    flat = lambda o: {k: v.reshape(6, *v.shape[2:]) for k, v in o.items()}  # noqa: E731
    torch.testing.assert_close(enc(flat(derived)), enc(flat(obs)))
    enc(flat(derived)).sum().backward()  # the learned layers still train from the derived inputs
    assert enc.encoders["depth+rgb+rows"].look[0].weight.grad.abs().sum() > 0
    # encoders with parameters before the rows (the attention form, a CNN) are left as they are
    for kw in ({"image_arch": "small"}, {"image_arch": "pool", "row_glimpse": None}):
        other = ObservationEncoder(space, fuse_images=True, row_vision="rows", **{"row_glimpse": (1, 2, 90.0), **kw})
        assert other.derive(obs) is obs


def test_spatial_softmax_finds_the_bright_pixel():
    """The keypoint encoder's layer: one hot pixel per map gives that pixel's position in [-1, 1] (x right, y down);
    its output moves with the thing it tracks, which a flattened map would not tell a linear layer."""
    from chronotope.agents.encoders import SpatialSoftmax

    layer = SpatialSoftmax(16, 16)
    x = torch.zeros(2, 3, 16, 16)
    spots = [[(0, 0), (15, 15), (4, 11)], [(8, 2), (3, 3), (15, 0)]]  # (row, col) per map
    for b, maps in enumerate(spots):
        for k, (r, c) in enumerate(maps):
            x[b, k, r, c] = 50.0
    out = layer(x).reshape(2, 3, 2)
    grid = torch.linspace(-1, 1, 16)
    for b, maps in enumerate(spots):
        for k, (r, c) in enumerate(maps):
            torch.testing.assert_close(out[b, k], torch.stack([grid[c], grid[r]]), atol=1e-4, rtol=0)
    enc = ImageEncoder(spaces.Box(0, 255, (64, 64, 5), np.uint8), arch="keypoints", channel_last=True)
    assert enc(torch.zeros(4, 64, 64, 5, dtype=torch.uint8)).shape == (4, 128)
    assert enc.fc[0].in_features == 32  # 16 keypoints x (x, y)


def test_id_embedding_reads_segmentation_ids_as_categories():
    """With ``id_embed`` a segmentation channel enters the CNN as a learned vector per id: two frames that differ
    only in which id a region holds give inputs that differ by those ids' embeddings, whatever the ids' numbers."""
    seg = spaces.Box(0, 20, (64, 64, 1), np.int32)
    space = spaces.Dict({"rgb": RGB, "seg": seg})
    enc = ObservationEncoder(space, image_arch="keypoints", fuse_images=True, id_embed=3)
    cnn = enc.encoders["rgb+seg"]
    assert cnn.in_channels == 3 + 3 and cnn.cnn[0].in_channels == 6
    o = {"rgb": torch.zeros(2, 64, 64, 3, dtype=torch.uint8), "seg": torch.zeros(2, 64, 64, 1, dtype=torch.int32)}
    o["seg"][0, 10:20, 10:20] = 7
    o["seg"][1, 10:20, 10:20] = 19
    x = cnn.prepare_parts([o["rgb"], o["seg"]])
    table = cnn.id_embed["1"].weight
    torch.testing.assert_close(x[0, 3:, 15, 15], table[7])
    torch.testing.assert_close(x[1, 3:, 15, 15], table[19])
    torch.testing.assert_close(x[:, 3:, 0, 0], table[[0, 0]])
    enc(o).sum().backward()
    assert table.grad[[0, 7, 19]].abs().sum(1).gt(0).all() and table.grad[5].abs().sum() == 0
    # off (the default): the ids are one scaled intensity channel, as before
    assert ObservationEncoder(space, fuse_images=True).encoders["rgb+seg"].in_channels == 4
