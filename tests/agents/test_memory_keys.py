"""``memory_keys``: the memory core reads only the named keys (its own encoder), the policy every key; a named error
for a key the observation does not have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.policy import ActorCritic

OBS = spaces.Dict(
    {
        "colours": spaces.Box(0.0, 1.0, (5, 3), np.float32),
        "pose": spaces.Box(-10.0, 10.0, (3,), np.float32),
    }
)


def _batch(b: int, t: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "colours": (torch.rand(b, t, 5, 3, generator=g) > 0.7).float(),
        "pose": torch.rand(b, t, 3, generator=g) * 20 - 10,
    }


@pytest.mark.parametrize("core", ["gru", "none"])
def test_memory_reads_only_its_keys_and_the_policy_reads_all(core):
    torch.manual_seed(0)
    model = ActorCritic(OBS, spaces.Discrete(4), core, memory_keys=("colours",))
    obs = _batch(2, 6, 0)
    starts = torch.zeros(2, 6, dtype=torch.bool)
    starts[:, 0] = True
    dist, _, _, y = model(obs, model.initial_state(2), starts, features=True)
    moved = {**obs, "pose": _batch(2, 6, 1)["pose"]}  # another pose, same colours
    dist2, _, _, y2 = model(moved, model.initial_state(2), starts, features=True)
    torch.testing.assert_close(y, y2)  # the memory output does not see the pose
    assert not torch.allclose(dist.logits, dist2.logits)  # the policy does
    recoloured = {**obs, "colours": _batch(2, 6, 2)["colours"]}
    _, _, _, y3 = model(recoloured, model.initial_state(2), starts, features=True)
    assert not torch.allclose(y, y3)
    # Without memory_keys the memory reads the pose too.
    plain = ActorCritic(OBS, spaces.Discrete(4), core)
    _, _, _, p1 = plain(obs, plain.initial_state(2), starts, features=True)
    _, _, _, p2 = plain(moved, plain.initial_state(2), starts, features=True)
    assert not torch.allclose(p1, p2)


def test_unknown_memory_key_is_named_and_the_config_parses_the_list():
    with pytest.raises(ValueError, match="missing_key"):
        ActorCritic(OBS, spaces.Discrete(4), "gru", memory_keys=("colours", "missing_key"))
    cfg = TrainConfig(env="chronotope/PointNav-v0", memory_keys=" colours , pose")
    assert cfg.memory_key_tuple() == ("colours", "pose")
    assert TrainConfig(env="chronotope/PointNav-v0").memory_key_tuple() == ()
