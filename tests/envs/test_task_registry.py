"""A new navigation task is one class with ``@register_task``: made, stepped, pickled and read by the
registry-driven code paths (config keyword routing, the core's hooks, the imitation expert and the trainers'
masks) without editing any other file. The task below is that whole change."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import chronotope.envs as ce
from chronotope.envs.tasks import TASKS, Sensor, Task, register_task
from chronotope.envs.tasks.base import Episode, agent_frame


@register_task("test_beacon")
class BeaconTask(Task):
    """Task sheet.

    Description: reach a beacon anywhere in the start's connected free space, then call STOP.
    Randomisations: scene, beacon and start positions, start heading.
    Observations (task sensors): ``beacon`` (x forward, y left) of the beacon in the agent's current frame.
    Success: STOP within ``success_radius`` (geodesic) of the beacon.
    Reward terms: the base task's ``progress``, ``success`` and ``slack``.
    """

    def __init__(self, success_radius: float = 0.5, **kw) -> None:
        super().__init__(**kw)
        self.success_radius = float(success_radius)
        self.home = np.zeros((0, 2))

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        scene = int(rng.integers(len(core.scenes)))
        grid, main = core.grids[scene], core.main_component(scene)
        goal, start = grid.sample_navigable(rng, 2, main)
        field = grid.distance_field(goals_xy=goal[None])
        d0 = float(grid.lookup(field, start))
        return Episode(scene, start, float(rng.uniform(-np.pi, np.pi)), goal, field, d0, d0)

    def declare_sensors(self, core) -> list[Sensor]:
        def beacon(core) -> np.ndarray:
            rel = agent_frame(core.goal_position - core.sim.position, core.sim.yaw)
            return np.clip(rel, -core.max_extent, core.max_extent).astype(np.float32)

        return [Sensor("beacon", lambda c: spaces.Box(-c.max_extent, c.max_extent, (2,), np.float32), beacon)]

    def on_reset(self, core, idx: np.ndarray, rngs) -> None:
        if len(self.home) != core.n:
            self.home = np.zeros((core.n, 2))
        self.home[idx] = core.sim.position[idx]

    def info(self, core) -> dict[str, np.ndarray]:
        return {"from_home": np.linalg.norm(core.sim.position - self.home, axis=-1)}


SMALL = {"num_scenes": 2, "resolution": (32, 32), "obs_mode": "state"}


def test_the_decorator_registers_and_names_the_task():
    assert TASKS["test_beacon"] is BeaconTask and BeaconTask.name == "test_beacon"
    with pytest.raises(ValueError, match="taken"):
        register_task("pointnav")(type("OtherPointNav", (Task,), {}))
    with pytest.raises(TypeError):
        register_task("not_a_task")(object)


def test_every_registered_env_id_names_a_registered_task():
    assert {kwargs["task"] for kwargs, _, _ in ce.NAV_ENVS.values()} <= set(TASKS)


def test_a_new_task_is_made_stepped_and_pickled_through_the_registered_ids():
    from gymnasium.utils.env_checker import check_env

    # A task keyword given at the top level reaches the task (NavConfig routes it by the registered class).
    env = gym.make("chronotope/PointNav-v0", task="test_beacon", success_radius=0.75, **SMALL)
    core = env.unwrapped.core
    assert isinstance(core.task, BeaconTask) and core.success_radius == 0.75
    assert "beacon" in env.observation_space.spaces
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["from_home"] == 0.0
    expert = core.task.expert()  # the declared default: the shortest-path follower
    for _ in range(300):
        obs, reward, term, trunc, info = env.step(int(expert.act(core)[0]))
        assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward_")), abs=1e-9)
        if term:
            break
    assert term and info["success"] == 1.0 and info["from_home"] > 0
    clone = pickle.loads(pickle.dumps(env))
    assert isinstance(clone.unwrapped.core.task, BeaconTask)
    env.close()
    clone.close()


def test_the_trainers_read_the_new_task_through_its_declared_hooks():
    from chronotope.agents.imitation import expert_for
    from chronotope.agents.memory_span import controllable_for, declared_span

    venv = gym.make_vec(
        "chronotope/PointNav-v0", num_envs=3, vectorization_mode="vector_entry_point", task="test_beacon", **SMALL
    )
    _, info = venv.reset(seed=0)
    assert info["from_home"].tolist() == [0.0] * 3
    assert isinstance(venv.unwrapped.core.task, BeaconTask)
    actions = expert_for(venv)()
    assert actions.shape == (3,) and actions.dtype == np.int64
    assert controllable_for(venv)().tolist() == [True] * 3
    assert declared_span(venv) is None  # no memory demand declared
    _, _, _, _, info = venv.step(actions)
    assert info["from_home"].shape == (3,) and (info["from_home"] >= 0).all()
    venv.close()


def test_an_unknown_task_lists_the_registered_ones():
    with pytest.raises(ValueError, match="test_beacon"):
        gym.make("chronotope/PointNav-v0", task="no_such_task", **SMALL)
