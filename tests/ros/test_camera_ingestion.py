"""Camera ingestion: every supported encoding (with padded rows and big-endian depth),
CompressedImage, depth units, resizing, frames matched to joint states by capture stamp, and
a stalled camera holding the arm (real rclpy nodes over loopback DDS, the real safety filter).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from robot_il.errors import ConfigError
from robot_il.ros.camera_frames import (
    CameraFrame,
    FrameBuffer,
    compressed_image_array,
    image_array,
    resized,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # odd width: padding matters
PAD = 5  # bytes of padding at the end of each row


def _image(pixels: np.ndarray, encoding: str, *, big_endian: bool = False) -> Image:
    """An Image whose rows carry ``PAD`` bytes of garbage after the pixels."""
    height, width = pixels.shape[:2]
    raw = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([raw, np.full((height, PAD), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian, msg.step = int(big_endian), padded.shape[1]
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize(
    ("encoding", "pixels", "expected"),
    [
        ("rgb8", RGB, RGB),
        ("bgr8", RGB[..., ::-1], RGB),
        ("mono8", RGB[..., :1], np.repeat(RGB[..., :1], 3, axis=2)),
        ("rgba8", np.concatenate([RGB, RGB[..., :1]], axis=2), RGB),
        ("bgra8", np.concatenate([RGB[..., ::-1], RGB[..., :1]], axis=2), RGB),
    ],
)
def test_colour_encodings_with_padded_rows(encoding, pixels, expected) -> None:
    image = image_array(_image(pixels, encoding), "front")
    assert image.dtype == np.uint8 and image.shape == (5, 7, 3)
    np.testing.assert_array_equal(image, expected)


def test_depth_in_millimetres_and_metres_becomes_metres() -> None:
    millimetres = RNG.integers(0, 5000, (4, 3), dtype=np.uint16)
    metres = image_array(_image(millimetres.astype("<u2"), "16UC1"), "depth")
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres, millimetres / 1000.0, rtol=1e-6)
    big = image_array(_image(millimetres.astype(">u2"), "16UC1", big_endian=True), "depth")
    np.testing.assert_allclose(big, millimetres / 1000.0, rtol=1e-6)
    floats = (millimetres / 1000.0).astype("<f4")
    floats[0, 0], floats[1, 1] = np.nan, np.inf  # no reading
    depth = image_array(_image(floats, "32FC1"), "depth")
    assert depth[0, 0] == 0 and depth[1, 1] == 0
    np.testing.assert_allclose(depth[2:], millimetres[2:] / 1000.0, rtol=1e-6)


def test_bad_images_are_named() -> None:
    with pytest.raises(ConfigError, match="front: image encoding 'yuv422' is not supported"):
        image_array(_image(RGB, "yuv422"), "front")
    short = _image(RGB, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ConfigError, match=r"front: rgb8 image 7x5 with step 26 needs 130 bytes"):
        image_array(short, "front")
    msg = CompressedImage()
    msg.format, msg.data = "jpeg", b"not an image"
    with pytest.raises(ConfigError, match="is not a JPEG or PNG"):
        compressed_image_array(msg, "front")


def test_compressed_images_decode_to_rgb() -> None:
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:, :16] = (255, 0, 0)  # red on the left, in RGB
    frame[:, 32:] = (0, 0, 255)
    for extension, fmt in ((".png", "rgb8; png compressed bgr8"), (".jpg", "jpeg")):
        ok, data = cv2.imencode(extension, frame[..., ::-1])  # OpenCV writes BGR
        assert ok
        msg = CompressedImage()
        msg.format, msg.data = fmt, data.tobytes()
        image = compressed_image_array(msg, "front")
        assert image.shape == (32, 48, 3)
        error = np.abs(image.astype(int) - frame)
        if extension == ".png":
            assert error.max() == 0
        else:  # JPEG blurs colour edges; away from them, colours come back as sent
            assert error[:, 4:12].max() <= 12 and error[:, 36:44].max() <= 12


def test_resizing_averages_colour_and_keeps_depth_values() -> None:
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[:, ::2] = 200  # stripes average to grey
    small = resized(colour, (4, 4))
    assert small.shape == (4, 4, 3) and np.all(small == 100)
    depth = np.where(np.arange(8)[None, :] < 4, 0.5, 2.0).astype(np.float32).repeat(8, 0)
    assert set(np.unique(resized(depth, (4, 3)))) <= {0.5, 2.0}  # nothing in between


def test_frame_buffer_matches_by_stamp_within_tolerance() -> None:
    buffer = FrameBuffer(capacity=4)
    for stamp in (1.0, 1.1, 1.3, 1.2):  # one arrives late
        buffer.add(CameraFrame(np.full((1,), stamp), stamp))
    assert buffer.nearest(1.26, 0.05).stamp == 1.3
    assert buffer.nearest(1.14, 0.05).stamp == 1.1
    assert buffer.nearest(1.5, 0.05) is None
    assert buffer.newest.stamp == 1.3


@pytest.mark.ros
def test_stale_camera_frames_hold_the_arm(ros_context) -> None:
    """A node assembles observations from joint states and a camera's images over DDS; when
    the camera stops while joint states go on, observations are of its last frame's capture
    time until it lags by ``max_camera_lag``, then none is assembled; the safety filter,
    judging freshness by :meth:`fresh_stamp`, holds the arm once the frame is older than the
    tolerance plus the filter's ``max_observation_age``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from robot_il.ros.observation import RobotObservation, depth_topic
    from robot_il.ros.ur_topics import JOINT_STATES_TOPIC, arm_joint_names, image_topic
    from robot_il.safety import SafetyFilter, SafetyLimits
    from robot_il.safety.events import Intervention

    robot = rclpy.create_node("camera_robot", context=ros_context)
    watcher = rclpy.create_node("camera_watcher", context=ros_context)
    obs = RobotObservation(
        watcher, "reach", cameras=["front"], depth_cameras=["front"], image_size=(6, 8),
        camera_tolerance=0.05,
    )  # fmt: skip
    joints = robot.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
    images = robot.create_publisher(Image, image_topic("front"), 10)
    depths = robot.create_publisher(Image, depth_topic("front"), 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(watcher)
    names = arm_joint_names("")
    keys = ["joint_pos", "rgb_front", "depth_front"]

    def publish(t: float, camera: bool) -> None:
        state = JointState()
        state.header.stamp.sec, state.header.stamp.nanosec = int(t), int(t % 1 * 1e9)
        state.name, state.position = names, [0.1 * t] * 6
        joints.publish(state)
        if camera:
            colour = _image(np.full((12, 16, 3), int(t * 10) % 256, np.uint8), "bgr8")
            depth = _image(np.full((12, 16), int(t * 1000), "<u2"), "16UC1")
            for msg, pub in ((colour, images), (depth, depths)):
                msg.header.stamp = state.header.stamp
                pub.publish(msg)

    try:
        t = 1.0
        deadline = time.monotonic() + 20
        assembled = None
        while assembled is None and time.monotonic() < deadline:  # discovery, then frames
            publish(t, camera=True)
            executor.spin_once(timeout_sec=0.02)
            values, stamp = obs.snapshot()
            assembled = obs.select(values, keys, stamp, with_stamps=True)
            t += 0.02
        assert assembled is not None, "no observation assembled over DDS"
        assert assembled["rgb_front"].shape == (6, 8, 3)  # resized to the policy's size
        assert assembled["depth_front"].dtype == np.float32
        # Each camera's frame nearest the joint state, within the tolerance: the colour and
        # depth frames of one moment when both came, not when one was lost in discovery (joint
        # states, taken on their own thread, may be assembled before the other frame comes).
        stamp_image, stamp_depth = (float(assembled[f"stamp_{k}"]) for k in keys[1:])
        assert abs(stamp_image - stamp) <= 0.05 and abs(stamp_depth - stamp) <= 0.05
        np.testing.assert_allclose(assembled["depth_front"], int(stamp_depth * 1000) / 1000)

        limits = SafetyLimits.ur5e(max_observation_age=0.1, workspace_lower=None,
                                   workspace_upper=None)  # fmt: skip
        safety = SafetyFilter(limits)
        q = np.full(6, 0.1)
        safety.watchdog(obs.fresh_stamp(keys), stamp)
        assert not safety.filter(q, q, stamp).held  # fresh camera: the command passes

        last_camera = t - 0.02
        deadline = time.monotonic() + 10  # every frame sent taken (joint states need no spin)
        while obs.frames_missing(keys[1:], last_camera - 1e-6) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        held_at = None
        for _ in range(40):  # the camera stalls; joint states go on at 50 Hz
            publish(t, camera=False)
            for _ in range(3):
                executor.spin_once(timeout_sec=0.01)
            values, stamp = obs.snapshot()
            newest = obs.stamp  # the newest joint state's
            if newest is not None and newest >= t - 1e-6:
                step = obs.select(values, keys, stamp)
                # (a lag of max_camera_lag itself goes either way: stamps are ns, t is a float)
                if newest - last_camera < obs.max_camera_lag - 1e-6:  # late: paired at capture
                    assert step is not None and stamp == pytest.approx(last_camera, abs=1e-6)
                elif newest - last_camera > obs.max_camera_lag + 1e-6:  # stalled: none
                    assert step is None, f"assembled {newest - last_camera:.3f}s after the camera"
                fresh = obs.fresh_stamp(keys)
                assert fresh <= last_camera + 0.05 + 1e-6
                safety.watchdog(fresh, newest)
                command = safety.filter(q, q, newest)
                if newest - last_camera > 0.05 + 0.1 + 1e-6:
                    assert command.held, f"not held {newest - last_camera:.3f}s after the camera"
                    held_at = held_at or newest
                    assert Intervention.STALE_OBSERVATION in command.interventions
            t += 0.02
        assert held_at is not None, "the joint states stopped arriving; nothing was tested"
    finally:
        executor.shutdown()
        robot.destroy_node()
        watcher.destroy_node()


@pytest.mark.ros
@pytest.mark.parametrize("frame_every", [7, 20])  # ticks: a ~29 fps and a 10 fps camera
def test_recorder_pairs_a_lagging_camera_by_capture_time_and_loses_no_step(
    ros_context, tmp_path, frame_every
) -> None:
    """A real cell: joint states at 200 Hz, a 30 fps camera whose frames reach the recorder
    70 ms after their capture (USB, encoding, DDS on a loaded machine), more than
    ``camera_tolerance``. Every step was skipped (the newest frame was always over 50 ms
    from the newest joint state): an empty episode. Now each step pairs the newest frame
    with the joint state of its capture time: none is lost, the arm's state and the frame
    are of one moment, and the stored frame is the one its stamp names. A camera slower
    than the recording (10 fps at 20 Hz) gives each frame one step, not two copies."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState

    from robot_il.dataset import Dataset
    from robot_il.ros.recorder_node import RecorderNode
    from robot_il.ros.ur_topics import (
        JOINT_STATES_TOPIC,
        arm_joint_names,
        image_topic,
        seconds_to_stamp,
    )

    path = tmp_path / "cameras.zarr"
    recorder = RecorderNode(context=ros_context, parameter_overrides=[
        Parameter("path", value=str(path)), Parameter("cameras", value="front"),
        Parameter("image_size", value=[6, 8]), Parameter("record_hz", value=20.0),
        Parameter("gripper", value=""), Parameter("task_inputs", value=False),
        Parameter("fsync", value=False), Parameter("autostart", value=True),
    ])  # fmt: skip
    robot = rclpy.create_node("camera_cell", context=ros_context)
    joints = robot.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
    images = robot.create_publisher(Image, image_topic("front"), 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(recorder)
    period, delivery = 0.005, 14  # ticks: 200 Hz, frames 70 ms late
    start = time.time()
    try:
        for tick in range(600):  # 3 s; each joint position is its stamp since start (rad)
            now = start + tick * period
            state = JointState()
            seconds_to_stamp(now, state.header.stamp)
            state.name, state.position = arm_joint_names(""), [tick * period] * 6
            state.velocity = [1.0] * 6
            joints.publish(state)
            captured = tick - delivery
            if captured >= 0 and captured % frame_every == 0:
                shade = captured // frame_every * 5 % 250  # the frame's capture, coded
                image = _image(np.full((12, 16, 3), shade, np.uint8), "bgr8")
                seconds_to_stamp(start + captured * period, image.header.stamp)
                images.publish(image)
            deadline = time.time() + period
            while time.time() < deadline:
                executor.spin_once(timeout_sec=0.002)
        said = recorder.stop()
    finally:
        executor.shutdown()
        recorder.shutdown()
        robot.destroy_node()
    assert "committed" in said, said
    steps = Dataset.open(path).episode(0)
    stamps = steps["timestamp"]
    assert len(stamps) >= 20 * min(1.0, 1 / (frame_every * period * 20)), len(stamps)
    # No hole: a step per frame or per period, whichever is longer (the frames set the steps'
    # times), and each step a new moment.
    longest = max(1 / 20.0, frame_every * period) + 1 / 20.0
    assert np.diff(stamps).max() <= longest + 1e-6, np.diff(stamps)
    assert np.all(np.diff(stamps) > 0), np.diff(stamps)
    assert np.all(np.abs(stamps - steps["stamp_rgb_front"]) <= 0.05 + 1e-6)
    # The joint state is the one of the step's stamp (its position codes its stamp) ...
    joint_time = steps["joint_pos"][:, 0] - steps["joint_pos"][0, 0]
    np.testing.assert_allclose(joint_time, stamps, atol=period / 2 + 1e-5)
    # ... which is the frame's capture time, 70 ms before the joint state that came with it.
    np.testing.assert_allclose(steps["stamp_rgb_front"], stamps, atol=period / 2 + 1e-5)
    shades = steps["rgb_front"][:, 3, 4].astype(int).mean(axis=1)
    expected = 5 * np.round(np.diff(steps["stamp_rgb_front"]) / (frame_every * period))
    error = (np.diff(shades) - expected + 125) % 250 - 125  # shades wrap at 250
    assert np.all(np.abs(error) <= 2.5), (np.diff(shades), expected)


@pytest.mark.ros
def test_live_view_node_logs_what_the_robot_sees_and_does(ros_context) -> None:
    pytest.importorskip("rerun")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    from robot_il.ros.live_view_node import LiveViewNode
    from robot_il.ros.ur_topics import (
        COMMAND_TOPIC,
        JOINT_STATES_TOPIC,
        SAFETY_EVENTS_TOPIC,
        arm_joint_names,
        image_topic,
        seconds_to_stamp,
    )

    view = LiveViewNode(context=ros_context, parameter_overrides=[
        Parameter("cameras", value="front"), Parameter("rate", value=50.0)])  # fmt: skip
    robot = rclpy.create_node("viewed_robot", context=ros_context)
    joints = robot.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
    images = robot.create_publisher(Image, image_topic("front"), 10)
    commands = robot.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)
    events = robot.create_publisher(String, SAFETY_EVENTS_TOPIC, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(view)
    try:
        assert view.view.url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 20
        while view.view.steps < 10 and time.monotonic() < deadline:
            state = JointState()
            seconds_to_stamp(time.time(), state.header.stamp)
            state.name, state.position = arm_joint_names(""), [0.1] * 6
            joints.publish(state)
            images.publish(_image(RGB, "rgb8"))
            commands.publish(Float64MultiArray(data=[0.2] * 6))
            events.publish(String(data='{"kind": "velocity_limit"}'))
            executor.spin_once(timeout_sec=0.02)
        assert view.view.steps >= 10, "the view logged nothing"
    finally:
        executor.shutdown()
        view.shutdown()
        robot.destroy_node()


@pytest.mark.ros
@pytest.mark.parametrize("size", [[48], [0, 48], [48, 48, 3]])
def test_an_image_size_that_is_not_h_w_is_named(ros_context, size) -> None:
    """``image_size:=[48]`` was an IndexError (a ValueError in ``sim_robot``) traceback,
    ``[0, 48]`` a node that started and would resize every frame to nothing."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from robot_il.ros.observation import camera_parameters
    from robot_il.ros.sim_robot import SimRobot

    sized = [Parameter("image_size", value=size)]
    node = Node("sized", context=ros_context, parameter_overrides=sized)
    try:
        with pytest.raises(ConfigError, match=r"sized: image_size must be \[H, W\] in pixels"):
            camera_parameters(node)
    finally:
        node.destroy_node()
    with pytest.raises(ConfigError, match=r"sim_robot: image_size must be \[H, W\] in pixels"):
        SimRobot(context=ros_context, parameter_overrides=sized)


@pytest.mark.ros
def test_image_size_defaults_to_the_policy_s_own(ros_context) -> None:
    from rclpy.node import Node

    from robot_il.ros.observation import camera_parameters, policy_image_size

    observation = {"joint_pos": [6], "rgb_front": [24, 32, 3], "depth_front": [24, 32]}
    assert policy_image_size(observation) == (24, 32)
    assert policy_image_size({"joint_pos": [6]}) is None
    node = Node("sized", context=ros_context)
    try:
        assert camera_parameters(node, policy_image_size(observation))["image_size"] == (24, 32)
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_a_camera_of_another_size_is_said_once_and_enlarging_warned(ros_context, capfd) -> None:
    """deploy_sim's image_size:=[64, 64] (or a camera of another size) under a 96x96
    checkpoint: the policy node enlarged every 64x64 frame to 96x96 and said nothing."""
    import rclpy

    from robot_il.ros.observation import RobotObservation

    node = rclpy.create_node("resize_watcher", context=ros_context)
    try:
        obs = RobotObservation(node, "reach", cameras=["front", "wrist"], image_size=(6, 8))
        for _ in range(3):
            obs._on_image("rgb_front", _image(np.zeros((3, 4, 3), np.uint8), "rgb8"))
            obs._on_image("rgb_wrist", _image(np.zeros((12, 16, 3), np.uint8), "rgb8"))
        assert obs.frames["rgb_front"].newest.image.shape == (6, 8, 3)
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    enlarged = "rgb_front: frames of 3x4 px are resized to 6x8 (image_size): enlarged"
    assert err.count(enlarged) == 1 and "WARN" in err.split(enlarged)[0].splitlines()[-1]
    assert err.count("rgb_wrist: frames of 12x16 px are resized to 6x8 (image_size)\n") == 1
