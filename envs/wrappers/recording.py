"""``TrajectoryRecorder``: a gymnasium wrapper writing nav-env episodes to the trajectory file of ``chronotope eval``.

The file (format, writing and reading: :mod:`chronotope.envs.trajectory`) holds poses, actions, rewards and scene
ids, and from this recorder also the optional arrays that let a viewer rebuild the episode without the run's
config: scene JSON, scene seeds, goal positions, instructions, per-step collisions and, with
``record_frames=True``, the observed RGB / depth / semantic frames and camera poses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from chronotope.envs.trajectory import save_trajectories


class TrajectoryRecorder(gym.Wrapper):
    """Records every finished episode of a navigation env (any ``chronotope/*`` nav id, single env).

    An episode is kept when it terminates or is truncated; one cut short by ``reset()`` is dropped.

    Args:
        env: a nav env (``gym.make("chronotope/PointNav-v0", ...)``), possibly wrapped.
        path: npz written by :meth:`save` and on :meth:`close` (None: call :meth:`save` with a path).
        record_frames: also store observed frames (rgb uint8, depth float16, semantic int32) and camera poses.
            In ``state`` mode the RGB frame comes from ``env.render()``.
        store_scene: store each distinct scene's JSON so the file is self-contained.
        max_episodes: stop recording after this many episodes (None: no limit).
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | Path | None = None,
        record_frames: bool = False,
        store_scene: bool = True,
        max_episodes: int | None = None,
    ) -> None:
        super().__init__(env)
        if max_episodes is not None and max_episodes <= 0:
            raise ValueError(f"max_episodes must be positive or None, got {max_episodes!r}")
        if not hasattr(env.unwrapped, "core"):
            raise ValueError(f"TrajectoryRecorder needs a chronotope nav env, got {env.unwrapped!r}")
        self.path = None if path is None else Path(path)
        self.record_frames = bool(record_frames)
        self.store_scene = bool(store_scene)
        self.max_episodes = max_episodes
        self.episodes: list[dict[str, Any]] = []
        self._cur: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ recording
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._cur = None
        if self.max_episodes is None or len(self.episodes) < self.max_episodes:
            core = self.env.unwrapped.core
            ep = core.episodes[0]
            scene = self.env.unwrapped.scene
            instr = info.get("instruction", "") if isinstance(info, dict) else ""
            if not instr and ep is not None:
                instr = ep.extra.get("instruction", "") or ep.extra.get("cue", "")
            self._cur = {
                "poses": [],
                "actions": [],
                "rewards": [],
                "collided": [],
                "frames": {},
                "scene_id": int(info.get("scene_id", -1)),
                "scene_seed": -1 if scene.seed is None else int(scene.seed),
                "scene_json": scene.to_json() if self.store_scene else None,
                "goal_position": np.asarray(core.goal_position[0], np.float64).copy(),
                "instruction": str(instr),
                "_collisions": float(info.get("collisions", 0.0)),
            }
            self._record(obs, info)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        cur = self._cur
        if cur is not None:
            cur["actions"].append(np.asarray(action).reshape(-1))
            cur["rewards"].append(float(reward))
            # The collisions measure counts; a step collided when the count went up.
            n_coll = float(info.get("collisions", cur["_collisions"]))
            cur["collided"].append(n_coll > cur["_collisions"])
            cur["_collisions"] = n_coll
            self._record(obs, info)
            if terminated or truncated:
                self.episodes.append(self._finish(cur))
                self._cur = None
        return obs, reward, terminated, truncated, info

    def _record(self, obs: dict, info: dict) -> None:
        cur = self._cur
        cur["poses"].append(np.asarray(info["agent_pose"], np.float64).reshape(3))
        if not self.record_frames:
            return
        fr = cur["frames"]
        if "rgb" in obs:
            fr.setdefault("rgb", []).append(np.asarray(obs["rgb"], np.uint8))
        else:
            fr.setdefault("rgb", []).append(np.asarray(self.env.unwrapped.render(), np.uint8))
        if "depth" in obs:
            fr.setdefault("depth", []).append(np.asarray(obs["depth"], np.float32)[..., 0].astype(np.float16))
        if "semantic" in obs:
            fr.setdefault("semantic", []).append(np.asarray(obs["semantic"], np.int32)[..., 0])
        fr.setdefault("camera_pose", []).append(np.asarray(info["camera_pose"], np.float32))

    def _finish(self, cur: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in cur.items() if not k.startswith("_")}
        out["episode"] = len(self.episodes)
        out["poses"] = np.asarray(cur["poses"], np.float64).reshape(-1, 3)
        out["actions"] = np.asarray(cur["actions"]).reshape(len(cur["rewards"]), -1)
        out["rewards"] = np.asarray(cur["rewards"], np.float64)
        out["collided"] = np.asarray(cur["collided"], bool)
        out["frames"] = {k: np.stack(v) for k, v in cur["frames"].items()}
        return out

    # ------------------------------------------------------------------------------------------ writing
    def save(self, path: str | Path | None = None) -> Path:
        """Writes the finished episodes (atomically) and returns the path."""
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("no output path: pass one to save() or to TrajectoryRecorder(path=...)")
        path.parent.mkdir(parents=True, exist_ok=True)
        core = self.env.unwrapped.core
        return save_trajectories(path, self.episodes, hfov=core.intrinsics.hfov_deg, max_depth=core.max_depth)

    def close(self) -> None:
        if self.path is not None and self.episodes:
            self.save()
        super().close()
