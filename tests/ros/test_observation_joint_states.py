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
        good = JointState(name=list(reversed(UR_JOINTS)), position=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
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
