"""``NavEnv``: a single navigation environment, the N = 1 view of the batched :class:`NavCore`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from chronotope.envs.nav.core import NavConfig, NavCore
from chronotope.envs.sim.kinematic import ACTION_NAMES


class NavEnv(gym.Env):
    """First-person navigation in generated apartments (habitat / VLN-CE conventions).

    Task sheet (the task object adds its own; see ``PointNavTask`` / ``ObjectNavTask``):

    - Actions: Discrete(4): 0 STOP (ends the episode), 1 MOVE_FORWARD 0.25 m, 2 TURN_LEFT 15 deg,
      3 TURN_RIGHT 15 deg. Forward motion slides along obstacles and counts a collision.
    - Observations (``obs_mode``): ``rgbd`` -> ``rgb`` uint8 [H, W, 3], ``depth`` float32 [H, W, 1] metres in
      [0, max_depth] (``max_depth`` where no surface is hit within it, as in the arm envs; + ``semantic`` int32
      [H, W, 1] instance ids with ``semantic=True``); ``depth`` -> depth only;
      ``state`` -> ``pose`` (x, y, yaw), ``goal`` (distance, angle to the goal from the agent), ``objects``
      (K nearest objects: x forward, y left, category id, distance), ``range`` (16 rangefinder distances to walls
      and furniture, first straight ahead, counter-clockwise, capped at 5 m). Task sensors are added in every mode.
    - Info: the task's measures (every task: distance_to_goal, success, path_length, steps; PointNav, ObjectNav
      and VLN add oracle_success, spl, soft_spl, collisions; the memory tasks their own, see the README's table),
      ``reward_<term>`` for each reward term (they sum to the reward), ``camera_pose`` (cam-to-world 4x4
      of the observed frame), ``agent_pose`` (x, y, yaw), ``scene_id``.
    - Episodes end on STOP (terminated); the time limit comes from ``max_episode_steps`` at registration.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        kwargs.pop("max_episode_steps", None)
        self.render_mode = render_mode
        self.config = NavConfig.from_kwargs(**kwargs)
        self.core = NavCore(self.config, 1)
        self.observation_space = self.core.observation_space()
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        self._last_obs: dict[str, np.ndarray] | None = None
        self._ended = False  # the episode terminated: the next step needs a reset first

    @property
    def intrinsics(self):
        return self.core.intrinsics

    @property
    def max_depth(self) -> float:
        return self.core.max_depth

    @property
    def task(self):
        return self.core.task

    @property
    def scene(self):
        """The ``SceneSpec`` of the current episode."""
        return self.core.scenes[int(self.core.sim.scene[0])]

    @property
    def episode(self):
        return self.core.episodes[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.core.reset_envs(np.array([0]), [self.np_random], [seed])
        obs = self._unbatch(self.core.observe())
        self._last_obs = obs
        self._ended = False
        return obs, self._info(None)

    def step(self, action):
        if self.core.episodes[0] is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has terminated: call reset() before step()")
        a = np.asarray(action)
        if a.shape not in ((), (1,)):
            raise ValueError(f"expected a single action (shape () or (1,)), got shape {a.shape}: {action!r}")
        reward, terms, terminated = self.core.step(a.reshape(1), [self.np_random])
        obs = self._unbatch(self.core.observe())
        self._last_obs = obs
        self._ended = bool(terminated[0])
        return obs, float(reward[0]), self._ended, False, self._info(terms)

    def _info(self, terms) -> dict[str, Any]:
        info = self.core.info(terms)
        return {k: (v[0].item() if v[0].ndim == 0 else v[0]) for k, v in info.items()}

    @staticmethod
    def _unbatch(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in obs.items()}

    def render(self):
        """An RGB frame of the agent's camera (rendered even in non-pixel observation modes)."""
        if self.core.episodes[0] is None:
            return None
        if self._last_obs is not None and "rgb" in self._last_obs:
            return self._last_obs["rgb"]
        out = self.core.renderer.render(self.core.camera_poses(), self.core.sim.scene)
        return out.rgb[0].cpu().numpy()

    def close(self) -> None:
        self.core.close()
