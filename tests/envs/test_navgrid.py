import numpy as np
import pytest

from chronotope.envs.scene.navgrid import NavGrid
from chronotope.envs.scene.spec import Door, Room, SceneSpec, Wall


def _two_rooms() -> SceneSpec:
    """Two 4 m x 4 m rooms side by side, joined by a 1 m door at y = 0.5..1.5 in the wall x = 4."""
    rooms = (Room(0, "office", (0.0, 0.0), (4.0, 4.0)), Room(1, "kitchen", (4.0, 0.0), (8.0, 4.0)))
    walls = (
        Wall((0.0, 0.0), (8.0, 0.0)),
        Wall((0.0, 4.0), (8.0, 4.0)),
        Wall((0.0, 0.0), (0.0, 4.0)),
        Wall((8.0, 0.0), (8.0, 4.0)),
        Wall((4.0, 0.0), (4.0, 4.0)),
    )
    doors = (Door((4.0, 1.0), 1.0, "y", (0, 1)),)
    return SceneSpec("two-rooms", rooms, walls, doors, ())


def test_geodesic_equals_straight_line_in_open_space():
    grid = _two_rooms().navgrid()
    field = grid.distance_field(goals_xy=np.array([[1.0, 2.0]]))
    for p in ([3.0, 2.0], [1.0, 3.5], [2.5, 0.8]):
        d = grid.lookup(field, np.array(p))
        assert d == pytest.approx(np.linalg.norm(np.array(p) - [1.0, 2.0]), abs=0.08)


def test_geodesic_goes_through_the_door():
    grid = _two_rooms().navgrid()
    goal, start = np.array([2.0, 3.0]), np.array([6.0, 3.0])
    field = grid.distance_field(goals_xy=goal[None])
    via_door = np.linalg.norm(start - [4.0, 1.0]) + np.linalg.norm([4.0, 1.0] - goal)
    d = float(grid.lookup(field, start))
    # around the door jamb (inflated by the radius): between the straight line and the corner path + slack
    assert np.linalg.norm(start - goal) + 0.5 < d <= via_door + 0.3


def test_inflation_and_bad_goals():
    grid = _two_rooms().navgrid(agent_radius=0.18)
    # a point 0.1 m from the west wall's face is not navigable, 0.3 m is
    assert not grid.is_navigable(np.array([0.05 + 0.1, 2.0]))
    assert grid.is_navigable(np.array([0.05 + 0.3, 2.0]))
    with pytest.raises(ValueError, match="no navigable goal"):
        grid.distance_field(goals_xy=np.array([[4.0, 3.0]]))  # inside the middle wall
    with pytest.raises(ValueError, match="NaN"):
        grid.distance_field(goals_xy=np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="cell_size"):
        NavGrid.from_scene(_two_rooms(), cell_size=0.0)
