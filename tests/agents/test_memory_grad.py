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


def test_aux_lr_gives_what_the_auxiliary_loss_alone_trains_its_own_group(ballet_cfg):
    """With ``aux_lr`` the memory core and the auxiliary / address heads form their own optimizer group at that
    rate (annealed like lr), the rest stays at lr; a checkpoint resumes with both groups."""
    from chronotope.agents.ppo.trainer import PPOTrainer

    with pytest.raises(ValueError, match="aux_lr 0.001 .* needs memory_grad='aux'"):
        TrainConfig(aux_coef=1.0, aux_lr=1e-3).validate()
    with pytest.raises(ValueError, match="aux_lr must be > 0"):
        TrainConfig(aux_coef=1.0, memory_grad="aux", aux_lr=0.0).validate()
    for bad in (0.0, -1e-3, float("nan")):  # the main rate likewise (memory_rl --lr passes it through)
        with pytest.raises(ValueError, match=f"lr must be > 0, got {bad!r}"):
            TrainConfig(lr=bad).validate()
    kw = dict(
        memory_cfg='{"hidden_size": 16}',
        hidden=16,
        steps=96,
        readout_query="instruction",
        aux_key="memory_patterns",
        memory_grad="aux",
        aux_lr=1e-3,
        lr=1e-4,
    )
    tr = PPOTrainer(ballet_cfg("a", **kw))
    ppo, own = tr.opt.param_groups
    own_ids = {id(q) for q in own["params"]}
    expected = [*tr.model.memory.parameters(), *tr.model.address.parameters()]
    assert own_ids == {id(q) for q in expected} and own["lr"] == 1e-3 and ppo["lr"] == 1e-4
    assert not own_ids & {id(q) for q in ppo["params"]}
    tr.train(stop_after=2)  # the second of 3 updates ran at 2/3 of each rate
    assert own["lr"] == pytest.approx(1e-3 * 2 / 3) and ppo["lr"] == pytest.approx(1e-4 * 2 / 3)
    path = tr.save()
    tr.venv.close()
    tr2 = PPOTrainer(ballet_cfg("a", **kw))
    tr2.restore(path)
    assert [g["base_lr"] for g in tr2.opt.param_groups] == [1e-4, 1e-3]
    tr2.venv.close()
