"""One mounted UR5e seen from the world: kinematics and IK in world coordinates.

The kinematics of ``robot_il.envs.ur5e.kinematics`` work in the arm's base frame; tasks and
experts think in the world frame (table top at ``z = table_height``). An ``Arm`` applies the
mount transform of its ``ArmMount`` both ways, so nothing else handles base frames.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs.backends.base import ArmMount
from robot_il.envs.spatial import axis_angle_to_matrix
from robot_il.envs.ur5e import kinematics
from robot_il.envs.ur5e.description import JOINT_POS_LIMITS
from robot_il.envs.ur5e.transforms import homogeneous, matrix_to_pose, rot_z


class Arm:
    """A UR5e at ``mount``: TCP forward kinematics and closest-solution IK, world frame."""

    def __init__(self, mount: ArmMount) -> None:
        self.mount = mount
        self.name = mount.name
        self.world_from_base = homogeneous(rot_z(mount.base_yaw), mount.base_pos)
        self.base_from_world = np.linalg.inv(self.world_from_base)
        self.joint_lower = JOINT_POS_LIMITS[:, 0].copy()
        self.joint_upper = JOINT_POS_LIMITS[:, 1].copy()

    def tcp_transform(self, joint_pos: np.ndarray) -> np.ndarray:
        """World transform (4, 4) of the tool centre point at joints ``joint_pos`` (6,) rad."""
        return self.world_from_base @ kinematics.forward_kinematics(joint_pos)

    def tcp_pose(self, joint_pos: np.ndarray) -> np.ndarray:
        """World pose ``xyz + wxyz`` (7,) of the tool centre point at ``joint_pos``."""
        return matrix_to_pose(self.tcp_transform(joint_pos))

    def inverse(self, world_tcp: np.ndarray, joint_near: np.ndarray) -> np.ndarray | None:
        """Joints (6,) rad within the limits putting the TCP at ``world_tcp`` (4, 4), the
        solution closest to ``joint_near``; None where the pose is out of reach."""
        joints = kinematics.inverse_kinematics(self.base_from_world @ world_tcp, joint_near)
        if joints is None:
            return None
        if np.any(joints < self.joint_lower) or np.any(joints > self.joint_upper):
            return None
        return joints

    def solve_tcp_delta(
        self, joint_pos: np.ndarray, translation: np.ndarray, rotation: np.ndarray
    ) -> np.ndarray | None:
        """Joints (6,) rad putting the TCP at its pose at ``joint_pos`` (the measured joints)
        moved by ``translation`` (3,) m and rotated by the axis-angle ``rotation`` (3,) rad,
        both in the world frame (the rotation turns the TCP in place); the IK solution closest
        to ``joint_pos``, or None where out of reach. This is the eef_delta action's meaning,
        shared by the env and the deploy node so that both drive the arm alike."""
        return self.inverse(self.tcp_delta_target(joint_pos, translation, rotation), joint_pos)

    def tcp_delta_target(
        self, joint_pos: np.ndarray, translation: np.ndarray, rotation: np.ndarray
    ) -> np.ndarray:
        """World transform (4, 4) of the TCP pose that :meth:`solve_tcp_delta` solves for."""
        target = self.tcp_transform(joint_pos)
        target[:3, :3] = axis_angle_to_matrix(rotation) @ target[:3, :3]
        target[:3, 3] += translation
        return target
