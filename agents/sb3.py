"""stable-baselines3 integration: our batched gymnasium ``VectorEnv`` as an SB3 ``VecEnv``.

SB3 wants its own ``VecEnv`` API (``step_async``/``step_wait``, ``dones``, list of infos with
``terminal_observation``). :class:`SB3VecEnv` adapts any gymnasium ``VectorEnv`` with SAME_STEP auto-reset
(ours) so SB3 steps all environments in one batched call instead of wrapping N single envs.

The observations SB3 gets are those of :func:`chronotope.agents.envs.make_vector_env`, so every adapter applied
there (text fields dropped, MiniGrid's symbolic view as a categorical grid) holds for SB3 as for our PPO. The one
difference: SB3 has no encoder for a grid ``MultiDiscrete`` (``nvec`` of rank > 1), so it reaches SB3 one-hot
encoded, as a flat ``MultiBinary(sum(nvec))`` (what SB3 itself does to a flat ``MultiDiscrete``, whose feature size
SB3 computes as a numpy integer that torch >= 2.13's ``nn.LSTM`` refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvWrapper

from chronotope.envs.vector_info import final_info_row, finished_rows


def _is_grid(space: spaces.Space) -> bool:
    return isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim > 1


def _one_hot_space(space: spaces.Space) -> spaces.Space:
    """``space`` with every grid MultiDiscrete as the MultiBinary of its one-hot encoding."""
    if _is_grid(space):
        return spaces.MultiBinary(int(np.asarray(space.nvec, np.int64).sum()))
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: _one_hot_space(s) for k, s in space.spaces.items()})
    return space


class _OneHot:
    """One-hot encoding of a grid MultiDiscrete: ``[..., *nvec.shape]`` integers -> ``[..., sum(nvec)]`` int8."""

    def __init__(self, space: spaces.MultiDiscrete) -> None:
        nvec = np.asarray(space.nvec, np.int64).reshape(-1)
        self.offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        self.high = nvec - 1
        self.size = int(nvec.sum())
        self.ndim = space.nvec.ndim

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x)
        lead = x.shape[: x.ndim - self.ndim]
        idx = np.minimum(x.reshape(*lead, -1).astype(np.int64), self.high) + self.offsets  # [..., E]
        out = np.zeros((*lead, self.size), np.int8)
        np.put_along_axis(out, idx, 1, axis=-1)
        return out


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
        space = venv.single_observation_space
        # Grid MultiDiscretes (key None: the whole observation), one-hot encoded for SB3.
        if isinstance(space, spaces.Dict):
            self._one_hot = {k: _OneHot(s) for k, s in space.spaces.items() if _is_grid(s)}
        else:
            self._one_hot = {None: _OneHot(space)} if _is_grid(space) else {}
        super().__init__(venv.num_envs, _one_hot_space(space), venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def _encode(self, obs):
        """One-hot encodes the grid entries of an observation (batched or one env's)."""
        if not self._one_hot:
            return obs
        if None in self._one_hot:
            return self._one_hot[None](obs)
        return {k: self._one_hot[k](v) if k in self._one_hot else v for k, v in obs.items()}

    def reset(self):
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        return self._encode(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rew, term, trunc, info = self.venv.step(self._actions)
        dones = term | trunc
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in finished_rows(info):
            d = {k: v for k, v in final_info_row(info, i).items() if np.ndim(v) == 0}
            d["terminal_observation"] = self._encode(info["final_obs"][i])
            d["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            d["episode_measures"] = True
            infos[i] = d
        return self._encode(obs), rew.astype(np.float32), dones, infos

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


def sb3_logger(folder: str | Path | None = None):
    """An SB3 logger for ``model.set_logger``: TensorBoard events under ``folder``, or (None) nothing, anywhere.

    Without one, every ``model.learn`` of a model made without ``tensorboard_log`` configures SB3's default
    logger, which creates an (empty) folder ``$TMPDIR/SB3-<date-time>`` per call and leaves it there.
    """
    from stable_baselines3.common.logger import Logger, configure

    if folder is None:
        return Logger(folder=None, output_formats=[])
    return configure(str(folder), ["tensorboard"])


def train_sb3(cfg) -> None:
    """``--algo sb3-ppo`` (PPO, MultiInputPolicy / MlpPolicy) or ``recurrent-ppo`` (sb3-contrib RecurrentPPO,
    the LSTM baseline) on the batched env; logs to TensorBoard and saves ``sb3_model.zip`` atomically."""
    import json
    import os

    from chronotope.agents.envs import make_vector_env

    cfg.validate()
    run = cfg.run_dir()
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    venv = SB3VecEnv(make_vector_env(cfg.env, cfg.num_envs, cfg.env_kwargs_dict(), cfg.wrappers, cfg.seed))
    venv.seed(cfg.seed)
    model = sb3_model(cfg, venv, tensorboard_log=str(run / "tb"))
    # TensorBoard inside the run folder (as tensorboard_log=run/tb gave: tb/PPO_1), set here so that SB3 never
    # falls back to its default logger folder $TMPDIR/SB3-<date>.
    model.set_logger(sb3_logger(run / "tb" / f"{type(model).__name__}_1"))
    model.learn(cfg.steps, progress_bar=cfg.progress)
    tmp = run / "sb3_model.tmp.zip"
    model.save(tmp)
    os.replace(tmp, run / "sb3_model.zip")
    print(f"SB3 model written to {(run / 'sb3_model.zip').resolve()}")


def sb3_model(cfg, venv: VecEnv, tensorboard_log: str | None = None):
    """The SB3 model of a ``--algo sb3-ppo`` (PPO) or ``recurrent-ppo`` (sb3-contrib RecurrentPPO) config on the
    SB3 env ``venv``: SB3's default (LSTM) policy for a Dict or flat observation space, with our rollout length as
    ``n_steps``, ``num_envs * rollout_len / minibatches`` samples per minibatch, and our epochs, learning rate
    (constant: SB3 does not anneal it), discount, GAE lambda, clip, loss coefficients, gradient clip and seed."""
    import gymnasium as gym

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
        tensorboard_log=tensorboard_log,
        batch_size=max(1, cfg.num_envs * cfg.rollout_len // cfg.minibatches),
        verbose=0,
    )
    if cfg.algo == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        policy = "MultiInputLstmPolicy" if policy == "MultiInputPolicy" else "MlpLstmPolicy"
        return RecurrentPPO(policy, venv, **common)
    if cfg.algo != "sb3-ppo":
        raise ValueError(f"sb3_model builds --algo sb3-ppo or recurrent-ppo, got {cfg.algo!r}")
    from stable_baselines3 import PPO

    return PPO(policy, venv, **common)


def _box_space(space: spaces.Space) -> spaces.Space:
    """``space`` with every Discrete and MultiBinary as the float Box of what SB3 feeds its network for it (one-hot,
    0/1)."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: _box_space(s) for k, s in space.spaces.items()})
    if isinstance(space, spaces.Discrete):
        return spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
    if isinstance(space, spaces.MultiBinary):
        return spaces.Box(0.0, 1.0, tuple(space.shape), np.float32)
    return space


def _to_box(obs, space: spaces.Space):
    """A batched observation of ``space`` as one of :func:`_box_space` (``space``)."""
    if isinstance(space, spaces.Dict):
        return {k: _to_box(obs[k], s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        idx = np.asarray(obs, np.int64).reshape(-1) - int(space.start)  # [N]
        return np.eye(int(space.n), dtype=np.float32)[idx]  # [N, n]
    if isinstance(space, spaces.MultiBinary):
        return np.asarray(obs, np.float32)
    return obs


class BoxObs(VecEnvWrapper):
    """An SB3 env whose Discrete and MultiBinary observation entries come as float Boxes (one-hot, 0/1): the
    values SB3's policies compute from them anyway, in the form ``VecFrameStack`` can stack (Boxes only)."""

    def __init__(self, venv: VecEnv) -> None:
        self._inner_space = venv.observation_space
        super().__init__(venv, observation_space=_box_space(venv.observation_space))

    def reset(self):
        return _to_box(self.venv.reset(), self._inner_space)

    def step_wait(self):
        obs, rew, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                one = info["terminal_observation"]  # one env's: batch it, convert, unbatch
                one = (
                    {k: np.asarray(v)[None] for k, v in one.items()} if isinstance(one, dict) else np.asarray(one)[None]
                )
                box = _to_box(one, self._inner_space)
                info["terminal_observation"] = {k: v[0] for k, v in box.items()} if isinstance(box, dict) else box[0]
        return _to_box(obs, self._inner_space), rew, dones, infos


def frame_stacked(venv: VecEnv, n_stack: int) -> VecEnv:
    """``venv`` (an :class:`SB3VecEnv`) giving its last ``n_stack`` observations stacked along their last axis
    (SB3's ``VecFrameStack`` over :class:`BoxObs`; image channels of a channel-last image), cleared at episode
    starts: the frame-stacking baseline of a memoryless policy."""
    from stable_baselines3.common.vec_env import VecFrameStack

    return VecFrameStack(BoxObs(venv), n_stack)


class SB3Policy:
    """An SB3 model as a rollout policy (:mod:`chronotope.envs.rollout`) on the gymnasium vector env ``venv``: the
    observations as the model had them in training (grids one-hot encoded as by :class:`SB3VecEnv`; with
    ``n_stack`` > 1 as :func:`frame_stacked` gives them, the stack cleared at episode starts), its LSTM state (if
    any) carried and cleared at episode starts, actions greedy (``deterministic``) or sampled from torch's global
    generator."""

    def __init__(self, model, venv, deterministic: bool = False, n_stack: int = 1) -> None:
        self.model, self.deterministic = model, deterministic
        self.encoder = SB3VecEnv(venv)  # its encoding only; the rollout loop steps venv itself
        self.stack = None
        if n_stack > 1:
            from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

            self.sb3_space = self.encoder.observation_space  # one-hot grids, before BoxObs
            self.stack = StackedObservations(venv.num_envs, n_stack, _box_space(self.sb3_space))
        self.state = None

    def observe(self, obs, starts: np.ndarray):
        """The model's input for the batched observation ``obs`` (``starts``: rows that begin an episode)."""
        from chronotope.envs.rollout import obs_row

        o = self.encoder._encode(obs)
        if self.stack is None:
            return o
        o = _to_box(o, self.sb3_space)
        # update() clears the rows flagged done, as VecFrameStack does at an auto-reset, and also stacks their
        # terminal observation into the info: given one of the right shape here, and not used.
        infos = [{"terminal_observation": obs_row(o, i)} if s else {} for i, s in enumerate(starts)]
        stacked, _ = self.stack.update(o, np.asarray(starts, bool), infos)
        return stacked

    def __call__(self, obs, starts: np.ndarray, seeds: list) -> np.ndarray:
        act, self.state = self.model.predict(
            self.observe(obs, starts), state=self.state, episode_start=starts, deterministic=self.deterministic
        )
        return act


def evaluate_sb3(
    run,
    episodes: int = 100,
    num_envs: int = 8,
    seed: int = 10_000,
    deterministic: bool = False,
    out=None,
    env_kwargs: str = "{}",
    progress: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluates an SB3 run (``sb3_model.zip`` of ``--algo sb3-ppo`` / ``recurrent-ppo``) as
    :func:`chronotope.agents.evaluate.evaluate` does an ActorCritic run: the run's env, kwargs and wrappers,
    evaluation episodes ``seed + k`` run to their ends by :func:`chronotope.envs.rollout.iter_episodes`, sampled
    actions (torch's generator seeded ``seed``, shared by the lanes) unless ``deterministic``, and the same files
    (``episodes.jsonl``, ``summary.json``, ``summary.md``; no trajectories) in ``out`` (default ``<run>/eval``).
    Returns the summary (measure -> mean, std, ci95, n).
    """
    import json
    from pathlib import Path

    import torch

    from chronotope.agents.config import TrainConfig
    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.evaluate import (
        EvalConfig,
        episode_progress,
        episode_record,
        summarize_episodes,
        write_results,
    )
    from chronotope.envs.rollout import iter_episodes

    EvalConfig(run=run, episodes=episodes, num_envs=num_envs, env_kwargs=env_kwargs).validate()

    run = Path(run)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    if cfg.algo not in ("sb3-ppo", "recurrent-ppo"):
        raise ValueError(f"{str(run)!r} is a {cfg.algo!r} run, not an SB3 one (use chronotope eval)")
    if cfg.algo == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    model = Algo.load(run / "sb3_model.zip", device="cpu")
    kw = {**cfg.env_kwargs_dict(), **json.loads(env_kwargs)}
    venv = make_vector_env(cfg.env, num_envs, kw, cfg.wrappers, cfg.seed)
    policy = SB3Policy(model, venv, deterministic)
    torch.manual_seed(seed)
    bar = episode_progress(episodes, progress)
    records = []
    for r in iter_episodes(venv, policy, [seed + k for k in range(episodes)]):
        records.append(r)
        bar.update(1)
    bar.close()
    venv.close()
    done_eps = [episode_record(r) for r in sorted(records, key=lambda r: r.index)]
    summary = summarize_episodes(done_eps)
    write_results(Path(out or (run / "eval")), done_eps, summary)
    return summary
