"""Drawing helpers for trajectory files: teleports (jumps) and the scene an episode ran in.

The file format, and reading and writing it, belong to :mod:`chronotope.envs.trajectory`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from chronotope.envs.trajectory import EpisodeTrajectory


def run_dir_of(path: Path) -> Path | None:
    """The run folder holding a trajectory file (the one with ``config.json``), if any."""
    for d in (path.parent, path.parent.parent):
        if (d / "config.json").is_file():
            return d
    return None


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
    overrides = task.scene_overrides()
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
