"""A gymnasium wrapper that lets any agent (stable-baselines3 included) carry a Gaussian scene memory.

Env contract (the navigation envs of ``envs/nav`` in ``obs_mode="rgbd"``): a Dict observation with ``"rgb"``
uint8 ``[H, W, 3]`` and ``"depth"`` float32 ``[H, W, 1]`` metres (``max_depth`` where nothing was hit);
``info["camera_pose"]`` is the cam-to-world ``[4, 4]`` of the frame just observed (from ``reset`` and ``step``);
``env.unwrapped.intrinsics`` is a ``CameraIntrinsics`` and ``env.unwrapped.max_depth`` a float.
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import torch

from chronotope.memory.gaussian.encoders import FeatureEncoder, make_encoder
from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig


class GaussianMemoryWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Keeps one :class:`GaussianSceneMemory` per episode and adds its summary as ``obs[key]``.

    On ``reset`` the memory is cleared and the first frame added; afterwards every ``keyframe_every``-th step's
    frame is added (densify + ``cfg.steps_per_keyframe`` optimisation steps). Every observation then gets
    ``memory.summary(camera_pose, grid)`` (float32 ``[8 + D + 2 * grid^2]``: fill, bank fill, Gaussian centroid
    and spread in world metres, the mean decoded feature, a ``grid x grid`` depth / alpha render of the memory at
    the current pose), clipped into the declared Box: fills, depth and alpha lie in ``[0, 1]``; centroid,
    spread and features are unbounded. The memory is reachable as ``wrapper.memory``.

    Args:
        env: a navigation env with ``rgb`` and ``depth`` observations (see the module docstring).
        cfg: memory settings; ``max_depth`` is taken from the env. Defaults favour speed (a small capacity,
            few steps) because this runs inside the environment step.
        encoder: ``None`` (RGB-D only, no feature part: D = 0), an encoder name for
            :func:`~chronotope.memory.gaussian.encoders.make_encoder`, or a :class:`FeatureEncoder`.
        keyframe_every: add a frame every k steps (>= 1).
        grid: side of the summary's depth / alpha render.
        key: observation key to add.
        device: torch device of the memory.
    """

    def __init__(
        self,
        env: gym.Env,
        cfg: SceneMemoryConfig | None = None,
        encoder: str | FeatureEncoder | None = None,
        keyframe_every: int = 4,
        grid: int = 8,
        key: str = "gaussian_memory",
        device: torch.device | str = "cpu",
    ) -> None:
        # recorded so that gymnasium can re-create the wrapped env from its spec (check_env does)
        gym.utils.RecordConstructorArgs.__init__(
            self, cfg=cfg, encoder=encoder, keyframe_every=keyframe_every, grid=grid, key=key, device=device
        )
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or not {"rgb", "depth"} <= set(space.spaces):
            raise ValueError(f"GaussianMemoryWrapper needs a Dict observation with 'rgb' and 'depth', got {space}")
        if key in space.spaces:
            raise ValueError(f"observation key {key!r} already exists")
        if int(keyframe_every) < 1:
            raise ValueError(f"keyframe_every must be >= 1, got {keyframe_every!r}")
        if int(grid) < 1:
            raise ValueError(f"grid must be >= 1, got {grid!r}")
        self.key, self.keyframe_every, self.grid = key, int(keyframe_every), int(grid)
        self.max_depth = float(env.unwrapped.max_depth)
        cfg = cfg or SceneMemoryConfig(capacity=4000, steps_per_keyframe=3, init_stride=4, max_keyframes=16)
        cfg = replace(cfg, max_depth=self.max_depth)
        if isinstance(encoder, str):
            encoder = make_encoder(encoder, device=device)
        self.memory = GaussianSceneMemory(env.unwrapped.intrinsics, cfg, encoder=encoder, device=device)
        n = self.memory.summary_size(self.grid)
        d = self.memory.feature_dim
        lo = np.full(n, -np.inf, np.float32)
        hi = np.full(n, np.inf, np.float32)
        lo[:2], hi[:2] = 0.0, 1.0  # fills
        lo[5:8] = 0.0  # spread
        lo[8 + d :], hi[8 + d :] = 0.0, 1.0  # depth / max_depth and alpha renders
        self._lo, self._hi = lo, hi
        self.observation_space = gym.spaces.Dict({**space.spaces, key: gym.spaces.Box(lo, hi, (n,), np.float32)})
        self._steps = 0

    @staticmethod
    def _pose(info: dict) -> np.ndarray:
        if "camera_pose" not in info:
            raise ValueError(f"GaussianMemoryWrapper needs info['camera_pose'] (cam-to-world 4x4); keys: {list(info)}")
        pose = np.asarray(info["camera_pose"], np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ValueError(f"info['camera_pose'] must be a finite [4, 4] matrix, got {pose.tolist()}")
        return pose

    def _observe(self, obs: dict, info: dict, add: bool) -> dict:
        pose = self._pose(info)
        if add:
            depth = np.asarray(obs["depth"], np.float32)
            self.memory.add_frame(obs["rgb"], depth[..., 0] if depth.ndim == 3 else depth, pose)
        s = self.memory.summary(pose, self.grid).cpu().numpy().astype(np.float32)
        # rendered depth can exceed max_depth slightly where blobs straddle the far clip: keep obs in the Box
        return {**obs, self.key: np.clip(s, self._lo, self._hi)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.memory.reset()
        self._steps = 0
        return self._observe(obs, info, add=True), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        return self._observe(obs, info, add=self._steps % self.keyframe_every == 0), reward, terminated, truncated, info
