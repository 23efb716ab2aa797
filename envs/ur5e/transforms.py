"""Rigid-transform helpers shared by the UR5e kinematics and the model generators.

Conventions: homogeneous transforms are (4, 4) float64 arrays mapping child-frame coordinates
to parent-frame coordinates; quaternions are ``wxyz`` (MuJoCo's order), unit length; poses are
(7,) ``xyz + wxyz``.
"""

from __future__ import annotations

import numpy as np


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` rad about x."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` rad about z."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def homogeneous(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) transform from a (3, 3) rotation (identity if None) and a translation (m)."""
    transform = np.eye(4)
    if rotation is not None:
        transform[:3, :3] = rotation
    transform[:3, 3] = translation
    return transform


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a unit quaternion ``wxyz`` (normalised first)."""
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion ``wxyz`` (w >= 0) of a (3, 3) rotation matrix (Shepperd's method)."""
    r = np.asarray(rotation, dtype=np.float64)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        quat = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        quat = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        quat = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        quat = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    quat = np.asarray(quat)
    quat /= np.linalg.norm(quat)
    return quat if quat[0] >= 0.0 else -quat


def matrix_to_rpy(rotation: np.ndarray) -> tuple[float, float, float]:
    """URDF roll-pitch-yaw (rad) of a rotation: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = float(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    if abs(r[2, 0]) < 1.0 - 1e-9:
        roll = float(np.arctan2(r[2, 1], r[2, 2]))
        yaw = float(np.arctan2(r[1, 0], r[0, 0]))
    else:  # gimbal lock: fold the roll into the yaw
        roll = 0.0
        yaw = float(np.arctan2(-r[0, 1], r[1, 1]))
    return roll, pitch, yaw


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """(4, 4) transform of a (7,) pose ``xyz + wxyz``."""
    return homogeneous(quat_to_matrix(pose[3:7]), pose[:3])


def matrix_to_pose(transform: np.ndarray) -> np.ndarray:
    """(7,) pose ``xyz + wxyz`` of a (4, 4) transform."""
    return np.concatenate([transform[:3, 3], matrix_to_quat(transform[:3, :3])])
