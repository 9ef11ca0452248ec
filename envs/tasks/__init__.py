"""Navigation tasks by name (imported lazily by the nav core)."""

from chronotope.envs.tasks.objectnav import ObjectNavTask
from chronotope.envs.tasks.pointnav import PointNavTask

TASKS = {"pointnav": PointNavTask, "objectnav": ObjectNavTask}
