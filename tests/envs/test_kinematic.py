import math

import numpy as np
import pytest

from chronotope.envs.scene.generator import generate_apartment
from chronotope.envs.scene.spec import Room, SceneSpec, Wall
from chronotope.envs.sim.kinematic import MOVE_FORWARD, TURN_LEFT, TURN_RIGHT, AgentConfig, BatchKinematics


def _box_room() -> SceneSpec:
    walls = (
        Wall((0.0, 0.0), (4.0, 0.0)),
        Wall((0.0, 4.0), (4.0, 4.0)),
        Wall((0.0, 0.0), (0.0, 4.0)),
        Wall((4.0, 0.0), (4.0, 4.0)),
    )
    return SceneSpec("box", (Room(0, "office", (0.0, 0.0), (4.0, 4.0)),), walls, (), ())


def test_forward_and_turns_follow_the_convention():
    sim = BatchKinematics([_box_room().navgrid()], 1)
    sim.set_pose([0], [[1.0, 2.0]], [0.0])
    collided, moved = sim.step(np.array([MOVE_FORWARD]))
    assert not collided[0] and moved[0] == pytest.approx(0.25)
    assert sim.position[0] == pytest.approx([1.25, 2.0])
    sim.step(np.array([TURN_LEFT]))
    assert sim.yaw[0] == pytest.approx(math.radians(15))
    for _ in range(3):
        sim.step(np.array([TURN_RIGHT]))
    assert sim.yaw[0] == pytest.approx(math.radians(-30))


def test_blocked_motion_slides_along_the_wall_and_reports_collision():
    sim = BatchKinematics([_box_room().navgrid()], 1)
    # facing the east wall at 45 degrees, right next to it: x is blocked, y slides
    sim.set_pose([0], [[3.7, 2.0]], [math.radians(45)])
    collided, moved = sim.step(np.array([MOVE_FORWARD]))
    assert collided[0]
    assert sim.position[0, 1] > 2.0 + 0.1  # slid north
    assert sim.position[0, 0] <= 4.0 - 0.05 - 0.18 + 0.05
    # head-on into the wall: no sliding component left, no motion through it
    sim.set_pose([0], [[3.7, 2.0]], [0.0])
    for _ in range(5):
        collided, _ = sim.step(np.array([MOVE_FORWARD]))
    assert collided[0] and sim.position[0, 0] < 4.0 - 0.05 - 0.18 + 0.05


def test_random_walks_never_enter_walls_or_furniture():
    spec = generate_apartment(4)
    grid = spec.navgrid()
    n, steps = 16, 625  # 10k agent-steps
    sim = BatchKinematics([grid], n)
    rng = np.random.default_rng(0)
    sim.set_pose(np.arange(n), grid.sample_navigable(rng, n, grid.largest_component()), rng.uniform(-3, 3, n))
    walls = [(lo[:2], hi[:2]) for lo, hi in spec.wall_boxes() if lo[2] < 1.5]
    fps = [o.footprint() for o in spec.objects]
    min_clear = np.inf
    collisions = 0
    for _ in range(steps):
        c, _ = sim.step(rng.choice([MOVE_FORWARD, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT], n))
        collisions += c.sum()
        p = sim.position
        for lo, hi in walls:
            dx = np.maximum(np.maximum(lo[0] - p[:, 0], p[:, 0] - hi[0]), 0)
            dy = np.maximum(np.maximum(lo[1] - p[:, 1], p[:, 1] - hi[1]), 0)
            min_clear = min(min_clear, float(np.hypot(dx, dy).min()))
        for fp in fps:
            c0, e1, e2 = fp[0], fp[1] - fp[0], fp[3] - fp[0]
            u = (p - c0) @ e1 / (e1 @ e1)
            v = (p - c0) @ e2 / (e2 @ e2)
            assert not ((u > 0) & (u < 1) & (v > 0) & (v < 1)).any(), "an agent entered a piece of furniture"
    assert collisions > 100  # the walk did push against obstacles
    # the body may touch an obstacle by at most the grid resolution, never pass into it
    assert min_clear >= 0.18 - 0.075


def test_bad_inputs_are_named():
    sim = BatchKinematics([_box_room().navgrid()], 2)
    with pytest.raises(ValueError, match="shape"):
        sim.step(np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="finite"):
        sim.set_pose([0], [[np.nan, 1.0]], [0.0])
    with pytest.raises(ValueError, match="forward_step"):
        AgentConfig(forward_step=-1.0)
    with pytest.raises(ValueError, match="num_agents"):
        BatchKinematics([_box_room().navgrid()], 0)


def test_actuation_noise_is_seeded():
    cfg = AgentConfig(forward_noise=0.1, turn_noise=2.0)
    grid = _box_room().navgrid()
    runs = []
    for _ in range(2):
        sim = BatchKinematics([grid], 2, cfg)
        sim.set_pose([0, 1], [[1.0, 1.0], [2.0, 2.0]], [0.3, 0.3])
        rngs = [np.random.default_rng(5), np.random.default_rng(6)]
        for _ in range(5):
            sim.step(np.array([MOVE_FORWARD, TURN_LEFT]), rngs)
        runs.append(np.concatenate([sim.position.ravel(), sim.yaw]))
    assert np.array_equal(runs[0], runs[1])
    nominal = [1.0 + 1.25 * math.cos(0.3), 1.0 + 1.25 * math.sin(0.3)]
    assert not np.allclose(runs[0][:2], nominal, atol=1e-3)  # the noise did perturb the motion


def test_rangefinder_measures_wall_distances():
    sim = BatchKinematics([_box_room().navgrid()], 1)
    # at (1, 2) facing +x in a 4 m box room with 0.1 m walls: east face at 3.95, west face at 0.05
    r = sim.stack.ranges(np.array([0]), np.array([[1.0, 2.0]]), np.array([0.0]), 4, 5.0)[0]
    assert r[0] == pytest.approx(2.95, abs=0.06)  # ahead
    assert r[1] == pytest.approx(1.95, abs=0.06)  # left (north face at 3.95)
    assert r[2] == pytest.approx(0.95, abs=0.06)  # behind
    assert r[3] == pytest.approx(1.95, abs=0.06)  # right
    assert sim.stack.ranges(np.array([0]), np.array([[2.0, 2.0]]), np.array([0.0]), 4, 1.0)[0].max() == 1.0
