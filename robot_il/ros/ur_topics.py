"""Names and conversions of the UR driver's ROS interface, shared by the deploy nodes.

The simulated arm (``sim_robot``), the policy node and the recorder speak exactly the topics
Universal Robots' ROS 2 driver (``ur_robot_driver``) offers, so a node written against the
simulator drives the real arm unchanged. Names are relative: a namespace moves them all.
Several arms in one graph share the topics; joints are told apart by a ``tf_prefix`` per arm
(``left_`` / ``right_``, the arm names of ``robot_il.envs`` with an underscore), and joint
commands hold 6 positions per arm, arms in mount order.

Grippers are not part of the UR driver; the project's convention is a closure in [0, 1]
(1 = closed): commanded on ``<tf_prefix>gripper/command`` (std_msgs/Float64) and reported
as the joint ``<tf_prefix>gripper_joint`` of ``joint_states``, as a gripper driver's joint
state broadcaster would.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np

from robot_il.envs.ur5e.description import JOINT_NAMES

JOINT_STATES_TOPIC = "joint_states"
"""sensor_msgs/JointState at the controller rate (500 Hz on a UR5e)."""
COMMAND_TOPIC = "forward_position_controller/commands"
"""std_msgs/Float64MultiArray: joint position targets (rad), 6 per arm."""
TRAJECTORY_TOPIC = "scaled_joint_trajectory_controller/joint_trajectory"
"""trajectory_msgs/JointTrajectory: targets at times from the message's arrival."""
GRIPPER_JOINT = "gripper_joint"
"""Name (after the tf_prefix) of the gripper's joint in ``joint_states``: closure 0..1."""
ESTOP_TOPIC = "safety/estop"
"""std_msgs/Bool: true latches the e-stop of every safety layer listening."""
RESET_ESTOP_SERVICE = "safety/reset_estop"
"""std_srvs/Trigger: release the latched e-stop (the arm restarts with a safe ramp)."""
TAKEOVER_TOPIC = "teleop/takeover"
"""std_msgs/Bool, latched: true while a person drives the arm with the teleop device in place
of the stopped policy (from the policy's stop to the hand-back; ``teleop`` with
``takeover:=true``)."""
TELEOP_TARGET_TOPIC = "teleop/joint_target"
"""std_msgs/Float64MultiArray: the teleop servo's joint target (rad, the arm's 6 joints in its
joint order), sent each time the operator's device moves it: the pose asked for by the end of
that device period. A recorder with ``teleop_target:=true`` takes it as the step's joint
action (the commands on the arm's topic glide to it at ``servo_rate``)."""
SAFETY_EVENTS_TOPIC = "safety/events"
"""std_msgs/String: one JSON object ``{"kind", "t", "detail"}`` per safety intervention."""
SUCCESS_TOPIC = "task/success"
"""std_msgs/Bool: whether the simulated task is solved (simulation only)."""
OBJECT_POSE_TOPIC = "task/object_pose"
"""geometry_msgs/PoseStamped: the task's free object in the world frame (simulation only)."""
TARGET_TOPIC = "task/target"
"""geometry_msgs/PointStamped: the task's goal position in the world frame (simulation only)."""
POSE_INPUTS = ("target_pos", "object_pose")
"""Task inputs with their own geometry_msgs topics (``TARGET_TOPIC``, ``OBJECT_POSE_TOPIC``)."""


def task_input_topic(key: str) -> str:
    """std_msgs/Float64MultiArray: any other task input (e.g. ``bimanual_cross``'s
    ``tool_goals``, ``start_delays``), as the env's observation holds it (simulation, or a
    node that knows the task)."""
    return f"task/{key}"


def tf_prefix(arm: str) -> str:
    """The joint-name prefix of arm ``arm`` ("" for a one-arm scene, else ``"<arm>_"``)."""
    return f"{arm}_" if arm else ""


def arm_joint_names(arm: str) -> list[str]:
    """The six UR joint names of ``arm`` with its tf_prefix."""
    return [tf_prefix(arm) + name for name in JOINT_NAMES]


def gripper_topic(arm: str) -> str:
    """Gripper command topic of ``arm`` (std_msgs/Float64, closure 0 open .. 1 closed)."""
    return f"{tf_prefix(arm)}gripper/command"


def image_topic(camera: str) -> str:
    """sensor_msgs/Image topic of a simulated camera (``rgb8``)."""
    return f"camera/{camera}/image_raw"


def stamp_seconds(stamp) -> float:
    """A ``builtin_interfaces/Time`` as float seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


def seconds_to_stamp(seconds: float, stamp) -> None:
    """Write ``seconds`` (>= 0) into the ``builtin_interfaces/Time`` ``stamp`` in place."""
    nanoseconds = int(round(seconds * 1e9))
    stamp.sec, stamp.nanosec = divmod(nanoseconds, 1_000_000_000)


def reorder(names: Sequence[str], values: Sequence[float], wanted: Sequence[str]) -> np.ndarray:
    """``values`` (named by ``names``) in the order of ``wanted``; KeyError names a missing
    joint."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([values[index[name]] for name in wanted], dtype=np.float64)


def trajectory_points(
    msg, joint_names: Sequence[str], logger
) -> tuple[np.ndarray, np.ndarray] | None:
    """A ``trajectory_msgs/JointTrajectory`` as (times (n,) s from its arrival, positions
    (n, len(joint_names)) rad in the order of ``joint_names``).

    None for a message without points, and for one whose joints do not match, a point lacks
    positions, times do not increase from >= 0 or positions are not finite: the reason is
    logged on ``logger`` (an rclpy logger) and both the simulated arm and the real-arm bridge
    ignore such a command rather than guess.
    """
    names = list(msg.joint_names)
    if not set(joint_names) <= set(names):
        return _rejected(logger, f"joints {names} do not match {list(joint_names)}")
    if not msg.points:
        return None
    if any(len(point.positions) != len(names) for point in msg.points):
        return _rejected(logger, "a point lacks positions")
    order = [names.index(name) for name in joint_names]
    times = np.array([stamp_seconds(point.time_from_start) for point in msg.points])
    positions = np.array([[point.positions[i] for i in order] for point in msg.points])
    if np.any(np.diff(times) <= 0) or times[0] < 0 or not np.all(np.isfinite(positions)):
        return _rejected(logger, "times must increase from >= 0 and positions be finite")
    return times, positions


def _rejected(logger, reason: str) -> None:
    logger.error(f"{TRAJECTORY_TOPIC}: {reason}; ignored")


def fill_command(msg, commands: Sequence[np.ndarray]) -> None:
    """Set ``msg.data`` (std_msgs/Float64MultiArray) to the arms' joint targets (rad, 6 each,
    concatenated) from their bytes: a list would have the message check every element in
    Python, about 4 µs of a 500 Hz control tick."""
    msg.data = array.array("d", np.concatenate(commands, dtype=np.float64).tobytes())
