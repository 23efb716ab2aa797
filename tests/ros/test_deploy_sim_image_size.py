"""deploy_sim.launch.yaml renders a camera checkpoint's frames at its own size, as
``robot-il eval`` (and ``eval --ros``) do: ``sim_robot`` always rendered 96x96, and the policy
node resized those frames to a 64x64 checkpoint's size, frames it was never evaluated on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import constant_checkpoint

from robot_il.launch import load_launch
from robot_il.launch.substitution import package_share


def rendered_size(arguments: dict[str, str], domain_id: int) -> tuple[int, int]:
    """[H, W] of a frame of ``sim_robot`` started in this process with the command line that
    deploy_sim.launch.yaml gives it (its params file and ``-p`` overrides, read by rcl)."""
    import rclpy

    from robot_il.ros.dds import apply_loopback_env
    from robot_il.ros.sim_robot import SimRobot

    share = package_share("robot_il", Path(__file__))
    plan = load_launch(share / "launch" / "deploy_sim.launch.yaml", arguments)
    sim = next(p for p in plan.processes if p.name == "sim_robot")
    apply_loopback_env()
    context = rclpy.Context()
    rclpy.init(args=["sim_robot", *sim.argv[3:]], context=context, domain_id=domain_id)
    try:
        robot = SimRobot(context=context)
        try:
            return tuple(robot.env.render().shape[:2])
        finally:
            robot.destroy_node()
    finally:
        context.shutdown()


@pytest.mark.ros
def test_the_simulated_camera_renders_at_the_checkpoint_s_frame_size(
    tmp_path: Path, ros_domain_id: int
) -> None:
    checkpoint = constant_checkpoint(
        tmp_path / "policy", np.zeros(7), camera="front", image_size=(40, 56)
    )
    arguments = {"checkpoint": str(checkpoint), "camera": "front"}
    assert rendered_size(arguments, ros_domain_id) == (40, 56)
    # image_size:= overrides it; a camera the checkpoint does not observe renders at 96x96
    assert rendered_size(arguments | {"image_size": "[48, 40]"}, ros_domain_id) == (48, 40)
    assert rendered_size(arguments | {"camera": "side"}, ros_domain_id) == (96, 96)
