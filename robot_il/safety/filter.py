"""The safety filter between every policy and every robot: one call per control period.

Why a filter with state rather than a clip: a command is safe only relative to the previous
one (velocity, acceleration, a 1 rad jump) and to the robot's situation (stale observations,
late inference, a latched e-stop). The filter keeps the last command it let through (the
*reference*) and its velocity, and turns whatever the policy asks for into a command that

- is finite and within the joint position limits,
- differs from the reference by at most ``velocity * dt`` and ``max_step`` per joint,
- changes velocity by at most ``acceleration * dt``, braking early enough to stop on target,
- keeps the tool point in the workspace box (or moving back towards it),

and holds the reference (the robot stops where it was last told to be) in the same call when
the command is NaN/inf, an observation or the command is too old, the e-stop is latched, or a
device (the gripper) has lost its link. It starts (and restarts after an e-stop reset or a
device fault) from the measured pose with its velocity limit ramping up from zero (safe
start). Times ``t`` are seconds on one clock (monotonic or sim).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_il.errors import ActionError
from robot_il.safety.events import HOLD_INTERVENTIONS, Intervention, SafetyEvent
from robot_il.safety.limits import SafetyLimits

LOGGER = logging.getLogger("robot_il.safety")

ForwardKinematics = Callable[[np.ndarray], np.ndarray]
"""Joint positions (n,) rad -> tool pose (4, 4) in the frame of the workspace box (m)."""

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SafeCommand:
    """What the filter lets through: ``command`` (n,) rad, and the events of this call."""

    command: np.ndarray
    events: list[SafetyEvent] = field(default_factory=list)

    @property
    def interventions(self) -> list[Intervention]:
        """The kinds of this call's events (``Intervention`` values compare equal to strings)."""
        return [event.kind for event in self.events]

    @property
    def held(self) -> bool:
        """Whether the command is the held position because of a hold intervention."""
        return any(event.kind in HOLD_INTERVENTIONS for event in self.events)


def _box_distance(point: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Euclidean distance (m) from ``point`` to the box; 0 inside."""
    return float(np.linalg.norm(np.maximum(lower - point, 0) + np.maximum(point - upper, 0)))


def _joints(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:+.4f}" for v in values) + "]"


class SafetyFilter:
    """Stateful safety filter for one arm; call :meth:`filter` once per control period.

    ``fk`` maps joints to the tool pose in the workspace box's frame; it is required when the
    limits have a workspace box. ``period`` (s), when given, is the nominal control period:
    elapsed times longer than two periods count as two, so a late call cannot move further.
    ``on_event`` receives each event when its kind starts (was absent the call before), which
    is also when it is logged (unless ``log_events`` is False: a node that summarises its
    events, :class:`robot_il.safety.events.EventSummary`); :attr:`counts` counts every event.
    """

    def __init__(
        self,
        limits: SafetyLimits,
        fk: ForwardKinematics | None = None,
        *,
        period: float | None = None,
        on_event: Callable[[SafetyEvent], None] | None = None,
        log_events: bool = True,
    ) -> None:
        if limits.has_workspace and fk is None:
            raise ActionError("safety filter: a workspace box needs forward kinematics (fk)")
        if period is not None and not period > 0:
            raise ActionError(f"safety filter: period must be positive, got {period!r}")
        self.limits = limits
        self.fk = fk
        self.max_dt = None if period is None else 2.0 * period
        self.on_event = on_event
        self.log_events = log_events
        self.counts: Counter[Intervention] = Counter()
        self._estopped = False
        self._fault: str | None = None
        self._observation_stamp: float | None = None
        self._reference: np.ndarray | None = None
        self._before: np.ndarray | None = None
        """The reference before the last call: where :meth:`veto` goes back to."""
        self._velocity = np.zeros(limits.num_joints)
        self._last_t = 0.0
        self._start_t = 0.0
        self._active: set[Intervention] = set()

    # -- inputs besides the command ------------------------------------------------------

    def estop(self) -> None:
        """Latch the e-stop: every following call holds position until :meth:`reset_estop`."""
        self._estopped = True

    def reset_estop(self) -> None:
        """Release the e-stop; the next call restarts from the measured pose (safe start)."""
        self._estopped = False
        self._reference = None

    def set_fault(self, detail: str | None) -> None:
        """A device fault (``detail`` says which) holds position until it is cleared (None);
        the arm then restarts from the measured pose (safe start)."""
        if detail is None and self._fault is not None:
            self._reference = None
        self._fault = detail

    @property
    def estopped(self) -> bool:
        """Whether the e-stop is latched."""
        return self._estopped

    def watchdog(self, obs_stamp: float, now: float) -> bool:
        """Record an observation taken at ``obs_stamp`` (s); True if it is fresh at ``now``.

        The filter holds position whenever its newest observation is older than
        ``max_observation_age`` (or none was ever recorded).
        """
        if self._observation_stamp is None or obs_stamp > self._observation_stamp:
            self._observation_stamp = obs_stamp
        return now - obs_stamp <= self.limits.max_observation_age

    @property
    def reference_before(self) -> np.ndarray | None:
        """The reference before the last call (rad): the command sent the period before."""
        return None if self._before is None else self._before.copy()

    def veto(self, t: float) -> np.ndarray:
        """The command this filter just returned was not sent (a check across arms refused
        it): go back to the reference before it and stop there; returns that command (rad)."""
        if self._before is not None:
            self._reference = self._before
        self._velocity = np.zeros(self.limits.num_joints)
        self._last_t = t
        return self._reference.copy()

    @property
    def reference(self) -> np.ndarray | None:
        """The last command let through (rad), or None before the first call."""
        return None if self._reference is None else self._reference.copy()

    # -- the filter ----------------------------------------------------------------------

    def filter(
        self,
        q_cmd: np.ndarray | None,
        q_measured: np.ndarray,
        t: float,
        *,
        command_stamp: float | None = None,
    ) -> SafeCommand:
        """The safe command at time ``t`` (s) for the policy's target ``q_cmd`` (rad).

        ``q_cmd`` None means "no command yet" and holds position without an event.
        ``q_measured`` (rad) anchors the safe start. ``command_stamp`` (s) is when the policy
        computed ``q_cmd``; older than ``max_command_age`` holds position (late inference).
        """
        n = self.limits.num_joints
        q_measured = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if q_measured.shape != (n,):
            raise ActionError(f"safety filter: measured joints have shape {q_measured.shape}")
        if q_cmd is not None:
            q_cmd = np.asarray(q_cmd, dtype=np.float64).reshape(-1)
            if q_cmd.shape != (n,):
                raise ActionError(f"safety filter: commanded joints have shape {q_cmd.shape}")
        events: list[SafetyEvent] = []
        measured_ok = bool(np.isfinite(q_measured).all())
        if self._reference is None:
            if not measured_ok:
                raise ActionError(
                    f"safety filter: cannot start, measured joints are not finite: {q_measured}"
                )
            self._anchor(q_measured, t)
            events.append(
                SafetyEvent(Intervention.SAFE_START, t, f"anchored at {_joints(q_measured)}")
            )
        self._before = self._reference

        hold = self._hold_reasons(q_cmd, q_measured, measured_ok, t, command_stamp)
        if hold or q_cmd is None:
            return self._emit(self._hold(t), events + hold)
        dt = t - self._last_t
        if dt <= 0:
            return self._emit(self._reference.copy(), events)
        if self.max_dt is not None:
            dt = min(dt, self.max_dt)
        step_events: list[SafetyEvent] = []
        command = self._limited_step(q_cmd, dt, t, step_events)
        if self.limits.has_workspace:
            outside = self._workspace_violation(command, t)
            if outside is not None:  # the shortened step is moot: report the hold alone
                return self._emit(self._hold(t), [*events, outside])
        self._velocity = (command - self._reference) / dt
        self._reference = command
        self._last_t = t
        return self._emit(command.copy(), events + step_events)

    # -- steps of the filter -------------------------------------------------------------

    def _anchor(self, q: np.ndarray, t: float) -> None:
        self._reference = np.clip(q, self.limits.position_lower, self.limits.position_upper)
        self._velocity = np.zeros(self.limits.num_joints)
        self._last_t = t
        self._start_t = t

    def _hold_reasons(
        self,
        q_cmd: np.ndarray | None,
        q_measured: np.ndarray,
        measured_ok: bool,
        t: float,
        command_stamp: float | None,
    ) -> list[SafetyEvent]:
        limits = self.limits
        reasons = []
        if self._estopped:
            reasons.append(SafetyEvent(Intervention.ESTOP, t, "e-stop latched"))
        if self._fault is not None:
            reasons.append(SafetyEvent(Intervention.DEVICE_FAULT, t, self._fault))
        if not measured_ok:
            reasons.append(
                SafetyEvent(Intervention.NONFINITE_MEASUREMENT, t, f"measured {q_measured}")
            )
        if self._observation_stamp is None:
            reasons.append(SafetyEvent(Intervention.STALE_OBSERVATION, t, "no observation yet"))
        elif t - self._observation_stamp > limits.max_observation_age:
            age = t - self._observation_stamp
            reasons.append(
                SafetyEvent(
                    Intervention.STALE_OBSERVATION,
                    t,
                    f"newest observation is {age:.4f}s old (> {limits.max_observation_age}s)",
                )
            )
        if command_stamp is not None and t - command_stamp > limits.max_command_age:
            age = t - command_stamp
            reasons.append(
                SafetyEvent(
                    Intervention.LATE_COMMAND,
                    t,
                    f"command computed {age:.4f}s ago (> {limits.max_command_age}s)",
                )
            )
        if q_cmd is not None and not np.isfinite(q_cmd).all():
            reasons.append(SafetyEvent(Intervention.NONFINITE_COMMAND, t, f"command {q_cmd}"))
        return reasons

    def _hold(self, t: float) -> np.ndarray:
        """Stop at the reference: zero velocity from now on."""
        self._velocity = np.zeros(self.limits.num_joints)
        self._last_t = t
        return self._reference.copy()

    def _limited_step(
        self, q_cmd: np.ndarray, dt: float, t: float, events: list[SafetyEvent]
    ) -> np.ndarray:
        limits = self.limits
        target = np.clip(q_cmd, limits.position_lower, limits.position_upper)
        clipped = np.abs(target - q_cmd) > _TOLERANCE
        if clipped.any():
            joints = np.flatnonzero(clipped).tolist()
            events.append(
                SafetyEvent(
                    Intervention.POSITION_LIMIT,
                    t,
                    f"joints {joints} clipped from {_joints(q_cmd)} to {_joints(target)}",
                )
            )
        error = target - self._reference
        desired = error / dt

        # Velocity: the limit, ramped up from zero during the safe start.
        ramp = min(1.0, (t - self._start_t) / limits.ramp_duration)
        speed_scale = _uniform_scale(desired, ramp * limits.velocity)
        if speed_scale < 1.0:
            kind = Intervention.SAFE_START if ramp < 1.0 else Intervention.VELOCITY_LIMIT
            events.append(
                SafetyEvent(kind, t, f"speed scaled by {speed_scale:.4f} (ramp {ramp:.3f})")
            )
            desired = desired * speed_scale

        # Braking: no faster than what the acceleration limit can stop within the distance
        # left (discrete-time form of v <= sqrt(2 a d)), then the acceleration limit itself.
        a_dt = limits.acceleration * dt
        stoppable = -0.5 * a_dt + np.sqrt(
            (0.5 * a_dt) ** 2 + 2.0 * limits.acceleration * np.abs(error)
        )
        brake_scale = _uniform_scale(desired, stoppable)
        change = desired * brake_scale - self._velocity
        accel_scale = _uniform_scale(change, a_dt)
        if brake_scale < 1.0 or accel_scale < 1.0:
            events.append(
                SafetyEvent(
                    Intervention.ACCELERATION_LIMIT,
                    t,
                    f"braking scale {brake_scale:.4f}, acceleration scale {accel_scale:.4f}",
                )
            )
        # Between the previous velocity and the desired one, both within the velocity limit.
        step = (self._velocity + change * accel_scale) * dt
        step_scale = _uniform_scale(step, limits.max_step)
        if step_scale < 1.0:
            events.append(
                SafetyEvent(
                    Intervention.MAX_STEP,
                    t,
                    f"step {_joints(step)} exceeds {limits.max_step} rad, scaled {step_scale:.4f}",
                )
            )
            step = step * step_scale
        return np.clip(self._reference + step, limits.position_lower, limits.position_upper)

    def _workspace_violation(self, command: np.ndarray, t: float) -> SafetyEvent | None:
        lower, upper = self.limits.workspace_lower, self.limits.workspace_upper
        point = np.asarray(self.fk(command))[:3, 3]
        distance = _box_distance(point, lower, upper)
        if distance <= 0.0:
            return None
        # Outside the box: allowed only while it brings the tool point closer to the box
        # (after a start outside it), never further out.
        previous = _box_distance(np.asarray(self.fk(self._reference))[:3, 3], lower, upper)
        if distance < previous - _TOLERANCE:
            return None
        return SafetyEvent(
            Intervention.WORKSPACE,
            t,
            f"tool point {_joints(point)} m would be {distance:.4f} m outside the workspace",
        )

    def _emit(self, command: np.ndarray, events: list[SafetyEvent]) -> SafeCommand:
        kinds = {event.kind for event in events}
        for event in events:
            self.counts[event.kind] += 1
            if event.kind not in self._active:
                if self.log_events:
                    LOGGER.warning("%s", event)
                if self.on_event is not None:
                    self.on_event(event)
        self._active = kinds
        return SafeCommand(command=command, events=events)


def _uniform_scale(vector: np.ndarray, bound: np.ndarray | float) -> float:
    """Largest factor in [0, 1] that brings every ``|vector[i]|`` within ``bound[i]``.

    One factor for all joints keeps the step's direction in joint space (a straight line).
    """
    magnitude = np.abs(vector)
    over = magnitude > bound + _TOLERANCE
    if not over.any():
        return 1.0
    return float(np.where(over, bound / np.where(over, magnitude, 1.0), 1.0).min())
