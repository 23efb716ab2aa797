"""Joint states the policy node and the recorder take in (``RobotObservation``): a message
whose arrays do not match its names is ignored with a logged line, never taken apart."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS

pytestmark = pytest.mark.ros


def test_a_joint_state_with_short_arrays_is_ignored(ros_context) -> None:
    import rclpy
    from sensor_msgs.msg import JointState

    from robot_il.ros.observation import RobotObservation

    node = rclpy.create_node("observer", context=ros_context)
    try:
        observation = RobotObservation(node, "reach")
        good = JointState(name=list(reversed(UR_JOINTS)), position=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                          velocity=[0.0] * 6)  # fmt: skip
        observation._on_joint_states(good, (0,))  # any order: joints are taken by name
        expected = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
        assert np.allclose(observation.joint_pos, expected)
        short_position = JointState(name=UR_JOINTS, position=[1.0] * 5)
        short_velocity = JointState(name=UR_JOINTS, position=[1.0] * 6, velocity=[0.0] * 3)
        for malformed in (short_position, short_velocity):
            observation._on_joint_states(malformed, (0,))
            assert np.allclose(observation.joint_pos, expected)
        assert observation.messages == 1
    finally:
        node.destroy_node()


def test_joint_velocities_a_driver_does_not_send_are_estimated(ros_context) -> None:
    """A driver that sends positions only (an empty ``velocity``): each arm's joint velocity
    is the finite difference of its successive positions over their stamps (rad/s), not
    zeros recorded as an arm standing still. The first message gives no difference: the arm
    counts as reported from its second."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from robot_il.ros.observation import RobotObservation
    from robot_il.ros.ur_topics import JOINT_STATES_TOPIC, seconds_to_stamp

    speeds = np.array([0.5, -1.0, 0.25, 0.0, 2.0, -0.1])  # rad/s

    def state(t: float) -> JointState:
        msg = JointState(name=UR_JOINTS, position=(0.1 + speeds * t).tolist())
        seconds_to_stamp(t, msg.header.stamp)
        return msg

    driver = rclpy.create_node("driver", context=ros_context)
    node = rclpy.create_node("observer", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        observation = RobotObservation(node, "reach")
        observation._on_joint_states(state(5.0), (0,))
        assert observation.joint_pos is None and "joint_vel" not in observation.snapshot()[0]
        publisher = driver.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        executor.add_node(node)
        t = 5.0
        for _ in range(500):  # discovery, then a stream at 125 Hz (stamps)
            t += 0.008
            publisher.publish(state(t))
            executor.spin_once(timeout_sec=0.01)
            if observation.messages >= 5:
                break
        assert observation.messages >= 5, "no joint states over DDS"
        np.testing.assert_allclose(observation.joint_vel, speeds, atol=1e-6)
        np.testing.assert_allclose(observation.snapshot()[0]["joint_vel"], speeds, atol=1e-5)
        sent = state(t + 0.008)
        sent.velocity = [0.3] * 6  # a driver that sends them: its own
        observation._on_joint_states(sent, (0,))
        np.testing.assert_allclose(observation.joint_vel, 0.3)
        # A slow driver (5 Hz, as joint_state_publisher can be set): every message after the
        # first is taken, with the mean velocity since the one before.
        slow_observer = rclpy.create_node("slow_observer", context=ros_context)
        try:
            slow = RobotObservation(slow_observer, "reach")
            for k in range(4):
                slow._on_joint_states(state(20.0 + 0.2 * k), (0,))
            assert slow.messages == 3, slow.messages
            np.testing.assert_allclose(slow.joint_vel, speeds, atol=1e-5)
        finally:
            slow_observer.destroy_node()
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy_node()
