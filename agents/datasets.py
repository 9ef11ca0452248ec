"""Demonstration datasets in Minari's format, recorded from a task's scripted policies, and read back for BC.

:func:`record_dataset` runs one of a task's reference policies (``expert``: the task's expert, as imitation uses
it; ``perfect`` / ``memoryless``: the memory tasks' perfect-memory oracle and memoryless bound; ``random``) and
writes every finished episode into a Minari dataset under Minari's data folder (``MINARI_DATASETS_PATH``, default
``~/.minari/datasets``):

- observations in the env's own space (pixels included), ``T + 1`` per episode;
- actions, rewards, terminations, truncations (``T``);
- infos (``T + 1``; index 0 is the reset info): every step's measures, reward terms (0 at the reset) and poses,
  plus ``controllable``: whether the action taken at that step is the agent's own (False on scripted steps and
  at the last index, after which no action follows);
- each episode's seed (Minari's episode ``seed``): ``env.reset(seed=seed)`` on a fresh single env followed by
  the recorded actions replays the episode exactly (the batched nav env's masked reset is seeded per episode);
- the env spec, so ``minari.load_dataset(name).recover_environment()`` makes the same env with the same kwargs;
- metadata under ``"chronotope"``: the policy, the seeds, the settings, package versions, the recorded policy's
  mean final measures and, for memory tasks, the task's memory-demand figures (memoryless bound and perfect
  oracle measured on ``demand_episodes`` episodes, the declared cue-to-query span; the arm tasks also declare
  their exact bound).

Navigation ids are recorded with their batched vector env; ids without one (the arm tasks) one episode at a
time. The recording is resumable: episodes are written in batches as they finish, the dataset is marked complete
at the end, and the same command continues an unfinished recording of the same settings (recording only the
seeds still missing). A complete dataset, or an unfinished one with other settings, is never overwritten.

:class:`DatasetRollouts` turns a stored dataset into the rollouts behaviour cloning fits (see
:mod:`chronotope.agents.imitation`): the same ``[T, N]`` layout as rollouts collected online.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chronotope.envs.rollout import iter_episodes, obs_row

POLICIES = ("expert", "perfect", "memoryless", "random")
METADATA_KEY = "chronotope"
NAV_MEMORY_TASKS = {"object_recall": "success", "target_sequence": "score", "ballet": "success"}
"""Navigation memory tasks with perfect / memoryless oracles -> the measure their memory demand is stated in."""
IDENTIFIERS = ("scene_id", "episode_id", "target_instance", "phase", "cued_color", "target_count")
"""Info entries that name things (scenes, objects, phases): not averaged into the recorded policy's measures."""
VERSIONED_PACKAGES = ("chronotope", "minari", "gymnasium", "numpy", "torch", "mujoco", "open3d-cpu", "open3d", "h5py")


@dataclass
class DatasetConfig:
    """Options of ``chronotope dataset``."""

    env: str
    """Environment id (a chronotope id: nav tasks are recorded batched, arm tasks one episode at a time)."""
    policy: Literal["expert", "perfect", "memoryless", "random"]
    """Who acts: ``expert`` (the task's expert, the one imitation learns from; the perfect-memory oracle for
    memory tasks), ``perfect`` / ``memoryless`` (memory tasks' perfect-memory oracle / memoryless bound),
    ``random``."""
    episodes: int
    """Finished episodes to record (seeds ``seed`` .. ``seed + episodes - 1``, one per episode)."""
    name: str
    """Minari dataset id, ``[namespace/]name-v<version>`` (e.g. ``chronotope/objectrecall-expert-v0``)."""
    env_kwargs: str = "{}"
    """JSON object of env keyword arguments, e.g. '{"obs_mode": "rgbd", "resolution": [64, 64]}'."""
    seed: int = 0
    """Seed of the first episode (episode seeds count up from it) and of the policy's generator."""
    num_envs: int = 8
    """Navigation environments stepped in one batch while recording."""
    jpeg: bool = False
    """Store uint8 images JPEG-encoded (Minari's option: about 10x smaller, lossy, so a replay no longer matches
    the stored pixels bit for bit). Default: lossless."""
    demand_episodes: int = 64
    """Memory tasks: episodes on which the memoryless bound and the perfect oracle are measured for the metadata
    (0: not measured)."""
    progress: bool = True
    """Show a progress bar."""

    def env_kwargs_dict(self) -> dict[str, Any]:
        from chronotope.agents.config import _json_object

        return _json_object("env_kwargs", self.env_kwargs)

    def settings(self) -> dict[str, Any]:
        """What a resumed recording must share with the unfinished one."""
        return {
            "env": self.env,
            "env_kwargs": self.env_kwargs_dict(),
            "policy": self.policy,
            "episodes": self.episodes,
            "seed": self.seed,
            "jpeg": self.jpeg,
        }

    def validate(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; valid: {', '.join(POLICIES)}")
        for k in ("episodes", "num_envs"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)!r}")
        if self.demand_episodes < 0:
            raise ValueError(f"demand_episodes must be >= 0, got {self.demand_episodes!r}")
        check_name(self.name)
        self.env_kwargs_dict()


# ------------------------------------------------------------------------------------------------ names, paths
def check_name(name: str) -> None:
    """Raises ValueError unless ``name`` is a Minari dataset id with a version (``[namespace/]name-v<N>``)."""
    from minari.dataset.minari_dataset import DATASET_ID_RE

    m = DATASET_ID_RE.fullmatch(name)
    if m is None or m.group("version") is None:
        raise ValueError(
            f"dataset name {name!r} is not a Minari id: it must read [namespace/]name-v<version>, "
            f"e.g. 'chronotope/objectrecall-expert-v0'"
        )


def dataset_dir(name: str) -> Path:
    """The folder of dataset ``name`` under Minari's data folder (``MINARI_DATASETS_PATH`` when set)."""
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path(name))


def dataset_info(name: str) -> dict[str, Any]:
    """The ``"chronotope"`` metadata of a stored dataset (settings, seeds, versions, demand figures)."""
    import minari

    meta = minari.load_dataset(name).storage.metadata
    if METADATA_KEY not in meta:
        raise ValueError(f"dataset {name!r} was not recorded by chronotope (its metadata has no {METADATA_KEY!r})")
    return meta[METADATA_KEY]


def package_versions() -> dict[str, str]:
    """Versions of the packages a recording depends on (those installed), and Python's."""
    import importlib.metadata
    import platform

    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


# ------------------------------------------------------------------------------------------------ episodes
class _Episode:
    """One episode as it is recorded: T + 1 observations and infos, T actions, rewards and flags."""

    def __init__(self, seed: int, obs: dict[str, np.ndarray] | np.ndarray, info: dict[str, Any]) -> None:
        self.seed = int(seed)
        self.obs = [_copy(obs)]
        self.infos = [_measures(info)]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminations: list[bool] = []
        self.truncations: list[bool] = []

    def act(self, action: np.ndarray, controllable: bool) -> None:
        self.actions.append(np.array(action))
        self.infos[-1]["controllable"] = bool(controllable)

    def step(self, obs, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        self.obs.append(_copy(obs))
        self.infos.append(_measures(info))
        self.rewards.append(float(reward))
        self.terminations.append(bool(terminated))
        self.truncations.append(bool(truncated))

    def __len__(self) -> int:
        return len(self.rewards)

    def final(self) -> dict[str, float]:
        """The last info's numeric scalar measures, with ``return`` and ``length``."""
        out = {k: float(v) for k, v in self.infos[-1].items() if np.ndim(v) == 0 and not isinstance(v, str)}
        out.pop("controllable", None)
        return {**out, "return": float(np.sum(self.rewards)), "length": float(len(self))}

    def buffer(self):
        """A Minari ``EpisodeBuffer`` of the episode."""
        from minari.data_collector.episode_buffer import EpisodeBuffer

        self.infos[-1]["controllable"] = False  # no action follows the last observation
        if isinstance(self.obs[0], dict):
            obs: Any = {k: np.stack([o[k] for o in self.obs]) for k in self.obs[0]}
        else:
            obs = np.stack(self.obs)
        return EpisodeBuffer(
            seed=self.seed,
            observations=obs,
            actions=np.stack(self.actions),
            rewards=np.asarray(self.rewards, np.float64),
            terminations=np.asarray(self.terminations, bool),
            truncations=np.asarray(self.truncations, bool),
            infos=_stack_infos(self.infos),
        )


def _copy(obs):
    if isinstance(obs, dict):
        return {k: np.array(v) for k, v in obs.items()}
    return np.array(obs)


def _measures(info: dict[str, Any]) -> dict[str, Any]:
    """The storable entries of one env's info: numbers, numeric arrays and strings."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if k.startswith("_") or k in ("final_obs", "final_info"):
            continue
        if isinstance(v, str):
            out[k] = v
            continue
        a = np.asarray(v)
        if a.dtype.kind in "biuf":
            out[k] = a.copy() if a.ndim else a.item()
        elif a.dtype.kind == "U" and a.ndim == 0:
            out[k] = str(a)
    return out


def _stack_infos(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step info dicts -> key: [T + 1, ...] arrays (strings: a list). A key missing at some step (reward terms
    at the reset) gets zeros (an empty string) there."""
    keys: dict[str, Any] = {}
    for info in infos:
        for k, v in info.items():
            keys.setdefault(k, v)
    out: dict[str, Any] = {}
    for k, first in keys.items():
        if isinstance(first, str):
            out[k] = [str(i.get(k, "")) for i in infos]
        else:
            zero = np.zeros_like(np.asarray(first))
            out[k] = np.stack([np.asarray(i.get(k, zero)) for i in infos])
    return out


# ------------------------------------------------------------------------------------------------ recording
def _is_nav(env_id: str) -> bool:
    import gymnasium as gym

    from chronotope.envs import NAV_VECTOR_ENTRY

    return gym.registry[env_id].vector_entry_point == NAV_VECTOR_ENTRY


def _nav_actor(venv, policy: str, seed: int):
    """Callable returning the batched policy's actions [N] for the current state of ``venv``'s core."""
    from chronotope.envs.nav import oracles

    core = venv.unwrapped.core
    if policy == "expert":
        from chronotope.agents.imitation import expert_for

        return expert_for(venv)
    oracle = oracles.make_oracle(core.task.name, policy, seed)
    return lambda: oracle.act(core)


def _nav_episodes(cfg: DatasetConfig, env_id: str, kw: dict[str, Any], seeds: list[int]) -> Iterator[_Episode]:
    """Finished episodes of the batched nav env, each started by a masked reset seeded with its own seed."""
    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.memory_span import controllable_for

    n = min(cfg.num_envs, len(seeds))
    venv = make_vector_env(env_id, n, kw)
    try:
        act = _nav_actor(venv, cfg.policy, cfg.seed)
        recorder = _Recorder(seeds, controllable_for(venv))

        def policy(obs, starts, lane_seeds):
            recorder.ctrl = recorder.controllable()  # of the state the actions are taken in
            return np.asarray(act())

        for r in iter_episodes(venv, policy, seeds, recorder):
            yield recorder.episodes.pop(r.index)
    finally:
        venv.close()


class _Recorder:
    """Rollout observer (:mod:`chronotope.envs.rollout`) building the :class:`_Episode` of every listed seed."""

    def __init__(self, seeds: list[int], controllable) -> None:
        self.seeds, self.controllable = seeds, controllable
        self.ctrl: np.ndarray | None = None
        self.episodes: dict[int, _Episode] = {}

    def start(self, episode: int, lane: int, obs, info: dict[str, Any]) -> None:
        self.episodes[episode] = _Episode(self.seeds[episode], obs, info)

    def step(self, episode: int, lane: int, action, reward, terminated, truncated, obs, info) -> None:
        e = self.episodes[episode]
        e.act(action, self.ctrl[lane])
        e.step(obs, reward, terminated, truncated, info)


def collect_episodes(cfg: DatasetConfig, seeds: list[int]) -> Iterator[_Episode]:
    """The episodes of ``seeds`` as ``cfg``'s policy acts them, in the order they finish (nothing is written)."""
    from chronotope.agents.envs import resolve_env_id

    env_id = resolve_env_id(cfg.env)
    record = _nav_episodes if _is_nav(env_id) else _single_episodes
    return record(cfg, env_id, cfg.env_kwargs_dict(), seeds)


def _single_episodes(cfg: DatasetConfig, env_id: str, kw: dict[str, Any], seeds: list[int]) -> Iterator[_Episode]:
    """Finished episodes of a single env (the arm tasks' scripted references, or random actions), one lane of a
    ``SyncVectorEnv``; the policy is re-seeded per episode (``policy_seed(seed)``)."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    venv = SyncVectorEnv([lambda: gym.make(env_id, **kw)], autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        env = venv.envs[0]
        u = env.unwrapped
        if hasattr(u, "memoryless_bound"):  # an arm task: its scripted references
            from chronotope.envs.robot import oracles

            actor = oracles.make_policy(env, "perfect" if cfg.policy == "expert" else cfg.policy, cfg.seed)
            policy_seed = oracles.policy_seed
        elif cfg.policy == "random":
            actor = _RandomActions(env.action_space)
            policy_seed = int
        else:
            raise ValueError(f"{env_id} has no scripted policies: only --policy random records it")
        recorder = _Recorder(seeds, lambda: np.array([u.controllable() if hasattr(u, "controllable") else True]))

        def policy(obs, starts, lane_seeds):
            row = obs_row(obs, 0)
            if starts[0]:  # an unrecorded episode (seed None) keeps the policy's generator
                actor.reset(row, seed=None if lane_seeds[0] is None else policy_seed(lane_seeds[0]))
            recorder.ctrl = recorder.controllable()
            return np.asarray(actor.act(row))[None]

        for r in iter_episodes(venv, policy, seeds, recorder):
            yield recorder.episodes.pop(r.index)
    finally:
        venv.close()


class _RandomActions:
    def __init__(self, space) -> None:
        self.space = space

    def reset(self, obs, seed: int | None = None) -> None:
        self.space.seed(seed)

    def act(self, obs):
        return self.space.sample()


@contextlib.contextmanager
def _deferred_interrupt():
    """Holds Ctrl-C back until the block is done, so an interrupt never leaves half an episode in the file."""
    pending: list[Any] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *a: pending.append(a))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


def _flush(dataset, episodes: list[_Episode]) -> None:
    """Appends finished episodes to the dataset, with each one's final measures as its episode metadata."""
    with _deferred_interrupt():
        first = dataset.storage.total_episodes
        dataset.update_dataset_from_buffer([e.buffer() for e in episodes])
        dataset.storage.update_episode_metadata([e.final() for e in episodes], range(first, first + len(episodes)))


def _create(cfg: DatasetConfig, env_id: str, kw: dict[str, Any], observation_space, action_space):
    import gymnasium as gym
    import minari

    spec = gym.spec(env_id)
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **kw})
    versions = package_versions()
    description = (
        f"{cfg.episodes} episodes of {env_id} acted by its {cfg.policy!r} policy, recorded by chronotope "
        f"(env kwargs {json.dumps(kw)}, episode seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})"
    )
    with warnings.catch_warnings():  # Minari asks for an author, e-mail and permalink a local recording lacks
        warnings.simplefilter("ignore", UserWarning)
        dataset = minari.create_dataset_from_buffers(
            cfg.name,
            [],
            env=spec,
            observation_space=observation_space,
            action_space=action_space,
            algorithm_name=f"chronotope/{cfg.policy}",
            description=description,
            data_format="hdf5",
            requirements=[f"chronotope=={versions['chronotope']}"] if "chronotope" in versions else None,
            jpeg_encoding=cfg.jpeg,
        )
    info = {
        "settings": cfg.settings(),
        "seeds": [cfg.seed, cfg.seed + cfg.episodes - 1],
        "policy_seed": cfg.seed,
        "num_envs": cfg.num_envs,
        "versions": versions,
        "complete": False,
    }
    dataset.storage.update_metadata({METADATA_KEY: info})
    return dataset


def _open_existing(cfg: DatasetConfig):
    """The unfinished dataset of the same settings to continue; raises for anything else under that name."""
    import minari

    path = dataset_dir(cfg.name)
    try:
        dataset = minari.load_dataset(cfg.name)
        meta = dataset.storage.metadata
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise ValueError(
            f"dataset {cfg.name!r} already exists at {path} but cannot be read ({e}); choose another --name or "
            f"delete it (minari delete {cfg.name})"
        ) from e
    info = meta.get(METADATA_KEY)
    if info is None or info.get("complete", True):
        raise ValueError(
            f"dataset {cfg.name!r} already exists at {path} ({meta.get('total_episodes')} episodes); it is never "
            f"overwritten: choose another --name or delete it (minari delete {cfg.name})"
        )
    theirs, ours = info["settings"], json.loads(json.dumps(cfg.settings()))
    diff = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
    if diff:
        shown = ", ".join(f"{k}: recorded {a!r}, asked {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"dataset {cfg.name!r} at {path} is an unfinished recording with other settings ({shown}); rerun it "
            f"with its settings to continue it, or choose another --name"
        )
    _drop_partial_episodes(dataset)
    return dataset


def _drop_partial_episodes(dataset) -> None:
    """Removes episode groups that a hard kill left in the file after the last counted episode."""
    import h5py

    total = dataset.storage.total_episodes
    with h5py.File(dataset.storage.data_path / "main_data.hdf5", "a") as f:
        for key in list(f.keys()):
            if key.startswith("episode_") and int(key.split("_")[1]) >= total:
                del f[key]


def record_dataset(cfg: DatasetConfig):
    """Records (or continues) dataset ``cfg.name``; returns the ``MinariDataset``. See the module docstring."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    from chronotope.agents.envs import resolve_env_id

    cfg.validate()
    env_id = resolve_env_id(cfg.env)
    kw = cfg.env_kwargs_dict()
    nav = _is_nav(env_id)
    if dataset_dir(cfg.name).exists():
        dataset = _open_existing(cfg)
        done = {int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(dataset.storage.total_episodes))}
    else:
        if nav:
            probe = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kw)
            spaces = probe.single_observation_space, probe.single_action_space
        else:
            probe = gym.make(env_id, **kw)
            spaces = probe.observation_space, probe.action_space
        try:  # a bad policy / task pairing fails here, before anything is written
            _check_policy(cfg, env_id, probe, nav)
        finally:
            probe.close()
        dataset = _create(cfg, env_id, kw, *spaces)
        done = set()
    seeds = [s for s in range(cfg.seed, cfg.seed + cfg.episodes) if s not in done]
    bar = tqdm(total=cfg.episodes, initial=len(done), unit="ep", disable=not cfg.progress, desc=cfg.name)
    pending: list[_Episode] = []
    steps, t0 = 0, time.perf_counter()
    flush_every = max(1, cfg.num_envs if nav else 4)
    try:
        for ep in collect_episodes(cfg, seeds) if seeds else ():
            pending.append(ep)
            steps += len(ep)
            bar.update(1)
            bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - t0):.0f}")
            if len(pending) >= flush_every:
                batch, pending = pending, []  # handed over first: an interrupt during the write must not repeat it
                _flush(dataset, batch)
        batch, pending = pending, []
        if batch:
            _flush(dataset, batch)
    finally:
        bar.close()
        if pending:  # interrupted: keep what finished, the rest is recorded on resume
            _flush(dataset, pending)
    _finish(cfg, env_id, kw, dataset)
    return dataset


def _check_policy(cfg: DatasetConfig, env_id: str, env, nav: bool) -> None:
    if nav:
        task = env.unwrapped.core.task.name
        if cfg.policy in ("perfect", "memoryless") and task not in NAV_MEMORY_TASKS:
            raise ValueError(
                f"policy {cfg.policy!r} needs a memory task's oracle; {env_id} (task {task!r}) has none: "
                f"use 'expert' or 'random'"
            )
    elif hasattr(env.unwrapped, "memoryless_bound"):
        from chronotope.envs.robot import oracles

        oracles.make_policy(env, "perfect" if cfg.policy == "expert" else cfg.policy, cfg.seed)  # checks obs mode
    elif cfg.policy != "random":
        raise ValueError(f"{env_id} has no scripted policies: only --policy random records it")


def _finish(cfg: DatasetConfig, env_id: str, kw: dict[str, Any], dataset) -> None:
    """Marks a recording complete: the recorded policy's mean final measures and the memory-demand figures."""
    storage = dataset.storage
    info = storage.metadata[METADATA_KEY]
    finals = list(storage.get_episode_metadata(range(storage.total_episodes)))
    keys = sorted({k for m in finals for k in m if k not in ("id", "seed", "total_steps", *IDENTIFIERS)})
    info["recorded"] = {
        k: float(np.mean([float(m[k]) for m in finals if k in m])) for k in keys if all(k in m for m in finals)
    }
    info["recorded"]["episodes"] = len(finals)
    if "memory_demand" not in info:
        info["memory_demand"] = memory_demand(env_id, kw, cfg.demand_episodes, cfg.seed)
    info["complete"] = True
    storage.update_metadata({METADATA_KEY: info})


# ------------------------------------------------------------------------------------------------ memory demand
def memory_demand(env_id: str, env_kwargs: dict[str, Any], episodes: int, seed: int = 0) -> dict[str, Any] | None:
    """The task's memory-demand figures: memoryless bound and perfect-memory oracle measured on ``episodes``
    seeded episodes (state observations: the oracles read the simulator, not the pixels), the declared
    cue-to-query span, and for the arm tasks the declared exact bound. None for tasks without memory demand."""
    import gymnasium as gym

    env_id = gym.spec(env_id).id
    if _is_nav(env_id):
        from chronotope.envs.nav import oracles

        kw = {**env_kwargs, "obs_mode": "state"}
        kw.pop("semantic", None)
        env = gym.make(env_id, **kw)
        task = env.unwrapped.core.task
        name, span = task.name, _span(task)
        env.close()
        if name not in NAV_MEMORY_TASKS:
            return None
        metric = NAV_MEMORY_TASKS[name]
        out: dict[str, Any] = {"metric": metric, "cue_to_query_span": span, "episodes": episodes, "seed": seed}
        if episodes:
            n = min(16, episodes)
            for kind in ("memoryless", "perfect"):
                made: list[Any] = []

                def make(*a, _made=made, **k):
                    _made.append(oracles.make_oracle(*a, **k))
                    return _made[-1]

                r = oracles.evaluate(env_id, kind, episodes, num_envs=n, seed=seed, make_policy=make, **kw)
                out["memoryless_bound" if kind == "memoryless" else "perfect"] = r[metric]
                if kind == "memoryless" and getattr(made[0], "bound", None):
                    out["analytic_bound"] = float(np.mean(made[0].bound))
        return out
    env = gym.make(env_id, **env_kwargs)
    u = env.unwrapped
    if not hasattr(u, "memoryless_bound"):
        env.close()
        return None
    declared, span = float(u.memoryless_bound()), _span(u)
    state = getattr(u.cfg, "obs_mode", "state") == "state"
    env.close()
    if span is None or span <= 0:  # an arm task without a cue (Reach, PickPlace)
        return None
    out = {
        "metric": "success",
        "cue_to_query_span": span,
        "declared_bound": declared,
        "episodes": episodes,
        "seed": seed,
    }
    if episodes:
        from chronotope.envs.robot import oracles

        kw = {**env_kwargs, "obs_mode": "state"} if not state else dict(env_kwargs)
        out["memoryless_bound"] = oracles.evaluate(env_id, "memoryless", episodes, seed=seed, **kw)["success"]
        out["perfect"] = oracles.evaluate(env_id, "perfect", episodes, seed=seed, **kw)["success"]
    return out


def _span(owner) -> int | None:
    try:
        return int(owner.cue_to_query_span())
    except (AttributeError, NotImplementedError):
        return None


# ------------------------------------------------------------------------------------------------ training data
def resolve_dataset_config(cfg):
    """A ``TrainConfig`` with ``--dataset`` gets the dataset's env id and kwargs (an explicit different one is an
    error); returned unchanged without a dataset."""
    from chronotope.agents.config import TrainConfig

    if cfg.dataset is None:
        return cfg
    settings = dataset_info(cfg.dataset)["settings"]
    default = TrainConfig.__dataclass_fields__["env"].default
    if cfg.env not in (default, settings["env"]):
        raise ValueError(f"--env {cfg.env!r} differs from the env of dataset {cfg.dataset!r}: {settings['env']!r}")
    if cfg.env_kwargs_dict() not in ({}, settings["env_kwargs"]):
        raise ValueError(
            f"--env-kwargs {cfg.env_kwargs!r} differ from those of dataset {cfg.dataset!r}: "
            f"{json.dumps(settings['env_kwargs'])}"
        )
    return dataclasses.replace(cfg, env=settings["env"], env_kwargs=json.dumps(settings["env_kwargs"]))


@dataclass
class DatasetRollouts:
    """Stored episodes laid out as the rollouts imitation fits: ``num_envs`` lanes of ``rollout_len`` steps, each
    lane starting at a fresh episode and running through the next ones, the last one cut at the lane's end (as
    a vector env that is reset at each rollout start and auto-resets would give them). Episodes are taken in the
    dataset's order and reused from the start once all are used (``passes`` counts it).

    Labels are the recorded actions; the mask is the recorded ``controllable`` flag (all True when absent).
    """

    name: str
    num_envs: int
    rollout_len: int
    passes: int = 0
    episodes_used: int = 0
    _dataset: Any = field(default=None, repr=False)
    _queue: Iterator[Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import minari

        self._dataset = minari.load_dataset(self.name)
        if self._dataset.total_episodes == 0:
            raise ValueError(f"dataset {self.name!r} holds no episodes")

    @property
    def observation_space(self):
        return self._dataset.observation_space

    @property
    def action_space(self):
        return self._dataset.action_space

    def _next_episode(self):
        while True:
            if self._queue is None:
                self._queue = iter(self._dataset.iterate_episodes())
                self.passes += 1
            ep = next(self._queue, None)
            if ep is not None:
                self.episodes_used += 1
                return ep
            self._queue = None

    def collect(self, model: Any = None, beta: float = 1.0) -> tuple[dict[str, Any], list[dict[str, float]]]:
        """One rollout ``{"obs", "labels", "starts", "mask"}`` ([T, N, ...] tensors) and the final measures of the
        episodes that end in it. The recorded policy acted throughout: ``model`` and ``beta`` (the online source's
        arguments) must leave it so."""
        if beta != 1.0:
            raise ValueError(f"a stored dataset can only be imitated as recorded (beta 1), got beta={beta!r}")
        import torch

        t_len = self.rollout_len
        lanes, finals = [], []
        for _ in range(self.num_envs):
            parts, filled = [], 0
            while filled < t_len:
                ep = self._next_episode()
                k = min(len(ep), t_len - filled)
                obs = _take(ep.observations, k)
                ctrl = ep.infos.get("controllable") if ep.infos else None
                mask = np.ones(k, bool) if ctrl is None else np.asarray(ctrl[:k], bool)
                starts = np.zeros(k, bool)
                starts[0] = True
                parts.append((obs, np.asarray(ep.actions[:k]), starts, mask))
                filled += k
                if k == len(ep):
                    finals.append(_final_measures(ep))
            lanes.append(parts)

        def cat(i: int, key: str | None = None) -> np.ndarray:
            # lanes -> [T, N, ...]
            pick = (lambda p: p[i]) if key is None else (lambda p: p[i][key])
            return np.stack([np.concatenate([pick(p) for p in parts]) for parts in lanes], axis=1)

        first = lanes[0][0][0]
        obs = {k: torch.as_tensor(cat(0, k)) for k in first} if isinstance(first, dict) else torch.as_tensor(cat(0))
        rollout = {
            "obs": obs,
            "labels": torch.as_tensor(cat(1)),
            "starts": torch.as_tensor(cat(2)),
            "mask": torch.as_tensor(cat(3)),
        }
        return rollout, finals

    def close(self) -> None:
        self._queue = None


def _take(obs, k: int):
    return {key: np.asarray(v[:k]) for key, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs[:k])


def _final_measures(ep) -> dict[str, float]:
    out = {}
    for k, v in (ep.infos or {}).items():
        if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "biuf":
            out[k] = float(v[-1])
    out.pop("controllable", None)
    return out
