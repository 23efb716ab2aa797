"""Rigid-body pose arithmetic shared by the env, the tasks and the experts.

Conventions (the same as ``robot_il.envs.backends.base``): a pose is ``xyz + quaternion wxyz``
(7,), a transform is a homogeneous (4, 4) matrix, rotations act on column vectors, and an
axis-angle vector is the rotation axis scaled by the angle in radians.
"""

from __future__ import annotations

import numpy as np


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a unit quaternion ``wxyz``."""
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def mat_to_quat(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion ``wxyz`` with ``w >= 0`` of a rotation matrix (3, 3).

    The sign is fixed so that both backends report the same 4 numbers for the same attitude.
    """
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    quat = np.array(q) / np.linalg.norm(q)
    return canonical_quat(quat)


def canonical_quat(quat: np.ndarray) -> np.ndarray:
    """The same attitude with ``w >= 0`` (q and -q are one rotation)."""
    quat = np.asarray(quat, dtype=np.float64)
    return -quat if quat[0] < 0 else quat


def axis_angle_to_mat(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of an axis-angle vector (rad), by Rodrigues' formula."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def mat_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) rad, angle in [0, pi], of a rotation matrix (3, 3)."""
    quat = mat_to_quat(rot)
    sin_half = float(np.linalg.norm(quat[1:]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, quat[0])
    return quat[1:] / sin_half * angle


def pose_to_transform(pose: np.ndarray) -> np.ndarray:
    """Homogeneous transform (4, 4) of a pose ``xyz + wxyz`` (7,)."""
    transform = np.eye(4)
    transform[:3, :3] = quat_to_mat(pose[3:7])
    transform[:3, 3] = pose[:3]
    return transform


def transform_to_pose(transform: np.ndarray) -> np.ndarray:
    """Pose ``xyz + wxyz`` (7,), ``w >= 0``, of a homogeneous transform (4, 4)."""
    return np.concatenate([transform[:3, 3], mat_to_quat(transform[:3, :3])])


def yaw_transform(xyz: np.ndarray, yaw: float) -> np.ndarray:
    """Transform (4, 4) translating by ``xyz`` (m) and rotating by ``yaw`` (rad) about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    transform = np.eye(4)
    transform[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    transform[:3, 3] = xyz
    return transform


def rotation_angle(rot_a: np.ndarray, rot_b: np.ndarray) -> float:
    """Angle (rad) of the rotation taking attitude ``rot_a`` to ``rot_b`` (both (3, 3))."""
    cos = (np.trace(rot_a.T @ rot_b) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))
