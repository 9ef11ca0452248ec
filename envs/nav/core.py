"""The one batched navigation core: scenes, kinematics, renderer, task and measures for N environments.

``NavVectorEnv`` is this core with N environments; ``NavEnv`` is its N = 1 view. One :meth:`NavCore.step` moves
all agents, updates every measure and reward term, resets finished environments (when asked) and renders
all cameras in one renderer call.

Conventions shared with the arm envs (:mod:`chronotope.envs.robot.env`):

* ``obs_mode`` names what the observation holds: ``state`` (vectors, nothing rendered) and ``rgbd`` (colour and
  depth, plus the proprioceptive / task vectors an agent may see) mean the same in both families; nav adds
  ``depth`` (depth only).
* Configuration is checked when the env is made: an unknown keyword, or a keyword of a nested config
  (``task_kwargs``, ``scene_config``, ``agent``) that its class does not take, raises ``ValueError`` naming it; a
  bad value raises ``ValueError`` naming the keyword and the value.
* Depth is float32 metres, one channel ``[H, W, 1]``, clipped at ``max_depth`` (a config keyword in both
  families). A ray that hits nothing, or hits beyond ``max_depth``, reads ``max_depth`` (Habitat's convention after
  clipping; the map wrappers read it as free space up to the cap) and is background (id 0) in the segmentation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from gymnasium import spaces

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.generator import ApartmentConfig, generate_apartment
from chronotope.envs.scene.spec import SceneSpec
from chronotope.envs.sim.kinematic import ACTION_NAMES, AgentConfig, BatchKinematics
from chronotope.envs.tasks.base import Episode, Task, polar

OBS_MODES = ("rgbd", "depth", "state")
# ``state`` mode's rangefinder: distances to walls / furniture along evenly spread headings (first = ahead).
RANGE_RAYS, RANGE_MAX = 16, 5.0


@dataclass(frozen=True)
class NavConfig:
    """Every keyword a navigation env accepts (unknown keywords are an error).

    Attributes:
        task: task name, a key of ``chronotope.envs.tasks.TASKS`` ("pointnav", "objectnav", ...).
        obs_mode: "rgbd" (rgb, depth, optional semantic), "depth", or "state" (privileged vectors, no rendering).
        resolution: (height, width) of the camera images.
        hfov: horizontal field of view (degrees).
        max_depth: depth clip (m).
        semantic: add the instance-id image ``semantic`` in pixel modes.
        backend: renderer backend: "auto", "open3d", "mjwarp" or "mujoco".
        device: torch device of the renderer.
        num_scenes: size of the scene pool when ``scene_seeds`` is not given (seeds 0..num_scenes-1).
        scene_seeds: generator seeds of the scene pool.
        scene_config: keyword arguments of :class:`ApartmentConfig`.
        scene_files: scene JSON files (``SceneSpec.to_json``) used instead of generated scenes.
        agent: keyword arguments of :class:`AgentConfig` (radius, step sizes, actuation noise ...).
        task_kwargs: keyword arguments of the task class.
        num_state_objects: objects listed in the ``state`` observation (nearest first).
        max_episode_steps: time limit applied by the vector env (the single env gets gymnasium's TimeLimit).
    """

    task: str = "pointnav"
    obs_mode: str = "rgbd"
    resolution: tuple[int, int] = (64, 64)
    hfov: float = 90.0
    max_depth: float = 10.0
    semantic: bool = False
    backend: str = "auto"
    device: str = "cpu"
    num_scenes: int = 8
    scene_seeds: tuple[int, ...] | None = None
    scene_config: dict | None = None
    scene_files: tuple[str, ...] = ()
    agent: dict | None = None
    task_kwargs: dict | None = None
    num_state_objects: int = 8
    max_episode_steps: int | None = None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> NavConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            # Keywords the task's constructor names (e.g. ``delay=500``) are task kwargs given at the top level.
            import inspect

            from chronotope.envs.tasks import TASKS

            task_cls = TASKS.get(kwargs.get("task", cls.task))
            params = inspect.signature(task_cls.__init__).parameters if task_cls is not None else {}
            named = [k for k in unknown if k in params and params[k].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
            if named:
                kwargs = dict(kwargs)
                kwargs["task_kwargs"] = {**(kwargs.get("task_kwargs") or {}), **{k: kwargs.pop(k) for k in named}}
                unknown = [k for k in unknown if k not in named]
        if unknown:
            raise ValueError(f"unknown navigation env keyword(s) {unknown}; valid keywords: {sorted(names)}")
        if "resolution" in kwargs and kwargs["resolution"] is not None:
            res = kwargs["resolution"]
            if isinstance(res, int):
                res = (res, res)
            kwargs["resolution"] = tuple(res)
        for k in ("scene_seeds", "scene_files"):
            if kwargs.get(k) is not None:
                kwargs[k] = tuple(kwargs[k])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"unknown obs_mode {self.obs_mode!r}; valid: {OBS_MODES}")
        if len(self.resolution) != 2 or any(not isinstance(v, (int, np.integer)) or v <= 0 for v in self.resolution):
            raise ValueError(f"resolution must be two positive integers (height, width), got {self.resolution!r}")
        if not (0 < self.hfov < 180):
            raise ValueError(f"hfov must be in (0, 180) degrees, got {self.hfov!r}")
        if not (self.max_depth > 0 and math.isfinite(self.max_depth)):
            raise ValueError(f"max_depth must be positive, got {self.max_depth!r}")
        if self.backend not in ("auto", "open3d", "mjwarp", "mujoco"):
            raise ValueError(f"unknown renderer backend {self.backend!r}; valid: 'auto', 'open3d', 'mjwarp', 'mujoco'")
        if self.num_scenes <= 0:
            raise ValueError(f"num_scenes must be positive, got {self.num_scenes!r}")
        if self.max_episode_steps is not None and self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {self.max_episode_steps!r}")


def make_task(name: str, kwargs: dict | None) -> Task:
    from chronotope.envs.tasks import TASKS

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {sorted(TASKS)}")
    try:
        return TASKS[name](**(kwargs or {}))
    except TypeError as e:  # an unknown keyword: ValueError naming it, as every env config check
        raise ValueError(f"bad task_kwargs for task {name!r}: {e}") from e


@lru_cache(maxsize=256)
def _scene_from_seed(seed: int, config_json: str) -> SceneSpec:
    return generate_apartment(seed, ApartmentConfig(**json.loads(config_json)))


@lru_cache(maxsize=256)
def _navgrid(spec: SceneSpec, radius: float, cell: float, height: float):
    return spec.navgrid(radius, cell, height)


def load_scene_pool(cfg: NavConfig) -> list[SceneSpec]:
    if cfg.scene_files:
        return [SceneSpec.from_json(p) for p in cfg.scene_files]
    seeds = cfg.scene_seeds if cfg.scene_seeds is not None else tuple(range(cfg.num_scenes))
    sc = dict(cfg.scene_config or {})
    for k in ("num_rooms", "room_area", "size", "objects_per_room"):
        if isinstance(sc.get(k), list):
            sc[k] = tuple(sc[k])
    try:
        ApartmentConfig(**sc)
    except TypeError as e:
        raise ValueError(f"bad scene_config {cfg.scene_config!r}: {e}") from e
    key = json.dumps(sc, sort_keys=True)
    return [_scene_from_seed(int(s), key) for s in seeds]


@dataclass
class NavCore:
    """Batched state of N navigation environments (see the module docstring)."""

    cfg: NavConfig
    n: int
    task: Task = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.task = make_task(cfg.task, cfg.task_kwargs)
        try:
            self.agent = AgentConfig(**(cfg.agent or {}))
        except TypeError as e:
            raise ValueError(f"bad agent config {cfg.agent!r}: {e}") from e
        # A task may pin scene-generator knobs it depends on (e.g. room count, objects per room).
        overrides = self.task.scene_overrides()
        if overrides and not cfg.scene_files:
            cfg = dataclasses.replace(cfg, scene_config={**(cfg.scene_config or {}), **overrides})
        # A task may bring its own scenes (e.g. VLN episodes replayed from a dataset file name their scenes).
        pool = self.task.scene_pool(cfg)
        self.scenes = pool if pool is not None else load_scene_pool(cfg)
        self.grids = [_navgrid(s, self.agent.radius, self.agent.nav_cell, self.agent.height) for s in self.scenes]
        self._main: dict[int, np.ndarray] = {}
        self.sim = BatchKinematics(self.grids, self.n, self.agent)
        self.intrinsics = CameraIntrinsics(int(cfg.resolution[0]), int(cfg.resolution[1]), float(cfg.hfov))
        self.max_depth = float(cfg.max_depth)
        ext = [np.linalg.norm(hi - lo) for lo, hi in (s.bounds for s in self.scenes)]
        self.max_extent = float(np.ceil(max(ext)) + 1.0)
        self.max_instance = max(max(s.instance_categories()) for s in self.scenes)
        self._renderer = None
        # per-environment episode data
        self.episodes: list[Episode | None] = [None] * self.n
        self.start_position = np.zeros((self.n, 2))
        self.start_yaw = np.zeros(self.n)
        self.goal_position = np.zeros((self.n, 2))
        self.goal_category = np.full(self.n, 0, np.int64)
        self.start_distance = np.zeros(self.n)
        self.shortest_path = np.zeros(self.n)
        h, w = self.sim.stack.shape
        self.fields = np.full((self.n, h, w), np.inf, np.float32)
        self.distance_to_goal = np.zeros(self.n)
        self.called_stop = np.zeros(self.n, bool)
        self.collided = np.zeros(self.n, bool)
        self.moved = np.zeros(self.n)
        self.elapsed = np.zeros(self.n, np.int64)
        self.reset_seed: int | None = None  # see reset_envs
        self.success_radius = self.task.success_radius
        self.measures = {m.uuid: m(self.n) for m in self.task.measure_types()}
        self._objects = [self._object_table(s) for s in self.scenes]

    # ------------------------------------------------------------------------------------------- helpers
    def main_component(self, scene: int) -> np.ndarray:
        if scene not in self._main:
            self._main[scene] = self.grids[scene].largest_component()
        return self._main[scene]

    @staticmethod
    def _object_table(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not spec.objects:
            return np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return (
            np.array([o.center for o in spec.objects], float),
            np.array([o.category_id for o in spec.objects], np.int64),
            np.array([o.instance_id for o in spec.objects], np.int64),
        )

    @property
    def renderer(self):
        if self._renderer is None:
            from chronotope.envs.render.base import make_renderer

            meshes = [s.to_mesh() for s in self.scenes]
            self._renderer = make_renderer(
                self.cfg.backend, meshes, self.intrinsics, max_depth=self.max_depth, device=self.cfg.device
            )
        return self._renderer

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_renderer"] = None  # rebuilt on demand: acceleration structures do not pickle
        state["_main"] = {}  # a cache of the grids: refilled on demand, not carried into every checkpoint
        return state

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------------------------------- spaces
    def observation_space(self) -> spaces.Dict:
        """Observation space of ONE environment."""
        h, w = self.intrinsics.height, self.intrinsics.width
        d: dict[str, spaces.Space] = {}
        if self.cfg.obs_mode == "rgbd":
            d["rgb"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        if self.cfg.obs_mode in ("rgbd", "depth"):
            d["depth"] = spaces.Box(0.0, self.max_depth, (h, w, 1), np.float32)
            if self.cfg.semantic:
                d["semantic"] = spaces.Box(0, self.max_instance, (h, w, 1), np.int32)
        if self.cfg.obs_mode == "state":
            e = self.max_extent
            k = self.cfg.num_state_objects
            d["pose"] = spaces.Box(
                np.array([-e, -e, -np.pi], np.float32), np.array([e, e, np.pi], np.float32), dtype=np.float32
            )
            d["goal"] = spaces.Box(
                np.array([0.0, -np.pi], np.float32), np.array([e, np.pi], np.float32), dtype=np.float32
            )
            lo = np.tile(np.array([-e, -e, 0.0, 0.0], np.float32), (k, 1))
            hi = np.tile(np.array([e, e, cat.NUM_CATEGORIES - 1, e], np.float32), (k, 1))
            d["objects"] = spaces.Box(lo, hi, dtype=np.float32)
            d["range"] = spaces.Box(0.0, RANGE_MAX, (RANGE_RAYS,), np.float32)
        d.update(self.task.sensor_spaces(self))
        return spaces.Dict(d)

    # ------------------------------------------------------------------------------------------- episodes
    def reset_envs(
        self, idx: np.ndarray, rngs: list[np.random.Generator], seeds: list[int | None] | None = None
    ) -> None:
        """Starts new episodes in environments ``idx`` using each environment's own generator.

        ``seeds`` (per environment, all N; None: no explicit seed, as in an auto-reset) is the seed each reset was
        asked for; while environment ``i``'s episode is sampled, ``self.reset_seed`` holds ``seeds[i]``, so a task
        may key its episode on it (VLN's ``episode_order="seed"``).
        """
        for i in idx:
            self.reset_seed = None if seeds is None else seeds[i]
            ep = self.task.sample_episode(self, rngs[i])
            self.episodes[i] = ep
            self.sim.set_pose([i], ep.start_position[None], [ep.start_yaw], [ep.scene])
            self.start_position[i] = ep.start_position
            self.start_yaw[i] = self.sim.yaw[i]
            self.goal_position[i] = ep.goal_position
            self.goal_category[i] = max(ep.goal_category, 0)
            self.start_distance[i] = ep.start_distance
            self.shortest_path[i] = ep.shortest_path
            fh, fw = ep.field.shape
            self.fields[i] = np.inf
            self.fields[i, :fh, :fw] = ep.field
        self.reset_seed = None
        idx = np.asarray(idx, np.int64)
        self.elapsed[idx] = 0
        self.called_stop[idx] = False
        self.collided[idx] = False
        self.moved[idx] = 0.0
        self._update_distance()
        for m in self.measures.values():
            m.reset_metric(idx, self)
        self.task.on_reset(self, idx, rngs)

    def _update_distance(self) -> None:
        row, col, inside = self.sim.stack.cells(self.sim.scene, self.sim.position)
        d = self.fields[np.arange(self.n), row, col].astype(np.float64)
        self.distance_to_goal = np.where(inside, d, np.inf)

    def check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self.n,):
            raise ValueError(f"expected actions of shape ({self.n},), got {a.shape} ({actions!r})")
        if a.dtype.kind == "f":
            if not np.isfinite(a).all():
                raise ValueError(f"actions contain NaN or inf: {a.tolist()}")
            if not np.all(a == np.round(a)):
                raise ValueError(f"actions must be integers in 0..{len(ACTION_NAMES) - 1}, got {a.tolist()}")
        elif a.dtype.kind not in "iub":
            raise ValueError(f"actions must be integers, got dtype {a.dtype} ({actions!r})")
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= len(ACTION_NAMES))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"invalid action {a[i]} for environment {i}: valid actions are 0..{len(ACTION_NAMES) - 1} "
                f"{dict(enumerate(ACTION_NAMES))}"
            )
        return a

    def step(self, actions, rngs: list[np.random.Generator]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Moves every agent and updates measures; returns (reward [N], terms {name: [N]}, terminated [N])."""
        a = self.check_actions(actions)
        # Scripted phases (observe, watch ...) replace the agent's actions before motion.
        a = self.task.override_actions(self, a)
        prev = self.distance_to_goal.copy()
        self.called_stop = a == 0
        noise = self.agent.forward_noise > 0 or self.agent.turn_noise > 0
        self.collided, self.moved = self.sim.step(a, rngs if noise else None)
        self.elapsed += 1
        self._update_distance()
        self.task.on_step(self, a)
        for m in self.measures.values():
            m.update_metric(self)
        terms = self.task.reward_terms(self, prev)
        reward = np.sum(list(terms.values()), axis=0) if terms else np.zeros(self.n)
        terminated = self.task_terminated()
        return reward, terms, terminated

    def task_terminated(self) -> np.ndarray:
        return self.task.terminated(self)

    # ------------------------------------------------------------------------------------------- observations
    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Batched observations of environments ``idx`` (all by default), one renderer call for pixels."""
        sel = np.arange(self.n) if idx is None else np.asarray(idx, np.int64)
        obs: dict[str, np.ndarray] = {}
        mode = self.cfg.obs_mode
        if mode in ("rgbd", "depth"):
            poses = self.camera_poses()[sel]
            out = self.renderer.render(poses, self.sim.scene[sel])
            if mode == "rgbd":
                obs["rgb"] = out.rgb.cpu().numpy()
            obs["depth"] = out.depth.cpu().numpy()[..., None]
            if self.cfg.semantic:
                obs["semantic"] = out.semantic.cpu().numpy()[..., None]
            self.task.modify_pixels(self, sel, obs, out)
        if mode == "state":
            obs.update(self._state_obs(sel))
            # Memory tasks hide privileged vectors the agent has not seen (e.g. the remembered target's ``goal``).
            self.task.modify_state(self, sel, obs)
        sensors = self.task.sensors(self)
        for k, v in sensors.items():
            obs[k] = v[sel]
        return obs

    def camera_poses(self) -> np.ndarray:
        return self.sim.camera_poses()

    def _state_obs(self, sel: np.ndarray) -> dict[str, np.ndarray]:
        pos, yaw = self.sim.position[sel], self.sim.yaw[sel]
        e = self.max_extent
        k = self.cfg.num_state_objects
        objects = np.zeros((len(sel), k, 4), np.float32)
        for row, i in enumerate(sel):
            centers, cats, _ = self._objects[self.sim.scene[i]]
            if len(centers) == 0:
                continue
            d = centers - pos[row]
            dist = np.linalg.norm(d, axis=-1)
            order = np.argsort(dist, kind="stable")[:k]
            c, s = math.cos(yaw[row]), math.sin(yaw[row])
            rel = np.stack([c * d[order, 0] + s * d[order, 1], -s * d[order, 0] + c * d[order, 1]], -1)
            objects[row, : len(order), :2] = np.clip(rel, -e, e)
            objects[row, : len(order), 2] = cats[order]
            objects[row, : len(order), 3] = np.minimum(dist[order], e)
        goal = polar(pos, yaw, self.goal_position[sel])
        goal[:, 0] = np.minimum(goal[:, 0], e)
        return {
            "pose": np.concatenate([np.clip(pos, -e, e), yaw[:, None]], -1).astype(np.float32),
            "goal": goal.astype(np.float32),
            "objects": objects,
            "range": self.sim.stack.ranges(self.sim.scene[sel], pos, yaw, RANGE_RAYS, RANGE_MAX).astype(np.float32),
        }

    def info(self, terms: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Per-environment measures, reward terms and poses (arrays with leading dim N)."""
        out: dict[str, np.ndarray] = {k: m.value.copy() for k, m in self.measures.items()}
        if terms is not None:
            for k, v in terms.items():
                out[f"reward_{k}"] = np.asarray(v, float)
        out["camera_pose"] = self.camera_poses()
        out["agent_pose"] = np.concatenate([self.sim.position, self.sim.yaw[:, None]], -1)
        out["scene_id"] = self.sim.scene.copy()
        out.update(self.task.info(self))
        return out
