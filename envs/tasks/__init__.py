"""Navigation tasks by name: ``TASKS`` (name -> class), filled by the ``@register_task`` decorator on each class.

Importing this package imports every module in it, so a task class in a new module here is registered without
editing any other file. A task defined elsewhere registers when its module is imported.
"""

import importlib
import pkgutil

from chronotope.envs.tasks.base import TASKS, Task, register_task
from chronotope.envs.tasks.sensors import Sensor

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Sensor", "Task", "register_task"]
