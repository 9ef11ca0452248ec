"""Declared task sensors, for every registered task and obs mode: each active sensor's value lies in its declared
space (dtype, shape, bounds) and equals what the env observes, and the env's observation keys are the core's own
keys plus exactly the declared ones."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from chronotope.envs.tasks import TASKS, Sensor, Task
from chronotope.envs.tasks.visibility import MemoryTask

SMALL = {"num_scenes": 2, "resolution": (16, 16), "max_episode_steps": 12}
CORE_KEYS = {
    "state": {"pose", "goal", "objects", "range"},
    "depth": {"depth", "semantic"},
    "rgbd": {"rgb", "depth", "semantic"},
}
CASES = [
    (name, mode, obs)
    for name in sorted(TASKS)
    for mode in ("state", "depth", "rgbd")
    for obs in (("partial", "full") if issubclass(TASKS[name], MemoryTask) else (None,))
]


def _check(core, obs, single_space) -> None:
    declared = core.task.declare_sensors(core)
    active = core.task.active_sensors(core)
    uuids = [s.uuid for s in active]
    assert all(isinstance(s, Sensor) for s in declared)
    # the env observes the core's own keys plus exactly the active sensors; a disabled sensor is absent
    assert set(obs) == set(single_space.spaces)
    assert set(obs) - set(uuids) <= CORE_KEYS[core.cfg.obs_mode]
    assert set(uuids) <= set(obs)
    for s in declared:
        if not s.enabled(core) and s.uuid not in CORE_KEYS[core.cfg.obs_mode]:
            assert s.uuid not in obs, s
    task_spaces = core.task.sensor_spaces(core)
    assert list(task_spaces) == uuids
    values = core.task.sensors(core)
    assert list(values) == [s.uuid for s in active if not s.rendered]
    for s in active:
        space = s.space(core)
        assert single_space[s.uuid] == space, s
        assert obs[s.uuid].shape == (core.n, *space.shape), s
        assert obs[s.uuid].dtype == space.dtype, s
        if not s.rendered:
            v = s.value(core)
            assert v.shape == obs[s.uuid].shape and v.dtype == space.dtype, s
            assert np.array_equal(v, obs[s.uuid]), s
        for i in range(core.n):
            assert space.contains(obs[s.uuid][i]), (s, i, obs[s.uuid][i])


@pytest.mark.parametrize(("task", "obs_mode", "observability"), CASES)
def test_declared_sensors_match_the_observations(task, obs_mode, observability):
    kw = {} if observability is None else {"observability": observability}
    venv = gym.make_vec(
        "chronotope/PointNav-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        task=task,
        obs_mode=obs_mode,
        semantic=obs_mode != "state",
        **kw,
        **SMALL,
    )
    core = venv.unwrapped.core
    assert type(core.task) is TASKS[task]
    obs, _ = venv.reset(seed=0)
    _check(core, obs, venv.single_observation_space)
    rng = np.random.default_rng(0)
    for _ in range(16):  # past one time limit: autoreset rows too
        obs, *_ = venv.step(rng.integers(0, 4, 2))
        _check(core, obs, venv.single_observation_space)
    venv.close()


def test_sensor_objects():
    box = spaces.Box(0.0, 1.0, (1,), np.float32)
    s = Sensor("x", lambda c: box, lambda c: np.zeros((2, 1), np.float32), enabled=lambda c: c == "on")
    assert s.space(None) is box and s.value(None).shape == (2, 1)
    assert s.enabled("on") and not s.enabled("off") and not s.rendered
    with pytest.raises(ValueError, match="uuid"):
        Sensor()
    with pytest.raises(NotImplementedError, match="value"):
        Sensor("img", lambda c: box, rendered=True).value(None)

    class Twice(Task):
        def declare_sensors(self, core):
            return [s, Sensor("x", lambda c: box, lambda c: None)]

    with pytest.raises(ValueError, match="twice"):
        Twice().sensor_spaces("on")
    assert Task().sensor_spaces(None) == {} and Task().sensors(None) == {}
