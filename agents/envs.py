"""Vector environments for training: our batched envs natively, any other Gymnasium id through SyncVectorEnv.

Every single env made here (any id without a ``vector_entry_point``: MiniGrid, classic control, ...) goes through
:func:`adapt_observations`, so that PPO, SB3 and evaluation all see the same, encodable observation space:

* **Text fields are dropped.** A ``Dict`` entry whose space holds strings (``gymnasium.spaces.Text``, MiniGrid's
  ``MissionSpace``) is removed from the observation (:class:`DropTextObservations`). In MiniGrid-Memory the
  mission is one constant sentence, so it carries no information; an env whose text varies per episode (BabyAI
  instructions) would lose its instruction: it would need a tokenizer turning the text into an integer id Box
  (which :class:`~chronotope.agents.encoders.TokenEncoder` reads), not written here.
* **MiniGrid's symbolic view is categorical.** The ``image`` of a MiniGrid env (``[H, W, 3]`` uint8 of
  object / colour / state indices, declared ``Box(0, 255)``) is re-declared as a ``MultiDiscrete`` grid with the
  true number of values per channel (:class:`MiniGridSymbolicGrid`; the values are unchanged), so the policy
  embeds the indices (:class:`~chronotope.agents.encoders.CategoricalGridEncoder`) instead of reading them as
  pixel intensities, and SB3 one-hot encodes them instead of sending a 7 x 7 "image" to its NatureCNN.

External env packages register their ids on import: ids starting with a prefix in :data:`EXTERNAL_ENV_MODULES`
(``MiniGrid-...``, ``BabyAI-...``) import their package first, so ``--env MiniGrid-MemoryS7-v0`` works as is.

With map wrappers (``wrappers="occupancy,octree"``, see :mod:`chronotope.maps.wrappers`) a batched env stays
batched: one ``VectorMapWrapper`` per map keeps N maps and updates them from the batched observations in one call.
Two cases still step N single envs through a SAME_STEP ``SyncVectorEnv``, each wrapped on its own: ids without a
``vector_entry_point`` (they have no batched core), and the ``"depth"`` wrapper (it renders a depth frame for a
``state`` observation inside a single env; for batched maps use ``obs_mode`` ``"depth"`` or ``"rgbd"``).

Both kinds give Gymnasium's SAME_STEP info layout (``final_obs``, ``final_info`` as a batched dict with ``_key``
masks); :mod:`chronotope.envs.vector_info` reads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

EXTERNAL_ENV_MODULES: dict[str, str] = {"MiniGrid-": "minigrid", "BabyAI-": "minigrid"}
"""Id prefix -> the package whose import registers those ids (imported on first use of such an id)."""


def resolve_env_id(env_id: str) -> str:
    """Accepts ``module:Id`` (imports the module first, as ``gymnasium.make`` does) and plain ids; ids of a known
    external package (:data:`EXTERNAL_ENV_MODULES`) import that package."""
    import chronotope.envs  # noqa: F401  (registers chronotope/*)

    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    if env_id not in gym.registry:
        for prefix, module in EXTERNAL_ENV_MODULES.items():
            if env_id.startswith(prefix):
                try:
                    importlib.import_module(module)
                except ImportError as e:
                    raise ValueError(
                        f"environment id {env_id!r} needs the {module!r} package: pip install {module}"
                    ) from e
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
            On an id with a ``vector_entry_point`` the batched env is kept and wrapped by vector map wrappers;
            otherwise (or with ``"depth"``) the result is a ``SyncVectorEnv`` of individually wrapped single envs.
        wrapper_seed: seed of the wrappers' fixed random weights (the Mem4Nav LTM), the same in every env.
    """
    env_id = resolve_env_id(env_id)
    kw = dict(env_kwargs or {})
    spec = gym.registry[env_id]
    names: list[str] = []
    if wrappers:
        from chronotope.maps.wrappers import parse_wrappers

        names = parse_wrappers(wrappers)
    if names and spec.vector_entry_point is not None and "depth" not in names:
        from chronotope.maps.wrappers import apply_vector_wrappers

        venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
        return apply_vector_wrappers(venv, names, seed=wrapper_seed)
    if names:
        from chronotope.maps.wrappers import apply_wrappers

        def make() -> gym.Env:
            return apply_wrappers(adapt_observations(gym.make(env_id, **kw)), names, seed=wrapper_seed)

        return gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    if spec.vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    return gym.vector.SyncVectorEnv(
        [lambda: adapt_observations(gym.make(env_id, **kw)) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


# ------------------------------------------------------------------------------------------ observation adapters
def is_text_space(space: gym.Space) -> bool:
    """A space of strings: ``gymnasium.spaces.Text`` or any space with a string dtype (MiniGrid's ``MissionSpace``)."""
    dtype = getattr(space, "dtype", None)
    return isinstance(space, gym.spaces.Text) or (dtype is not None and np.dtype(dtype).kind in "US")


def adapt_observations(env: gym.Env) -> gym.Env:
    """``env`` with the observation adapters it needs (see the module docstring); unchanged when it needs none.

    Order: MiniGrid's image first (it reads the env's own space), then the text keys are dropped.
    """
    if MiniGridSymbolicGrid.applies(env):
        env = MiniGridSymbolicGrid(env)
    space = env.observation_space
    if isinstance(space, gym.spaces.Dict) and any(is_text_space(s) for s in space.spaces.values()):
        env = DropTextObservations(env)
    return env


class DropTextObservations(gym.ObservationWrapper):
    """Removes the string-valued entries (``Text``, ``MissionSpace``) of a ``Dict`` observation.

    Attributes:
        dropped: the removed keys, in the order of the original space.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict):
            raise ValueError(f"DropTextObservations needs a Dict observation space, got {space!r}")
        self.dropped = [k for k, s in space.spaces.items() if is_text_space(s)]
        self.observation_space = gym.spaces.Dict({k: s for k, s in space.spaces.items() if k not in self.dropped})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in observation.items() if k not in self.dropped}


class MiniGridSymbolicGrid(gym.ObservationWrapper):
    """Declares a MiniGrid symbolic view (``image``: ``[H, W, 3]`` of object, colour and state indices) as a
    ``MultiDiscrete`` grid with the true number of values of each channel; the observations themselves pass
    unchanged (uint8).

    The state channel counts 4 values: door states 0-2, and the agent's direction 0-3 where the agent's own cell
    is encoded (``FullyObsWrapper``). Applies to the agent-view image and to the fully observed grid only, never to
    rendered RGB images (``RGBImgObsWrapper``: a larger [H, W] than either).
    """

    KEY = "image"

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

        nvec = np.array([len(OBJECT_TO_IDX), len(COLOR_TO_IDX), 4], np.uint8)
        space = env.observation_space
        box = space[self.KEY] if isinstance(space, gym.spaces.Dict) else space
        grid = gym.spaces.MultiDiscrete(np.broadcast_to(nvec, box.shape).copy(), dtype=np.uint8)
        if isinstance(space, gym.spaces.Dict):
            self.observation_space = gym.spaces.Dict({**space.spaces, self.KEY: grid})
        else:
            self.observation_space = grid

    @classmethod
    def applies(cls, env: gym.Env) -> bool:
        import sys

        if "minigrid" not in sys.modules:  # only a MiniGrid env needs it, and that imported minigrid already
            return False
        from minigrid.minigrid_env import MiniGridEnv

        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            return False
        space = env.observation_space
        box = space.spaces.get(cls.KEY) if isinstance(space, gym.spaces.Dict) else space
        if not isinstance(box, gym.spaces.Box) or box.dtype != np.uint8 or len(box.shape) != 3 or box.shape[2] != 3:
            return False
        view = (base.agent_view_size, base.agent_view_size)
        return box.shape[:2] in (view, (base.width, base.height))

    def observation(self, observation):
        return observation


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
