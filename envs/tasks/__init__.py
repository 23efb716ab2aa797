"""The task registry: name -> ``Task`` class (see ``robot_il.envs.tasks.base``)."""

from __future__ import annotations

from robot_il.envs.tasks.base import Task
from robot_il.envs.tasks.bimanual_cross import BimanualCross
from robot_il.envs.tasks.bimanual_handover import BimanualHandover
from robot_il.envs.tasks.pick_place import PickPlace
from robot_il.envs.tasks.push import Push
from robot_il.envs.tasks.reach import Reach

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (Reach, Push, PickPlace, BimanualHandover, BimanualCross)
}

__all__ = ["TASKS", "Task"]
