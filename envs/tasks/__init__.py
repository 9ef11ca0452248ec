"""Navigation tasks by name (imported lazily by the nav core)."""

from chronotope.envs.tasks.ballet import BalletTask
from chronotope.envs.tasks.object_recall import ObjectRecallTask
from chronotope.envs.tasks.objectnav import ObjectNavTask
from chronotope.envs.tasks.pointnav import PointNavTask
from chronotope.envs.tasks.target_sequence import TargetSequenceTask
from chronotope.envs.tasks.vln import VLNTask

TASKS = {
    "pointnav": PointNavTask,
    "objectnav": ObjectNavTask,
    "vln": VLNTask,
    "object_recall": ObjectRecallTask,
    "target_sequence": TargetSequenceTask,
    "ballet": BalletTask,
}
