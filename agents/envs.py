"""Vector environments for training: our batched envs natively, any other Gymnasium id through SyncVectorEnv.

With map wrappers (``wrappers="depth,octree"``, see :mod:`chronotope.maps.wrappers`) every sub-environment is a
single env wrapped on its own (a map belongs to one agent's episode), stepped by a SAME_STEP ``SyncVectorEnv``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
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


def make_vector_env(
    env_id: str,
    num_envs: int,
    env_kwargs: dict[str, Any] | None = None,
    wrappers: str | Sequence[str] | None = None,
    wrapper_seed: int = 0,
):
    """A SAME_STEP auto-resetting vector env: native ``vector_entry_point`` when the id has one.

    Args:
        env_id: any id ``gymnasium.make`` accepts (``module:Id`` too).
        num_envs: sub-environments.
        env_kwargs: keyword arguments of the env.
        wrappers: map wrapper names (comma-separated string or list; see ``chronotope.maps.wrappers.WRAPPERS``).
            Given, the result is a ``SyncVectorEnv`` of individually wrapped single envs.
        wrapper_seed: seed of the wrappers' fixed random weights (the Mem4Nav LTM), the same in every env.
    """
    env_id = resolve_env_id(env_id)
    kw = dict(env_kwargs or {})
    spec = gym.registry[env_id]
    names: list[str] = []
    if wrappers:
        from chronotope.maps.wrappers import parse_wrappers

        names = parse_wrappers(wrappers)
    if names:
        from chronotope.maps.wrappers import apply_wrappers

        def make() -> gym.Env:
            return apply_wrappers(gym.make(env_id, **kw), names, seed=wrapper_seed)

        venv = gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
        return PerEnvFinalInfo(venv)
    if spec.vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    return PerEnvFinalInfo(
        gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id, **kw) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
        )
    )


class PerEnvFinalInfo(gym.vector.VectorWrapper):
    """Makes ``info["final_info"]`` an object array of per-environment dicts, as ``NavVectorEnv`` gives it.

    ``SyncVectorEnv`` batches a finished episode's info into a dict of arrays; every consumer here (trainers,
    eval, experiments) reads ``info["final_info"][i]``, so one layout for both kinds of vector env.
    """

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        fi = info.get("final_info")
        if isinstance(fi, dict):
            per_env = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(info.get("_final_info", np.zeros(self.num_envs, bool))):
                per_env[i] = _row(fi, int(i))
            info = {**info, "final_info": per_env}
        return obs, reward, terminated, truncated, info


def _row(batched: dict[str, Any], i: int) -> dict[str, Any]:
    """Environment ``i``'s entries of a gymnasium batched info dict (masks ``_key`` dropped, nested dicts too)."""
    out: dict[str, Any] = {}
    for k, v in batched.items():
        if k.startswith("_"):
            continue
        mask = batched.get(f"_{k}")
        if mask is not None and not mask[i]:
            continue
        out[k] = _row(v, i) if isinstance(v, dict) else v[i]
    return out


def nav_cores(venv) -> list[Any]:
    """The navigation cores behind a vector env: one batched core, or one N = 1 core per sub-env of a
    ``SyncVectorEnv`` of (wrapped) single Chronotope envs. Empty when the env has none."""
    core = getattr(venv.unwrapped, "core", None)
    if core is not None:
        return [core]
    subs = getattr(venv.unwrapped, "envs", None)
    if not subs:
        return []
    cores = [getattr(e.unwrapped, "core", None) for e in subs]
    return cores if all(c is not None for c in cores) else []


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
