"""Teleoperation from ROS 2 topics: any node that publishes ``geometry_msgs/Twist`` drives the arm.

This lets a joystick node, a VR bridge or a remote operator's tool on another machine steer the
recording without robot_il knowing the device. Three standard-message topics:

- ``twist_topic`` (``geometry_msgs/Twist``): linear (m/s) and angular (rad/s) velocity of the
  tool in the robot base frame. The latest message holds until ``stale_after_s`` passes without
  a new one; then the arm stops (a dead-man: a crashed publisher must not leave it moving).
- ``gripper_topic`` (``std_msgs/Float64``): 0 open .. 1 closed; the last value holds.
- ``event_topic`` (``std_msgs/String``): ``next``, ``rerecord``, ``discard`` or ``quit``.

rclpy is imported only when this device is made. The node runs in its own rclpy context and
executor thread, so it neither needs nor disturbs a global ``rclpy.init``. Whether DDS stays on
loopback is the caller's choice (see :mod:`robot_il.ros.dds`).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent, parse_event
from robot_il.record.teleop.base import TeleopCommand
from robot_il.ros.node_main import SpinThread


class RosTwistTeleop:
    """A :class:`~robot_il.record.teleop.base.TeleopDevice` subscribed to a Twist topic."""

    name = "ros"

    def __init__(
        self,
        *,
        control_hz: float = 20.0,
        twist_topic: str = "/teleop/twist",
        gripper_topic: str = "/teleop/gripper",
        event_topic: str = "/teleop/episode_event",
        node_name: str = "robot_il_teleop",
        stale_after_s: float = 0.5,
    ) -> None:
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
        except ImportError as error:
            raise RecordingError(
                f"ROS teleop needs rclpy: pip install 'robot_il[ros]' ({error})"
            ) from error
        from geometry_msgs.msg import Twist
        from std_msgs.msg import Float64, String

        self.controls = (
            f"ROS teleop: geometry_msgs/Twist on {twist_topic} moves the tool, std_msgs/Float64 "
            f"on {gripper_topic} sets the gripper, std_msgs/String on {event_topic} ends an "
            "episode (next, rerecord, discard, quit)"
        )
        self._period_s = 1.0 / control_hz
        self._stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._velocity = np.zeros(6, dtype=np.float64)
        self._velocity_stamp = -np.inf
        self._gripper = 0.0
        self._events: list[EpisodeEvent] = []
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node(node_name, context=self._context)
        self._node.create_subscription(Twist, twist_topic, self._on_twist, 10)
        self._node.create_subscription(Float64, gripper_topic, self._on_gripper, 10)
        self._node.create_subscription(String, event_topic, self._on_event, 10)
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(self._node)
        self._spin: SpinThread | None = SpinThread(executor, name="ros-teleop")

    def _on_twist(self, msg) -> None:
        velocity = [msg.linear.x, msg.linear.y, msg.linear.z]
        velocity += [msg.angular.x, msg.angular.y, msg.angular.z]
        with self._lock:
            self._velocity[:] = velocity
            self._velocity_stamp = time.monotonic()

    def _on_gripper(self, msg) -> None:
        with self._lock:
            self._gripper = float(np.clip(msg.data, 0.0, 1.0))

    def _on_event(self, msg) -> None:
        try:
            event = parse_event(msg.data)
        except ValueError as error:
            self._node.get_logger().warning(str(error))
            return
        with self._lock:
            self._events.append(event)

    def read(self) -> TeleopCommand:
        """The latest velocity times one control period (zero once it is stale)."""
        with self._lock:
            fresh = time.monotonic() - self._velocity_stamp <= self._stale_after_s
            delta = self._velocity * self._period_s if fresh else np.zeros(6)
            events, self._events = tuple(self._events), []
            gripper = self._gripper
        return TeleopCommand(delta.astype(np.float32), gripper, events)

    def hold_gripper(self, closure: float) -> None:
        """The gripper command is ``closure`` until the operator works the gripper."""
        with self._lock:
            self._gripper = float(closure)

    def close(self) -> None:
        """Stop the executor thread and shut the node's rclpy context down; a callback's
        exception (which ended the thread) is raised after."""
        if self._spin is None:
            return
        spin, self._spin = self._spin, None
        try:
            spin.stop()
        finally:
            self._node.destroy_node()
            self._context.try_shutdown()
