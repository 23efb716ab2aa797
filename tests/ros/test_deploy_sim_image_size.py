"""deploy_sim.launch.yaml renders a camera checkpoint's frames at its own size, as
``robot-il eval`` (and ``eval --ros``) do: ``sim_robot`` always rendered 96x96, and the policy
node resized those frames to a 64x64 checkpoint's size, frames it was never evaluated on."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import constant_checkpoint

from robot_il.launch import load_launch
from robot_il.launch.substitution import package_share


def rendered_size(arguments: dict[str, str], domain_id: int) -> tuple[int, int]:
    """[H, W] of the first frame that ``sim_robot``, started in this process with the command
    line deploy_sim.launch.yaml gives it (its params file and ``-p`` overrides, read by rcl),
    publishes on its camera topic (the topic's size, read while its physics thread runs)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from robot_il.ros.dds import apply_loopback_env
    from robot_il.ros.sim_robot import SimRobot
    from robot_il.ros.ur_topics import image_topic

    share = package_share("robot_il", Path(__file__))
    plan = load_launch(share / "launch" / "deploy_sim.launch.yaml", arguments)
    sim = next(p for p in plan.processes if p.name == "sim_robot")
    apply_loopback_env()
    context = rclpy.Context()
    rclpy.init(args=["sim_robot", *sim.argv[3:]], context=context, domain_id=domain_id)
    try:
        robot = SimRobot(context=context)
        viewer = rclpy.create_node("viewer", context=context)
        executor = SingleThreadedExecutor(context=context)
        try:
            frames: list[Image] = []
            viewer.create_subscription(
                Image, image_topic(arguments["camera"]), frames.append, QoSProfile(depth=2)
            )
            executor.add_node(robot)
            executor.add_node(viewer)
            deadline = time.monotonic() + 60.0
            while not frames and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            assert frames, "sim_robot published no camera frame in 60 s"
            return frames[0].height, frames[0].width
        finally:
            executor.shutdown()
            viewer.destroy_node()
            robot.shutdown()
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
