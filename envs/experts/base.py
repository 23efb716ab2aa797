"""Scripted experts as sequences of Cartesian waypoints tracked through IK.

An expert plans ``Waypoint``s (a TCP pose and a gripper command per arm); ``act`` moves a
*commanded* TCP pose toward the current waypoint at a bounded linear and angular speed, solves
IK near the previous joint command, and emits the env's action: absolute joint targets in joint
mode, or the difference between the commanded and measured TCP pose in eef_delta mode. When the
plan runs out the expert asks ``replan`` for more, which is how experts close the loop
(re-push a cube that went astray, re-grasp a dropped one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from gymnasium.error import ResetNeeded
from robot_il.envs.spatial import axis_angle_to_matrix, matrix_to_axis_angle, rotation_angle
from robot_il.envs.tasks.base import TOP_DOWN
from robot_il.envs.ur5e.transforms import pose_to_matrix, rot_z

LINEAR_SPEED = 0.35
"""Default TCP speed (m/s) between waypoints."""
ANGULAR_SPEED = 2.0
"""TCP rotation speed (rad/s) between waypoints."""
ARRIVAL_TOLERANCE = 0.01
"""A waypoint is reached when the measured TCP is this close (m) to it."""


@dataclass
class Waypoint:
    """Where each arm's TCP should go (world (4, 4); None = stay) and its gripper command.

    ``settle`` is how long (s) to keep commanding the waypoint after it is reached, e.g. while
    the gripper closes; ``speed`` (m/s) bounds the approach; ``tolerance`` (m) is the arrival
    radius.
    """

    poses: dict[str, np.ndarray | None]
    gripper: dict[str, float]
    settle: float = 0.0
    speed: float = LINEAR_SPEED
    tolerance: float = ARRIVAL_TOLERANCE
    timeout: float = 4.0
    """Seconds after which the expert moves on even if the arm has not arrived."""


@dataclass
class _ArmCommand:
    name: str
    prefix: str
    tcp: np.ndarray = field(default_factory=lambda: np.eye(4))
    joints: np.ndarray = field(default_factory=lambda: np.zeros(6))
    gripper: float = 0.0


class Expert(ABC):
    """A scripted policy for one env: ``reset(obs)`` then ``act(obs)`` each control step."""

    def __init__(self, env) -> None:
        self.env = env.unwrapped
        self.task = self.env.task
        self.dt = 1.0 / self.env.control_hz
        self.arms = {arm.name: arm for arm in self.task.arms}
        self._commands: list[_ArmCommand] = []
        self._plan: list[Waypoint] = []
        self._elapsed = 0.0
        self._settled = 0.0
        self.unreachable: np.ndarray | None = None
        """World position (3,) m of the first waypoint this episode on whose way IK found no
        joints (the arm then stays): a target out of the arm's reach; None while all went."""

    # -- to implement --------------------------------------------------------------------

    @abstractmethod
    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        """Waypoints from the initial observation of an episode."""

    def replan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        """More waypoints once the plan is done (empty: hold still)."""
        return []

    # -- policy API ----------------------------------------------------------------------

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        """Start an episode from its first observation."""
        self._commands = []
        for arm, prefix in zip(self.task.arms, self.env.key_prefixes, strict=True):
            joints = obs[prefix + "joint_pos"].astype(np.float64)
            self._commands.append(
                _ArmCommand(arm.name, prefix, arm.tcp_transform(joints), joints, 0.0)
            )
        self.unreachable = None
        self._plan = self.plan(obs)
        self._elapsed = 0.0
        self._settled = 0.0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action for this control step, in the env's action mode (float32)."""
        if not self._commands:
            raise ResetNeeded(f"call reset(obs) on the {self.task.name} expert before act()")
        if not self._plan:
            self._plan = self.replan(obs)
        if self._plan and self._reached(obs, self._plan[0]):
            self._settled += self.dt
            if self._settled >= self._plan[0].settle:
                self._advance()
                if not self._plan:
                    self._plan = self.replan(obs)
        elif self._plan:
            self._elapsed += self.dt
            if self._elapsed > self._plan[0].timeout:
                self._advance()
        if self._plan:
            self._move_toward(self._plan[0])
        return self._action(obs)

    # -- helpers -------------------------------------------------------------------------

    def _advance(self) -> None:
        self._plan.pop(0)
        self._elapsed = 0.0
        self._settled = 0.0

    def _reached(self, obs: dict[str, np.ndarray], waypoint: Waypoint) -> bool:
        for command in self._commands:
            goal = waypoint.poses.get(command.name)
            if goal is None:
                continue
            if np.linalg.norm(command.tcp[:3, 3] - goal[:3, 3]) > 1e-6:
                return False
            if rotation_angle(command.tcp[:3, :3], goal[:3, :3]) > 1e-4:
                return False
            measured = obs[command.prefix + "eef_pose"][:3]
            if np.linalg.norm(measured - goal[:3, 3]) > waypoint.tolerance:
                return False
        return True

    def _move_toward(self, waypoint: Waypoint) -> None:
        for command in self._commands:
            command.gripper = waypoint.gripper.get(command.name, command.gripper)
            goal = waypoint.poses.get(command.name)
            if goal is None:
                continue
            step = command.tcp.copy()
            offset = goal[:3, 3] - command.tcp[:3, 3]
            distance = float(np.linalg.norm(offset))
            max_move = waypoint.speed * self.dt
            step[:3, 3] = (
                goal[:3, 3]
                if distance <= max_move
                else step[:3, 3] + offset * (max_move / distance)
            )
            turn = matrix_to_axis_angle(goal[:3, :3] @ command.tcp[:3, :3].T)
            angle = float(np.linalg.norm(turn))
            max_turn = ANGULAR_SPEED * self.dt
            if angle <= max_turn:
                step[:3, :3] = goal[:3, :3]
            else:
                step[:3, :3] = axis_angle_to_matrix(turn * (max_turn / angle)) @ command.tcp[:3, :3]
            joints = self.arms[command.name].inverse(step, command.joints)
            if joints is not None:
                command.tcp = step
                command.joints = joints
            elif self.unreachable is None:
                self.unreachable = goal[:3, 3].copy()

    def unreachable_note(self) -> str:
        """Why this episode's motion stopped short, for a failed episode's line: the
        waypoint out of reach, or "" when IK always found joints."""
        if self.unreachable is None:
            return ""
        x, y, z = self.unreachable
        return (f"the {self.task.name} expert found no joints on its way to ({x:.3f}, {y:.3f}, "
                f"{z:.3f}) m (world), out of the arm's reach, and held the arm")  # fmt: skip

    def _action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for command in self._commands:
            if self.env.action_mode == "joint":
                parts.append(np.append(command.joints, command.gripper))
            else:
                measured = pose_to_matrix(obs[command.prefix + "eef_pose"].astype(np.float64))
                translation = command.tcp[:3, 3] - measured[:3, 3]
                rotation = matrix_to_axis_angle(command.tcp[:3, :3] @ measured[:3, :3].T)
                parts.append(np.concatenate([translation, rotation, [command.gripper]]))
        return np.concatenate(parts).astype(np.float32)


def tcp_at(position: np.ndarray, attitude: np.ndarray = TOP_DOWN) -> np.ndarray:
    """World TCP transform (4, 4) at ``position`` (m) with ``attitude`` (3, 3)."""
    transform = np.eye(4)
    transform[:3, :3] = attitude
    transform[:3, 3] = position
    return transform


def yaw_of(pose: np.ndarray) -> float:
    """Rotation (rad) about world z of a pose (7,) whose z axis stays near vertical."""
    rot = pose_to_matrix(pose.astype(np.float64))[:3, :3]
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def top_down(yaw: float) -> np.ndarray:
    """Attitude (3, 3) pointing down, turned by ``yaw`` (rad) about world z."""
    return rot_z(yaw) @ TOP_DOWN


def grasp_yaw(cube_pose: np.ndarray) -> float:
    """Gripper yaw (rad, in [-pi/4, pi/4]) lining the fingers up with the cube's faces."""
    yaw = yaw_of(cube_pose)
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
