"""The task registry: name -> ``Task`` class (see ``robot_il.envs.tasks.base``), the built-in
tasks and those registered with ``robot_il.envs.register_task`` (``registry``)."""

from __future__ import annotations

from robot_il.envs.tasks.base import Task
from robot_il.envs.tasks.bimanual_cross import BimanualCross
from robot_il.envs.tasks.bimanual_handover import BimanualHandover
from robot_il.envs.tasks.pick_place import PickPlace
from robot_il.envs.tasks.push import Push
from robot_il.envs.tasks.reach import Reach
from robot_il.envs.tasks.registry import ENTRY_POINT_GROUP, TaskRegistry

TASKS = TaskRegistry()
for _task in (Reach, Push, PickPlace, BimanualHandover, BimanualCross):
    TASKS.register(_task)

__all__ = ["ENTRY_POINT_GROUP", "TASKS", "Task", "TaskRegistry"]
