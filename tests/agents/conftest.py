import pytest


@pytest.fixture
def ballet_cfg(tmp_path):
    """A tiny PPO run on Ballet's state observations with the entity readout on ``dancers``: ``ballet_cfg(name,
    **overrides)`` -> TrainConfig (2 envs, 16-step rollouts, auxiliary loss on)."""
    from chronotope.agents.config import TrainConfig

    def make(name: str, **over) -> TrainConfig:
        kw = dict(
            env="chronotope/Ballet-v0",
            env_kwargs='{"obs_mode": "state", "num_scenes": 2}',
            agent="gru",
            num_envs=2,
            rollout_len=16,
            bptt_len=16,
            steps=32,
            out_dir=tmp_path,
            readout_key="dancers",
            aux_coef=1.0,
            progress=False,
        )
        return TrainConfig(**{**kw, **over, "name": name})

    return make
