"""``memory_grad``: with "aux" the policy and value heads read the memory without training it."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from chronotope.agents.config import TrainConfig
from chronotope.agents.policy import ActorCritic

OBS = spaces.Dict({"x": spaces.Box(-1.0, 1.0, (5,), np.float32)})


def _grads(memory_grad: str) -> tuple[float, float]:
    torch.manual_seed(0)
    model = ActorCritic(OBS, spaces.Discrete(3), "gru", {"hidden_size": 16}, hidden=16, memory_grad=memory_grad)
    x = {"x": torch.rand(2, 6, 5) * 2 - 1}
    starts = torch.zeros(2, 6, dtype=torch.bool)
    starts[:, 0] = True
    dist, value, _, y = model(x, model.memory.initial_state(2), starts, features=True)
    (dist.logits.sum() + value.sum()).backward()  # a policy / value loss only
    mem = sum(p.grad.abs().sum().item() for p in model.memory.parameters() if p.grad is not None)
    enc = sum(p.grad.abs().sum().item() for p in model.encoder.parameters() if p.grad is not None)
    return mem, enc


def test_aux_memory_grad_stops_policy_and_value_gradients_at_the_memory_only():
    mem_all, enc_all = _grads("all")
    mem_aux, enc_aux = _grads("aux")
    assert mem_all > 0 and mem_aux == 0.0  # the heads' losses no longer reach the memory core
    assert enc_aux > 0  # the encoder still learns from them (through the current features)
    with pytest.raises(ValueError, match="memory_grad"):
        ActorCritic(OBS, spaces.Discrete(3), "gru", memory_grad="none")
    with pytest.raises(ValueError, match="aux_coef > 0"):
        TrainConfig(memory_grad="aux").validate()
