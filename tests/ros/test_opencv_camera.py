"""The OpenCV camera node publishes what OpenCV captures (here a video file, the same
``VideoCapture`` path a USB camera takes) as stamped rgb8 Images over loopback DDS; the
real-cell recording launch file resolves to the bridge, cameras, recorder and teleop."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_il.errors import ConfigError

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # RGB, one per frame, repeating


def _video(path: Path, frames: int = 9) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert writer.isOpened()
    for index in range(frames):
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[:] = COLOURS[index % 3]
        writer.write(rgb[..., ::-1].copy())  # OpenCV writes BGR
    writer.release()
    return path


@pytest.mark.ros
def test_camera_node_publishes_stamped_rgb_frames(ros_context, tmp_path: Path) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from robot_il.ros.camera_frames import image_array
    from robot_il.ros.opencv_camera import OpenCVCameraNode
    from robot_il.ros.ur_topics import image_topic, stamp_seconds

    video = _video(tmp_path / "clip.avi")
    with pytest.raises(ConfigError, match="opencv_camera front: cannot open device"):
        OpenCVCameraNode(context=ros_context, parameter_overrides=[
            Parameter("device", value=str(tmp_path / "missing.avi"))])  # fmt: skip
    camera = OpenCVCameraNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("device", value=str(video)),
            Parameter("fps", value=30.0),
            Parameter("loop", value=True),
            Parameter("image_size", value=[24, 32]),
        ],
    )
    listener = rclpy.create_node("camera_listener", context=ros_context)
    received: list[tuple[float, np.ndarray, float]] = []
    listener.create_subscription(
        Image, image_topic("front"),
        lambda msg: received.append((stamp_seconds(msg.header.stamp), image_array(msg, "front"),
                                     time.time())),
        qos_profile_sensor_data,
    )  # fmt: skip
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    try:
        deadline = time.monotonic() + 20
        while len(received) < 12 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(received) >= 12, f"{len(received)} frames in 20 s"
    finally:
        executor.shutdown()
        camera.shutdown()
        listener.destroy_node()
    stamps = np.array([r[0] for r in received])
    assert np.all(np.diff(stamps) > 0)  # capture stamps, in order
    assert np.all(np.abs(stamps - np.array([r[2] for r in received])) < 1.0)  # wall clock
    colours = [tuple(int(c) for c in r[1][12, 16]) for r in received]
    assert all(r[1].shape == (24, 32, 3) for r in received)
    nearest = [int(np.argmin([np.abs(np.subtract(c, k)).sum() for k in COLOURS])) for c in colours]
    assert len(set(nearest)) == 3, "red, green and blue frames all arrive as RGB"
    for colour, index in zip(colours, nearest, strict=True):
        assert np.abs(np.subtract(colour, COLOURS[index])).max() < 40


@pytest.mark.ros
@pytest.mark.parametrize("size", [[64], [-1, 64], [0, 64], [64, 64, 3], 64])
def test_a_bad_image_size_is_refused_before_the_device_opens(ros_context, size) -> None:
    """[64] ended in an IndexError traceback; [-1, 64] kept the camera's size and
    [64, 64, 3] resized to 64x64, neither said. The device is missing: a check after opening
    it would say that instead."""
    from rclpy.parameter import Parameter

    from robot_il.ros.opencv_camera import OpenCVCameraNode

    overrides = [Parameter("device", value="/nonexistent/clip.avi"),
                 Parameter("image_size", value=size)]  # fmt: skip
    with pytest.raises(ConfigError, match=r"opencv_camera: image_size must be \[H, W\]"):
        OpenCVCameraNode(context=ros_context, parameter_overrides=overrides)


def test_real_cell_launch_file_starts_bridge_cameras_recorder_and_teleop() -> None:
    from robot_il.launch.description import load_launch
    from robot_il.launch.substitution import package_share

    launch = package_share("robot_il", Path(__file__)) / "launch" / "record_real_cell.launch.yaml"
    plan = load_launch(launch, {"path": "/tmp/cell.zarr", "robot_ip": "10.0.0.2"})
    names = [p.name for p in plan.processes]
    assert names == ["ur_rtde_bridge", "camera_front", "camera_wrist", "recorder", "teleop"]
    recorder = " ".join(plan.processes[3].argv)
    assert "cameras:=front,wrist" in recorder and "camera_tolerance:=0.05" in recorder
    assert "robot_ip:=10.0.0.2" in " ".join(plan.processes[0].argv)
    driver = load_launch(launch, {"path": "/tmp/c.zarr", "use_rtde_bridge": "false",
                                  "wrist": "false", "cameras": "front"})  # fmt: skip
    assert [p.name for p in driver.processes] == ["camera_front", "recorder", "teleop"]
