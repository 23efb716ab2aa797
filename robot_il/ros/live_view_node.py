"""``live_view``: what a deployed (or recorded) robot sees and does, live in Rerun's viewer.

Subscribes to the robot's observation (:class:`~robot_il.ros.observation.RobotObservation`:
joints in rad, gripper, tool pose, task inputs, cameras), the joint commands on
``forward_position_controller/commands`` (the policy's or teleop's actions, rad) and
``safety/events``, and every ``1 / rate`` s logs the newest of each to a
:class:`~robot_il.record.live_view.LiveView` on a ``step`` timeline; safety events appear as
text. The viewer's address (127.0.0.1 only) is printed at start. Parameters: ``task``,
``rate`` (Hz, default 10), and the camera parameters of
:func:`~robot_il.ros.observation.camera_parameters`.
"""

from __future__ import annotations

import threading

import numpy as np
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from std_msgs.msg import Float64MultiArray, String

from robot_il.errors import ConfigError
from robot_il.record.live_view import LiveView
from robot_il.ros.node_main import declare_float, declare_task
from robot_il.ros.observation import RobotObservation, camera_parameters
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.ur_topics import COMMAND_TOPIC, SAFETY_EVENTS_TOPIC


class LiveViewNode(QuietNode):
    """Logs the robot's observation, commands and safety events to Rerun; see the module doc."""

    def __init__(
        self,
        node_name: str = "live_view",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        task = declare_task(self)
        rate = declare_float(self, "rate", 10.0)
        if not 0 < rate <= 100:
            raise ConfigError(f"live_view: rate {rate} is not in (0, 100] Hz")
        self.obs = RobotObservation(self, task, **camera_parameters(self))
        self.view = LiveView(f"robot_il live {task}")
        print(f"live view: {self.view.url}", flush=True)
        self._lock = threading.Lock()
        self._command: np.ndarray | None = None
        qos = QoSProfile(depth=10)
        self.create_subscription(Float64MultiArray, COMMAND_TOPIC, self._on_command, qos)
        self.create_subscription(String, SAFETY_EVENTS_TOPIC, self._on_event, qos)
        self.create_timer(1.0 / rate, self._log)

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self._lock:
            self._command = np.asarray(msg.data, dtype=np.float64)

    def _on_event(self, msg: String) -> None:
        self.view.log_text("safety/events", msg.data)

    def _log(self) -> None:
        values, stamp = self.obs.snapshot()
        if stamp is None:
            return  # nothing from the robot yet
        frame = dict(values)
        cameras = [key for key in self.obs.frames if self.obs.frames[key].newest is not None]
        frame.update({key: self.obs.frames[key].newest.image for key in cameras})
        with self._lock:
            if self._command is not None:
                frame["command"] = self._command
        self.view.log_step(frame)

    def shutdown(self) -> None:
        self.view.close()
        self.obs.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il live_view`` (or the ``live_view`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(LiveViewNode, args)
