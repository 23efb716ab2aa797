"""An ``eef_delta`` checkpoint (TCP deltas, world frame) deployed through the UR driver's joint
topics: the policy node converts each action with the env's IK and solves the simulated task."""

from __future__ import annotations

import json

import numpy as np
import pytest
from make_eef_reach_checkpoint import FIXTURE
from test_deploy_sim import deploy_and_wait_for_success

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def test_fixture_is_an_eef_delta_policy() -> None:
    """Guards the test below: a joint-mode fixture would pass it without any conversion."""
    from robot_il.deploy.worker import CheckpointInfo

    assert CheckpointInfo.read(FIXTURE).spec["action_mode"] == "eef_delta"


def test_deploy_sim_launch_solves_reach_with_eef_delta_policy(
    ros_context, ros_env, tmp_path
) -> None:
    deploy_and_wait_for_success(
        FIXTURE, ros_context, ros_env, tmp_path / "launch.log", lock_step=True
    )


def test_an_eef_delta_policy_pressing_out_of_the_workspace_slides_along_its_face(
    ros_context, ros_env, tmp_path
) -> None:
    """A push policy presses its fingers into the table, which in the env stops only the
    downward part of each step; over ROS 2 the safety filter held the arm on every command
    whose tool point left the workspace box, and an eef_delta action, relative to the held
    pose, asked for the same again: the push-frame BC checkpoint stood still for the rest of
    seeds 10001, 10040 and 10041 (42/50 over ROS 2, 50/50 in the env). Here a constant
    action (down 1 cm, along x 5 mm per step) meets a floor 3 cm below the start: the TCP
    target is put on the box, so the arm slides along the floor, never below it."""
    from deploy_helpers import Client, constant_checkpoint, node_process, spinning, wait_for
    from robot_il.envs import make_env
    from robot_il.envs.ur5e.kinematics import tcp_point
    from std_msgs.msg import String
    from test_deploy_lock_step import lock_step_policy_node

    env = make_env("reach")
    start = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)  # sim_robot's start-up scene
    env.close()
    start_tcp = np.array(tcp_point(start))  # the arm's base frame, the box's frame
    floor = float(start_tcp[2]) - 0.03
    action = np.array([0.005, 0.0, -0.01, 0.0, 0.0, 0.0, 0.0])
    checkpoint = constant_checkpoint(tmp_path / "press", action, action_mode="eef_delta")
    sim_params = {"task": "reach", "lock_step": "true", "steps_per_command": 25,
                  "publish_every": 25, "task_hz": 20.0}  # fmt: skip
    log = tmp_path / "sim_robot.log"
    with node_process("sim_robot", sim_params, ros_env, log) as sim:
        client = Client(ros_context)
        events = client.record(String, "safety/events")
        node = lock_step_policy_node(
            ros_context, checkpoint, interpolate=False, lock_step_timeout=5.0,
            workspace_lower=[-0.9, -0.9, floor],
        )  # fmt: skip
        try:
            with spinning(node, ros_context):
                wait_for(lambda: node._now() >= 3.0, 60, "3 s of lock-step", (sim,), (log,))
                with node.obs.lock:
                    q = np.array(node.obs.joint_pos, dtype=np.float64)
        finally:
            client.close()
    tcp = np.array(tcp_point(q))
    # held at the floor it had moved 1.3 cm along; sliding, 3 s of 5 mm steps
    assert np.linalg.norm(tcp[:2] - start_tcp[:2]) > 0.1, tcp - start_tcp
    assert floor - 1e-3 <= tcp[2] <= floor + 0.01  # down at the floor, not through it
    kinds = [json.loads(msg.data)["kind"] for _, msg in events]
    assert "workspace_clamp" in kinds
    assert "workspace" not in kinds, kinds  # no command left the box: never held
