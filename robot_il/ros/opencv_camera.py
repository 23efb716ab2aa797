"""``opencv_camera``: a USB camera (or a video file) on ``camera/<name>/image_raw``.

For cells without a vendor camera driver: OpenCV's ``VideoCapture`` opens ``device`` (an
index such as ``0`` for ``/dev/video0``, a device path, or a video file, which is how the
tests run it), and a capture thread publishes every frame as ``sensor_msgs/Image``
(``rgb8``, no row padding) stamped with the time it was grabbed (s, the node's clock), the
stamp the recorder and the policy match joint states against. ``width``/``height``/``fps``
are requests to the camera (0: its default); ``image_size`` [H, W] resizes what it gives
(empty or [0, 0]: keep; anything but two positive sizes fails at start). A device that
cannot be opened fails at start with one line; a camera that stops delivering is reported
once a second and the node keeps trying (the policy's watchdog holds the arm meanwhile).
"""

from __future__ import annotations

import array
import threading
import time

import numpy as np
from rclpy._rclpy_pybind11 import RCLError
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from robot_il.errors import ConfigError
from robot_il.ros.camera_frames import resized
from robot_il.ros.node_main import declare_float, declare_text
from robot_il.ros.observation import image_size_value
from robot_il.ros.ur_topics import image_topic, seconds_to_stamp


class OpenCVCameraNode(Node):
    """Publishes frames of one OpenCV capture device; see the module docstring."""

    def __init__(
        self,
        node_name: str = "opencv_camera",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        import cv2

        device = declare_text(self, "device", "0")  # device:=0 arrives as an integer
        self.camera = str(self.declare_parameter("camera", "front").value)
        width = int(self.declare_parameter("width", 0).value)
        height = int(self.declare_parameter("height", 0).value)
        fps = declare_float(self, "fps", 0.0)
        self.image_size = self._declare_image_size()
        self.loop = bool(self.declare_parameter("loop", False).value)  # video files: rewind
        source: int | str = int(device) if device.isdigit() else device
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise ConfigError(f"opencv_camera {self.camera}: cannot open device {device!r}")
        requests = {cv2.CAP_PROP_FRAME_WIDTH: width, cv2.CAP_PROP_FRAME_HEIGHT: height,
                    cv2.CAP_PROP_FPS: fps}  # fmt: skip
        for prop, value in requests.items():
            if value > 0:
                self.capture.set(prop, value)
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.publisher = self.create_publisher(
            Image, image_topic(self.camera), qos_profile_sensor_data
        )
        self.frames_published = 0
        self._running = True
        self._thread = threading.Thread(target=self._capture_loop, daemon=True)
        self._thread.start()

    def _declare_image_size(self) -> tuple[int, int] | None:
        """``image_size`` [H, W] (px) to resize frames to; "" (a launch argument left out) or
        [0, 0]: keep the camera's size. Anything else but two positive sizes is a
        ``ConfigError`` before the device opens ([64] ended in an IndexError, [-1, 64] kept
        the camera's size and [64, 64, 3] resized to 64x64, each unsaid)."""
        from rcl_interfaces.msg import ParameterDescriptor

        descriptor = ParameterDescriptor(dynamic_typing=True)
        value = self.declare_parameter("image_size", "", descriptor).value
        if value == "" or (isinstance(value, (list, array.array)) and list(value) == [0, 0]):
            return None
        return image_size_value(self, value)

    def _capture_loop(self) -> None:
        try:
            self._capture_frames()
        except RCLError:
            if self.context.ok():
                raise  # else: shutting down (Ctrl-C, or the launch stopping, reached rclpy first)

    def _capture_frames(self) -> None:
        import cv2

        next_frame = time.monotonic()
        while self._running:
            ok, frame = self.capture.read()
            stamp = self.get_clock().now().nanoseconds * 1e-9
            if not ok:
                if self.loop and self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    continue
                self.get_logger().warning(
                    f"camera {self.camera}: no frame", throttle_duration_sec=1.0
                )
                time.sleep(0.05)
                continue
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if self.image_size is not None:
                rgb = resized(rgb, self.image_size)
            self.publisher.publish(self._message(rgb, stamp))
            self.frames_published += 1
            if self.period:  # files deliver as fast as they decode: pace them
                next_frame += self.period
                time.sleep(max(0.0, next_frame - time.monotonic()))

    def _message(self, rgb: np.ndarray, stamp: float) -> Image:
        msg = Image()
        seconds_to_stamp(stamp, msg.header.stamp)
        msg.header.frame_id = f"{self.camera}_camera"
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, int(rgb.shape[1]) * 3
        msg.data = np.ascontiguousarray(rgb).tobytes()
        return msg

    def shutdown(self) -> None:
        """Stop capturing, release the device and destroy the node."""
        self._running = False
        self._thread.join(timeout=2.0)
        self.capture.release()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il opencv_camera`` (or the ``opencv_camera`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(OpenCVCameraNode, args)
