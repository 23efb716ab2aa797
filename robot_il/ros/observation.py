"""A robot_il observation dict built from ROS topics, as the simulated env would give it.

The policy node (inputs of a policy) and the recorder (a dataset's steps) both need the env's
observation keys from a robot that speaks the UR driver's topics (:mod:`robot_il.ros.ur_topics`):

- ``<arm>_joint_pos`` / ``<arm>_joint_vel`` (6,) from ``joint_states``, and ``<arm>_gripper``
  (1,) from its ``<tf_prefix>gripper_joint`` when the robot reports one; the topics and joint
  names follow the node's arm layout (:class:`robot_il.ros.arm_layout.ArmLayout`), and each
  arm is assembled from whichever message carries its six joints, with its own stamp;
- ``<arm>_eef_pose`` (7,: xyz m + quaternion wxyz, world frame) by forward kinematics at the
  arm's mount in the task's scene, with the env's sign convention (w >= 0);
- the task's inputs ``target_pos`` (3,) from ``task/target`` and ``object_pose`` (7,) from
  ``task/object_pose``; on a real robot a perception node publishes them;
- ``rgb_<camera>`` (H, W, 3) uint8 from ``camera/<camera>/image_raw`` (``sensor_msgs/
  Image`` of any encoding :mod:`robot_il.ros.camera_frames` reads, or with
  ``compressed_images`` ``camera/<camera>/image_raw/compressed``, a ``CompressedImage``), and
  ``depth_<camera>`` (H, W) float32 metres from ``camera/<camera>/depth/image_raw``, resized
  to ``image_size`` (said once per camera, a warning where a frame is enlarged);
- with ``robot_state`` (a real arm's state, which the simulated env does not offer):
  ``<arm>_speed_scaling`` (1,) from the UR driver's speed scaling broadcaster and
  ``<arm>_wrench`` (6,: force N, torque N m at the tool) from its force-torque broadcaster.

Joint velocities are the driver's; a driver that sends none (an empty ``velocity``) gets
finite differences of each arm's successive positions over their stamps (rad/s, unfiltered):
its first message is only remembered (a driver sending slowly gives the mean velocity between
its messages).

A camera's frames reach a node later than the joint states of the same moment (capture,
transfer, encoding, DDS on a loaded machine): the newest frame is often more than
``camera_tolerance`` older than the newest joint state. So camera frames and each arm's recent
joint states (and force-torque readings) are kept with their stamps, and an observation is of
the capture time of the cameras' newest frames (the oldest camera's): each arm's joint state
nearest it, and each camera's frame nearest that joint state's stamp within
``camera_tolerance`` (s). No frame that close (a hole in the joint states, a camera out of
step), or a newest frame more than ``max_camera_lag`` (s) older than the newest joint state (a
stalled camera), and the observation is not ready (:meth:`select` gives None), and
:meth:`fresh_stamp` ages, so the safety watchdog holds the arm rather than act on an old
picture of the scene. Without cameras an observation is of the newest joint states.

Joint states are taken on a thread of their own (:mod:`robot_il.ros.subscription_reader`: at
the UR controller's 500 Hz the executor's cost per message starved a 500 Hz control loop),
the other subscriptions on executor threads; readers on other threads take a :meth:`snapshot`.
The node calls :meth:`close` before it is destroyed.
"""

from __future__ import annotations

import array
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState

from robot_il.errors import ConfigError
from robot_il.ros.arm_layout import ArmLayout
from robot_il.ros.camera_frames import (
    CameraFrame,
    FrameBuffer,
    compressed_image_array,
    image_array,
    resized,
)
from robot_il.ros.subscription_reader import SubscriptionReader
from robot_il.ros.ur_topics import (
    OBJECT_POSE_TOPIC,
    POSE_INPUTS,
    TARGET_TOPIC,
    image_topic,
    stamp_seconds,
    task_input_topic,
    tf_prefix,
)

ARM_KEYS = {"joint_pos": 6, "joint_vel": 6, "gripper": 1, "eef_pose": 7}
"""Per-arm observation keys (without the arm prefix) and their sizes."""
CAMERA_PREFIXES = ("rgb_", "depth_")
STAMP_PREFIX = "stamp_"
"""``stamp_<key>``: capture time of the frame of camera key ``<key>`` in a recorded step."""


def is_camera_key(key: str) -> bool:
    return key.startswith(CAMERA_PREFIXES)


def depth_topic(camera: str) -> str:
    """sensor_msgs/Image topic of a depth camera (``16UC1`` mm or ``32FC1`` m)."""
    return f"camera/{camera}/depth/image_raw"


STATE_HISTORY = 512
"""Joint states (and force-torque readings) kept per arm for pairing with camera frames: 1 s
at the UR controller's 500 Hz."""

DEFAULT_IMAGE_SIZE = (96, 96)
"""[H, W] (px) of camera frames when neither a parameter nor a checkpoint says."""


def policy_image_size(observation: dict[str, Any]) -> tuple[int, int] | None:
    """The [H, W] (px) the camera frames of a checkpoint's ``observation`` spec share (None
    without cameras, or when their sizes differ): what a deploy node resizes frames to."""
    sizes = {(int(shape[0]), int(shape[1])) for key, shape in observation.items()
             if is_camera_key(key)}  # fmt: skip
    return sizes.pop() if len(sizes) == 1 else None


def declare_image_size(node: Node, default: tuple[int, int]) -> tuple[int, int]:
    """Declare a node's ``image_size`` parameter, [H, W] (px) of its camera frames; ``""``
    is ``default`` too (a launch file passes every parameter it has an argument for, an
    argument left out as ""); a value that is not two positive sizes is a ``ConfigError``
    naming the node."""
    from rcl_interfaces.msg import ParameterDescriptor

    descriptor = ParameterDescriptor(dynamic_typing=True)
    value = node.declare_parameter("image_size", list(default), descriptor).value
    return default if value == "" else image_size_value(node, value)


def image_size_value(node: Node, value: Any) -> tuple[int, int]:
    """A node's ``image_size`` parameter ``value`` as [H, W] (px), or a ``ConfigError`` naming
    the node if it is not two positive sizes."""
    size = list(value) if isinstance(value, (list, tuple, array.array)) else [value]
    if len(size) != 2 or not all(isinstance(n, int) and n >= 1 for n in size):
        raise ConfigError(f"{node.get_name()}: image_size must be [H, W] in pixels, got {size}")
    return int(size[0]), int(size[1])


def camera_parameters(node: Node, image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Declare a node's camera parameters and return them as :class:`RobotObservation`
    keyword arguments: ``cameras`` / ``depth_cameras`` (comma-separated names),
    ``image_size`` [H, W] (px; default ``image_size``, a deployed policy's own, else
    ``DEFAULT_IMAGE_SIZE``), ``camera_tolerance`` (s), ``max_camera_lag`` (s) and
    ``compressed_images``."""
    from robot_il.ros.node_main import declare_float

    def names(parameter: str) -> list[str]:
        text = str(node.declare_parameter(parameter, "").value)
        return [name.strip() for name in text.split(",") if name.strip()]

    return {
        "cameras": names("cameras"),
        "depth_cameras": names("depth_cameras"),
        "image_size": declare_image_size(node, image_size or DEFAULT_IMAGE_SIZE),
        "camera_tolerance": declare_float(node, "camera_tolerance", 0.05),
        "max_camera_lag": declare_float(node, "max_camera_lag", 0.2),
        "compressed_images": bool(node.declare_parameter("compressed_images", False).value),
    }


ROBOT_STATE_KEYS = {"speed_scaling": 1, "wrench": 6}
"""Optional per-arm keys of a real arm's state (``robot_state``)."""
SPEED_SCALING = ("speed_scaling_state_broadcaster", "speed_scaling")
WRENCH = ("force_torque_sensor_broadcaster", "wrench")


@dataclass(frozen=True)
class StateSample:
    """One arm's observation keys (``values``, arm-prefixed) of the message stamped ``stamp``
    (s); or one force-torque reading."""

    values: dict[str, np.ndarray]
    stamp: float


class RobotObservation:
    """The newest observation of the arms of ``task``'s scene, kept up to date from topics.

    ``keys`` maps every key this robot offers to its shape; only ``subscribe`` keys are
    subscribed to (besides the joint states, always) or computed (the tool pose). Joint
    states without a stamp get the node's time. The arm layout's parameters are declared on
    ``node`` (:attr:`layout`). ``camera_tolerance`` and ``max_camera_lag`` (s): how frames
    are paired with joint states (module docstring).
    """

    def __init__(
        self,
        node: Node,
        task: str,
        *,
        cameras: list[str] | tuple[str, ...] = (),
        depth_cameras: list[str] | tuple[str, ...] = (),
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        subscribe: set[str] | None = None,
        camera_tolerance: float = 0.05,
        max_camera_lag: float = 0.2,
        compressed_images: bool = False,
        robot_state: bool = False,
    ) -> None:
        from robot_il.envs.arm import Arm
        from robot_il.envs.tasks import TASKS

        if task not in TASKS:
            raise ConfigError(f"{node.get_name()}: task {task!r} is not one of {', '.join(TASKS)}")
        task_spec = TASKS[task]()
        mounts = task_spec.mounts()
        self.node = node
        self.arms = [mount.name for mount in mounts]
        self.arm_kinematics = [Arm(mount) for mount in mounts]
        """World-frame kinematics of each arm at its mount in the task's scene."""
        self.layout = ArmLayout.declare(node, self.arms)
        self.keys: dict[str, list[int]] = {
            tf_prefix(arm) + key: [size] for arm in self.arms for key, size in ARM_KEYS.items()
        }
        self.keys.update({key: list(shape) for key, shape in task_spec.task_keys.items()})
        for camera in cameras:
            self.keys[f"rgb_{camera}"] = [int(image_size[0]), int(image_size[1]), 3]
        for camera in depth_cameras:
            self.keys[f"depth_{camera}"] = [int(image_size[0]), int(image_size[1])]
        if camera_tolerance <= 0:
            raise ConfigError(f"{node.get_name()}: camera_tolerance must be > 0 s")
        if max_camera_lag < 0:
            raise ConfigError(f"{node.get_name()}: max_camera_lag must be >= 0 s")
        self.camera_tolerance = float(camera_tolerance)
        self.max_camera_lag = float(max_camera_lag)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.frames: dict[str, FrameBuffer] = {}
        """Recent frames of each camera key, with capture stamps."""
        self._resize_said: set[str] = set()
        """Camera keys whose frames were said to be resized (:meth:`_say_resize`)."""
        if robot_state:
            self.keys.update(
                {tf_prefix(a) + k: [n] for a in self.arms for k, n in ROBOT_STATE_KEYS.items()}
            )

        self.lock = threading.Lock()
        self.values: dict[str, np.ndarray] = {}
        self.joint_pos: np.ndarray | None = None
        """All arms' joint positions (6 per arm, rad), newest; None until every arm reported."""
        self.joint_vel: np.ndarray | None = None
        """All arms' joint velocities (6 per arm, rad/s; estimated where a driver sends
        none), of the same messages as :attr:`joint_pos`."""
        self.arm_stamps: list[float | None] = [None] * len(self.arms)
        """Stamp (s) of each arm's newest joint state: one watchdog per arm."""
        self.stamp: float | None = None
        """The oldest of the arms' newest stamps (s): how old the whole observation is."""
        self._arm_q: list[np.ndarray | None] = [None] * len(self.arms)
        self._arm_qd: list[np.ndarray | None] = [None] * len(self.arms)
        self._arm_states: list[FrameBuffer[StateSample]] = [
            FrameBuffer(STATE_HISTORY) for _ in self.arms
        ]
        """Each arm's recent observation keys, for pairing with camera frames."""
        self._wrenches: dict[str, FrameBuffer[StateSample]] = {}
        """Recent force-torque readings of each ``<arm>_wrench`` key, likewise."""
        self._last_position: list[tuple[float, np.ndarray] | None] = [None] * len(self.arms)
        """Each arm's previous (stamp s, positions rad), for velocities a driver omits."""
        self.messages = 0
        """Joint state messages taken in so far (tells a new one from an old one)."""
        self.input_stamps: dict[str, float] = {}
        """Stamp (s) of the newest value of each stamped task input (``POSE_INPUTS``): a
        lock-step client waits for the one of the state it acts on."""

        wanted = set(self.keys) if subscribe is None else subscribe
        self._eef_pose = [tf_prefix(arm) + "eef_pose" in wanted for arm in self.arms]
        """Per arm: whether its tool pose is wanted (forward kinematics on every message is
        the costliest part of taking in a joint state)."""
        qos = QoSProfile(depth=10)
        carried: dict[str, tuple[int, ...]] = {}  # per_arm: one topic carries each arm in turn
        for topic, arms in self.layout.joint_state_topics():
            carried[topic] = tuple(sorted({*carried.get(topic, ()), *arms}))
        self._joint_state_reader = SubscriptionReader(node, f"{node.get_name()}-joint-states")
        for topic, arms in carried.items():
            self._joint_state_reader.subscribe(
                JointState, topic, lambda msg, a=arms: self._on_joint_states(msg, a), qos
            )
        self._joint_state_reader.start()
        if "target_pos" in wanted:
            from geometry_msgs.msg import PointStamped

            node.create_subscription(PointStamped, TARGET_TOPIC, self._on_target, qos)
        if "object_pose" in wanted:
            from geometry_msgs.msg import PoseStamped

            node.create_subscription(PoseStamped, OBJECT_POSE_TOPIC, self._on_object, qos)
        for key in sorted(set(task_spec.task_keys) & set(wanted) - set(POSE_INPUTS)):
            from std_msgs.msg import Float64MultiArray

            node.create_subscription(
                Float64MultiArray,
                task_input_topic(key),
                lambda msg, k=key: self._set(k, msg.data),
                qos,
            )
        for a, arm in enumerate(self.arms):
            p = tf_prefix(arm)
            if p + "speed_scaling" in wanted and robot_state:
                from std_msgs.msg import Float64

                node.create_subscription(
                    Float64,
                    self.layout.broadcaster_topic(a, *SPEED_SCALING),
                    lambda msg, k=p + "speed_scaling": self._set(k, [msg.data]),
                    qos,
                )
            if p + "wrench" in wanted and robot_state:
                from geometry_msgs.msg import WrenchStamped

                self._wrenches[p + "wrench"] = FrameBuffer(STATE_HISTORY)
                node.create_subscription(
                    WrenchStamped,
                    self.layout.broadcaster_topic(a, *WRENCH),
                    lambda msg, k=p + "wrench": self._on_wrench(k, msg),
                    qos,
                )
        for key in sorted(k for k in wanted if is_camera_key(k)):
            self.frames[key] = FrameBuffer()
            if key.startswith("depth_"):
                topic, kind = depth_topic(key.removeprefix("depth_")), Image
            elif compressed_images:
                topic, kind = image_topic(key.removeprefix("rgb_")) + "/compressed", CompressedImage
            else:
                topic, kind = image_topic(key.removeprefix("rgb_")), Image
            node.create_subscription(
                kind, topic, lambda msg, k=key: self._on_image(k, msg), qos_profile_sensor_data
            )

    def close(self) -> None:
        """Stop taking joint states (a callback under way ends first)."""
        self._joint_state_reader.close()

    def snapshot(self) -> tuple[dict[str, np.ndarray], float | None]:
        """The values of the newest moment a step can be paired at (a new dict; arrays are
        replaced, never written in place) and its stamp (s): each arm's joint state (and
        force-torque reading) nearest the capture time of the cameras' newest frames (the
        oldest camera's), or without cameras (or with one stalled past ``max_camera_lag``)
        the newest; the stamp is the oldest of those joint states' (None before every arm
        reported). Other keys hold their newest values."""
        with self.lock:
            values, stamp, _ = self._paired()
            return values, stamp

    def _paired(self) -> tuple[dict[str, np.ndarray], float | None, list[float]]:
        """:meth:`snapshot`'s values and stamp, and each arm's joint-state stamp in it (call
        with the lock held)."""
        values = dict(self.values)
        if self.stamp is None:
            return values, None, list(self.arm_stamps)
        at = self.stamp
        newest = [buffer.newest for buffer in self.frames.values()]
        if newest and None not in newest:
            captured = min(frame.stamp for frame in newest)
            if self.stamp - captured <= self.max_camera_lag:
                at = min(at, captured)
        states = [buffer.nearest(at) for buffer in self._arm_states]
        for state in states:
            values.update(state.values)
        for buffer in self._wrenches.values():
            reading = buffer.nearest(at)
            if reading is not None:
                values.update(reading.values)
        arm_stamps = [state.stamp for state in states]
        return values, min(arm_stamps), arm_stamps

    def select(
        self,
        values: dict[str, np.ndarray],
        keys: Any,
        stamp: float | None = None,
        *,
        with_stamps: bool = False,
    ) -> dict[str, np.ndarray] | None:
        """``values`` restricted to ``keys``, camera keys filled with the frame nearest
        ``stamp`` (s; the joint state's, :meth:`snapshot`'s) within :attr:`camera_tolerance`;
        None while a key has
        not arrived or a camera has no frame that close. ``with_stamps`` adds each frame's
        capture stamp as ``stamp_<key>`` (float64 s)."""
        selected = {}
        for key in keys:
            if is_camera_key(key):
                frame = self._frame_near(key, stamp)
                if frame is None:
                    return None
                selected[key] = frame.image
                if with_stamps:
                    selected[STAMP_PREFIX + key] = np.array(frame.stamp, np.float64)
            elif key in values:
                selected[key] = values[key]
            else:
                return None
        return selected

    def fresh_stamp(self, keys: Any, stamp: float | None = None) -> float | None:
        """The stamp (s) a watchdog should judge ``keys``' observation by: the joint state's
        (``stamp``, one arm's; by default :attr:`stamp`, all arms'), unless a camera's newest
        frame is more than :attr:`camera_tolerance` older; then that frame's stamp plus the
        tolerance, so that a stalled camera ages the observation."""
        with self.lock:
            stamp = self.stamp if stamp is None else stamp
            if stamp is None:
                return None
            for key in keys:
                if key in self.frames:
                    newest = self.frames[key].newest
                    if newest is None:
                        return None
                    stamp = min(stamp, newest.stamp + self.camera_tolerance)
            return stamp

    def stale_keys(self, keys: Any, since: float, before: dict[str, np.ndarray]) -> list[str]:
        """The keys of ``keys`` that hold no value taken after ``since`` (s, the stamps'
        clock) yet: how a client tells a simulator's new episode from the one before its
        reset, whose last messages may still be on their way when the reset returns. A key
        counts as new once a message has replaced its value in ``before`` (a :meth:`snapshot`
        of ``since``) and, where the message is stamped, its stamp is after ``since``: an
        arm's keys by the stamp of its joint state in a :meth:`snapshot` now,
        ``target_pos`` / ``object_pose`` by theirs (unstamped ones, and other inputs, by the
        replacement alone); a camera key by the stamp of its frame nearest the snapshot's."""
        arm_of = {tf_prefix(arm) + key: a for a, arm in enumerate(self.arms) for key in ARM_KEYS}
        stale = []
        with self.lock:
            values, stamp, arm_stamps = self._paired()
            for key in keys:
                if is_camera_key(key):
                    buffer = self.frames.get(key)
                    frame = None
                    if buffer is not None and stamp is not None:
                        frame = buffer.nearest(stamp, self.camera_tolerance)
                    taken = None if frame is None else frame.stamp
                elif key not in values or values[key] is before.get(key):
                    taken = None
                elif key in arm_of:
                    taken = arm_stamps[arm_of[key]]
                else:
                    taken = self.input_stamps.get(key) or math.inf  # 0: sent unstamped
                if taken is None or not taken > since:
                    stale.append(key)
        return stale

    def frames_missing(self, keys: Any, since: float) -> list[str]:
        """The camera keys of ``keys`` with no frame stamped at or after ``since`` (s) yet: a
        lock-step client waits for the frame of the state it acts on."""
        with self.lock:
            newest = {key: self.frames[key].newest for key in keys if key in self.frames}
        return [key for key in keys if newest.get(key) is None or newest[key].stamp < since]

    def drop_frames(self) -> None:
        """Forget every camera frame received so far. A client starting an episode after a
        simulator's reset drops the old scene's: in lock-step the simulator's time stands
        still across the reset, and a frame of the old scene has the new one's stamp."""
        with self.lock:
            for key in self.frames:
                self.frames[key] = FrameBuffer()

    def _frame_near(self, key: str, stamp: float | None) -> CameraFrame | None:
        with self.lock:
            buffer = self.frames.get(key)
            if buffer is None or stamp is None:
                return None
            return buffer.nearest(stamp, self.camera_tolerance)

    def _on_joint_states(self, msg: JointState, arms: tuple[int, ...]) -> None:
        """Update every arm of ``arms`` whose six joints this message carries (a per-arm
        broadcaster's message carries one arm; another robot's carries none)."""
        position = np.array(msg.position, dtype=np.float64)
        velocity = np.array(msg.velocity, dtype=np.float64) if msg.velocity else None
        names = len(msg.name)
        if len(position) != names or len(msg.velocity) not in (0, names):
            # which value is whose? (a short array made the callback raise)
            self.node.get_logger().error(
                f"joint_states: {names} names, {len(position)} positions and "
                f"{len(msg.velocity)} velocities (one position per name, velocities none or "
                "one per name); ignored",
                throttle_duration_sec=5.0,
            )
            return
        index = {name: i for i, name in enumerate(msg.name)}
        stamp = stamp_seconds(msg.header.stamp) or self.node.get_clock().now().nanoseconds * 1e-9
        states: list[StateSample] = []
        updated: list[tuple[int, np.ndarray, np.ndarray]] = []
        for a in arms:
            joints = [index.get(name) for name in self.layout.joint_names(a)]
            if None in joints:
                continue
            p, kinematics = tf_prefix(self.arms[a]), self.arm_kinematics[a]
            q = position[joints]
            qd = velocity[joints] if velocity is not None else self._estimated_velocity(a, q, stamp)
            if qd is None:
                continue
            updated.append((a, q, qd))
            values = {p + "joint_pos": q.astype(np.float32), p + "joint_vel": qd.astype(np.float32)}
            if self._eef_pose[a]:
                pose = kinematics.tcp_pose(q)
                if pose[3] < 0:
                    pose[3:] = -pose[3:]
                values[p + "eef_pose"] = pose.astype(np.float32)
            gripper = index.get(self.layout.gripper_joint(a))
            if gripper is not None:
                values[p + "gripper"] = np.array([position[gripper]], np.float32)
            states.append(StateSample(values, stamp))
        if not updated:
            return
        with self.lock:
            for state in states:
                self.values.update(state.values)
            self.messages += 1
            for (a, q, qd), state in zip(updated, states, strict=True):
                self._arm_q[a], self._arm_qd[a], self.arm_stamps[a] = q, qd, stamp
                self._arm_states[a].add(state)
            if all(q is not None for q in self._arm_q):
                self.joint_pos = np.concatenate(self._arm_q)
                self.joint_vel = np.concatenate(self._arm_qd)
                self.stamp = min(self.arm_stamps)

    def _estimated_velocity(self, arm: int, q: np.ndarray, stamp: float) -> np.ndarray | None:
        """Arm ``arm``'s joint velocities (rad/s) at positions ``q`` (rad) stamped ``stamp``
        (s), from the positions before (finite differences: the mean velocity since the last
        message, however long ago; a driver at 10 Hz or less was dropped whole by a limit on
        that interval); None when there is no earlier message to difference with (the first,
        or one not newer than the last), which is then not taken."""
        last, self._last_position[arm] = self._last_position[arm], (stamp, q)
        if last is None or stamp <= last[0]:
            if last is not None:
                self._last_position[arm] = last  # an older message: keep the newer one
            return None
        return (q - last[1]) / (stamp - last[0])

    def _set(self, key: str, value) -> None:
        with self.lock:
            self.values[key] = np.asarray(value, np.float32)

    def _on_target(self, msg) -> None:
        point = msg.point
        with self.lock:
            self.values["target_pos"] = np.array([point.x, point.y, point.z], np.float32)
            self.input_stamps["target_pos"] = stamp_seconds(msg.header.stamp)

    def _on_object(self, msg) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        with self.lock:
            self.values["object_pose"] = np.array([p.x, p.y, p.z, o.w, o.x, o.y, o.z], np.float32)
            self.input_stamps["object_pose"] = stamp_seconds(msg.header.stamp)

    def _on_wrench(self, key: str, msg) -> None:
        stamp = stamp_seconds(msg.header.stamp) or self.node.get_clock().now().nanoseconds * 1e-9
        reading = StateSample({key: np.asarray(_wrench(msg), np.float32)}, stamp)
        with self.lock:
            self.values.update(reading.values)
            self._wrenches[key].add(reading)

    def _on_image(self, key: str, msg: Image | CompressedImage) -> None:
        where = f"{self.node.get_name()}: {key}"
        try:
            if isinstance(msg, CompressedImage):
                image = compressed_image_array(msg, where)
            else:
                image = image_array(msg, where)
        except ConfigError as error:
            self.node.get_logger().error(str(error), throttle_duration_sec=5.0)
            return
        if key.startswith("depth_") != (image.ndim == 2):
            kind = "depth" if key.startswith("depth_") else "colour"
            encoding = getattr(msg, "encoding", None) or getattr(msg, "format", "?")
            self.node.get_logger().error(
                f"{where}: {encoding} is not a {kind} encoding", throttle_duration_sec=5.0
            )
            return
        if image.shape[:2] != self.image_size and key not in self._resize_said:
            self._say_resize(key, image.shape[:2])
        stamp = stamp_seconds(msg.header.stamp) or self.node.get_clock().now().nanoseconds * 1e-9
        frame = CameraFrame(resized(image, self.image_size), stamp)
        with self.lock:
            self.frames[key].add(frame)

    def _say_resize(self, key: str, size: tuple[int, int]) -> None:
        """Say once per camera that its frames (``size`` [H, W], px) are resized to
        ``image_size``: a camera of another size than the policy's (or the dataset's) gave no
        sign of it. Enlarging is a warning: the frames then hold less detail than frames of
        ``image_size`` (a camera rendering at 64x64 for a 96x96 checkpoint)."""
        self._resize_said.add(key)
        (height, width), (to_height, to_width) = size, self.image_size
        to = f"{to_height}x{to_width}"
        line = f"{key}: frames of {height}x{width} px are resized to {to} (image_size)"
        if height < to_height or width < to_width:
            self.node.get_logger().warning(f"{line}: enlarged, less detail than {to} frames hold")
        else:
            self.node.get_logger().info(line)


def _wrench(msg) -> list[float]:
    f, t = msg.wrench.force, msg.wrench.torque
    return [f.x, f.y, f.z, t.x, t.y, t.z]
