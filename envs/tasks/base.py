"""Task objects: episode sampling, task sensors (declared :mod:`~chronotope.envs.tasks.sensors` objects), reward
terms and success radius for the batched nav core.

Every hook the core, the trainers and the oracles call on a task is declared on :class:`Task` with its default;
:func:`register_task` puts a task class in ``TASKS``, the one task-name -> class table the nav core reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.measures import NAV_MEASURES, Measure

if TYPE_CHECKING:  # sensors.py builds on this module's frame helpers
    from chronotope.envs.tasks.sensors import Sensor


@dataclass
class Episode:
    """One navigation episode of one environment.

    Attributes:
        scene: index into the scene pool.
        start_position: (x, y).
        start_yaw: radians.
        goal_position: (x, y) of the goal point (PointNav) or of the nearest goal instance (ObjectNav).
        field: geodesic distance field (m) on the scene's grid from the goal region.
        start_distance: d_0.
        shortest_path: l, the geodesic length to the nearest success location.
        goal_category: object category id (ObjectNav), -1 otherwise.
        extra: task-specific data (targets, phases, instruction ...).
    """

    scene: int
    start_position: np.ndarray
    start_yaw: float
    goal_position: np.ndarray
    field: np.ndarray
    start_distance: float
    shortest_path: float
    goal_category: int = -1
    extra: dict = field(default_factory=dict)


class Task:
    """Base class of navigation tasks.

    Subclasses are registered with :func:`register_task` (which sets ``name``), set ``success_radius`` and
    implement :meth:`sample_episode` and :meth:`declare_sensors` (the task's observations, from which
    :meth:`sensor_spaces` and :meth:`sensors` are derived). Rewards: progress on geodesic
    distance, a success bonus and a slack penalty (habitat defaults), each reported as ``info["reward_<name>"]``.

    The other hooks have defaults that leave the core's behaviour alone; a task overrides only those it needs.
    In the order the core calls them: :meth:`scene_overrides` and :meth:`scene_pool` (construction),
    :meth:`on_reset` (episode starts), :meth:`override_actions`, :meth:`on_step`, :meth:`reward_terms`,
    :meth:`terminated` (each step), :meth:`modify_pixels` / :meth:`modify_state` (observations), :meth:`info`.
    Trainers and oracles read :meth:`controllable`, :meth:`cue_to_query_span` and :meth:`expert`.
    """

    name = "task"
    success_radius = 0.2
    cache_attrs: tuple[str, ...] = ()
    """Attributes holding caches derived from the scenes alone (geodesic fields, ...): pickled empty, so a pickled
    env (in every checkpoint) does not grow with each scene and goal visited; they refill on demand."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for k in self.cache_attrs:
            if k in state:
                state[k] = type(state[k])()
        return state

    def __init__(self, success_reward: float = 2.5, slack_reward: float = -0.01, progress_scale: float = 1.0) -> None:
        self.success_reward = float(success_reward)
        self.slack_reward = float(slack_reward)
        self.progress_scale = float(progress_scale)

    def measure_types(self) -> tuple[type[Measure], ...]:
        return NAV_MEASURES

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ sensors
    def declare_sensors(self, core) -> list[Sensor]:
        """The task's sensors (:class:`~chronotope.envs.tasks.sensors.Sensor`), in observation order: each
        declares its key (``uuid``), its space, its batched value and when it is ``enabled``. The only place a
        task names its observations; :meth:`sensor_spaces` and :meth:`sensors` derive from it. Default: none."""
        return []

    def active_sensors(self, core) -> list[Sensor]:
        """The declared sensors enabled in this core's configuration, in order; a repeated uuid raises
        ``ValueError``."""
        out = [s for s in self.declare_sensors(core) if s.enabled(core)]
        if len({s.uuid for s in out}) != len(out):
            raise ValueError(f"{type(self).__name__} declares a sensor uuid twice: {out}")
        return out

    def sensor_spaces(self, core) -> dict[str, spaces.Space]:
        """{uuid: space of one env} of the active sensors (derived from :meth:`declare_sensors`); they are added to
        (or, for a ``rendered`` sensor, replace) the core's observation spaces."""
        return {s.uuid: s.space(core) for s in self.active_sensors(core)}

    def sensors(self, core) -> dict[str, np.ndarray]:
        """{uuid: value [N, ...]} of the active sensors that compute a value (all but the ``rendered`` ones),
        derived from :meth:`declare_sensors`; ``NavCore.observe`` slices them to the observed rows."""
        return {s.uuid: s.value(core) for s in self.active_sensors(core) if not s.rendered}

    # ------------------------------------------------------------------------------------------ construction
    def scene_overrides(self) -> dict | None:
        """Scene-generator knobs the task depends on (``ApartmentConfig`` keywords, e.g. room count), merged over
        the env's ``scene_config`` when scenes are generated; None leaves it as given."""
        return None

    def scene_pool(self, cfg) -> list | None:
        """The task's own scenes (``SceneSpec`` list, e.g. named by a dataset's episodes) for config ``cfg``;
        None uses the pool the config describes."""
        return None

    # ------------------------------------------------------------------------------------------ episodes
    def on_reset(self, core, idx: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Called after environments ``idx`` started new episodes (measures already reset); ``rngs[i]`` is
        environment i's generator, for the task's own per-episode sampling."""

    def override_actions(self, core, actions: np.ndarray) -> np.ndarray:
        """Actions int64 [N] as executed: scripted phases (observe, watch ...) replace the agent's. Default: the
        agent's actions unchanged."""
        return actions

    def on_step(self, core, actions: np.ndarray) -> None:
        """Called after the agents moved with ``actions`` [N] (distances updated), before the measures."""

    def reward_terms(self, core, prev_distance: np.ndarray) -> dict[str, np.ndarray]:
        """Named reward terms {name: [N]}; the reward is their sum, each reported as ``info["reward_<name>"]``."""
        d = core.distance_to_goal
        progress = np.where(np.isfinite(prev_distance) & np.isfinite(d), prev_distance - d, 0.0)
        success = core.measures["success"].value
        return {
            "progress": self.progress_scale * progress,
            "success": self.success_reward * success,
            "slack": np.full(core.n, self.slack_reward),
        }

    def terminated(self, core) -> np.ndarray:
        """bool [N]: episodes that end now. Default: the agent called STOP."""
        return core.called_stop.copy()

    # ------------------------------------------------------------------------------------------ observations
    def modify_pixels(self, core, sel: np.ndarray, obs: dict[str, np.ndarray], out) -> None:
        """Edits the rendered images ``obs`` (rows ``sel``) in place, e.g. to draw what the scene mesh lacks;
        ``out`` is the renderer's output. ``NavCore.observe`` and the rendered-depth map wrapper call it."""

    def modify_state(self, core, sel: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        """Edits the ``state`` observation vectors (rows ``sel``) in place, e.g. to hide what the agent has not
        seen."""

    def info(self, core) -> dict[str, np.ndarray]:
        """Extra per-environment info entries {key: [N, ...]} beyond the measures."""
        return {}

    # ------------------------------------------------------------------------------------------ trainers, oracles
    def controllable(self, core) -> np.ndarray:
        """bool [N]: environments whose next action is the agent's own (not replaced by a scripted phase).
        Trainers mask the losses of the other steps."""
        return np.ones(core.n, bool)

    def cue_to_query_span(self) -> int:
        """Most steps between the last informative observation and the decision that needs it (current settings).

        Trainers warn when their gradient truncation (``bptt_len``) is shorter than this. Raises
        ``NotImplementedError`` for tasks that declare no span (no memory demand).
        """
        raise NotImplementedError

    def expert(self):
        """The task's oracle for imitation: an object whose ``act(core)`` returns int64 actions [N]. Default: the
        shortest-path expert on the goal's geodesic field."""
        from chronotope.envs.nav.expert import ShortestPathExpert

        return ShortestPathExpert()


TASKS: dict[str, type[Task]] = {}
"""Task name -> class, filled by :func:`register_task` (``chronotope.envs.tasks`` imports every task module)."""


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: registers a :class:`Task` subclass under ``name`` (its ``task=`` keyword) and sets its
    ``name``. A name may be taken once; re-running the same class definition (a reloaded module) replaces it."""

    def register(cls: type[Task]) -> type[Task]:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"register_task({name!r}) decorates Task subclasses, got {cls!r}")
        prior = TASKS.get(name)
        if prior is not None and (prior.__module__, prior.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"task name {name!r} is taken by {prior.__module__}.{prior.__qualname__}")
        cls.name = name
        TASKS[name] = cls
        return cls

    return register


def agent_frame(d: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World vectors ``d`` [..., 2] in the frame of headings ``yaw`` (broadcast against ``d[..., 0]``): x forward,
    y left."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def start_frame(position: np.ndarray, yaw: np.ndarray, start: np.ndarray, start_yaw: np.ndarray):
    """GPS (position in the start frame, x forward, y left) [N, 2] and compass (heading - start heading) [N]."""
    gps = agent_frame(position - start, start_yaw)
    compass = np.pi - np.mod(np.pi - (yaw - start_yaw), 2 * np.pi)
    return gps, compass


def polar(from_xy: np.ndarray, from_yaw: np.ndarray, to_xy: np.ndarray) -> np.ndarray:
    """(distance, angle) [N, 2] of points ``to_xy`` seen from poses (angle positive to the left)."""
    d = to_xy - from_xy
    rho = np.linalg.norm(d, axis=-1)
    phi = np.arctan2(d[:, 1], d[:, 0]) - from_yaw
    phi = np.pi - np.mod(np.pi - phi, 2 * np.pi)
    return np.stack([rho, phi], -1)
