"""Distance between two UR5e arms, link to link, from their joint positions.

Each arm is covered by capsules (a segment and a radius): the link capsules of
``ur5e.description.LINK_COLLISION`` and four capsules around the gripper that contain its
collision shapes at any finger opening (the body cylinder, the palm box, and two around the
box the finger pads sweep from open to closed), so a capsule distance never exceeds the true
distance between the collision shapes, whatever the fingers are doing. The distance
of two capsules is the distance of their segments minus both radii: negative when they
overlap (a collision), in metres.

Everything is numpy and vectorised over any leading batch shape (scenes, time steps), so one
call measures a whole batch of two-arm configurations; the same functions serve the DMP
coupling, the kinematic benchmark and the deployment safety layer. Frames: joint angles in
rad; ``world_from_base`` is an arm's base pose (4, 4) in a shared world frame (m), as
``envs.arm.Arm.world_from_base``; every returned point is in that world frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from robot_il.envs.ur5e.description import (
    GRIPPER,
    LINK_COLLISION,
    LINK_NAMES,
    dh_link_transform,
)
from robot_il.envs.ur5e.kinematics import dh_frames

from robot_il.errors import ConfigError

_EPS = 1e-12
_BOUND_SLACK = 1e-9
"""Metres by which the broad phase's bounds are widened: far above the rounding of a placed
segment's length (1e-15 m), far below any distance that matters."""
FLANGE_FRAME = 6
"""Index of the flange among an arm's DH frames (0 = base .. 6 = flange), where the gripper
hangs."""


def _gripper_capsules() -> list[tuple[str, tuple, tuple, float]]:
    """Capsules (name, start, end, radius) in the flange frame that contain the gripper's
    collision shapes: a capsule around a box's long axis with radius the half diagonal of its
    cross-section contains the box.

    The capsules are placed from the arm's joints alone, so the fingers' capsules contain
    every place a pad can be: the box the two pads sweep along flange x as they close, from
    one open pad's outer face to the other's (x +-50.5 mm, nearly the palm's 55 mm). That box
    is cut in two along z, a capsule each (radius 21 mm; one around the whole box would take
    29 mm, and two grippers' capsules would overlap that much deeper at a handover)."""
    g = GRIPPER
    palm_x, palm_y, palm_z = g.palm.half_extents
    pad_x, pad_y, pad_z = g.pad_half_extents
    palm_center = np.asarray(g.palm.center)
    sweep_x = g.finger_open_x(1) + pad_x
    capsules = [
        ("gripper_body", (0.0, 0.0, 0.0), (0.0, 0.0, g.body_length), g.body_radius),
        (
            "gripper_palm",
            tuple(palm_center - (palm_x, 0.0, 0.0)),
            tuple(palm_center + (palm_x, 0.0, 0.0)),
            float(np.hypot(palm_y, palm_z)),
        ),
    ]
    for half, label in ((-1, "base"), (1, "tips")):
        z = g.pad_center_z + half * pad_z / 2.0
        capsules.append(
            (
                f"gripper_fingers_{label}",
                (-sweep_x, 0.0, z),
                (sweep_x, 0.0, z),
                float(np.hypot(pad_y, pad_z / 2.0)),
            )
        )
    return capsules


@dataclass(frozen=True)
class ArmCapsules:
    """The capsules covering one UR5e, each fixed in one DH frame of the arm.

    ``frame`` (N,): DH frame index per capsule (0 = base, i = link i's outer frame, which turns
    with link i; ``FLANGE_FRAME`` for the gripper); ``start``/``end`` (N, 3): segment end points
    in that frame, m; ``radius`` (N,): m; ``names`` (N,): link or gripper part per capsule.
    Expressed in the DH frames (not the link bodies' frames of ``LINK_COLLISION``), so that
    placing them needs only ``kinematics.dh_frames``, which the IK computes anyway.
    """

    frame: np.ndarray
    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray
    names: tuple[str, ...]

    @cached_property
    def endpoints(self) -> np.ndarray:
        """(N, 4, 2): each capsule's start and end point in homogeneous coordinates (columns),
        in its own frame, so that one matrix product places both in the world."""
        points = np.ones((len(self.radius), 4, 2))
        points[:, :3, 0], points[:, :3, 1] = self.start, self.end
        return points

    @cached_property
    def has_point(self) -> bool:
        """Whether some capsule's segment has zero length (a sphere)."""
        return bool((np.linalg.norm(self.end - self.start, axis=-1) ** 2 <= _EPS).any())

    @cached_property
    def pair_radii(self) -> np.ndarray:
        """(N, N) sums of two capsules' radii, m."""
        return self.radius[:, None] + self.radius[None, :]

    @cached_property
    def pair_bounding_radii(self) -> np.ndarray:
        """(N, N) sums of two capsules' bounding-sphere radii (m): half the segment plus the
        radius, plus ``_BOUND_SLACK`` for the rounding of placed segments."""
        bounding = 0.5 * np.linalg.norm(self.end - self.start, axis=-1) + self.radius
        return bounding[:, None] + bounding[None, :] + _BOUND_SLACK


def _ur5e_capsules() -> ArmCapsules:
    """``LINK_COLLISION``'s capsules moved from link i's body frame ``B_i = F_(i-1) Rz(q_i)``
    into DH frame ``F_i = B_i L_i`` (``L_i = dh_link_transform(i, 0)``, constant), so a body
    point p sits at ``L_i^-1 p`` in ``F_i``; then the gripper's, in the flange frame."""
    rows = []
    for link, capsules in LINK_COLLISION.items():
        body_in_dh = np.linalg.inv(dh_link_transform(link))
        for c in capsules:
            start, end = (body_in_dh[:3, :3] @ p + body_in_dh[:3, 3] for p in (c.start, c.end))
            rows.append((link, LINK_NAMES[link], start, end, c.radius))
    rows += [(FLANGE_FRAME, name, s, e, r) for name, s, e, r in _gripper_capsules()]
    return ArmCapsules(
        frame=np.array([r[0] for r in rows]),
        start=np.array([r[2] for r in rows], dtype=np.float64),
        end=np.array([r[3] for r in rows], dtype=np.float64),
        radius=np.array([r[4] for r in rows], dtype=np.float64),
        names=tuple(r[1] for r in rows),
    )


UR5E_CAPSULES = _ur5e_capsules()
"""The capsules of a UR5e with its gripper (link capsules first, then the gripper's)."""
REACH = 1.2
"""Bound (m) on the distance from any joint axis of a UR5e to any point of its capsules
(reach 0.85 m plus the gripper): joint moves of x rad in all move no point more than
``REACH * x`` m, so a separation measured once bounds the next ones from below."""


def arm_capsules(
    q: np.ndarray,
    world_from_base: np.ndarray | None = None,
    capsules: ArmCapsules = UR5E_CAPSULES,
    dh: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """World segment end points (..., N, 3) and (..., N, 3) of an arm's capsules at joints
    q (..., 6) rad; the radii are ``capsules.radius`` (N,). ``dh``: the DH frames
    ``kinematics.dh_frames(q)`` where the caller has them (or wants them again)."""
    dh = dh_frames(np.asarray(q, dtype=np.float64)) if dh is None else dh  # (..., 7, 4, 4)
    if world_from_base is not None:  # the frames' top three rows in the world
        dh = np.asarray(world_from_base, dtype=np.float64)[..., None, :3, :] @ dh
    frames = dh[..., capsules.frame, :3, :]  # (..., N, 3, 4)
    both = frames @ capsules.endpoints  # (..., N, 3, 2): each capsule's start and end
    return both[..., 0], both[..., 1]


_UP = np.array([0.0, 0.0, 1.0])


def vector_norm(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Euclidean norm over the last axis: ``np.linalg.norm(x, axis=-1)`` to the bit, without
    its dispatch (a third of its cost on a control tick's small arrays)."""
    return np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=keepdims))


def clamp_unit(x: np.ndarray) -> np.ndarray:
    """x clamped to [0, 1], as ``np.clip(x, 0, 1)`` for a fifth of its cost on small arrays
    (its dispatch costs more than the arithmetic there)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def segment_closest_parameters(
    p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray, points: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Parameters s, t in [0, 1] (...,) of the closest points ``p1 + s (q1 - p1)`` and
    ``p2 + t (q2 - p2)`` of two segments (..., 3), broadcast together.

    Minimises over s first with t free, then clamps t and re-solves s (Ericson, Real-Time
    Collision Detection, 5.1.9); handles parallel and zero-length segments. ``points``:
    whether some segment may have zero length (None: look; False where the caller knows
    none has, e.g. an arm's capsules, which saves the look).
    """
    shapes = {p1.shape, q1.shape, p2.shape, q2.shape}  # one shape: no broadcast_shapes (slow)
    vectors = _segment_vectors(
        p1, q1, p2, q2, shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    )
    return _closest_parameters(vectors, points)


def _segment_vectors(
    p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """(3, ``shape``): the segments' directions ``q1 - p1``, ``q2 - p2`` and ``p1 - p2``,
    broadcast to ``shape`` (..., 3), stacked so that one product gives every dot product
    between them (as each alone would, to the bit)."""
    vectors = np.empty((3, *shape))
    np.subtract(q1, p1, out=vectors[0])
    np.subtract(q2, p2, out=vectors[1])
    np.subtract(p1, p2, out=vectors[2])
    return vectors


def _closest_parameters(vectors: np.ndarray, points: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`segment_closest_parameters` from the segments' ``_segment_vectors``."""
    dots = np.einsum("a...i,b...i->ab...", vectors, vectors)
    a, e, b, c, f = dots[0, 0], dots[1, 1], dots[0, 1], dots[0, 2], dots[1, 2]
    # Zero-length segments: without them (two arms' capsules) the guards below select
    # nothing: skipped, as each array operation costs a microsecond on a control tick's few
    # pairs (``fmin``: a NaN length beside a zero one still counts as a zero one).
    if points is None:
        points = bool((np.fmin(a, e) <= _EPS).any())
    point_a, point_b = (a <= _EPS, e <= _EPS) if points else (None, None)
    safe_a = np.where(a > _EPS, a, 1.0) if points else a
    safe_e = np.where(e > _EPS, e, 1.0) if points else e
    denom = a * e - b * b
    skew = denom > _EPS * a * e
    # Parallel segments (not skew): any s works, take 0 (the division leaves them out).
    s = clamp_unit(np.divide(b * f - c * e, denom, out=np.zeros(denom.shape), where=skew))
    t = (b * s + f) / safe_e
    # Where t leaves [0, 1]: t clamped and s re-solved for it, (b t - c) / a, which is
    # -c / a at t = 0 and (b - c) / a at t = 1 to the bit (b * 0 - c is -c exactly).
    clamped = clamp_unit(t)
    s = np.where(t != clamped, clamp_unit((b * clamped - c) / safe_a), s)
    t = clamped
    if points:  # a point against a segment, or two points
        s = np.where(point_a, 0.0, np.where(point_b, clamp_unit(-c / safe_a), s))
        t = np.where(point_b, 0.0, np.where(point_a, clamp_unit(f / safe_e), t))
    return s, t


def capsule_distance(
    start_a: np.ndarray,
    end_a: np.ndarray,
    radius_a: np.ndarray | float,
    start_b: np.ndarray,
    end_b: np.ndarray,
    radius_b: np.ndarray | float,
) -> np.ndarray:
    """Distance (...,) m between capsules a and b (segments (..., 3), radii (...,)), broadcast
    together; negative when they overlap (minus the penetration depth along the segments)."""
    s, t = segment_closest_parameters(start_a, end_a, start_b, end_b)
    gap = (start_a + s[..., None] * (end_a - start_a)) - (
        start_b + t[..., None] * (end_b - start_b)
    )
    return np.linalg.norm(gap, axis=-1) - radius_a - radius_b


@dataclass(frozen=True)
class ArmSeparation:
    """The closest pair of capsules between arms a and b (batch shape ``...``).

    ``distance`` (...,): capsule distance, m (negative: the arms collide); ``point_a`` and
    ``point_b`` (..., 3): closest points on the two capsules' segments, world frame, m (the
    surfaces lie ``radius`` m from them towards each other); ``capsule_a`` and ``capsule_b``
    (...,): indices into ``UR5E_CAPSULES`` (``names`` says which link).
    """

    distance: np.ndarray
    point_a: np.ndarray
    point_b: np.ndarray
    capsule_a: np.ndarray
    capsule_b: np.ndarray

    @property
    def direction(self) -> np.ndarray:
        """Unit vector (..., 3) from b's closest point to a's: the way that moves a away from
        b (any unit vector where the segments touch)."""
        gap = self.point_a - self.point_b
        norm = vector_norm(gap, keepdims=True)
        return np.where(norm > _EPS, gap / np.maximum(norm, _EPS), _UP)


def closest_links(
    q_a: np.ndarray,
    world_from_base_a: np.ndarray | None,
    q_b: np.ndarray,
    world_from_base_b: np.ndarray | None,
    capsules: ArmCapsules = UR5E_CAPSULES,
    allowance: np.ndarray | None = None,
) -> ArmSeparation:
    """The closest capsule pair of two arms at joints q_a, q_b (..., 6) rad with base poses
    (..., 4, 4) or (4, 4) (None: the world frame), broadcast together. ``allowance`` (N, N) m,
    optional: added to each pair's distance before the closest is chosen, so that a pair may
    come that much closer than the others (two grippers passing an object); the returned
    ``distance`` includes it."""
    start_a, end_a = arm_capsules(q_a, world_from_base_a, capsules)
    start_b, end_b = arm_capsules(q_b, world_from_base_b, capsules)
    return closest_capsules(start_a, end_a, start_b, end_b, capsules, allowance)


ALL_PAIRS_CONFIGURATIONS = 4
"""Up to this many two-arm configurations, :func:`closest_capsules` measures every capsule
pair (a control tick's now and predicted: 288 pairs): the broad phase's culling, gathering and
sorting cost more array operations than the pairs it saves there."""


def closest_capsules(
    start_a: np.ndarray,
    end_a: np.ndarray,
    start_b: np.ndarray,
    end_b: np.ndarray,
    capsules: ArmCapsules = UR5E_CAPSULES,
    allowance: np.ndarray | None = None,
) -> ArmSeparation:
    """:func:`closest_links` of two arms whose capsules' world segments (..., N, 3) are
    already placed (:func:`arm_capsules`; one call can place both arms' at once).

    Up to ``ALL_PAIRS_CONFIGURATIONS`` configurations, every pair's distance is measured and
    the smallest taken (the first in capsule order among equals, a NaN before any number).
    Beyond, a broad phase first: each capsule lies inside the sphere around its segment's
    midpoint of radius ``capsules.bounding_radius``, so a pair's distance lies between its
    midpoints' distance minus those two radii and minus the capsule radii. Only pairs whose
    lower bound does not exceed the smallest upper bound of their configuration can be the
    closest; the segment-segment distance runs on those alone (about 25 of the 144 pairs of
    two UR5e), with the same arithmetic as on all pairs, so the result is the same to the bit
    (ties too)."""
    shapes = {x.shape for x in (start_a, end_a, start_b, end_b)}
    batch = start_a.shape[:-2] if len(shapes) == 1 else np.broadcast_shapes(*shapes)[:-2]
    n = len(capsules.radius)
    if allowance is not None and np.shape(allowance) != (n, n):
        raise ConfigError(
            f"closest_capsules: allowance has shape {np.shape(allowance)}; one per capsule "
            f"pair, ({n}, {n}), is needed"
        )
    # Flatten the batch: (M, N, 3) per arm.
    sa, ea, sb, eb = (
        (x if x.shape[:-2] == batch else np.broadcast_to(x, (*batch, n, 3))).reshape(-1, n, 3)
        for x in (start_a, end_a, start_b, end_b)
    )
    if len(sa) <= ALL_PAIRS_CONFIGURATIONS:
        closest = _closest_of_all_pairs(sa, ea, sb, eb, capsules, allowance)
    else:
        closest = _closest_of_candidates(sa, ea, sb, eb, capsules, allowance)
    distance, point_a, point_b, capsule_a, capsule_b = closest
    return ArmSeparation(
        distance=distance.reshape(batch),
        point_a=point_a.reshape(*batch, 3),
        point_b=point_b.reshape(*batch, 3),
        capsule_a=capsule_a.reshape(batch),
        capsule_b=capsule_b.reshape(batch),
    )


def _pair_gaps(
    vectors: np.ndarray, capsules: ArmCapsules
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vectors (..., 3) from b's closest point to a's of capsule pairs with
    ``_segment_vectors`` ``vectors``, and the offsets of those points along a's and b's
    segments (..., 3)."""
    s, t = _closest_parameters(vectors, points=capsules.has_point)
    along_a, along_b = s[..., None] * vectors[0], t[..., None] * vectors[1]
    return vectors[2] + along_a - along_b, along_a, along_b


def _closest_of_all_pairs(
    sa: np.ndarray,
    ea: np.ndarray,
    sb: np.ndarray,
    eb: np.ndarray,
    capsules: ArmCapsules,
    allowance: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Distance, closest points and capsule indices (M,) of the closest of all N x N pairs of
    M configurations' capsules (M, N, 3)."""
    m, n = sa.shape[:2]
    pa, qa, pb, qb = sa[:, :, None], ea[:, :, None], sb[:, None], eb[:, None]
    gap, along_a, along_b = _pair_gaps(_segment_vectors(pa, qa, pb, qb, (m, n, n, 3)), capsules)
    distance = np.sqrt(np.einsum("...i,...i->...", gap, gap)) - capsules.pair_radii
    if allowance is not None:
        distance = distance + allowance
    best = np.argmin(distance.reshape(m, n * n), axis=-1)  # a NaN first, as everywhere
    rows, idx_a, idx_b = np.arange(m), best // n, best % n
    return (
        distance[rows, idx_a, idx_b],
        sa[rows, idx_a] + along_a[rows, idx_a, idx_b],
        sb[rows, idx_b] + along_b[rows, idx_a, idx_b],
        idx_a,
        idx_b,
    )


def _closest_of_candidates(
    sa: np.ndarray,
    ea: np.ndarray,
    sb: np.ndarray,
    eb: np.ndarray,
    capsules: ArmCapsules,
    allowance: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """:func:`_closest_of_all_pairs` with the broad phase of :func:`closest_capsules`."""
    n = sa.shape[1]
    between = (sa + ea)[:, :, None] - (sb + eb)[:, None, :]  # (M, N, N, 3), twice the midpoints'
    centers = 0.5 * np.sqrt(np.einsum("...i,...i->...", between, between))
    lower, upper = centers - capsules.pair_bounding_radii, centers - capsules.pair_radii
    if allowance is not None:
        lower, upper = lower + allowance, upper + allowance
    limit = upper.reshape(-1, n * n).min(axis=-1)
    # ``not >``: a NaN configuration keeps all its pairs (and its NaN distance).
    config, idx_a, idx_b = np.nonzero(~(lower > limit[:, None, None]))
    pa, qa, pb, qb = sa[config, idx_a], ea[config, idx_a], sb[config, idx_b], eb[config, idx_b]
    # (K,) over the candidate pairs.
    gap, along_a, along_b = _pair_gaps(_segment_vectors(pa, qa, pb, qb, pa.shape), capsules)
    distance = np.sqrt(np.einsum("...i,...i->...", gap, gap)) - capsules.pair_radii[idx_a, idx_b]
    if allowance is not None:
        distance = distance + allowance[idx_a, idx_b]
    # The closest candidate of each configuration, the first in capsule order among equals
    # (as argmin over every pair: culled pairs lie farther): candidates come configuration
    # by configuration in pair order (``nonzero``), and a stable sort by distance within each
    # configuration puts its closest first. A NaN distance sorts first (as argmin takes the
    # first NaN), so that a configuration with one NaN joint reports NaN, never its finite pairs.
    order = np.lexsort((np.where(np.isnan(distance), -np.inf, distance), config))
    best = order[np.searchsorted(config, np.arange(len(sa)))]
    return (
        distance[best],
        pa[best] + along_a[best],
        pb[best] + along_b[best],
        idx_a[best],
        idx_b[best],
    )


def gripper_allowance(allowance: float, capsules: ArmCapsules = UR5E_CAPSULES) -> np.ndarray:
    """(N, N) m: ``allowance`` for every pair of two grippers' capsules, 0 for pairs with a
    link (the ``allowance`` argument of :func:`closest_links`)."""
    gripper = np.array([name.startswith("gripper") for name in capsules.names])
    return np.where(gripper[:, None] & gripper[None, :], float(allowance), 0.0)


def arm_separation(
    q_a: np.ndarray,
    world_from_base_a: np.ndarray | None,
    q_b: np.ndarray,
    world_from_base_b: np.ndarray | None,
    allowance: np.ndarray | None = None,
) -> np.ndarray:
    """Smallest link-to-link capsule distance (...,) m between two UR5e arms at joints
    q_a, q_b (..., 6) rad with base poses (4, 4) in one world frame; negative when they
    collide. ``allowance`` as in :func:`closest_links`."""
    separation = closest_links(q_a, world_from_base_a, q_b, world_from_base_b, allowance=allowance)
    return separation.distance


__all__ = [
    "FLANGE_FRAME",
    "REACH",
    "ALL_PAIRS_CONFIGURATIONS",
    "UR5E_CAPSULES",
    "ArmCapsules",
    "ArmSeparation",
    "arm_capsules",
    "arm_separation",
    "capsule_distance",
    "clamp_unit",
    "closest_capsules",
    "closest_links",
    "gripper_allowance",
    "segment_closest_parameters",
    "vector_norm",
]
