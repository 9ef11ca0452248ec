"""The trajectory file: one module owns its format, writing (:func:`save_trajectories`) and reading
(:func:`load_episode`).

Written by ``chronotope eval`` (``<run>/eval/trajectories.npz``) and by
:class:`~chronotope.envs.wrappers.recording.TrajectoryRecorder`; read by ``chronotope viz`` and the demo. An npz:

- ``poses`` float [P, 3] (x, y, yaw) of all episodes concatenated, ``pose_index`` int [E + 1] offsets;
  an episode of T steps has T + 1 poses (after reset, then after every step).
- ``actions`` [S, A] and ``rewards`` [S] concatenated, ``step_index`` int [E + 1] offsets.
- ``scene_id`` int [E]: index into the run's scene pool.

Optional arrays, written when the episodes carry them (the recorder's do; readers must not require them):

- ``scene_seed`` int [E] (-1 unknown), ``goal_position`` float [E, 2] (NaN unknown), ``instruction`` str [E].
- ``scenes_json`` str [U] (``SceneSpec.to_json`` of each distinct scene) and ``scene_ref`` int [E] into it.
- ``collided`` bool [S]: the step's forward motion hit an obstacle.
- ``rgb`` uint8 [P, H, W, 3], ``depth`` float16 [P, H, W], ``semantic`` int32 [P, H, W], ``camera_pose`` float32
  [P, 4, 4] aligned with ``poses``; scalars ``hfov`` (degrees) and ``max_depth`` (m).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FRAME_KEYS = ("rgb", "depth", "semantic", "camera_pose")


@dataclass
class EpisodeTrajectory:
    """One episode read from a trajectory file.

    Attributes:
        index: episode number in the file.
        poses: float64 [T + 1, 3] (x, y, yaw).
        actions: [T, A] actions.
        rewards: float64 [T].
        scene_id: index into the run's scene pool (-1 unknown).
        scene_seed: generator seed of the scene, None when unknown.
        goal: float64 [2] goal position, None when unknown.
        collided: bool [T] per-step collisions, None when unknown.
        instruction: instruction or cue text ("" when none).
        scene_json: the scene as JSON, None when not stored.
        frames: recorded observations aligned with ``poses`` (keys among ``FRAME_KEYS``).
        hfov: horizontal field of view of recorded frames (degrees), None without frames.
        max_depth: depth clip of recorded frames (m), None without frames.
        source: file it came from.
    """

    index: int
    poses: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    scene_id: int = -1
    scene_seed: int | None = None
    goal: np.ndarray | None = None
    collided: np.ndarray | None = None
    instruction: str = ""
    scene_json: str | None = None
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    hfov: float | None = None
    max_depth: float | None = None
    source: Path | None = None

    @property
    def num_steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def start(self) -> np.ndarray:
        """(x, y) float64 [2] of the first pose."""
        return self.poses[0, :2]

    def replace(self, **kw: Any) -> EpisodeTrajectory:
        return dataclasses.replace(self, **kw)


def resolve_trajectory_path(target: str | Path) -> Path:
    """A trajectory npz from a file path or a run folder (``<run>/eval/trajectories.npz``)."""
    p = Path(target)
    if p.is_dir():
        for cand in (p / "eval" / "trajectories.npz", p / "trajectories.npz"):
            if cand.is_file():
                return cand
        raise ValueError(f"run folder {str(p)!r} has no eval/trajectories.npz (run `chronotope eval {p}` first)")
    if not p.is_file():
        raise ValueError(f"trajectory file or run folder {str(p)!r} does not exist")
    return p


def num_episodes(target: str | Path) -> int:
    with np.load(resolve_trajectory_path(target), allow_pickle=False) as z:
        return int(len(z["pose_index"]) - 1)


def load_episode(target: str | Path, episode: int = 0) -> EpisodeTrajectory:
    """Reads episode ``episode`` of a trajectory file or run folder.

    Raises:
        ValueError: unknown file, episode out of range, or an episode without poses.
    """
    path = resolve_trajectory_path(target)
    with np.load(path, allow_pickle=False) as z:
        for key in ("poses", "pose_index", "actions", "rewards", "step_index", "scene_id"):
            if key not in z:
                raise ValueError(f"{str(path)!r} is not a trajectory file: missing array {key!r}")
        n = len(z["pose_index"]) - 1
        if not (0 <= episode < n):
            raise ValueError(f"episode {episode} out of range: {str(path)!r} holds {n} episode(s)")
        p0, p1 = int(z["pose_index"][episode]), int(z["pose_index"][episode + 1])
        s0, s1 = int(z["step_index"][episode]), int(z["step_index"][episode + 1])
        ep = EpisodeTrajectory(
            index=episode,
            poses=np.asarray(z["poses"][p0:p1], np.float64).reshape(-1, 3),
            actions=np.asarray(z["actions"][s0:s1]),
            rewards=np.asarray(z["rewards"][s0:s1], np.float64),
            scene_id=int(z["scene_id"][episode]),
            source=path,
        )
        if "scene_seed" in z and int(z["scene_seed"][episode]) >= 0:
            ep.scene_seed = int(z["scene_seed"][episode])
        if "goal_position" in z and np.isfinite(z["goal_position"][episode]).all():
            ep.goal = np.asarray(z["goal_position"][episode], np.float64)
        if "collided" in z:
            ep.collided = np.asarray(z["collided"][s0:s1], bool)
        if "instruction" in z:
            ep.instruction = str(z["instruction"][episode])
        if "scenes_json" in z and "scene_ref" in z:
            ep.scene_json = str(z["scenes_json"][int(z["scene_ref"][episode])])
        for key in FRAME_KEYS:
            if key in z:
                ep.frames[key] = np.asarray(z[key][p0:p1])
        if "hfov" in z:
            ep.hfov = float(z["hfov"])
        if "max_depth" in z:
            ep.max_depth = float(z["max_depth"])
    check_episode(ep)
    return ep


def check_episode(ep: EpisodeTrajectory) -> None:
    """Raises ValueError when an episode cannot be drawn (no poses, non-finite poses)."""
    poses = np.asarray(ep.poses)
    if poses.ndim != 2 or poses.shape[1] != 3:
        raise ValueError(f"episode {ep.index}: poses must have shape [T, 3], got {poses.shape}")
    if poses.shape[0] == 0:
        raise ValueError(f"episode {ep.index} is an empty trajectory (0 poses) in {str(ep.source)!r}: nothing to draw")
    if not np.isfinite(poses).all():
        bad = int(np.flatnonzero(~np.isfinite(poses).all(1))[0])
        raise ValueError(f"episode {ep.index}: pose {bad} is not finite: {poses[bad].tolist()}")


def save_trajectories(
    path: str | Path, episodes: list[dict[str, Any]], hfov: float | None = None, max_depth: float | None = None
) -> Path:
    """Writes ``episodes`` (atomically) in the format above; returns the path.

    Each episode is a dict with ``poses`` [T + 1, 3], ``actions`` [T, ...], ``rewards`` [T], ``scene_id`` and,
    optionally, ``scene_seed``, ``goal_position`` [2], ``instruction``, ``scene_json``, ``collided`` [T] and
    ``frames`` (arrays keyed by :data:`FRAME_KEYS`, aligned with the poses; ``hfov`` / ``max_depth`` describe them).
    """
    path = Path(path)
    e = len(episodes)
    poses = [np.asarray(t["poses"], np.float64).reshape(-1, 3) for t in episodes]
    acts = [
        np.asarray(t["actions"]).reshape(len(t["rewards"]), -1) if len(t["rewards"]) else np.zeros((0, 1))
        for t in episodes
    ]
    arrays: dict[str, np.ndarray] = {
        "poses": np.concatenate(poses) if poses else np.zeros((0, 3)),
        "pose_index": np.cumsum([0] + [len(p) for p in poses]),
        "actions": np.concatenate(acts) if acts else np.zeros((0, 1)),
        "rewards": np.concatenate([np.asarray(t["rewards"], float) for t in episodes]) if episodes else np.zeros(0),
        "step_index": np.cumsum([0] + [len(t["rewards"]) for t in episodes]),
        "scene_id": np.asarray([t["scene_id"] for t in episodes], int),
    }
    if episodes and all("collided" in ep for ep in episodes):  # a recorder's episodes: the optional arrays
        arrays["scene_seed"] = np.asarray([ep.get("scene_seed", -1) for ep in episodes], np.int64).reshape(e)
        arrays["goal_position"] = np.asarray(
            [ep.get("goal_position", (np.nan, np.nan)) for ep in episodes], np.float64
        ).reshape(e, 2)
        arrays["instruction"] = np.asarray([ep.get("instruction", "") for ep in episodes], dtype=str).reshape(e)
        arrays["collided"] = np.concatenate([ep["collided"] for ep in episodes]).astype(bool)
        scenes = [ep.get("scene_json") for ep in episodes]
        if all(s is not None for s in scenes):
            table = sorted(set(scenes))
            arrays["scenes_json"] = np.asarray(table, dtype=str)
            arrays["scene_ref"] = np.asarray([table.index(s) for s in scenes], np.int64)
    keys = set.intersection(*(set(ep.get("frames", {})) for ep in episodes)) if episodes else set()
    for k in sorted(keys):
        arrays[k] = np.concatenate([ep["frames"][k] for ep in episodes])
    if keys:
        if hfov is None or max_depth is None:
            raise ValueError("episodes with frames need hfov and max_depth")
        arrays["hfov"] = np.float64(hfov)
        arrays["max_depth"] = np.float64(max_depth)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path
