"""The entity encoder (``entity_keys``): row-aligned keys encoded as one set, blind to the rows' order, learning a
per-row product that a flat encoder must find across keys; refused with a named error where the keys do not align."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.encoders import EntityEncoder, ObservationEncoder
from chronotope.agents.policy import ActorCritic

K, C = 4, 4
OBS = spaces.Dict(
    {
        "object_pose": spaces.Box(-np.inf, np.inf, (K, 3), np.float32),
        "cue": spaces.Box(0.0, 1.0, (K, C), np.float32),
        "phase": spaces.Box(0.0, 1.0, (3,), np.float32),
    }
)


def test_rows_in_any_order_encode_alike_and_other_keys_stay_apart():
    torch.manual_seed(0)
    enc = ObservationEncoder(OBS, entity_keys=("object_pose", "cue"))
    assert enc.keys == ["entities:object_pose+cue", "phase"]
    obs = {k: torch.as_tensor(np.stack([OBS[k].sample() for _ in range(5)])) for k in OBS}
    obs["object_pose"] = torch.randn(5, K, 3)
    perm = torch.randperm(K)
    shuffled = {**obs, "object_pose": obs["object_pose"][:, perm], "cue": obs["cue"][:, perm]}
    torch.testing.assert_close(enc(obs), enc(shuffled))
    # Moving one row's pose without its cue is a different set.
    broken = {**obs, "object_pose": obs["object_pose"][:, perm]}
    assert not torch.allclose(enc(obs), enc(broken))


def test_learns_which_place_showed_which_colour():
    """The pairs of PairRecall as a regression: from K rows of (place, colour one-hot) in a random order, give the
    place of each colour. A set encoder with a linear head gets it in a few hundred Adam steps; the same budget
    leaves a flat MLP over the two keys apart well behind (the reason the arm presets use it)."""
    torch.manual_seed(0)
    boxes = [OBS["object_pose"], OBS["cue"]]

    def batch(n):
        pos = torch.rand(n, K, 3) * 2 - 1
        cue = torch.eye(C)[torch.stack([torch.randperm(C) for _ in range(n)])]
        target = torch.einsum("nkc,nkd->ncd", cue, pos).reshape(n, -1)  # colour c -> its row's place
        return pos, cue, target

    def train(model, head, parts_fn, steps=600):
        opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
        for _ in range(steps):
            pos, cue, target = batch(128)
            loss = torch.nn.functional.mse_loss(head(parts_fn(model, pos, cue)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        pos, cue, target = batch(1024)
        with torch.no_grad():
            return torch.nn.functional.mse_loss(head(parts_fn(model, pos, cue)), target).item()

    entity = EntityEncoder(boxes, out_dim=64, hidden=64)
    set_loss = train(entity, torch.nn.Linear(64, C * 3), lambda m, p, c: m([p, c]))
    flat = torch.nn.Sequential(torch.nn.Linear(K * 3 + K * C, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    flat_loss = train(flat, torch.nn.Linear(64, C * 3), lambda m, p, c: torch.relu(m(torch.cat([p, c], -1).flatten(1))))
    chance = 1.0 / 3.0  # variance of a uniform place coordinate in [-1, 1]
    assert set_loss < 0.1 * chance and flat_loss > 2 * set_loss


def test_config_and_policy_take_the_keys_and_name_bad_ones():
    cfg = TrainConfig(env="x", entity_keys="object_pose, cue")
    assert cfg.entity_key_tuple() == ("object_pose", "cue")
    assert TrainConfig(env="x").entity_key_tuple() == ()
    model = ActorCritic(OBS, spaces.Box(-1, 1, (4,), np.float32), "gru", {}, 16, entity_keys=cfg.entity_key_tuple())
    obs = {k: torch.as_tensor(np.stack([OBS[k].sample() for _ in range(2)]))[:, None] for k in OBS}
    obs["object_pose"] = torch.randn(2, 1, K, 3)
    dist, value, _ = model(obs, model.initial_state(2), torch.ones(2, 1, dtype=torch.bool))
    assert dist.mean.shape == (2, 1, 4) and value.shape == (2, 1)
    with pytest.raises(ValueError, match="entity_keys \\['object_pose', 'phase'\\] must name \\[K, F\\] Box keys"):
        ObservationEncoder(OBS, entity_keys=("object_pose", "phase"))
    with pytest.raises(ValueError, match="'nope'"):
        ObservationEncoder(OBS, entity_keys=("object_pose", "nope"))
