"""Two UR5e arms, each driven by a Cartesian DMP (tool position and orientation), coupled.

One control tick: measure the two arms' link-to-link separation, set each arm's phase rate and
repulsive coupling term by the chosen ``method``, step both DMPs and turn each tool pose into
joints by resolved-rate IK from the current joints. Everything is vectorised over a batch of
scenes (leading axis B), so the kinematic benchmark and the policy search run hundreds of
scenes per call; a deployed controller is a batch of one.

Methods (the benchmark's rows):

- ``independent``: the arms ignore each other (the makespan's lower bound);
- ``sequential``: the arm that starts later waits until the other has arrived;
- ``oncol``: ONCol-DMP's coupling (Singh, Xu, Chang 2024): each tool is repelled from the
  other arm's links inside a 0.15 m margin (in metres here), and the right arm, always the
  follower, scales its phase by ``1 - exp(-d)`` while the tools are closer than d = 0.5 m;
- ``coupled``: ours (``robot_il.policies.dmp.coupling``), link-to-link repulsion and a
  predictive, rate-limited phase law in which the arm behind in its move yields.

Frames: world frame for tool poses and DMPs (m, quaternions ``wxyz``), each arm's base frame
for its IK; joints in rad.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from robot_il.envs.separation import (
    REACH,
    UR5E_CAPSULES,
    arm_capsules,
    capsule_distance,
    clamp_unit,
    closest_capsules,
    closest_links,
    vector_norm,
)
from robot_il.envs.ur5e.kinematics import (
    dh_frames,
    forward_kinematics,
    solve_damped,
    tcp_jacobian,
    track_pose,
)
from robot_il.policies.dmp.coupling import CouplingParams, phase_ramps, rate_limited, repulsion
from robot_il.policies.dmp.primitive import DMP, DMPState, PoseDMP, QuaternionDMP

from robot_il.errors import ConfigError

METHODS: tuple[str, ...] = ("independent", "sequential", "oncol", "coupled")
ONCOL_MARGIN = 0.15
"""ONCol-DMP's repulsion margin around the other arm's links (m here; a fraction of the
normalized demonstration in their code)."""
MOVING_SPEED = 0.02
"""A tool slower than this (m/s) counts as parked for the phase law."""
NOMINAL_DAMPING = 1e-3 * np.eye(6)
"""Damping (m^2, times the identity) of the least squares that turns DMP velocities into
joint speeds for the phase law's prediction."""
_ARM = np.arange(2)[:, None]
"""Arm index (2, 1), to compare with per-scene arm choices (B,)."""
_ARM_SIGN = np.array([1.0, -1.0])[:, None, None]
"""(2, 1, 1): +1 for arm 0, -1 for arm 1 (exact: the coupling terms are +-push to the bit)."""
ONCOL_SWITCH_DISTANCE = 0.5
"""ONCol-DMP's tool distance (m) below which the follower's phase slows."""


@dataclass
class ArmPrimitives:
    """One arm's DMPs: tool position (world, m) and tool orientation (world, ``wxyz``)."""

    position: DMP
    orientation: QuaternionDMP


def _rotation_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each entry of the rotation matrix of a unit quaternion ``wxyz`` comes from: entry
    (i, j) is ``OFFSET + SCALE * (q_a q_b + SIGN q_c q_d)`` with the index pairs (a, b) and
    (c, d) flattened into the 16 products ``q_k q_l`` (4 k + l); e.g. (0, 0) is
    ``1 - 2 (y y + z z)`` and (0, 1) is ``2 (x y - w z)``."""
    w, x, y, z = range(4)
    terms = (  # (a, b, sign, c, d), row-major
        (y, y, 1, z, z), (x, y, -1, w, z), (x, z, 1, w, y),
        (x, y, 1, w, z), (x, x, 1, z, z), (y, z, -1, w, x),
        (x, z, -1, w, y), (y, z, 1, w, x), (x, x, 1, y, y),
    )  # fmt: skip
    first = np.array([4 * a + b for a, b, _, _, _ in terms])
    second = np.array([4 * c + d for _, _, _, c, d in terms])
    sign = np.array([float(t[2]) for t in terms])
    diagonal = np.eye(3, dtype=bool).ravel()
    return first, second, sign, np.where(diagonal, 1.0, 0.0), np.where(diagonal, -2.0, 2.0)


def _rotation_map(rotation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, linear)``, (..., 9) and (..., 16, 9), with ``rotation @ R(q)`` (row-major,
    ``rotation`` (..., 3, 3), default the identity) equal to ``offset + products @ linear``
    for a unit quaternion q's rotation matrix R(q) and its sixteen products ``q_k q_l``
    (4 k + l): every entry of R(q) is an offset plus two of those products times +-2
    (``_rotation_parts``), so the matrix, turned by a fixed rotation, is one matrix product
    (for the identity, each entry's two nonzero terms add in one rounding: the bits of the
    plain formula)."""
    first, second, sign, offset, scale = _rotation_parts()
    linear = np.zeros((16, 9))
    entries = np.arange(9)
    linear[first, entries] = scale
    linear[second, entries] = scale * sign
    if rotation is None:
        return offset, linear
    turn = np.asarray(rotation, dtype=np.float64)
    turned = turn[..., None, :, :] @ linear.reshape(16, 3, 3)  # (..., 16, 3, 3)
    return (turn @ offset.reshape(3, 3)).reshape(*turn.shape[:-2], 9), turned.reshape(
        *turn.shape[:-2], 16, 9
    )


def _quat_products(quat: np.ndarray) -> np.ndarray:
    """The sixteen products ``q_k q_l`` (..., 16) of quaternions ``wxyz`` (..., 4) made unit."""
    q = quat / vector_norm(quat, keepdims=True)
    return (q[..., :, None] * q[..., None, :]).reshape(*q.shape[:-1], 16)


_IDENTITY_MAP = _rotation_map()


def _quat_batch_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions ``wxyz`` (..., 4): all sixteen
    products at once, then every entry by one matrix product (a few array operations, not
    forty)."""
    offset, linear = _IDENTITY_MAP
    return (offset + _quat_products(quat) @ linear).reshape(*quat.shape[:-1], 3, 3)


def _both_arms(first: DMP | QuaternionDMP, second: DMP | QuaternionDMP) -> DMP | QuaternionDMP:
    """One primitive that steps both arms' (batch shape (2, B), arm first): arm 0's bases and
    gains with both arms' forcing weights (2, n_bases, n)."""
    gains = ("stiffness", "damping", "alpha_x")
    if first.weights.shape != second.weights.shape or any(
        getattr(first, g) != getattr(second, g) for g in gains
    ):
        raise ConfigError(
            "two-arm DMPs: both arms' primitives need the same number of bases and the same "
            f"gains, got weights {first.weights.shape} and {second.weights.shape}"
        )
    return dataclasses.replace(first, weights=np.stack([first.weights, second.weights]))


def _arm_view(state: DMPState, arm: int) -> DMPState:
    """Arm ``arm``'s part of a two-arm state (views: stepping the state moves it)."""
    return DMPState(*(array[arm] for array in state.arrays()))


class TwoArmController:
    """DMPs, coupling and IK of two arms over a batch of B scenes; see the module docstring.

    ``bases`` (2, 4, 4): each arm's base pose in the world; ``joints`` (2, B, 6) rad: the
    arms' joints at the start (their tools at the DMPs' starts); ``start_pose``/``goal_pose``
    per arm: tool positions (B, 3) m and quaternions (B, 4); ``duration`` (B, 2) s;
    ``delay`` (B, 2) s before each arm may start.
    """

    def __init__(
        self,
        primitives: tuple[ArmPrimitives, ArmPrimitives],
        bases: np.ndarray,
        joints: np.ndarray,
        start_position: np.ndarray,
        start_quat: np.ndarray,
        goal_position: np.ndarray,
        goal_quat: np.ndarray,
        duration: np.ndarray,
        delay: np.ndarray,
        method: str = "coupled",
        params: CouplingParams | None = None,
        goal_tolerance: float = 0.02,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown coupling method {method!r}; methods: {', '.join(METHODS)}")
        self.primitives = primitives
        self.method = method
        self.params = params or CouplingParams()
        self.bases = np.asarray(bases, dtype=np.float64)
        self.base_rotation_t = np.swapaxes(self.bases[:, :3, :3], -1, -2)
        self._base_rotation = np.ascontiguousarray(self.bases[:, :3, :3])
        """(2, 3, 3): arm k's world row vectors (B, 3) times its slice are in its base frame."""
        self._base_origin = self.bases[:, None, :3, 3]
        """(2, 1, 3): each arm's base origin in the world, m."""
        offset, linear = _rotation_map(self.base_rotation_t)
        self._tool_rotation_map = (offset[:, None], linear)
        """(2, 1, 9) and (2, 16, 9): each arm's tool rotation in its base frame from the
        products of the tool quaternion (world), one matrix product (``_rotation_map``)."""
        self.joints = np.array(joints, dtype=np.float64)
        self.delay = np.asarray(delay, dtype=np.float64)
        self.goal_tolerance = goal_tolerance
        # Both arms' pose DMPs step as one (weights stacked on a leading arm axis, states
        # (2, B, .)); ``positions[k]``/``orientations[k]`` are arm k's views into the state.
        self._pose_dmp = PoseDMP(
            _both_arms(primitives[0].position, primitives[1].position),
            _both_arms(primitives[0].orientation, primitives[1].orientation),
        )
        arm_first = (np.swapaxes(a, 0, 1) for a in (start_position, start_quat, goal_position))
        start_position, start_quat, goal_position = arm_first
        goal_quat, duration = np.swapaxes(goal_quat, 0, 1), np.swapaxes(duration, 0, 1)
        self._pose_state = self._pose_dmp.begin(
            start_position, start_quat, goal_position, goal_quat, duration
        )
        self._position_state, self._orientation_state = PoseDMP.parts(self._pose_state)
        self.positions: list[DMPState] = [_arm_view(self._position_state, k) for k in range(2)]
        self.orientations: list[DMPState] = [
            _arm_view(self._orientation_state, k) for k in range(2)
        ]
        batch = self.joints.shape[1]
        self.phase_rate = np.ones((2, batch))
        self.yielder = np.full(batch, -1)
        self.time = 0.0
        self.jacobians = tcp_jacobian(self.joints)[1]
        """Each arm's TCP Jacobian (2, B, 6, 6), base frame, from its latest IK step."""
        self._measured: tuple[np.ndarray, np.ndarray] | None = None
        """``coupled``: each arm's joints now and predicted (2, 2, B, 6) rad at the latest
        separation measurement, and those separations (2, B) m (see :meth:`_apart`)."""
        self._frames_now: np.ndarray | None = None
        """DH frames (2, B, 7, 4, 4) of the current joints where this tick's separation pass
        placed them: the tick's IK starts from the same joints and reuses them."""
        self._both_joints = np.empty((2, 2, batch, 6))
        """Each arm's joints now and predicted (2, 2, B, 6) this tick, placed in one call."""

    # ------------------------------------------------------------------ measurements
    def tool_positions(self) -> np.ndarray:
        """Tool positions (2, B, 3) m, world, from the joints."""
        tcp = forward_kinematics(self.joints)[..., :3, 3]
        return np.einsum("aij,abj->abi", self.bases[:, :3, :3], tcp) + self.bases[:, None, :3, 3]

    def arrived(self) -> np.ndarray:
        """Whether each arm's tool is within the goal tolerance (2, B)."""
        goals = self._position_state.goal
        return np.linalg.norm(self.tool_positions() - goals, axis=-1) <= self.goal_tolerance

    def separation(self):
        """The closest link pair of the two arms (``ArmSeparation`` over B)."""
        return closest_links(self.joints[0], self.bases[0], self.joints[1], self.bases[1])

    # ------------------------------------------------------------------ the tick
    def tick(self, dt: float) -> None:
        """Advance both arms by ``dt`` s (one control period)."""
        started = self.time >= self.delay.T  # (2, B)
        coupling = None
        if self.method == "independent":
            self.phase_rate = np.ones_like(self.phase_rate)
        elif self.method == "sequential":
            self.phase_rate = self._sequential_rates(started)
        elif self.method == "oncol":
            coupling, self.phase_rate = self._oncol(dt)
        else:
            coupling, self.phase_rate = self._coupled(dt)
        self.time += dt
        rate = self.phase_rate * started
        positions, orientations = self._position_state, self._orientation_state
        # None: no coupling term this tick (the arms proven apart), nothing to scale.
        scaled = 0.0 if coupling is None else coupling * positions.tau[..., None] ** 2
        self._pose_dmp.step(self._pose_state, dt, rate, scaled)
        # Tool poses in each arm's base frame, then both arms' IK in one vectorised call.
        targets = (positions.y - self._base_origin) @ self._base_rotation
        offset, linear = self._tool_rotation_map
        rotations = (offset + _quat_products(orientations.y) @ linear).reshape(*targets.shape, 3)
        frames, self._frames_now = self._frames_now, None
        self.joints, self.jacobians = track_pose(self.joints, targets, rotations, frames=frames)

    def _sequential_rates(self, started: np.ndarray) -> np.ndarray:
        first = np.argmin(self.delay, axis=1)  # ties: the left arm goes first
        first_done = self.arrived()[first, np.arange(len(first))]
        rates = np.ones_like(self.phase_rate)
        second = 1 - first
        rates[second, np.arange(len(first))] = first_done.astype(np.float64)
        # Once the second arm has moved it keeps going (its phase has left 1).
        moving = self.positions[0].x < 1.0, self.positions[1].x < 1.0
        rates[0] = np.where(moving[0], 1.0, rates[0])
        rates[1] = np.where(moving[1], 1.0, rates[1])
        return rates

    def _oncol(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        tools = self.tool_positions()
        coupling = np.zeros((2, tools.shape[1], 3))
        for k in range(2):
            start, end = arm_capsules(self.joints[1 - k], self.bases[1 - k])
            point = tools[k][:, None, :]
            dist = capsule_distance(point, point, 0.0, start, end, UR5E_CAPSULES.radius)
            nearest = np.argmin(dist, axis=1)
            rows = np.arange(len(nearest))
            s, e = start[rows, nearest], end[rows, nearest]
            axis = e - s
            t = np.clip(
                np.einsum("bi,bi->b", tools[k] - s, axis)
                / np.maximum(np.einsum("bi,bi->b", axis, axis), 1e-12),
                0.0,
                1.0,
            )
            away = tools[k] - (s + t[:, None] * axis)
            away /= np.maximum(np.linalg.norm(away, axis=-1, keepdims=True), 1e-9)
            coupling[k] = repulsion(
                dist[rows, nearest], away, self.params.repulsion_gain, ONCOL_MARGIN
            )
        gap = np.linalg.norm(tools[0] - tools[1], axis=-1)
        rates = np.ones_like(self.phase_rate)
        rates[1] = np.where(gap < ONCOL_SWITCH_DISTANCE, 1.0 - np.exp(-gap), 1.0)
        return coupling, rates

    def _nominal_joint_velocities(self) -> np.ndarray:
        """Joint speeds (2, B, 6) rad/s that follow each arm's DMP velocities at phase rate 1
        (damped least squares through the latest Jacobians)."""
        pose = self._pose_state  # v (2, B, 6): each arm's linear, angular velocity times tau
        arms, batch = pose.v.shape[:2]
        # Linear and angular velocities as the rows of one (2, 2B, 3) product per arm.
        rows = (pose.v / pose.tau[..., None]).reshape(arms, 2 * batch, 3)
        twists = (rows @ self._base_rotation).reshape(arms, batch, 6)
        jac = self.jacobians
        damped = jac @ np.swapaxes(jac, -1, -2) + NOMINAL_DAMPING
        return np.einsum("abji,abj->abi", jac, solve_damped(damped, twists))

    def _apart(self, distance: float) -> bool:
        """Whether every scene's arms are at least ``distance`` m apart at this tick's joints
        now and predicted (``_both_joints``), proven without measuring: the separations
        measured last, lowered by how far any point of either arm can have moved since
        (``REACH`` m per rad of joint motion, both arms' moves added)."""
        if self._measured is None:
            return False
        joints, separation = self._measured
        # No bound can prove more than was measured (the minimum: ``all()`` without its
        # Python wrapper, and False for a NaN).
        if not np.minimum.reduce(separation, axis=None) >= distance:
            return False
        moved = np.add.reduce(np.abs(self._both_joints - joints), axis=(0, 3))  # (2, B)
        return bool(np.minimum.reduce(separation - REACH * moved, axis=None) >= distance)

    def _coupled(self, dt: float) -> tuple[np.ndarray | None, np.ndarray]:
        """This tick's coupling terms (2, B, 3), divided by tau^2 (``tick`` scales them), or
        None where the arms are proven apart (no term), and the phase rates (2, B)."""
        p = self.params
        # Each arm's joints now and ``lookahead`` s ahead along the nominal velocities.
        joints = self._both_joints
        joints[:, 0] = self.joints
        np.add(self.joints, p.lookahead * self._nominal_joint_velocities(), out=joints[:, 1])
        if self._apart(max(p.repulsion_range, p.slow_distance)):
            # What the law below gives there, exactly: no repulsion, no conflict, full speed.
            self.yielder = np.full_like(self.yielder, -1)
            rates = rate_limited(self.phase_rate, 1.0, p.phase_rate_limit, dt)
            return None, rates
        # Both arms' capsules now and predicted, placed in one call; the DH frames of the
        # joints now serve this tick's IK too.
        frames = dh_frames(joints)
        self._frames_now = frames[:, 0]
        start, end = arm_capsules(joints, self.bases[:, None, None], dh=frames)
        both = closest_capsules(start[0], end[0], start[1], end[1])
        self._measured = (joints.copy(), both.distance)
        now, predicted = both.distance  # (B,) each
        push = repulsion(now, both.direction[0], p.repulsion_gain, p.repulsion_range)
        coupling = push * _ARM_SIGN  # arm 0 pushed along the direction, arm 1 against it
        # Either separation below ``slow_distance`` (fmin: as ``or``, a NaN one aside).
        conflict = np.fmin(predicted, now) < p.slow_distance
        behind = np.where(self.positions[0].x > self.positions[1].x, 0, 1)
        self.yielder = np.where(conflict, np.where(self.yielder < 0, behind, self.yielder), -1)
        # Waiting helps only while the leader still moves: a parked leader never clears the
        # way, and the straight-line prediction of a curved path would keep the yielder
        # waiting for ever, so then only the current separation counts (as for the leader).
        positions = self._position_state
        moving = vector_norm(positions.v) / positions.tau * self.phase_rate > MOVING_SPEED
        leader_moving = np.where(self.yielder == 1, moving[0], moving[1])
        # The leader's target from the separation now, the yielder's from the smaller of now
        # and predicted (2, B): ``minimum`` of (now, predicted) and now, both ramps at once.
        lows, widths = phase_ramps(p)
        lead_target, yield_target = clamp_unit((np.minimum(both.distance, now) - lows) / widths)
        yield_target = np.where(leader_moving, yield_target, lead_target)
        # Without a conflict the yielder is -1: full speed for both.
        targets = np.where(conflict, np.where(self.yielder == _ARM, yield_target, lead_target), 1.0)
        return coupling, rate_limited(self.phase_rate, targets, p.phase_rate_limit, dt)
