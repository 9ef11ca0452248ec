"""stable-baselines3 integration: our batched gymnasium ``VectorEnv`` as an SB3 ``VecEnv``.

SB3 wants its own ``VecEnv`` API (``step_async``/``step_wait``, ``dones``, list of infos with
``terminal_observation``). :class:`SB3VecEnv` adapts any gymnasium ``VectorEnv`` with SAME_STEP auto-reset
(ours) so SB3 steps all environments in one batched call instead of wrapping N single envs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class SB3VecEnv(VecEnv):
    """Wraps a gymnasium ``VectorEnv`` (SAME_STEP auto-reset) for stable-baselines3.

    ``infos[i]`` holds the scalar entries of the vector info for env i; when env i finished, it holds the
    finished episode's measures, ``terminal_observation`` and ``TimeLimit.truncated``.
    """

    def __init__(self, venv) -> None:
        from gymnasium.vector import AutoresetMode

        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VecEnv needs a SAME_STEP auto-resetting vector env, got autoreset_mode={mode!r}")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def reset(self):
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rew, term, trunc, info = self.venv.step(self._actions)
        dones = term | trunc
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        final = info.get("_final_info")
        for i in range(self.num_envs):
            if final is not None and final[i]:
                d = {k: v for k, v in info["final_info"][i].items() if np.ndim(v) == 0}
                d["terminal_observation"] = info["final_obs"][i]
                d["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                d["episode_measures"] = True
                infos[i] = d
        return obs, rew.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None):
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def get_attr(self, attr_name: str, indices=None):
        return [getattr(self.venv, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        raise NotImplementedError("the batched env has no per-sub-env methods")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self):
        return self.venv.render()


def train_sb3(cfg) -> None:
    """``--algo sb3-ppo`` (PPO, MultiInputPolicy / MlpPolicy) or ``recurrent-ppo`` (sb3-contrib RecurrentPPO,
    the LSTM baseline) on the batched env; logs to TensorBoard and saves ``sb3_model.zip`` atomically."""
    import json
    import os

    import gymnasium as gym

    from chronotope.agents.envs import make_vector_env

    cfg.validate()
    run = cfg.run_dir()
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    venv = SB3VecEnv(make_vector_env(cfg.env, cfg.num_envs, cfg.env_kwargs_dict(), cfg.wrappers, cfg.seed))
    venv.seed(cfg.seed)
    policy = "MultiInputPolicy" if isinstance(venv.observation_space, gym.spaces.Dict) else "MlpPolicy"
    common = dict(
        n_steps=cfg.rollout_len,
        learning_rate=cfg.lr,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        n_epochs=cfg.epochs,
        seed=cfg.seed,
        device=cfg.resolved_device(),
        tensorboard_log=str(run / "tb"),
        batch_size=max(1, cfg.num_envs * cfg.rollout_len // cfg.minibatches),
        verbose=0,
    )
    if cfg.algo == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        policy = "MultiInputLstmPolicy" if policy == "MultiInputPolicy" else "MlpLstmPolicy"
        model = RecurrentPPO(policy, venv, **common)
    else:
        from stable_baselines3 import PPO

        model = PPO(policy, venv, **common)
    model.learn(cfg.steps, progress_bar=cfg.progress)
    tmp = run / "sb3_model.tmp.zip"
    model.save(tmp)
    os.replace(tmp, run / "sb3_model.zip")
    print(f"SB3 model written to {(run / 'sb3_model.zip').resolve()}")
