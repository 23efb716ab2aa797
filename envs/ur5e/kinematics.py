"""UR5e forward and inverse kinematics in the DH base frame.

Forward kinematics evaluates the published DH chain of ``description`` with numpy, vectorised
over any leading batch shape (one configuration: ``ur-analytic-ik``'s compiled chain).
Inverse kinematics is the closed form of Hawkins, "Analytic inverse kinematics for the
Universal Robots UR-5/UR-10 arms" (2013), all eight branches, as ``ur-analytic-ik`` computes
it except for the angle q2 + q3 + q4, taken here from a rotation that never vanishes: the
library's formula for it is 0/0 wherever cos(q5) and sin(q6) are both zero (the tool pointing
straight down at q6 = 0, as at ``HOME_JOINT_POS``), and it drops those branches there (its FK
check, the fix of its issue #5), so that IK seeded at such a pose answered with another arm
pose. This module adds the tool offset, maps every solution to the 2*pi-equivalent angles
nearest the seed inside the joint limits, and picks the closest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from robot_il.envs.ur5e.description import DH_A, DH_ALPHA, DH_D, JOINT_POS_LIMITS, TCP_OFFSET

_COS_ALPHA = np.cos(DH_ALPHA)
_SIN_ALPHA = np.sin(DH_ALPHA)
_EYE4, _EYE6 = np.eye(4), np.eye(6)


def _link_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(6, 4, 4) each: the DH link transforms F_(i-1) -> F_i are ``cos(q_i) COS + sin(q_i)
    SIN + CONST``, so that all six come from three array operations (a control tick places a
    batch of one, where each operation's overhead is the cost)."""
    cos, sin, const = np.zeros((3, 6, 4, 4))
    cos[:, 0, 0], cos[:, 0, 3], cos[:, 1, 1], cos[:, 1, 2] = 1.0, DH_A, _COS_ALPHA, -_SIN_ALPHA
    sin[:, 1, 0], sin[:, 1, 3], sin[:, 0, 1], sin[:, 0, 2] = 1.0, DH_A, -_COS_ALPHA, _SIN_ALPHA
    const[:, 2, 1], const[:, 2, 2], const[:, 2, 3], const[:, 3, 3] = _SIN_ALPHA, _COS_ALPHA, DH_D, 1
    return cos, sin, const


_LINK_COS, _LINK_SIN, _LINK_CONST = _link_parts()


def dh_frames(q: np.ndarray) -> np.ndarray:
    """Poses (..., 7, 4, 4) of DH frames 0 (base, identity) .. 6 (flange) in the arm's base
    frame for joint angles q (..., 6), rad. Body i (link i = 1..6) has frame
    ``dh_frames(q)[..., i - 1] @ Rz(q_i)`` (see ``description``)."""
    q = np.asarray(q, dtype=np.float64)
    c, s = np.cos(q)[..., None, None], np.sin(q)[..., None, None]
    links = c * _LINK_COS + s * _LINK_SIN + _LINK_CONST  # (..., 6, 4, 4): F_(i-1) -> F_i
    frames = np.empty((*q.shape[:-1], 7, 4, 4))
    frames[..., 0, :, :] = _EYE4
    frames[..., 1, :, :] = links[..., 0, :, :]
    for i in range(1, 6):
        np.matmul(frames[..., i, :, :], links[..., i, :, :], out=frames[..., i + 1, :, :])
    return frames


def forward_kinematics(q: np.ndarray, tcp_offset: float = TCP_OFFSET) -> np.ndarray:
    """Pose (..., 4, 4) of the TCP in the arm's base frame for joint angles q (..., 6), rad.

    The TCP frame is the flange frame (DH frame 6) moved ``tcp_offset`` m along its z axis;
    ``tcp_offset=0`` gives the flange itself.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape == (6,):
        # One configuration (a deploy loop's safety check, every control tick): ur-analytic-ik's
        # compiled forward kinematics, the same DH chain (equal to 1e-15), about ten times
        # faster than the numpy chain, whose cost at a batch of one is its calls' overhead.
        from ur_analytic_ik import ur5e

        transform = np.array(ur5e.forward_kinematics(*q.tolist()))
    else:
        transform = dh_frames(q)[..., 6, :, :]
    if tcp_offset:
        transform[..., :3, 3] += tcp_offset * transform[..., :3, 2]
    return transform


_D1, _D4, _D5, _D6 = (float(DH_D[i]) for i in (0, 3, 4, 5))
_TWO_PI = 2 * np.pi
_A2, _A3 = float(DH_A[1]), float(DH_A[2])


def tcp_point(q: Sequence[float], tcp_offset: float = TCP_OFFSET) -> tuple[float, float, float]:
    """TCP position (x, y, z) m in the arm's base frame for one configuration q (6 floats, rad).

    The closed form of the DH chain's position (joints 2-4 turn about parallel axes, so
    only their sums enter; the TCP is the flange moved ``tcp_offset`` along its z axis, which
    is the flange with ``d6 + tcp_offset``), in plain floats: a safety check at every control
    tick needs the point alone, and this costs a fraction of a pose from the compiled chain
    (equal to it within 1e-15 m; ``tests/envs/test_kinematics.py``)."""
    q1, q2, q3, q4, q5 = q[0], q[1], q[2], q[3], q[4]
    s1, c1, s5, c5 = math.sin(q1), math.cos(q1), math.sin(q5), math.cos(q5)
    q23 = q2 + q3
    s234, c234 = math.sin(q23 + q4), math.cos(q23 + q4)
    reach = _D6 + tcp_offset
    planar = _A2 * math.cos(q2) + _A3 * math.cos(q23) + _D5 * s234 - reach * s5 * c234
    side = _D4 + reach * c5
    height = _D1 + _A2 * math.sin(q2) + _A3 * math.sin(q23) - _D5 * c234 - reach * s5 * s234
    return c1 * planar + s1 * side, s1 * planar - c1 * side, height


def tcp_to_flange(tcp_pose: np.ndarray, tcp_offset: float = TCP_OFFSET) -> np.ndarray:
    """Flange pose (4, 4) that puts the TCP at ``tcp_pose`` (4, 4)."""
    flange = np.array(tcp_pose, dtype=np.float64)
    flange[:3, 3] -= tcp_offset * flange[:3, 2]
    return flange


def inverse_kinematics_all(
    tcp_pose: np.ndarray,
    tcp_offset: float = TCP_OFFSET,
    max_error: float = 1e-6,
    wrist_q6: float = 0.0,
) -> np.ndarray:
    """Every analytic solution (k, 6), rad in [-pi, pi], for a TCP pose (4, 4); k = 0 if the
    pose is out of reach. Where the wrist is singular (q5 = 0 or pi: q4 and q6 turn about one
    axis, and any q6 has its q4) q6 is ``wrist_q6`` (rad). Solutions whose flange misses the
    pose by more than ``max_error`` m (numerical edge cases at a stretched elbow) are dropped.

    Plain floats, one branch at a time: eight branches of a few dozen operations each cost
    less than numpy's per-call overhead would (a teleop servo solves at every tick).
    """
    flange = tcp_to_flange(tcp_pose, tcp_offset)
    (r11, r12, r13), (r21, r22, r23), (r31, r32, r33) = flange[:3, :3].tolist()
    px, py, pz = flange[:3, 3].tolist()
    # q1: the wrist centre seen from the base axis, offset d4 sideways (two ways)
    a, b = px - _D6 * r13, _D6 * r23 - py
    beside = a * a + b * b - _D4 * _D4
    if beside < 0.0:
        return np.empty((0, 6))  # the wrist centre lies within d4 of the base axis
    pan, side = math.atan2(a, b), math.atan2(math.sqrt(beside), _D4)
    solutions = []
    for q1 in (pan + side, pan - side):
        c1, s1 = math.cos(q1), math.sin(q1)
        x6, y6 = s1 * r11 - c1 * r21, c1 * r22 - s1 * r12  # sin(q5) times cos, sin of q6
        x, y, z = c1 * r11 + s1 * r21, c1 * r12 + s1 * r22, c1 * r13 + s1 * r23
        sin5 = math.hypot(x6, y6)  # |sin(q5)|
        for sign in (1.0, -1.0):
            q5 = math.atan2(sign * sin5, s1 * r13 - c1 * r23)
            q6 = wrist_q6 if sin5 < 1e-12 else math.atan2(sign * y6, sign * x6)
            c5, s5, c6, s6 = math.cos(q5), math.sin(q5), math.cos(q6), math.sin(q6)
            # q2 + q3 + q4 from what is left of the rotation once q1, q5 and q6 are taken
            # out: a unit vector (cos, sin) whatever the wrist does
            q234 = math.atan2(
                c5 * (c6 * r31 - s6 * r32) - s5 * r33, c5 * (c6 * x - s6 * y) - s5 * z
            )
            c234, s234 = math.cos(q234), math.sin(q234)
            # q3 and q2: the planar two-link problem of the upper arm and the forearm
            kc = c1 * px + s1 * py - s234 * _D5 + c234 * s5 * _D6
            ks = pz - _D1 + c234 * _D5 + s234 * s5 * _D6
            c3 = (kc * kc + ks * ks - _A2 * _A2 - _A3 * _A3) / (2.0 * _A2 * _A3)
            if c3 * c3 > 1.0 + 1e-12:
                continue  # the wrist is beyond the arm's reach on this branch
            elbow = math.atan2(math.sqrt(max(1.0 - c3 * c3, 0.0)), c3)
            for q3 in (elbow, -elbow):
                q2 = math.atan2(ks, kc) - math.atan2(_A3 * math.sin(q3), _A3 * math.cos(q3) + _A2)
                q = [q1, q2, q3, q234 - q2 - q3, q5, q6]
                if math.dist(tcp_point(q, 0.0), (px, py, pz)) <= max_error:
                    solutions.append([math.remainder(angle, _TWO_PI) for angle in q])
    return np.array(solutions).reshape(-1, 6)


_LOWER, _UPPER = JOINT_POS_LIMITS[:, 0], JOINT_POS_LIMITS[:, 1]


def inverse_kinematics(
    tcp_pose: np.ndarray, q_near: np.ndarray, tcp_offset: float = TCP_OFFSET
) -> np.ndarray | None:
    """Joint angles (6,) reaching ``tcp_pose`` (4, 4, base frame) closest to ``q_near`` (6,).

    Each solution's angles are shifted by multiples of 2*pi to the ones nearest ``q_near``
    within the joint limits; the solution with the smallest largest joint move wins (the move
    of the slowest joint decides how long it takes). None if the pose is out of reach or no
    solution fits the joint limits.
    """
    q_near = np.asarray(q_near, dtype=np.float64)
    solutions = inverse_kinematics_all(tcp_pose, tcp_offset, wrist_q6=float(q_near[5]))
    if len(solutions) == 0:
        return None
    shifted = solutions + _TWO_PI * np.round((q_near - solutions) / _TWO_PI)
    shifted -= _TWO_PI * (shifted > _UPPER)
    shifted += _TWO_PI * (shifted < _LOWER)
    inside = np.all((shifted >= _LOWER) & (shifted <= _UPPER), axis=1)
    if not np.any(inside):
        return None
    candidates = shifted[inside]
    return candidates[int(np.argmin(np.max(np.abs(candidates - q_near), axis=1)))]


def _levi_civita() -> np.ndarray:
    """(3, 3, 3): the permutation symbol, ``(a x b)_i = sum_jk eps_ijk a_j b_k``."""
    eps = np.zeros((3, 3, 3))
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[i, j, k], eps[i, k, j] = 1.0, -1.0
    return eps


_LEVI_CIVITA = _levi_civita()


def tcp_jacobian(
    q: np.ndarray, tcp_offset: float = TCP_OFFSET, frames: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """TCP pose (..., 4, 4) and geometric Jacobian (..., 6, 6) at joints q (..., 6) rad, base
    frame: rows 0-2 map joint speeds (rad/s) to TCP linear velocity (m/s), rows 3-5 to its
    angular velocity (rad/s). ``frames``: ``dh_frames(q)`` where the caller has them."""
    frames = dh_frames(q) if frames is None else frames
    tcp = frames[..., 6, :, :].copy()
    tcp[..., :3, 3] += tcp_offset * tcp[..., :3, 2]
    axes = frames[..., :6, :3, 2]  # joint i turns about z of F_(i-1)
    arms = tcp[..., None, :3, 3] - frames[..., :6, :3, 3]
    jacobian = np.empty((*axes.shape[:-2], 6, 6))  # rows: twist component, columns: joint
    # axis x arm of every joint in one product, written as rows (the two nonzero terms of
    # each component as ``a_j b_k - a_k b_j``: the bits of the plain formula)
    np.einsum("ijk,...nj,...nk->...in", _LEVI_CIVITA, axes, arms, out=jacobian[..., :3, :])
    jacobian[..., 3:, :] = np.swapaxes(axes, -1, -2)
    return tcp, jacobian


def solve_damped(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """x (..., n) with ``matrix @ x = vector`` for damped Gram matrices ``J J^T + lambda I``
    (..., n, n), lambda > 0: positive definite, so never singular. The LAPACK solver that
    ``np.linalg.solve`` calls, called directly: the same result to the bit without the checks
    and floating-point error-state switching that cost three times the 6 x 6 solve itself on
    a control tick (the singular-matrix error they exist for cannot arise here). The module is
    private numpy (1.26 and 2.x): where it is gone, ``np.linalg.solve`` gives the same x."""
    if _lapack_solve is None:
        return np.linalg.solve(matrix, vector[..., None])[..., 0]
    return _lapack_solve(matrix, vector, signature="dd->d")


try:
    from numpy.linalg._umath_linalg import solve1 as _lapack_solve
except ImportError:  # a numpy without it
    _lapack_solve = None


_HALF_LEVI_CIVITA = 0.5 * _LEVI_CIVITA
"""The vee of the skew part of a 3 x 3 matrix r, ``(r - r^T) / 2``, is ``sum_jk e_ijk r_kj``
with these e (for r = A B^T: ``sum_jkm e_ijk A_km B_jm``, one product)."""


def track_pose(
    q: np.ndarray,
    target_position: np.ndarray,
    target_rotation: np.ndarray,
    iterations: int = 1,
    damping: float = 1e-3,
    tcp_offset: float = TCP_OFFSET,
    frames: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Joints (..., 6) rad near ``q`` (..., 6) that move the TCP to ``target_position``
    (..., 3) m and ``target_rotation`` (..., 3, 3), base frame, by damped least-squares
    Newton steps (resolved-rate IK: at a control tick the target moves little, so one step
    leaves an error of the order of the step squared), and the Jacobian (..., 6, 6) of the
    last step's linearisation point. Vectorised, so a batch of arms costs one call; the
    damping (m^2) keeps steps bounded near singularities. ``frames``: ``dh_frames(q)`` where
    the caller has them (the first step then places no frames)."""
    q = np.array(q, dtype=np.float64)
    for _ in range(iterations):
        tcp, jac = tcp_jacobian(q, tcp_offset, frames)
        frames = None
        error = np.empty(q.shape)
        np.subtract(target_position, tcp[..., :3, 3], out=error[..., :3])
        # Rotation error as the vee of the skew part of R_target R^T: the rotation vector for
        # small errors, and still a descent direction for large ones (below pi).
        rotation = tcp[..., :3, :3]
        np.einsum("ijk,...km,...jm->...i", _HALF_LEVI_CIVITA, target_rotation, rotation,
                  out=error[..., 3:])  # fmt: skip
        jjt = jac @ np.swapaxes(jac, -1, -2) + damping * _EYE6
        q += np.einsum("...ji,...j->...i", jac, solve_damped(jjt, error))
    return q, jac
