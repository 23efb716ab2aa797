"""deploy_sim.launch.yaml without ``task:=`` simulates the task its checkpoint was trained on:
its default was ``reach``, and a push checkpoint ran in the reach scene, said only in the
policy node's warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import constant_checkpoint

from robot_il.errors import ConfigError
from robot_il.launch import load_launch
from robot_il.launch.substitution import package_share

pytestmark = pytest.mark.ros


def node_parameters(arguments: dict[str, str], node: str) -> list[str]:
    """The rcl arguments deploy_sim.launch.yaml gives ``node`` (its params file and ``-p``
    overrides)."""
    share = package_share("robot_il", Path(__file__))
    plan = load_launch(share / "launch" / "deploy_sim.launch.yaml", arguments)
    process = next(p for p in plan.processes if p.name == node)
    return [node, *process.argv[3:]]


def test_the_simulator_and_the_live_view_take_the_checkpoint_s_task(
    tmp_path: Path, ros_domain_id: int
) -> None:
    import rclpy

    from robot_il.ros.dds import apply_loopback_env
    from robot_il.ros.live_view_node import LiveViewNode
    from robot_il.ros.sim_robot import SimRobot

    push = constant_checkpoint(tmp_path / "push", np.zeros(7), task="push")
    apply_loopback_env()
    arguments = {"checkpoint": str(push), "view": "true"}
    for node, make in (("sim_robot", SimRobot), ("live_view", LiveViewNode)):
        context = rclpy.Context()
        rclpy.init(args=node_parameters(arguments, node), context=context, domain_id=ros_domain_id)
        try:
            made = make(context=context)
            try:
                # the push scene's cube, which the reach scene lacks
                keys = made.env.task.task_keys if node == "sim_robot" else made.obs.keys
                assert "object_pose" in keys, (node, sorted(keys))
            finally:
                made.shutdown()
        finally:
            context.shutdown()


def test_no_task_and_no_checkpoint_is_one_line(ros_context) -> None:
    from rclpy.parameter import Parameter

    from robot_il.ros.sim_robot import SimRobot

    with pytest.raises(ConfigError, match=r"sim_robot: task:= is empty and no checkpoint:= given"):
        SimRobot(context=ros_context, parameter_overrides=[Parameter("task", value="")])
