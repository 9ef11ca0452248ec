"""``NavVectorEnv``: N navigation environments stepped and rendered in one batched call, with auto-reset."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from chronotope.envs.nav.core import NavConfig, NavCore
from chronotope.envs.sim.kinematic import ACTION_NAMES


class NavVectorEnv(VectorEnv):
    """Batched twin of :class:`~chronotope.envs.nav.env.NavEnv` (same kwargs, same task sheet).

    Sub-environment i seeded with ``seed + i`` produces exactly what a ``NavEnv`` reset with that seed does.
    Auto-reset is SAME_STEP: when an episode ends, the returned observation already belongs to the next
    episode, and so does that environment's row of the info (its reset info: fresh measures, the new
    ``camera_pose``; reward terms masked off, as gymnasium's ``SyncVectorEnv`` does), while
    ``info["final_obs"]`` (object array [N] of observation dicts) and ``info["final_info"]`` (a batched info dict:
    arrays [N, ...] with ``_key`` masks) hold the finished episodes' last observations and step infos, masked by
    ``info["_final_obs"]`` / ``info["_final_info"]``: Gymnasium 1.x's own layout, entry for entry (keys, masks,
    values and dtypes) what a ``SyncVectorEnv`` of single ``NavEnv`` s gives; read rows with
    :func:`chronotope.envs.vector_info.final_info_row`. Time limits come from ``max_episode_steps`` (truncation).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.config = NavConfig.from_kwargs(**kwargs)
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.core = NavCore(self.config, self.num_envs)
        self.single_observation_space = self.core.observation_space()
        self.single_action_space = spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._started = False

    @property
    def intrinsics(self):
        return self.core.intrinsics

    @property
    def max_depth(self) -> float:
        return self.core.max_depth

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Resets every environment, or with ``options={"reset_mask": mask}`` (bool [N], as Gymnasium's
        ``SyncVectorEnv``) only the masked ones (seeded from their entries of ``seed``); the observation covers all
        environments either way."""
        if self.closed:
            raise RuntimeError("this vector env is closed")
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},) with a True entry")
            if not self._started:
                raise RuntimeError("call reset() on every environment before a masked reset")
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}: {seed!r}")
        # As gymnasium's Env.reset: a None seed keeps an environment's generator once it has one.
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        self._rngs = [
            seeding.np_random(s)[0] if (i in rows and (s is not None or not self._started)) else self._rngs[i]
            for i, s in enumerate(seeds)
        ]
        self._started = True
        self.core.reset_envs(rows, self._rngs, seeds)
        return self.core.observe(), self._vector_info(self.core.info(None))

    def step(self, actions):
        if self.closed:
            raise RuntimeError("this vector env is closed")
        if not self._started:
            raise RuntimeError("call reset() before step()")
        core = self.core
        reward, terms, terminated = core.step(actions, self._rngs)
        limit = self.config.max_episode_steps
        # as gymnasium's TimeLimit: the limit truncates whether or not the step also terminates
        truncated = core.elapsed >= limit if limit is not None else np.zeros(self.num_envs, bool)
        info = core.info(terms)
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            final_obs = core.observe(done)
            core.reset_envs(done, self._rngs)
        obs = core.observe()
        out = self._vector_info(info)
        if done.size:
            # As gymnasium's SAME_STEP SyncVectorEnv: a finished environment's row of the top-level info is its
            # reset info (so info["camera_pose"] is the pose of the observation returned in that row); the step
            # info of the finished episode goes to final_info. Keys the reset info lacks (reward terms) are
            # masked off in those rows.
            fresh = core.info(None)
            for k, v in fresh.items():
                out[k] = v.copy() if k not in info else np.where(_rows(done, self.num_envs, v.ndim), v, info[k])
            for k in info.keys() - fresh.keys():
                out[k] = info[k].copy()
                out[k][done] = 0
                out[f"_{k}"] = np.ones(self.num_envs, bool)
                out[f"_{k}"][done] = False
            fo = np.empty(self.num_envs, dtype=object)
            for row, i in enumerate(done):
                fo[i] = {k: v[row] for k, v in final_obs.items()}
            mask = np.zeros(self.num_envs, bool)
            mask[done] = True
            out.update(
                {"final_obs": fo, "_final_obs": mask, "final_info": _final_info(info, done), "_final_info": mask.copy()}
            )
        return obs, reward.astype(np.float64), terminated, truncated, out

    def _vector_info(self, info: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mask = np.ones(self.num_envs, bool)
        for k, v in info.items():
            out[k] = v
            out[f"_{k}"] = mask
        return out

    @property
    def scene_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Floor-plan bounds ``(lo[2], hi[2])`` (x, y) of every scene of the pool (map wrappers size maps by it)."""
        lo = np.min([np.asarray(s.bounds[0], float) for s in self.core.scenes], axis=0)
        hi = np.max([np.asarray(s.bounds[1], float) for s in self.core.scenes], axis=0)
        return lo, hi

    def render(self):
        out = self.core.renderer.render(self.core.camera_poses(), self.core.sim.scene)
        return list(out.rgb.cpu().numpy())

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()


def _final_info(info: dict[str, np.ndarray], done: np.ndarray) -> dict[str, np.ndarray]:
    """Gymnasium's batched ``final_info`` of the ``done`` rows of a step ``info``: each key zero outside those rows,
    with its ``_key`` mask. A per-env scalar gets the dtype ``SyncVectorEnv`` gives the Python scalar a single
    ``NavEnv`` reports (bool, int64, float64); arrays keep theirs."""
    n = next(iter(info.values())).shape[0]
    mask = np.zeros(n, bool)
    mask[done] = True
    out: dict[str, np.ndarray] = {}
    for k, v in info.items():
        dtype = v.dtype if v.ndim > 1 else _SCALAR_DTYPE.get(v.dtype.kind, v.dtype)
        a = np.zeros(v.shape, dtype)
        a[done] = v[done]
        out[k], out[f"_{k}"] = a, mask.copy()
    return out


_SCALAR_DTYPE = {"b": np.dtype(bool), "i": np.dtype(np.int64), "u": np.dtype(np.int64), "f": np.dtype(np.float64)}


def _rows(rows: np.ndarray, n: int, ndim: int) -> np.ndarray:
    """Bool mask ``[n, 1, ...]`` (``ndim`` dims) that is True in ``rows``: selects rows of a batched array."""
    m = np.zeros(n, bool)
    m[rows] = True
    return m.reshape((n,) + (1,) * (ndim - 1))
