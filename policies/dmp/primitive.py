"""Discrete Dynamic Movement Primitives in the goal-robust form, position and orientation.

Transformation system (Hoffmann et al. 2009; Ijspeert et al. 2013), per dimension::

    tau v' = kappa [K (g - y) - D v - K (g - y0) x + K f(x) + C]
    tau y' = kappa v
    tau x' = -kappa alpha_x x
    f(x)   = x * sum_i psi_i(x) w_i / sum_i psi_i(x),   psi_i(x) = exp(-h_i (x - c_i)^2)

``y`` the position (m, or any unit), ``v`` the velocity times ``tau`` (unit), ``x`` the phase
(1 -> 0), ``g`` the goal, ``y0`` the start, ``tau`` the duration (s), ``C`` an additive
coupling term (acceleration times ``tau``^2, unit/s^2 at ``tau`` = 1 s), ``kappa`` >= 0 the
phase rate: a constant ``kappa`` is temporal scaling ``tau / kappa`` exactly and 0 stops the
system where it is. ``K (g - y0) x`` cancels the spring's pull at the start, so a goal that
equals the start or moves far away keeps the demonstrated shape (the reason for this form).

The orientation DMP (Ude et al. 2014) is the same system on unit quaternions ``wxyz`` with
``g - y`` replaced by ``2 log(g * conj(q))`` (a rotation vector, rad) and ``v`` by the
angular velocity times ``tau``; ``q`` integrates by the quaternion exponential.

Everything is numpy and broadcasts over a leading batch: one set of weights drives many
rollouts with their own starts, goals, phase rates and coupling terms (the kinematic benchmark
runs 500 scenes at once). One step of a 3-D DMP costs a few tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from robot_il.envs.spatial import (
    quat_conjugate,
    quat_exp,
    quat_log,
    quat_multiply,
    quat_multiply_conjugate,
)

from robot_il.errors import ConfigError, DatasetError

STIFFNESS = 25.0 * 25.0 / 4.0
"""Spring constant K (1/s^2 at tau = 1 s): alpha_y beta_y with alpha_y = 25, beta_y = alpha_y/4."""
DAMPING = 25.0
"""Damping D = 2 sqrt(K) (1/s at tau = 1 s): critically damped."""
FINAL_PHASE = 0.01
"""Phase at t = tau; alpha_x = -ln(FINAL_PHASE)."""
MIN_SAMPLES = 10
"""Fewest demonstration samples a DMP is fit to."""


@dataclass
class DMPState:
    """The running state of a (batch of) DMP rollout(s); arrays broadcast over a batch.

    ``y`` (..., n) position; ``v`` (..., n) velocity times ``tau``; ``x`` (...,) phase;
    ``start`` (..., n) y0; ``goal`` (..., n) the goal the system pulls towards; ``tau`` (...,)
    duration, s. For an orientation DMP ``y``, ``start`` and ``goal`` are quaternions (..., 4)
    and ``v`` an angular velocity times ``tau`` (..., 3).
    """

    y: np.ndarray
    v: np.ndarray
    x: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    tau: np.ndarray
    derived: dict[str, Any] = field(default_factory=dict)
    """Values derived from the fields and kept between steps (recomputed when those change)."""

    def copy(self) -> DMPState:
        return DMPState(*(np.array(a, copy=True) for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.y, self.v, self.x, self.start, self.goal, self.tau)


def _check_demonstration(values: np.ndarray, times: np.ndarray, what: str) -> None:
    if values.ndim != 2:
        raise DatasetError(f"{what}: demonstration must be (T, n) samples, got {values.shape}")
    if len(values) < MIN_SAMPLES:
        raise DatasetError(
            f"{what}: demonstration has {len(values)} samples, a DMP needs >= {MIN_SAMPLES}"
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.argmax(~np.all(np.isfinite(values), axis=1)))
        raise DatasetError(f"{what}: demonstration has NaN/inf values (first at sample {bad})")
    if times.shape != (len(values),) or not np.all(np.isfinite(times)):
        raise DatasetError(f"{what}: times must be {len(values)} finite seconds")
    if np.any(np.diff(times) <= 0.0):
        raise DatasetError(f"{what}: sample times must increase strictly")


def _fingerprint(a: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    """An array's shape and bytes: equal fingerprints mean equal arrays (and what is derived
    from them), compared in a tenth of ``np.array_equal``'s time on a control tick's arrays."""
    return a.shape, a.tobytes()


class Activations(NamedTuple):
    """The bases' activations at phases x: ``psi`` (..., n_bases), their sum plus 1e-10
    (..., 1) and x (..., 1) (a view), so that f(x) = (psi @ w) / total * x."""

    psi: np.ndarray
    total: np.ndarray
    x: np.ndarray


def _derived(
    state: DMPState, name: str, stiffness: float, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, kept in ``state.derived[name]`` and computed again only when the
    state's goal or start changed (a new goal while running) or a DMP of another
    ``stiffness`` (the gain ``compute`` bakes in) steps the state."""
    key = (stiffness, _fingerprint(state.goal), _fingerprint(state.start))
    cached = state.derived.get(name)
    if cached is None or cached[0] != key:
        cached = (key, compute())
        state.derived[name] = cached
    return cached[1]


@dataclass
class _Primitive:
    """Weights and gains shared by the position and orientation DMPs."""

    weights: np.ndarray  # (n_bases, n) forcing-term weights
    centers: np.ndarray  # (n_bases,) basis centres in phase
    widths: np.ndarray  # (n_bases,) basis widths h_i
    tau: float  # demonstrated duration, s
    start: np.ndarray  # demonstrated start
    goal: np.ndarray  # demonstrated goal
    stiffness: float = STIFFNESS
    damping: float = DAMPING
    alpha_x: float = field(default=-float(np.log(FINAL_PHASE)))

    @staticmethod
    def bases(n_bases: int, alpha_x: float) -> tuple[np.ndarray, np.ndarray]:
        """Centres equally spaced in time and widths that make neighbours overlap at half
        height (Ijspeert et al. 2013)."""
        centers = np.exp(-alpha_x * np.linspace(0.0, 1.0, n_bases))
        gaps = np.abs(np.diff(centers))
        gaps = np.append(gaps, gaps[-1])
        return centers, np.log(2.0) / (0.5 * gaps) ** 2

    def activations(self, x: np.ndarray) -> Activations:
        """The bases' activations at phases x (...,): what f(x) needs besides the weights,
        shared by every primitive with the same bases on the same phase (a pose's position
        and orientation DMPs). Its ``x`` is a view of ``x``: use it before x moves on."""
        x = np.asarray(x, dtype=np.float64)[..., None]
        psi = np.exp(self._negative_widths * (x - self.centers) ** 2)
        total = np.add.reduce(psi, axis=-1, keepdims=True)  # psi.sum, without its dispatch
        return Activations(psi, total + 1e-10, x)

    def same_bases(self, other: _Primitive) -> bool:
        """Whether ``other`` has these bases and phase decay (then, on the same phase, it has
        these activations)."""
        return (
            self.alpha_x == other.alpha_x
            and np.array_equal(self.centers, other.centers)
            and np.array_equal(self.widths, other.widths)
        )

    @cached_property
    def _negative_widths(self) -> np.ndarray:
        return -self.widths

    def forcing(self, x: np.ndarray) -> np.ndarray:
        """Forcing term f(x) (..., n) for phases x (...,)."""
        psi, total, x = self.activations(x)
        return (psi @ self.weights) / total * x

    def _transformation(
        self,
        to_goal: np.ndarray,
        v: np.ndarray,
        scaled_start_to_goal: np.ndarray,
        x: np.ndarray,
        forcing: np.ndarray,
        coupling: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """tau v' at phase rate 1 (..., n): the spring towards the goal (``to_goal``, g - y or
        its rotation vector), damping, start cancellation (``scaled_start_to_goal``, K (g -
        y0), constant while the goal stays), the forcing term and the coupling term (a zero
        coupling adds nothing: no operation)."""
        k = self.stiffness
        accel = k * to_goal - self.damping * v - scaled_start_to_goal * x[..., None] + k * forcing
        if isinstance(coupling, np.ndarray) or coupling != 0.0:
            accel = accel + coupling
        return accel

    @classmethod
    def _fit_forcing(
        cls,
        times: np.ndarray,
        velocity: np.ndarray,
        acceleration: np.ndarray,
        to_goal: np.ndarray,
        start_to_goal: np.ndarray,
        start: np.ndarray,
        goal: np.ndarray,
        n_bases: int,
        stiffness: float,
        damping: float,
    ) -> Any:
        """The primitive whose forcing term reproduces a demonstration: ``velocity`` and
        ``acceleration`` (T, n) at ``times`` (T,) s, ``to_goal`` (T, n) g - y (or its rotation
        vector) and ``start_to_goal`` (n,) g - y0. Solves the transformation system for f
        at every sample, then fits the weights by locally weighted regression: per basis i
        and dimension, the w_i minimising sum_t psi_i(x_t) (f_t - w_i x_t)^2."""
        tau = float(times[-1] - times[0])
        alpha_x = -float(np.log(FINAL_PHASE))
        phase = np.exp(-alpha_x * (times - times[0]) / tau)
        target = (
            tau**2 * acceleration
            - stiffness * to_goal
            + damping * tau * velocity
            + stiffness * start_to_goal * phase[:, None]
        ) / stiffness
        centers, widths = cls.bases(n_bases, alpha_x)
        psi = np.exp(-widths * (phase[:, None] - centers) ** 2)  # (T, n_bases)
        numerator = (psi * phase[:, None]).T @ target  # (n_bases, n)
        denominator = (psi * phase[:, None] ** 2).sum(axis=0)[:, None]
        weights = numerator / (denominator + 1e-10)
        return cls(weights, centers, widths, tau, start, goal, stiffness, damping, alpha_x)

    def _rest_state(
        self,
        start: np.ndarray | None,
        goal: np.ndarray | None,
        tau: float | np.ndarray | None,
        size: int,
        velocity_size: int,
    ) -> DMPState:
        """State at rest at ``start`` (..., size) heading for ``goal`` (..., size) over
        ``tau`` s (defaults: the demonstration's), with a zero velocity (..., velocity_size);
        the batch shape is that of start/goal/tau together."""
        start = self.start if start is None else np.asarray(start, dtype=np.float64)
        goal = self.goal if goal is None else np.asarray(goal, dtype=np.float64)
        tau = np.asarray(self.tau if tau is None else tau, dtype=np.float64)
        batch = np.broadcast_shapes(start.shape[:-1], goal.shape[:-1], tau.shape)
        shape = (*batch, size)
        return DMPState(
            y=np.broadcast_to(start, shape).copy(),
            v=np.zeros((*batch, velocity_size)),
            x=np.ones(batch),
            start=np.broadcast_to(start, shape).copy(),
            goal=np.broadcast_to(goal, shape).copy(),
            tau=np.broadcast_to(tau, batch).copy(),
        )

    def rollout(
        self,
        dt: float,
        steps: int | None = None,
        start: np.ndarray | None = None,
        goal: np.ndarray | None = None,
        tau: float | None = None,
        phase_rate: float = 1.0,
    ) -> np.ndarray:
        """Positions (or quaternions) (steps + 1, ..., n) from the start, ``dt`` s apart;
        ``steps`` defaults to the (scaled) duration."""
        state = self.begin(start, goal, tau)
        if steps is None:
            steps = int(round(float(np.max(state.tau)) / (phase_rate * dt)))
        out = [state.y.copy()]
        for _ in range(steps):
            out.append(self.step(state, dt, phase_rate).y.copy())
        return np.stack(out)

    def _parameters(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "centers": self.centers,
            "widths": self.widths,
            "tau": np.float64(self.tau),
            "start": self.start,
            "goal": self.goal,
            "stiffness": np.float64(self.stiffness),
            "damping": np.float64(self.damping),
            "alpha_x": np.float64(self.alpha_x),
        }

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every parameter as a named numpy array (for a safetensors checkpoint)."""
        return {
            f"{prefix}{k}": np.atleast_1d(np.asarray(v, dtype=np.float64))
            for k, v in self._parameters().items()
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> Any:
        """Rebuild from ``to_arrays`` output."""
        names = ("weights", "centers", "widths", "tau", "start", "goal", "stiffness", "damping")
        values = {k: np.asarray(arrays[f"{prefix}{k}"], dtype=np.float64) for k in names}
        scalars = ("tau", "stiffness", "damping")
        kwargs = {k: float(v.reshape(-1)[0]) if k in scalars else v for k, v in values.items()}
        return cls(**kwargs, alpha_x=float(np.reshape(arrays[f"{prefix}alpha_x"], -1)[0]))


@dataclass
class DMP(_Primitive):
    """A discrete DMP over n dimensions (goal-robust form; see the module docstring)."""

    @classmethod
    def fit(
        cls,
        positions: np.ndarray,
        times: np.ndarray,
        n_bases: int = 50,
        stiffness: float = STIFFNESS,
        damping: float = DAMPING,
        what: str = "DMP",
    ) -> DMP:
        """Learn from one demonstration ``positions`` (T, n) sampled at ``times`` (T,) s.

        Velocities and accelerations come from finite differences (zero at both ends, where a
        demonstration starts and stops at rest); ``tau`` is its duration. ``DatasetError`` for
        NaN, fewer than ``MIN_SAMPLES`` samples or non-increasing times.
        """
        positions = np.asarray(positions, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        _check_demonstration(positions, times, what)
        velocity = np.gradient(positions, times, axis=0)
        acceleration = np.gradient(velocity, times, axis=0)
        start, goal = positions[0], positions[-1]
        return cls._fit_forcing(
            times, velocity, acceleration, goal - positions, goal - start, start, goal,
            n_bases, stiffness, damping,
        )  # fmt: skip

    @property
    def n_dims(self) -> int:
        return self.weights.shape[-1]

    def begin(
        self,
        start: np.ndarray | None = None,
        goal: np.ndarray | None = None,
        tau: float | np.ndarray | None = None,
    ) -> DMPState:
        """State at rest at ``start`` (..., n) heading for ``goal`` (..., n) over ``tau`` s
        (defaults: the demonstration's); the batch shape is that of start/goal/tau together."""
        return self._rest_state(start, goal, tau, self.n_dims, self.n_dims)

    def acceleration(self, state: DMPState, coupling: np.ndarray | float = 0.0) -> np.ndarray:
        """tau v' at phase rate 1 (..., n): spring, damping, start cancellation, forcing,
        coupling."""
        return self._transformation(
            state.goal - state.y,
            state.v,
            self.stiffness * (state.goal - state.start),
            state.x,
            self.forcing(state.x),
            coupling,
        )

    def step(
        self,
        state: DMPState,
        dt: float,
        phase_rate: np.ndarray | float = 1.0,
        coupling: np.ndarray | float = 0.0,
    ) -> DMPState:
        """Advance ``state`` in place by ``dt`` s (semi-implicit Euler; the phase exactly) and
        return it. ``phase_rate`` (...,) >= 0 multiplies every time derivative; ``coupling``
        (..., n) adds to tau v'."""
        rate = np.asarray(phase_rate, dtype=np.float64) * dt / state.tau
        state.v += rate[..., None] * self.acceleration(state, coupling)
        state.y += rate[..., None] * state.v
        state.x *= np.exp(-self.alpha_x * rate)
        return state

    def velocity(self, state: DMPState, phase_rate: np.ndarray | float = 1.0) -> np.ndarray:
        """dy/dt (..., n), unit/s, of a state at a phase rate."""
        return np.asarray(phase_rate)[..., None] * state.v / state.tau[..., None]


@dataclass
class QuaternionDMP(_Primitive):
    """An orientation DMP on unit quaternions ``wxyz`` (Ude et al. 2014), goal-robust form.

    ``start``/``goal`` are quaternions (4,); weights act on rotation vectors (n = 3).
    """

    @classmethod
    def fit(
        cls,
        quaternions: np.ndarray,
        times: np.ndarray,
        n_bases: int = 50,
        stiffness: float = STIFFNESS,
        damping: float = DAMPING,
        what: str = "orientation DMP",
    ) -> QuaternionDMP:
        """Learn from unit quaternions ``wxyz`` (T, 4) at ``times`` (T,) s (signs are made
        continuous first)."""
        quats = np.asarray(quaternions, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        _check_demonstration(quats, times, what)
        if quats.shape[1] != 4:
            raise DatasetError(f"{what}: quaternions must be (T, 4) wxyz, got {quats.shape}")
        quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
        flips = np.cumprod(np.where(np.sum(quats[1:] * quats[:-1], axis=1) < 0.0, -1.0, 1.0))
        quats[1:] *= flips[:, None]
        # Angular velocity from successive rotations, then its derivative.
        step = quat_log(quat_multiply(quats[1:], quat_conjugate(quats[:-1])))
        omega_mid = step / np.diff(times)[:, None]
        mid_times = 0.5 * (times[1:] + times[:-1])
        omega = np.stack([np.interp(times, mid_times, omega_mid[:, i]) for i in range(3)], 1)
        omega[0] = omega[-1] = 0.0
        omega_dot = np.gradient(omega, times, axis=0)
        start, goal = quats[0], quats[-1]
        to_goal = quat_log(quat_multiply(goal, quat_conjugate(quats)))
        start_to_goal = quat_log(quat_multiply(goal, quat_conjugate(start)))
        return cls._fit_forcing(
            times, omega, omega_dot, to_goal, start_to_goal, start, goal,
            n_bases, stiffness, damping,
        )  # fmt: skip

    def begin(
        self,
        start: np.ndarray | None = None,
        goal: np.ndarray | None = None,
        tau: float | np.ndarray | None = None,
    ) -> DMPState:
        """State at rest at quaternion ``start`` (..., 4) heading for ``goal`` (..., 4), with
        a zero angular velocity (..., 3)."""
        return self._rest_state(start, goal, tau, 4, 3)

    def step(
        self,
        state: DMPState,
        dt: float,
        phase_rate: np.ndarray | float = 1.0,
        coupling: np.ndarray | float = 0.0,
    ) -> DMPState:
        """Advance in place by ``dt`` s; see ``DMP.step`` (coupling is a rotation vector term)."""
        rate = np.asarray(phase_rate, dtype=np.float64) * dt / state.tau
        accel = self._transformation(
            quat_log(quat_multiply_conjugate(state.goal, state.y)),
            state.v,
            self._scaled_start_to_goal(state),
            state.x,
            self.forcing(state.x),
            coupling,
        )
        state.v += rate[..., None] * accel
        state.y[...] = quat_multiply(quat_exp(rate[..., None] * state.v), state.y)
        state.x *= np.exp(-self.alpha_x * rate)
        return state

    def _scaled_start_to_goal(self, state: DMPState) -> np.ndarray:
        """K 2 log(g * conj(q0)) (..., 3), recomputed only when the goal or start changed (a
        new goal while running), as it costs as much as the rest of a step."""
        return _derived(
            state,
            "scaled_start_to_goal",
            self.stiffness,
            lambda: self.stiffness * quat_log(quat_multiply_conjugate(state.goal, state.start)),
        )


@dataclass
class PoseDMP:
    """A tool pose's DMPs, position (n = 3) and orientation (a quaternion), stepped as one
    six-dimensional system on one phase: the same equations as ``DMP.step`` and
    ``QuaternionDMP.step`` on each part, to the bit, with the bases' activations, the phase
    and the updates shared (half the array operations of the two steps: what a 500 Hz
    control tick of a batch of one costs). Both need the same bases and gains.

    Its state is a ``DMPState`` with ``y``, ``start``, ``goal`` (..., 7): position then
    quaternion ``wxyz``; ``v`` (..., 6): velocity then angular velocity, times ``tau``; one
    ``x`` and ``tau``. :meth:`parts` gives each DMP's state as views into it.
    """

    position: DMP
    orientation: QuaternionDMP

    def __post_init__(self) -> None:
        gains = ("stiffness", "damping")
        if not self.position.same_bases(self.orientation) or any(
            getattr(self.position, g) != getattr(self.orientation, g) for g in gains
        ):
            raise ConfigError(
                "pose DMP: the position and orientation DMPs need the same bases and gains, "
                f"got {len(self.position.centers)} and {len(self.orientation.centers)} bases, "
                f"stiffness {self.position.stiffness} and {self.orientation.stiffness}"
            )

    def begin(
        self,
        start_position: np.ndarray,
        start_quat: np.ndarray,
        goal_position: np.ndarray,
        goal_quat: np.ndarray,
        tau: float | np.ndarray,
    ) -> DMPState:
        """The pose state at rest at the start (positions (..., 3) m, quaternions (..., 4))
        heading for the goal over ``tau`` s (...,)."""
        position = self.position.begin(start_position, goal_position, tau)
        orientation = self.orientation.begin(start_quat, goal_quat, tau)
        return DMPState(
            y=np.concatenate([position.y, orientation.y], -1),
            v=np.zeros((*position.x.shape, 6)),
            x=position.x,
            start=np.concatenate([position.start, orientation.start], -1),
            goal=np.concatenate([position.goal, orientation.goal], -1),
            tau=position.tau,
        )

    @staticmethod
    def parts(state: DMPState) -> tuple[DMPState, DMPState]:
        """The position and orientation states inside a pose state (views: stepping the pose
        moves them, and what is written into them is the pose's)."""
        position, orientation = (
            DMPState(
                state.y[part],
                state.v[part],
                state.x,
                state.start[part],
                state.goal[part],
                state.tau,
            )  # fmt: skip
            for part in (np.s_[..., :3], np.s_[..., 3:])
        )
        return position, orientation

    def step(
        self,
        state: DMPState,
        dt: float,
        phase_rate: np.ndarray | float = 1.0,
        coupling: np.ndarray | float = 0.0,
    ) -> DMPState:
        """Advance the pose state in place by ``dt`` s and return it; ``phase_rate`` (...,)
        as in ``DMP.step``, ``coupling`` (..., 3) on the position only."""
        rate = np.asarray(phase_rate, dtype=np.float64) * dt / state.tau
        y, goal, v = state.y, state.goal, state.v
        to_goal = np.empty(v.shape)
        np.subtract(goal[..., :3], y[..., :3], out=to_goal[..., :3])
        to_goal[..., 3:] = quat_log(quat_multiply_conjugate(goal[..., 3:], y[..., 3:]))
        position = self.position
        scaled_start_to_goal = _derived(
            state,
            "pose_scaled_start_to_goal",
            position.stiffness,
            lambda: position.stiffness * self._start_to_goal(state),
        )
        psi, total, x = position.activations(state.x)
        forcing = np.empty(v.shape)  # each part's own product: the same bits as alone
        np.matmul(psi, position.weights, out=forcing[..., :3])
        np.matmul(psi, self.orientation.weights, out=forcing[..., 3:])
        accel = position._transformation(
            to_goal, v, scaled_start_to_goal, state.x, forcing / total * x
        )
        if isinstance(coupling, np.ndarray) or coupling != 0.0:
            accel[..., :3] += coupling
        v += rate[..., None] * accel
        moved = rate[..., None] * v  # tau y' dt / tau: the position's and the rotation's
        y[..., :3] += moved[..., :3]
        y[..., 3:] = quat_multiply(quat_exp(moved[..., 3:]), y[..., 3:])
        state.x *= np.exp(-position.alpha_x * rate)
        return state

    @staticmethod
    def _start_to_goal(state: DMPState) -> np.ndarray:
        """g - y0 and 2 log(g * conj(q0)) (..., 6)."""
        start, goal = state.start, state.goal
        return np.concatenate(
            [
                goal[..., :3] - start[..., :3],
                quat_log(quat_multiply(goal[..., 3:], quat_conjugate(start[..., 3:]))),
            ],
            -1,
        )
