"""``RobotVectorEnv``: N MuJoCo arm worlds stepped in one batched call, with same-step auto-reset.

``gymnasium.make_vec("chronotope/<ArmTask>-v0", num_envs=N, vectorization_mode="vector_entry_point")`` builds one
(every arm id registers a ``vector_entry_point``, see :mod:`chronotope.envs.robot.registration`).

Design. The vector env holds N instances of the task's single env class and runs their own code for everything
per world (action to actuator targets with the IK, scene updates, evaluation, observations, reset sampling), so a
world behaves exactly as a single env does. Each world keeps its own ``MjModel``: the tasks edit the model during
an episode (cue panel and go lamp colours; CountPress moves its static button and pad bodies by editing
``body_pos``), so one model cannot be shared. What the batch does at once is the physics: after the N actions
are turned into controls, :meth:`RobotVectorEnv._step_physics` advances all N worlds by ``frame_skip`` substeps.

Physics stepping, chosen by measurement: a plain loop of ``mujoco.mj_step(model_i, data_i, nstep=frame_skip)``
over the N ``MjData``, rather than ``mujoco.rollout`` (MuJoCo's threaded rollout over a list of models). On this
project's machine (2 CPU cores, both busy with other jobs, load 3-4), PickPlace scene, N = 16, 20 substeps per env
step: a standalone timing (median of 20) gave the loop 5.5 ms per batched step (2,900 env steps/s), the rollout
5.8 ms with one thread (2,780/s) and 8.5 ms with two (1,880/s); ``chronotope bench robot --quick`` (which times
both, the rollout including the ``mj_getState`` / ``mj_setState`` copies around each call) gave the rollout 0.85x
the loop's rate with one thread and 0.60x with two. The rollout does not hand back the solver's warm start either,
so its worlds drift from the single env's (max |qpos| difference 5e-11 to 6e-9 after 10 env steps), where the
loop is bit-identical. Threads may pay on a machine with idle cores; re-measure there with the bench.
The IK, observations and task logic (about half of a step: physics took 39% of a PickPlace step at N = 16 under
cProfile, 56% of a CueRecallPick one) stay per world in Python, so against a ``SyncVectorEnv`` of 16 single envs
playing the same episodes the batched env measured 1.10-1.25x the env steps/s over the four tasks (bench robot
--quick, same load): it saves the wrappers, the per-env batching of infos and the copies of observations.

Rendering (``obs_mode="rgbd"``): the worlds' cameras are rendered after all N have stepped (or reset), so that
they can be rendered together. With ``camera_backend="gl"`` (and for ``render()``) one ``mujoco.Renderer`` serves
all N worlds, one after another; each world updates the renderer's scene from its own model and data, so the pixels
equal the single env's. With ``camera_backend="raycast"`` the worlds' ray casts run on a thread pool (one
``mj_multiRay`` per camera, which releases the GIL), again equal to the single env's pixels.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from chronotope.envs.robot.env import RobotEnv
from chronotope.envs.robot.registration import ROBOT_ENV_SPECS, vector_class_name


class RobotVectorEnv(VectorEnv):
    """Batched twin of an arm task (same kwargs, same task sheet: see the task's single env class).

    Sub-environment i reset with ``seed + i`` plays exactly the episode a single env (``gymnasium.make``) reset
    with that seed plays, step for step, bit for bit. Auto-reset is SAME_STEP: when an episode ends, the returned
    observation and that row of the info already belong to the next episode (its reset info), while
    ``info["final_obs"]`` (object array [N] of observation dicts) and ``info["final_info"]`` (a batched info dict:
    arrays [N, ...] with ``_key`` masks) hold the finished episodes' last observations and step infos, masked by
    ``info["_final_obs"]`` / ``info["_final_info"]``: Gymnasium 1.x's own layout, built by the same
    ``VectorEnv._add_info`` a ``SyncVectorEnv`` uses, so keys, masks, values and dtypes are what a ``SyncVectorEnv``
    of single envs gives (read rows with :func:`chronotope.envs.vector_info.final_info_row`). Time limits come from
    ``max_episode_steps`` (``make_vec`` passes the registered one): an episode is truncated when its step count
    reaches it, as gymnasium's ``TimeLimit`` does (also on a terminating step).

    Observations: a Dict of the single env's keys, each batched [N, ...]. Actions: float [N, action_dim] in
    [-1, 1]; a wrong shape, a non-finite or an out-of-range entry raises ValueError naming it, before any world
    steps. Unknown kwargs raise the single env's ValueError.

    Attributes:
        envs: the N worlds (instances of :attr:`env_entry`'s class), e.g. for ``controllable()`` or the oracles.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 25,
    }
    env_entry: ClassVar[str] = ""
    """``module:Class`` of the task's single env (set by the per-task classes made at the end of this module)."""

    def __init__(
        self, num_envs: int = 1, render_mode: str | None = None, max_episode_steps: int | None = None, **kwargs: Any
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps <= 0
        ):
            raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        if not self.env_entry:
            raise TypeError("RobotVectorEnv is abstract: use a task's subclass (e.g. ReachVectorEnv) or make_vec")
        env_cls = load_env_creator(self.env_entry)
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.envs: list[RobotEnv] = [env_cls(render_mode=render_mode, **kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.cfg = first.cfg
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._renderer: Any = None
        self._rgbd = self.cfg.obs_mode == "rgbd"
        self._pool: ThreadPoolExecutor | None = None
        if self._rgbd:
            for env in self.envs:
                env.defer_images = True  # rendered for all worlds at once, after the step (_render_rows)
            if self.cfg.camera_backend == "raycast" and self.num_envs > 1:
                self._pool = ThreadPoolExecutor(max_workers=min(self.num_envs, os.cpu_count() or 1))
        if (self._rgbd and self.cfg.camera_backend == "gl") or render_mode == "rgb_array":
            # One GL context for all worlds; every world renders from its own model (RobotEnv._update_render_scene).
            self._renderer = first._get_renderer()
            for env in self.envs[1:]:
                env._renderer = self._renderer
        self._obs_rows: list[dict[str, np.ndarray]] = []
        self._started = False

    # ------------------------------------------------------------------------------------------ gym vector API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Resets every world, or with ``options={"reset_mask": mask}`` (bool [N], as Gymnasium's
        ``SyncVectorEnv``) only the masked ones (seeded from their entries of ``seed``); the observation covers all
        worlds either way, the info only the reset ones. An int seed s seeds world i with s + i; None keeps each
        world's generator once it has one (as ``gymnasium.Env.reset``)."""
        if self.closed:
            raise RuntimeError("this vector env is closed")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(
                    f"reset_mask must be a bool array of shape ({self.num_envs},) with a True entry, got {mask!r}"
                )
            if not self._started:
                raise RuntimeError("call reset() on every environment before a masked reset")
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}: {seed!r}")
        rows = range(self.num_envs) if mask is None else np.flatnonzero(mask)
        if not self._started:
            self._obs_rows = [{} for _ in range(self.num_envs)]
        infos: dict[str, Any] = {}
        for i in rows:
            self._obs_rows[i], info = self.envs[i].reset(seed=seeds[i], options=options or None)
            infos = self._add_info(infos, info, int(i))
        self._render_rows(list(rows))
        self._started = True
        return self._batch_obs(), infos

    def step(self, actions: Any):
        """Steps all N worlds with ``actions`` [N, action_dim]; see the class docstring for auto-reset and info."""
        if self.closed:
            raise RuntimeError("this vector env is closed")
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = self._check_actions(actions)
        held = [env._apply_action(a[i]) for i, env in enumerate(self.envs)]
        self._step_physics()
        rewards = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, np.bool_)
        truncated = np.zeros(self.num_envs, np.bool_)
        limit = self.max_episode_steps
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, rewards[i], terminated[i], _, info = env._finish_step(held[i])
            truncated[i] = limit is not None and env.step_count >= limit
            if terminated[i] or truncated[i]:
                if self._rgbd:
                    obs.update(env.render_cameras())  # the last frame, before the reset changes the world
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = env.reset()
            self._obs_rows[i] = obs
            infos = self._add_info(infos, info, i)
        self._render_rows(range(self.num_envs))
        return self._batch_obs(), rewards, terminated, truncated, infos

    def _render_rows(self, rows: Any) -> None:
        """Adds the camera keys of worlds ``rows`` to their observation rows (``rgbd``): on the thread pool with the
        ray-cast cameras (``mj_multiRay`` releases the GIL; each world owns its cameras' buffers), one world after
        another through the shared GL context otherwise."""
        if not self._rgbd:
            return
        rows = list(rows)
        if self._pool is not None:
            images = list(self._pool.map(lambda i: self.envs[i].render_cameras(), rows))
        else:
            images = [self.envs[i].render_cameras() for i in rows]
        for i, img in zip(rows, images):
            self._obs_rows[i].update(img)

    def _step_physics(self) -> None:
        """Advances every world by ``frame_skip`` physics substeps (the controls are already in ``data.ctrl``): one
        ``mj_step`` call per world, the faster and bit-exact choice measured in the module docstring."""
        for env in self.envs:
            mujoco.mj_step(env.model, env.data, nstep=env.cfg.frame_skip)

    def _check_actions(self, actions: Any) -> np.ndarray:
        """The actions as float64 [N, action_dim]; ValueError naming the bad shape, rows and values otherwise."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"actions shape {a.shape}; expected {self.action_space.shape} (num_envs, action_dim) "
                f"(actions={actions!r})"
            )
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        if bad.size:
            raise ValueError(f"actions of env(s) {bad.tolist()} have non-finite entries: {a[bad].tolist()}")
        bad = np.flatnonzero(((a < -1.0) | (a > 1.0)).any(axis=1))
        if bad.size:
            raise ValueError(f"actions of env(s) {bad.tolist()} out of range [-1, 1]: {a[bad].tolist()}")
        return a

    def _batch_obs(self) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in self._obs_rows]) for k in self.single_observation_space.spaces}

    def render(self) -> tuple[np.ndarray | None, ...]:
        """Every world's front camera RGB [H, W, 3] uint8 (``render_mode='rgb_array'``), as ``SyncVectorEnv``."""
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Calls method ``name`` of every world (or reads the attribute), as ``SyncVectorEnv.call``."""
        out = []
        for env in self.envs:
            f = getattr(env, name)
            out.append(f(*args, **kwargs) if callable(f) else f)
        return tuple(out)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """As ``SyncVectorEnv.get_attr``: :meth:`call` (so a method is called)."""
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Sets attribute ``name`` of every world: one value each from a list/tuple of N, else the same value."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} values for {name!r}, got {len(values)}")
        for env, v in zip(self.envs, values):
            setattr(env, name, v)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env._renderer = None  # the shared renderer is closed once, below
            env.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _vector_class(env_id: str, entry_point: str) -> type[RobotVectorEnv]:
    name = vector_class_name(entry_point)
    doc = f"N worlds of ``{env_id}`` (:class:`~{entry_point.replace(':', '.')}`)."
    return type(name, (RobotVectorEnv,), {"env_entry": entry_point, "__doc__": doc, "__module__": __name__})


# One batched class per registered arm task (ReachVectorEnv, ..., the names registration gives as vector entry points)
for _id, _spec in ROBOT_ENV_SPECS.items():
    _cls = _vector_class(_id, _spec["entry_point"])
    globals()[_cls.__name__] = _cls
del _id, _spec, _cls
