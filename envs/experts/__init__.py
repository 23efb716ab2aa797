"""Scripted experts, one per task: ``make_expert(env)`` picks the one for ``env``'s task."""

from __future__ import annotations

import gymnasium as gym
from robot_il.envs.dmc import DMCEnv
from robot_il.envs.experts.base import Expert
from robot_il.envs.experts.bimanual_cross import BimanualCrossExpert
from robot_il.envs.experts.bimanual_handover import BimanualHandoverExpert
from robot_il.envs.experts.pick_place import PickPlaceExpert
from robot_il.envs.experts.push import PushExpert
from robot_il.envs.experts.reach import ReachExpert
from robot_il.envs.task_frame import TaskFrameEnv
from robot_il.envs.tasks import TASKS

from robot_il.errors import ConfigError

EXPERTS: dict[str, type[Expert]] = {  # and those of tasks registered with register_task
    "reach": ReachExpert,
    "push": PushExpert,
    "pick_place": PickPlaceExpert,
    "bimanual_handover": BimanualHandoverExpert,
    "bimanual_cross": BimanualCrossExpert,
}


def make_expert(env) -> Expert:
    """The scripted expert for ``env``'s task (any ``RobotEnv``, wrapped or not). A DeepMind
    Control task has none: its experts are trained policies (``benchmarks/dmc_experts.py``);
    nor has a ``TaskFrameEnv``: experts read and act in the world frame."""
    if isinstance(env.unwrapped, DMCEnv):
        raise ConfigError(
            f"no scripted expert for {env.unwrapped.task_name}: a DeepMind Control task"
        )
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, TaskFrameEnv):
            raise ConfigError(
                f"no scripted expert acts in the {layer.task_frame!r} task frame: record it in "
                "the world frame and convert the dataset (`robot-il data frame`)"
            )
        layer = layer.env
    task = env.unwrapped.task.name
    TASKS.load_plugins()  # their experts too, for an env built from a task class directly
    if task not in EXPERTS:
        raise ConfigError(f"no scripted expert for task {task!r}; experts: {', '.join(EXPERTS)}")
    return EXPERTS[task](env)


__all__ = ["EXPERTS", "Expert", "make_expert"]
