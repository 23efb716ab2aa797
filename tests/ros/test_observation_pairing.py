"""How ``RobotObservation`` pairs camera frames with the robot's state: a real cell's camera
frames arrive later than its joint states (capture, transfer, DDS on a loaded machine), so an
observation pairs the newest frame with the joint state of the frame's capture time, never
with one farther than ``camera_tolerance`` from it (callbacks fed with real messages)."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS
from sensor_msgs.msg import Image, JointState

from robot_il.ros.ur_topics import seconds_to_stamp

pytestmark = pytest.mark.ros

KEYS = ("joint_pos", "joint_vel", "eef_pose", "rgb_front", "rgb_side")


def joint_state(t: float) -> JointState:
    """A joint state stamped ``t`` (s) whose positions are ``t`` (rad), moving at 1 rad/s."""
    msg = JointState(name=UR_JOINTS, position=[t] * 6, velocity=[1.0] * 6)
    seconds_to_stamp(t, msg.header.stamp)
    return msg


def frame(t: float) -> Image:
    """A 2x2 rgb8 frame captured at ``t`` (s), its shade ``t`` in ms."""
    msg = Image(height=2, width=2, encoding="rgb8", step=6)
    msg.data = bytes([int(round(t * 1000)) % 256] * 12)
    seconds_to_stamp(t, msg.header.stamp)
    return msg


@pytest.fixture
def observation(ros_context):
    import rclpy

    from robot_il.ros.observation import RobotObservation

    node = rclpy.create_node("observer", context=ros_context)
    try:
        yield RobotObservation(node, "reach", cameras=["front", "side"], image_size=(2, 2))
    finally:
        node.destroy_node()


def test_frames_lagging_past_the_tolerance_are_paired_at_their_capture_time(observation):
    """Joint states at 500 Hz up to t=10.2 s; the front camera's newest frame is 60 ms old,
    the side camera's 90 ms: both over the 50 ms tolerance from the newest joint state, which
    made the observation not ready (a step skipped). It is the state of the older newest
    frame's capture time, with each camera's frame nearest it."""
    for i in range(5101):
        observation._on_joint_states(joint_state(i * 0.002), (0,))
    for t in np.arange(9.5, 10.15, 1 / 30):
        observation._on_image("rgb_front", frame(t))
    for t in np.arange(9.51, 10.12, 1 / 30):
        observation._on_image("rgb_side", frame(t))
    side = observation.frames["rgb_side"].newest.stamp
    values, stamp = observation.snapshot()
    step = observation.select(values, KEYS, stamp, with_stamps=True)
    assert step is not None
    assert stamp == pytest.approx(side, abs=0.001)  # the joint state nearest the side frame
    np.testing.assert_allclose(step["joint_pos"], stamp, atol=1e-6)
    assert float(step["stamp_rgb_side"]) == side
    assert abs(float(step["stamp_rgb_front"]) - stamp) <= 1 / 60 + 1e-9  # its nearest frame
    assert observation.joint_pos[0] == pytest.approx(10.2)  # the newest, for safety's checks


def test_no_joint_state_within_the_tolerance_of_the_frame_is_no_observation(observation):
    """The joint states have a hole (a driver's hiccup) around the frames' capture time: the
    nearest joint state is 80 ms from the frame, so nothing is paired (never farther apart
    than ``camera_tolerance``)."""
    for t in [*np.arange(10.0, 10.1, 0.002), *np.arange(10.3, 10.35, 0.002)]:
        observation._on_joint_states(joint_state(t), (0,))
    for camera in ("rgb_front", "rgb_side"):
        observation._on_image(camera, frame(10.22))
    values, stamp = observation.snapshot()
    assert observation.select(values, KEYS, stamp) is None


def test_a_negative_max_camera_lag_is_named(ros_context):
    import rclpy

    from robot_il.errors import ConfigError
    from robot_il.ros.observation import RobotObservation

    node = rclpy.create_node("observer", context=ros_context)
    try:
        with pytest.raises(ConfigError, match=r"^observer: max_camera_lag must be >= 0 s$"):
            RobotObservation(node, "reach", cameras=["front"], max_camera_lag=-0.1)
    finally:
        node.destroy_node()
