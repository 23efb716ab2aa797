"""The ROS 2 Twist teleop device, fed by a real rclpy publisher over DDS on loopback."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture
def loopback_dds(monkeypatch):
    """This process's DDS on 127.0.0.1 only, in a domain of its own."""
    from robot_il.ros.dds import MAX_DOMAIN_ID, loopback_env

    domain = 1 + os.getpid() % MAX_DOMAIN_ID
    for key, value in loopback_env(domain).items():
        monkeypatch.setenv(key, value)
    return domain


def test_twist_gripper_and_event_topics_drive_the_device(loopback_dds):
    rclpy = pytest.importorskip("rclpy")
    from geometry_msgs.msg import Twist
    from std_msgs.msg import Float64, String

    from robot_il.record.control import EpisodeEvent
    from robot_il.record.teleop.ros_twist import RosTwistTeleop

    device = RosTwistTeleop(control_hz=20.0, stale_after_s=0.3)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_operator", context=context)
    twist_pub = node.create_publisher(Twist, "/teleop/twist", 10)
    gripper_pub = node.create_publisher(Float64, "/teleop/gripper", 10)
    event_pub = node.create_publisher(String, "/teleop/episode_event", 10)
    twist = Twist()
    twist.linear.x, twist.linear.z, twist.angular.z = 0.2, -0.1, -1.0
    try:
        # Publish until discovery has connected us and the device reports the motion.
        deadline, command = time.monotonic() + 15.0, device.read()
        while not np.any(command.eef_delta) and time.monotonic() < deadline:
            twist_pub.publish(twist)
            time.sleep(0.02)
            command = device.read()
        # Velocity times one 50 ms period, in the base frame.
        np.testing.assert_allclose(command.eef_delta, [0.01, 0, -0.005, 0, 0, -0.05], atol=1e-6)

        deadline, events, gripper = time.monotonic() + 5.0, [], 0.0
        while (gripper != 1.0 or not events) and time.monotonic() < deadline:
            gripper_pub.publish(Float64(data=1.0))
            if not events:
                event_pub.publish(String(data="rerecord"))
            time.sleep(0.05)
            command = device.read()
            gripper, events = command.gripper, events + list(command.events)
        assert gripper == 1.0
        assert events[0] is EpisodeEvent.RERECORD

        time.sleep(0.4)  # no Twist for longer than stale_after_s: the arm must stop
        assert not np.any(device.read().eef_delta)
        assert device.read().gripper == 1.0, "the gripper command holds"
    finally:
        node.destroy_node()
        context.try_shutdown()
        device.close()


def test_a_failed_callback_is_raised_at_close_and_the_context_still_shut_down(loopback_dds):
    """A callback's exception ends the device's executor thread; ``close`` raises it (it went
    to the thread's excepthook, and the device read zero velocity from then on without a word)
    after destroying the node and shutting its context down."""
    pytest.importorskip("rclpy")
    from robot_il.record.teleop.ros_twist import RosTwistTeleop

    device = RosTwistTeleop(control_hz=20.0)

    def fail() -> None:
        raise ValueError("callback failed")

    device._node.create_timer(0.01, fail)
    time.sleep(0.3)
    with pytest.raises(ValueError, match="callback failed"):
        device.close()
    assert not device._context.ok()
    device.close()  # closed once
