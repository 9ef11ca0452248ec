"""Task sensors: small objects that each declare one observation key's space and compute its value for all N envs.

A task lists its sensors once, in :meth:`Task.declare_sensors <chronotope.envs.tasks.base.Task.declare_sensors>`;
the task's observation spaces (``Task.sensor_spaces``) and values (``Task.sensors``) are both derived from that
list, so the two cannot drift apart. The model is habitat-lab's ``Sensor`` (``uuid``, ``_get_observation_space``,
``get_observation``), batched: a value is an array ``[N, ...]`` over every environment of the core, computed from
the core's batched state (``core.sim``, ``core.start_position`` ...) and the task's own per-env arrays.

A sensor is either a subclass overriding :meth:`Sensor.space` / :meth:`Sensor.value` (reusable sensors, such as
:class:`GPSSensor` and :class:`CompassSensor` below) or a :class:`Sensor` built from functions of the core::

    Sensor("cue", lambda core: spaces.Box(0.0, 1.0, (1,), np.float32), lambda core: self.cued()[:, None])

``enabled(core)`` makes a sensor depend on the env's configuration (``obs_mode``, ``observability`` ...): a
disabled sensor has neither a space nor a value. A ``rendered`` sensor declares only the space of an image the
render path fills (and the task may edit in ``modify_pixels``), e.g. a ``semantic`` image whose id range the task
widens; it has no value of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.base import start_frame

SpaceFn = Callable[[Any], spaces.Space]
ValueFn = Callable[[Any], np.ndarray]
EnabledFn = Callable[[Any], bool]


class Sensor:
    """One observation key of a task: ``uuid``, its per-env ``space(core)`` and its batched ``value(core)`` [N, ...].

    Args:
        uuid: the observation key.
        space: the space of ONE environment's value, as a function of the core (called when the env builds its
            observation space, so it may read the config). Subclasses may override :meth:`space` instead.
        value: the value for all N environments, an array ``[N, *space.shape]`` of the space's dtype, as a
            function of the core. Subclasses may override :meth:`value` instead.
        enabled: whether the sensor is part of this env's observation (default: always).
        rendered: the value is an image drawn by the render path, not computed here (``value`` is not called).
    """

    uuid: str = ""
    rendered: bool = False

    def __init__(
        self,
        uuid: str | None = None,
        space: SpaceFn | None = None,
        value: ValueFn | None = None,
        enabled: EnabledFn | None = None,
        rendered: bool | None = None,
    ) -> None:
        if uuid is not None:
            self.uuid = uuid
        if not self.uuid:
            raise ValueError(f"{type(self).__name__} needs a uuid (its observation key)")
        self._space = space
        self._value = value
        self._enabled = enabled
        if rendered is not None:
            self.rendered = bool(rendered)

    def space(self, core) -> spaces.Space:
        """The space of one environment's value."""
        if self._space is None:
            raise NotImplementedError(f"sensor {self.uuid!r} declares no space")
        return self._space(core)

    def value(self, core) -> np.ndarray:
        """The value of every environment of the core, ``[N, ...]``."""
        if self._value is None:
            raise NotImplementedError(f"sensor {self.uuid!r} computes no value")
        return self._value(core)

    def enabled(self, core) -> bool:
        """Whether this env's observation has the sensor (its configuration: ``obs_mode`` ...)."""
        return True if self._enabled is None else bool(self._enabled(core))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uuid!r}{', rendered' if self.rendered else ''})"


class OneHotSensor(Sensor):
    """float32 [N, n]: the one-hot row of ``index(core)`` (int [N], e.g. a task's phase)."""

    def __init__(self, uuid: str, n: int, index: ValueFn, enabled: EnabledFn | None = None) -> None:
        super().__init__(uuid, enabled=enabled)
        self.n = int(n)
        self._index = index

    def space(self, core) -> spaces.Space:
        return spaces.Box(0.0, 1.0, (self.n,), np.float32)

    def value(self, core) -> np.ndarray:
        return np.eye(self.n, dtype=np.float32)[self._index(core)]


def polar_box(max_distance: float) -> spaces.Box:
    """float32 (distance in ``[0, max_distance]``, angle in ``[-pi, pi]``): the space of a point in polar form."""
    return spaces.Box(
        np.array([0.0, -np.pi], np.float32), np.array([max_distance, np.pi], np.float32), dtype=np.float32
    )


class GPSSensor(Sensor):
    """``gps`` float32 [N, 2]: the agent's position in its episode's start frame (x forward, y left, m), within
    ``±core.max_extent``. ``clip=True`` clips the value to that range (the memory tasks do)."""

    uuid = "gps"

    def __init__(self, clip: bool = False) -> None:
        super().__init__()
        self.clip = clip

    def space(self, core) -> spaces.Space:
        d = core.max_extent
        return spaces.Box(-d, d, (2,), np.float32)

    def value(self, core) -> np.ndarray:
        gps, _ = start_frame(core.sim.position, core.sim.yaw, core.start_position, core.start_yaw)
        if self.clip:
            gps = np.clip(gps, -core.max_extent, core.max_extent)
        return gps.astype(np.float32)


class CompassSensor(Sensor):
    """``compass`` float32 [N, 1]: the agent's heading minus its start heading, in ``[-pi, pi]``."""

    uuid = "compass"

    def space(self, core) -> spaces.Space:
        return spaces.Box(-np.pi, np.pi, (1,), np.float32)

    def value(self, core) -> np.ndarray:
        _, compass = start_frame(core.sim.position, core.sim.yaw, core.start_position, core.start_yaw)
        return compass[:, None].astype(np.float32)
