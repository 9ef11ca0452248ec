"""Reading trajectory files (``chronotope eval`` and :class:`~chronotope.envs.wrappers.recording.TrajectoryRecorder`).

The file format is the npz of :func:`chronotope.agents.evaluate.save_trajectories`:

- ``poses`` float [P, 3] (x, y, yaw) of all episodes concatenated, ``pose_index`` int [E + 1] offsets;
  an episode of T steps has T + 1 poses (after reset, then after every step).
- ``actions`` [S, A] and ``rewards`` [S] concatenated, ``step_index`` int [E + 1] offsets.
- ``scene_id`` int [E]: index into the run's scene pool.

Optional arrays written by the recording wrapper (readers must not require them):

- ``scene_seed`` int [E] (-1 unknown), ``goal_position`` float [E, 2] (NaN unknown), ``instruction`` str [E].
- ``scenes_json`` str [U] (``SceneSpec.to_json`` of each distinct scene) and ``scene_ref`` int [E] into it.
- ``collided`` bool [S]: the step's forward motion hit an obstacle.
- ``rgb`` uint8 [P, H, W, 3], ``depth`` float16 [P, H, W], ``semantic`` int32 [P, H, W], ``camera_pose`` float32
  [P, 4, 4] aligned with ``poses``; scalars ``hfov`` (degrees) and ``max_depth`` (m).
"""

from __future__ import annotations

import dataclasses
import json
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


def run_dir_of(path: Path) -> Path | None:
    """The run folder holding a trajectory file (the one with ``config.json``), if any."""
    for d in (path.parent, path.parent.parent):
        if (d / "config.json").is_file():
            return d
    return None


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


JUMP_DISTANCE = 0.5
"""A move longer than this (m) between consecutive poses is a jump (a teleport: ObjectRecall's ``teleport=True``,
a new episode's start), not a walk: twice the default forward step (0.25 m), which actuation noise stays far
below."""


def jump_steps(poses: np.ndarray, max_step: float = JUMP_DISTANCE) -> np.ndarray:
    """bool [T - 1]: step i (pose i -> i + 1) moved the agent farther than ``max_step`` metres."""
    xy = np.asarray(poses, np.float64).reshape(len(poses), -1)[:, :2]
    if len(xy) < 2:
        return np.zeros(0, bool)
    return np.linalg.norm(np.diff(xy, axis=0), axis=1) > max_step


def path_segments(poses: np.ndarray, max_step: float = JUMP_DISTANCE) -> list[np.ndarray]:
    """Pose indices of the walked pieces of a path: consecutive poses, split where a step is a jump.

    ``[0, 1, 2] [3, 4]`` means poses 2 -> 3 were a teleport: draw two lines, and the jump apart (dashed), never
    as a walk through walls. Every pose is in exactly one piece; a piece may be a single pose.
    """
    n = len(poses)
    if n == 0:
        return []
    cuts = np.flatnonzero(jump_steps(poses, max_step)) + 1
    return np.split(np.arange(n), cuts)


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


def scene_for_episode(ep: EpisodeTrajectory, run_dir: str | Path | None = None):
    """The ``SceneSpec`` an episode ran in.

    Uses, in order: the stored scene JSON, the stored scene seed (with the run's scene config), or the run's
    ``config.json`` (env id + ``env_kwargs``) and ``scene_id`` — the same pool the env built.
    """
    from chronotope.envs.scene.spec import SceneSpec

    if ep.scene_json is not None:
        return SceneSpec.from_json(ep.scene_json)
    if run_dir is None and ep.source is not None:
        run_dir = run_dir_of(Path(ep.source))
    kwargs = _run_env_kwargs(Path(run_dir)) if run_dir is not None else {}
    return scene_from_env_kwargs(kwargs, ep.scene_id, ep.scene_seed, where=str(ep.source))


def _run_env_kwargs(run_dir: Path) -> dict[str, Any]:
    cfg = json.loads((run_dir / "config.json").read_text())
    kw = cfg.get("env_kwargs") or "{}"
    kw = json.loads(kw) if isinstance(kw, str) else dict(kw)
    env_id = cfg.get("env")
    if env_id:
        import gymnasium as gym

        import chronotope.envs  # noqa: F401  (registers the ids)

        spec = gym.registry.get(env_id)
        if spec is not None:
            kw = {**(spec.kwargs or {}), **kw}
    return kw


def scene_from_env_kwargs(kwargs: dict[str, Any], scene_id: int, scene_seed: int | None = None, where: str = ""):
    """Rebuilds scene ``scene_id`` (or the one of ``scene_seed``) of the pool a nav env with ``kwargs`` uses."""
    from chronotope.envs.nav.core import NavConfig, load_scene_pool, make_task
    from chronotope.envs.scene.spec import SceneSpec

    kwargs = {k: v for k, v in kwargs.items() if k != "max_episode_steps"}
    cfg = NavConfig.from_kwargs(**kwargs)
    task = make_task(cfg.task, cfg.task_kwargs)
    hook = getattr(task, "scene_overrides", None)
    overrides = hook() if hook is not None else None
    if overrides and not cfg.scene_files:
        cfg = dataclasses.replace(cfg, scene_config={**(cfg.scene_config or {}), **overrides})
    if scene_seed is not None:
        return load_scene_pool(dataclasses.replace(cfg, scene_seeds=(int(scene_seed),), scene_files=()))[0]
    if cfg.scene_files:
        if not 0 <= scene_id < len(cfg.scene_files):
            raise ValueError(f"scene_id {scene_id} outside the run's {len(cfg.scene_files)} scene files ({where})")
        return SceneSpec.from_json(cfg.scene_files[scene_id])
    seeds = cfg.scene_seeds if cfg.scene_seeds is not None else tuple(range(cfg.num_scenes))
    if not 0 <= scene_id < len(seeds):
        raise ValueError(
            f"cannot tell the scene of this episode: scene_id {scene_id} is outside the pool of {len(seeds)} "
            f"scenes ({where}); record with TrajectoryRecorder to store the scene"
        )
    return load_scene_pool(dataclasses.replace(cfg, scene_seeds=(int(seeds[scene_id]),)))[0]
