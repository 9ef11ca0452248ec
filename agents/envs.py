"""Vector environments for training: our batched envs natively, any other Gymnasium id through SyncVectorEnv."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


def resolve_env_id(env_id: str) -> str:
    """Accepts ``module:Id`` (imports the module first, as ``gymnasium.make`` does) and plain ids."""
    import chronotope.envs  # noqa: F401  (registers chronotope/*)

    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("chronotope/"))
        raise ValueError(f"unknown environment id {env_id!r}; chronotope ids: {known} (or any registered gymnasium id)")
    return env_id


def make_vector_env(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None):
    """A SAME_STEP auto-resetting vector env: native ``vector_entry_point`` when the id has one."""
    env_id = resolve_env_id(env_id)
    kw = dict(env_kwargs or {})
    spec = gym.registry[env_id]
    if spec.vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kw) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
    )


def scalar_info(info: dict[str, Any] | None) -> dict[str, float]:
    """The numeric scalar entries of one environment's info (its measures), as floats."""
    out: dict[str, float] = {}
    for k, v in (info or {}).items():
        if np.ndim(v) != 0:
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            pass
    return out
