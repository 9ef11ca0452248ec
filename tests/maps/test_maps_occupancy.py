import numpy as np
import pytest
from maps_box_env import PILLAR_HI, PILLAR_LO, ROOM, BoxRoomEnv, free_position

from chronotope.maps.occupancy import OccupancyConfig, OccupancyMap

CFG = OccupancyConfig(cell_size=0.1, shape=(60, 80), origin=(-1.0, -1.0))


def _walk(n_steps: int = 40, seed: int = 0):
    env = BoxRoomEnv(32, 32, max_depth=8.0)
    obs, info = env.reset(seed=seed)
    m = OccupancyMap(CFG)
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        m.integrate_depth(obs["depth"], env.intrinsics, info["camera_pose"], env.max_depth, obs["semantic"])
        obs, _, _, _, info = env.step(int(rng.choice(3, p=[0.5, 0.25, 0.25])))
    return m


def _dist_to_obstacles(xy):
    d_wall = np.minimum(xy, ROOM[:2] - xy).min(axis=1)
    q = np.maximum(np.maximum(PILLAR_LO[:2] - xy, xy - PILLAR_HI[:2]), 0.0)
    return np.minimum(d_wall, np.linalg.norm(q, axis=1))


def test_occupied_cells_hug_walls_and_free_cells_are_floor():
    m = _walk()
    occ, free = m.occupied_mask, m.observed_free_mask
    assert occ.sum() > 50 and free.sum() > 300
    rc_occ = np.argwhere(occ)
    xy = m.cell_to_world(rc_occ)
    # every occupied cell centre is within one cell (half diagonal) of a wall or the pillar
    assert _dist_to_obstacles(np.clip(xy, 0, ROOM[:2])).max() <= np.sqrt(2) / 2 * m.cell_size + 1e-9
    # labels of occupied cells are wall / pillar ids, never floor (5) or ceiling (6)
    assert set(np.unique(m.semantic[occ]).tolist()) <= {1, 2, 3, 4, 7}
    xy_free = m.cell_to_world(np.argwhere(free))
    assert ((xy_free > -m.cell_size) & (xy_free < ROOM[:2] + m.cell_size)).all()


def test_world_cell_round_trip_and_bounds():
    m = OccupancyMap(CFG)
    rc = np.array([[0, 0], [59, 79], [10, 33]])
    np.testing.assert_array_equal(m.world_to_cell(m.cell_to_world(rc)), rc)
    np.testing.assert_allclose(m.cell_to_world([[0, 0]]), [[-0.95, -0.95]])
    np.testing.assert_array_equal(m.world_to_cell(np.array([[0.05, 1.99, 7.0]])), [[29, 10]])
    assert m.in_bounds(m.world_to_cell(np.array([[-1.01, 0.0], [6.99, 4.99], [7.0, 0.0]]))).tolist() == [
        False,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="NaN"):
        m.world_to_cell(np.array([[np.nan, 0.0]]))


def test_height_bands_and_nonfinite_points():
    m = OccupancyMap(CFG)
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 2.4], [np.nan, 0, 0], [50.0, 0, 0.5]])
    s = m.integrate_points(pts)
    assert (s.n_floor, s.n_obstacle, s.n_ignored, s.n_nonfinite, s.n_outside_map) == (1, 1, 1, 1, 1)
    assert m.occupied_mask.sum() == 1 and m.floor_hits.sum() == 1
    # the same cell got floor and obstacle evidence: occupied wins, so it is not observed-free
    assert m.observed_free_mask.sum() == 0


def test_crop_rotates_with_heading():
    m = OccupancyMap(CFG)
    m.integrate_points(np.array([[1.0 + 0.55, 2.0 + 0.05, 0.5]]))  # an obstacle 0.55 m along +x of (1, 2)
    size = 16
    up = m.crop(np.array([1.0, 2.0]), yaw=0.0, size=size)  # heading +x: the obstacle is straight ahead
    r, c = np.argwhere(up[0])[0]
    assert c in (size // 2 - 1, size // 2) and r == size // 2 - 6
    left = m.crop(np.array([1.0, 2.0]), yaw=-np.pi / 2, size=size)  # heading -y: the obstacle is to the left
    r, c = np.argwhere(left[0])[0]
    assert r in (size // 2 - 1, size // 2) and c == size // 2 - 6
    # rotate=False keeps world axes whatever the yaw
    np.testing.assert_array_equal(m.crop(np.array([1.0, 2.0]), 1.234, size, rotate=False), up)


def test_observed_free_covers_seen_floor():
    m = _walk(60, seed=3)
    centres = m.cell_centers().reshape(-1, 2)
    inside = np.array([free_position(p, margin=0.15) for p in centres]).reshape(m.shape)
    # free cells are navigable floor; most of the room floor got seen on a 60-step walk
    assert not (m.observed_free_mask & ~np.array([free_position(p, 0.0) for p in centres]).reshape(m.shape)).any()
    assert (m.observed_free_mask & inside).sum() > 0.5 * inside.sum()
