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


def _hamilton_table() -> np.ndarray:
    """(16, 4): row 4 j + k holds the signs with which ``a_j b_k`` enters each component of
    the Hamilton product ``a * b`` (components ``wxyz``)."""
    table = np.zeros((4, 4, 4))
    for out, terms in enumerate(
        (
            ((0, 0, 1), (1, 1, -1), (2, 2, -1), (3, 3, -1)),
            ((0, 1, 1), (1, 0, 1), (2, 3, 1), (3, 2, -1)),
            ((0, 2, 1), (1, 3, -1), (2, 0, 1), (3, 1, 1)),
            ((0, 3, 1), (1, 2, 1), (2, 1, -1), (3, 0, 1)),
        )
    ):
        for j, k, sign in terms:
            table[j, k, out] = sign
    return table.reshape(16, 4)


_HAMILTON = _hamilton_table()
_CONJUGATE = np.array([1.0, -1.0, -1.0, -1.0])
_HAMILTON_CONJUGATE = _HAMILTON * np.tile(_CONJUGATE, 4)[:, None]
"""(16, 4): ``_HAMILTON`` with the rows of ``a_j b_k``, k = x, y, z, negated: the product
``a * conj(b)`` from the same outer product, to the bit (a sign flip is exact)."""


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (..., 4) of quaternions ``wxyz`` (..., 4), broadcast.

    All sixteen products ``a_j b_k`` in one outer product, signed and summed by one matrix
    product: two array operations instead of thirty (a DMP control tick multiplies
    quaternions of a batch of one, where each operation's overhead is the cost)."""
    return _signed_products(a, b, _HAMILTON)


def quat_multiply_conjugate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``quat_multiply(a, quat_conjugate(b))`` (..., 4), to the bit, in the array operations
    of one product (the rotation from ``b`` to ``a`` for unit quaternions)."""
    return _signed_products(a, b, _HAMILTON_CONJUGATE)


def _signed_products(a: np.ndarray, b: np.ndarray, table: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    outer = a[..., :, None] * b[..., None, :]
    return outer.reshape(*outer.shape[:-2], 16) @ table


def quat_conjugate(quat: np.ndarray) -> np.ndarray:
    """Conjugate (..., 4) of quaternions ``wxyz``: the inverse rotation of a unit one."""
    return np.asarray(quat, dtype=np.float64) * _CONJUGATE


_TINY = np.finfo(np.float64).tiny
"""Smallest normal double: a divisor floor that changes no nonzero norm of a rotation."""


def quat_log(quat: np.ndarray) -> np.ndarray:
    """Rotation vector (..., 3) rad of unit quaternions ``wxyz`` (..., 4), taking the shorter
    way (angle in [0, pi]); twice the quaternion logarithm.

    ``v angle / |v|`` with the sign of w (the shorter way): for tiny |v| the ratio tends to
    2 / |w| = 2 and computes as such (arctan2 of a tiny |v| is |v| to the bit), so no
    special case is needed; |v| = 0 gives 0."""
    quat = np.asarray(quat, dtype=np.float64)
    vector = quat[..., 1:]
    sin_half = np.sqrt(np.add.reduce(vector * vector, axis=-1, keepdims=True))
    w = quat[..., :1]
    angle = 2.0 * np.arctan2(sin_half, np.abs(w))
    return vector * np.copysign(angle / np.maximum(sin_half, _TINY), w)


def quat_exp(rotvec: np.ndarray) -> np.ndarray:
    """Unit quaternion ``wxyz`` (..., 4) of rotation vectors (..., 3) rad; inverse of
    ``quat_log``. ``sin(angle / 2) / angle`` tends to 1/2 for tiny angles and computes as
    such (the sine of a tiny half angle is that half angle to the bit); a zero vector gives
    the identity."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.sqrt(np.add.reduce(rotvec * rotvec, axis=-1, keepdims=True))
    half = 0.5 * angle
    out = np.empty((*rotvec.shape[:-1], 4))
    np.cos(half, out=out[..., :1])
    np.multiply(rotvec, np.sin(half) / np.maximum(angle, _TINY), out=out[..., 1:])
    return out
