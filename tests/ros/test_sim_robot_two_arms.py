"""Two-arm ``sim_robot`` (``bimanual_handover``) in its own process, driven through the UR
driver's topics: one ``joint_states`` message carries both arms' joints under their tf_prefix,
``forward_position_controller/commands`` takes 12 targets (left arm's six, then right's) and
each arm has its own ``<tf_prefix>gripper/command``."""

from __future__ import annotations

import time

import numpy as np
import pytest
from deploy_helpers import COMMANDS, UR_JOINTS, Client, log_tail, node_process, wait_for

pytestmark = pytest.mark.ros

ARMS = ("left", "right")


def test_two_arm_sim_moves_only_the_commanded_arm_and_each_gripper(
    ros_context, ros_env, tmp_path
) -> None:
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray

    log = tmp_path / "sim_robot.log"
    params = {"task": "bimanual_handover", "seed": 2}
    with node_process("sim_robot", params, ros_env, log) as sim:
        client = Client(ros_context)
        try:
            states = client.record(JointState, "joint_states", depth=2000)
            grippers = {
                arm: client.node.create_publisher(Float64, f"{arm}_gripper/command", 10)
                for arm in ARMS
            }
            wait_for(lambda: len(states) > 50, 60, "joint_states", (sim,), (log,))
            commands = client.publisher(Float64MultiArray, COMMANDS, (sim,), (log,))

            # One message, both arms: six UR joints each under the arm's prefix, then grippers.
            names = list(states[-1][1].name)
            assert names == [
                *(f"{arm}_{joint}" for arm in ARMS for joint in UR_JOINTS),
                *(f"{arm}_gripper_joint" for arm in ARMS),
            ]
            assert len(states[-1][1].position) == len(states[-1][1].velocity) == len(names)

            def arm_position(arm: str) -> np.ndarray:
                position = states[-1][1].position
                return np.array([position[names.index(f"{arm}_{j}")] for j in UR_JOINTS])

            def gripper(arm: str) -> float:
                return states[-1][1].position[names.index(f"{arm}_gripper_joint")]

            left_start, right_start = arm_position("left"), arm_position("right")
            assert np.linalg.norm(left_start - right_start) > 0  # two distinct arms' readings
            assert gripper("left") < 0.2 and gripper("right") < 0.2  # both start open

            def publish_until(condition, what: str, *messages) -> None:
                """Re-send ``messages`` (publisher, msg) every 20 ms until ``condition``."""

                def sent_and_done() -> bool:
                    for publisher, message in messages:
                        publisher.publish(message)
                    return condition()

                wait_for(sent_and_done, 15, what, (sim,), (log,))

            # Command the left arm to a new pose; the right one is told to hold its own.
            left_goal = left_start + np.array([0.3, -0.2, 0.25, 0.0, 0.2, 0.4])
            command = Float64MultiArray(data=[*left_goal.tolist(), *right_start.tolist()])
            first = len(states)
            publish_until(
                lambda: (
                    np.abs(arm_position("left") - left_goal).max() < 0.02 and gripper("left") > 0.5
                ),
                "the left arm reaching its goal with its gripper closed",
                (commands, command),
                (grippers["left"], Float64(data=1.0)),
            )
            time.sleep(0.5)  # and staying there
            np.testing.assert_allclose(arm_position("left"), left_goal, atol=0.02)
            names_index = [names.index(f"right_{j}") for j in UR_JOINTS]
            right_seen = np.array([np.take(m.position, names_index) for _, m in states[first:]])
            drift = np.abs(right_seen - right_start).max()
            assert drift < 0.02, f"the right arm moved {drift:.3f} rad while the left one did"
            assert gripper("right") < 0.2, "the right gripper closed on the left one's command"

            # The right gripper answers its own topic; the left one stays closed.
            publish_until(
                lambda: gripper("right") > 0.5,
                "the right gripper closing",
                (grippers["right"], Float64(data=1.0)),
            )
            assert gripper("left") > 0.5

            # A command sized for one arm is refused: both arms stay where they are.
            commands.publish(Float64MultiArray(data=right_start.tolist()))
            time.sleep(0.3)
            np.testing.assert_allclose(arm_position("left"), left_goal, atol=0.02)
            np.testing.assert_allclose(arm_position("right"), right_start, atol=0.02)
        finally:
            client.close()
    assert sim.returncode == 0, log_tail(log)
