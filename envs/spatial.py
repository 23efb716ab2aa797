"""Axis-angle rotation arithmetic for eef_delta actions and expert motion.

Complements ``robot_il.envs.ur5e.transforms`` (matrices, quaternions ``wxyz``, poses): an
axis-angle vector is the rotation axis scaled by the angle in radians, rotations act on column
vectors.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs.ur5e.transforms import matrix_to_quat


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of an axis-angle vector (rad), by Rodrigues' formula."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def matrix_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) rad, angle in [0, pi], of a rotation matrix (3, 3)."""
    quat = matrix_to_quat(rotation)
    sin_half = float(np.linalg.norm(quat[1:]))
    if sin_half < 1e-12:
        return np.zeros(3)
    return quat[1:] / sin_half * (2.0 * np.arctan2(sin_half, quat[0]))


def rotation_angle(rot_a: np.ndarray, rot_b: np.ndarray) -> float:
    """Angle (rad) of the rotation taking attitude ``rot_a`` to ``rot_b`` (both (3, 3))."""
    cos = (np.trace(rot_a.T @ rot_b) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))
