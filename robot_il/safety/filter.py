"""The safety filter between every policy and every robot: one call per control period.

Why a filter with state rather than a clip: a command is safe only relative to the previous
one (velocity, acceleration, a 1 rad jump) and to the robot's situation (stale observations,
late inference, a latched e-stop). The filter keeps the last command it let through (the
*reference*) and its velocity, and turns whatever the policy asks for into a command that

- is finite and within the joint position limits,
- differs from the reference by at most ``velocity * dt`` and ``max_step`` per joint,
- changes velocity by at most ``acceleration * dt``, braking early enough to stop on target,
- keeps the tool point in the workspace box, braking at the acceleration limit to stop at the
  wall it heads for (or moving back towards the box after a start outside it),

and stops the arm when the command is NaN/inf (or absent), an observation or the command is
too old (or stamped ahead of now), the measured pose is not finite, a device (the gripper) has
lost its link, or the e-stop is latched. An e-stop, like a step out of the workspace box, holds
the reference (the robot stops where it was last told to be) in the same call; every other stop
is a controlled one: the command goes on along its path, slowing at the acceleration limit,
to rest (:data:`robot_il.safety.events.IMMEDIATE_STOPS` says why). It starts (and restarts after
an e-stop reset or a device fault) from the measured pose with its velocity limit ramping up
from zero (safe start); while the measured pose is not finite it waits, and has nothing to
send before its first start. A restart while the arm is still following the reference (a
reset during motion, or before the arm has settled into a held command) ramps from the
reference instead (from rest there if nothing was sent meanwhile), also for a new filter
that takes over from another (:meth:`SafetyFilter.continue_from`): the measured pose trails a
moving command by the servo's lag (0.1 s at servoJ's lookahead, 0.3 rad at full speed), and a
command jumping back to it would reverse the arm. An arm that stands still
:data:`NOT_FOLLOWING_LEAD` or more from the reference for ``_TRACKING_LAG`` is not following
its commands (stopped at its own controller: a protective stop, a stopped program, a driver's
fault), and the filter starts again from where it is (``not_following``, then a safe start):
its commands stay by the arm instead of running on, so that when the arm is released it does
not travel to a command that moved on meanwhile, on a path its controller plans and nothing
here checked. Times ``t`` are seconds on one clock (monotonic or sim).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from robot_il.errors import ActionError
from robot_il.safety.events import (
    HOLD_INTERVENTIONS,
    IMMEDIATE_STOPS,
    Intervention,
    SafetyEvent,
)
from robot_il.safety.limits import SafetyLimits

LOGGER = logging.getLogger("robot_il.safety")

ForwardKinematics = Callable[[np.ndarray], np.ndarray]
"""Joint positions (n,) rad -> tool pose (4, 4) in the frame of the workspace box (m)."""
ToolPoint = Callable[[Sequence[float]], Sequence[float]]
"""Joint positions (n floats, rad) -> tool point (x, y, z) in the frame of the box (m)."""

_TOLERANCE = 1e-9
_TRACKING_LAG = 0.25
"""Longest time (s) a following arm trails its command by: servoJ's longest lookahead (0.2 s)
plus the observation's age."""
_CLOCKS_APART_AGE = 86400.0
"""An observation older than this (s) was stamped by another clock, not late: a day."""
_CLOCKS_APART = (
    ": stamped by another clock (one node on sim time, the other on wall time? "
    "use_sim_time must match)"
)
_WALL_MARGIN = 1e-6
"""m short of the workspace box's wall that the braking for it aims at: one that aims at the
wall itself lands a rounding error past it, and the box check stops the last step at once."""
_WALL_SEARCH_SPACING = 0.05
"""rad, the largest joint's motion between the tool points that the braking for the workspace
box's wall checks along its line: a tool point 1 m from a joint's axis moves 5 cm between two,
on an arc that bulges 0.3 mm past its chord (a wall grazed within that is left to the box
check, which stops at once)."""
_WALL_SEARCH_ITERATIONS = 8
"""Most tool points that place where the braking line leaves the workspace box, between the
samples around it: interpolating between samples 5 cm apart misplaced it by millimetres, and
from one period to the next by different amounts, so that the braking came late and ran into
the wall. Regula falsi gets it within ``_WALL_CROSSING_TOLERANCE`` in three or four."""
_WALL_CROSSING_TOLERANCE = 1e-9
"""m: a tool point this close to the wall along the braking line is taken as the crossing."""
_AT_REST = 0.01
"""Joint speed (rad/s) below which an arm counts as at rest: it follows no moving command."""
NOT_FOLLOWING_LEAD = 0.1
"""|reference - measured| (rad, any joint) from which an arm that stands still counts as not
following (a servo at rest trails its command by milliradians)."""
_NOT_FOLLOWING_DWELL = 0.15
"""s the reference must stay ``NOT_FOLLOWING_LEAD`` away from an arm that stood still for
``_TRACKING_LAG``: a servo that starts late lets a command starting from rest lead it that far
for a moment. A servo that starts a pure delay ``L`` after its command is taken for stopped
once ``sqrt(2 * NOT_FOLLOWING_LEAD / a) + dwell <= L`` (``a`` the acceleration limit): at 0.15
s, from ``L`` = 0.23 s at 30 rad/s^2 (a handover cell) and 0.29 s at 10 (the default), past
servoJ's longest lookahead (0.2 s, which smooths rather than delays)."""
OPERATOR = "operator"
"""The e-stop source of :meth:`SafetyFilter.estop` by default: a person's (``safety/estop``)."""


@dataclass(frozen=True)
class SafeCommand:
    """What the filter lets through: ``command`` (n,) rad, and the events of this call.

    ``command`` is None when there is nothing to send: the filter has not started yet and the
    measured pose it would start from is not finite (the robot stays where its driver holds
    it)."""

    command: np.ndarray | None
    events: list[SafetyEvent] = field(default_factory=list)

    @property
    def interventions(self) -> list[Intervention]:
        """The kinds of this call's events (``Intervention`` values compare equal to strings)."""
        return [event.kind for event in self.events]

    @property
    def held(self) -> bool:
        """Whether a hold intervention stops the arm: the command is the held position or a
        step of the controlled stop to it."""
        return any(event.kind in HOLD_INTERVENTIONS for event in self.events)


def _box_distance(point: Sequence[float], lower: list[float], upper: list[float]) -> float:
    """Euclidean distance (m) from ``point`` to the box; 0 inside, NaN for a NaN point (never
    inside: the workspace check holds)."""
    squares = 0.0
    for p, lo, hi in zip(point, lower, upper, strict=True):
        if not lo <= p <= hi:  # outside, or NaN (then ``p - hi`` is NaN)
            out = lo - p if p < lo else p - hi
            squares += out * out
    return math.sqrt(squares)


def _outside_by(point: Sequence[float], lower: list[float], upper: list[float]) -> float:
    """How far (m) ``point`` lies out of the box along its furthest-out axis: negative
    inside (by its distance to the nearest wall), NaN for a NaN point."""
    return max(max(lo - p, p - hi) for p, lo, hi in zip(point, lower, upper, strict=True))


def _first_crossing(
    outside_at: Callable[[float], float], outside_at_start: float, horizon: float, samples: int
) -> float | None:
    """Where (in steps, 0..``horizon``) a path first leaves a box, or None if it stays inside.

    ``outside_at(s)`` is how far (m) the path's point at ``s`` lies out of the box
    (:func:`_outside_by`: negative inside, NaN for a NaN point), ``outside_at_start`` its
    value at 0 (inside the box or within the braking's margin of its wall). The path is
    sampled ``samples`` times, evenly, and the crossing between the last sample inside and
    the first one out placed by regula falsi (the Illinois variant) within
    ``_WALL_CROSSING_TOLERANCE``; a NaN point ahead counts as the crossing at the last sample
    before it, a start within the margin as a crossing at 0 once the path goes further out.
    """
    inside_s, inside_by = 0.0, outside_at_start
    for k in range(1, samples + 1):
        out_s = horizon * k / samples
        out_by = outside_at(out_s)
        if not out_by <= 0.0:
            break
        inside_s, inside_by = out_s, out_by
    else:
        return None
    if not math.isfinite(out_by) or inside_by > 0.0:
        return inside_s
    retained = 0  # which end the last two steps kept: Illinois halves its value
    for _ in range(_WALL_SEARCH_ITERATIONS):
        s = inside_s - inside_by * (out_s - inside_s) / (out_by - inside_by)
        by = outside_at(s)
        if not math.isfinite(by):
            return inside_s
        if by > 0.0:
            out_s, out_by = s, by
            inside_by *= 0.5 if retained > 0 else 1.0
            retained = 1
        else:
            inside_s, inside_by = s, by
            out_by *= 0.5 if retained < 0 else 1.0
            retained = -1
        if abs(by) <= _WALL_CROSSING_TOLERANCE:
            return s
    return inside_s  # not within the tolerance: the inner end of the last bracket


def _joints(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:+.4f}" for v in values) + "]"


def _clip(values: list[float], lower: list[float], upper: list[float]) -> list[float]:
    """``np.clip`` of finite values: each to [lower, upper]."""
    out = []
    for v, lo, hi in zip(values, lower, upper, strict=True):
        v = v if v > lo else lo
        out.append(v if v < hi else hi)
    return out


class SafetyFilter:
    """Stateful safety filter for one arm; call :meth:`filter` once per control period.

    ``fk`` maps joints to the tool pose in the workspace box's frame; it is required when the
    limits have a workspace box, unless ``tool_point`` gives the tool point alone (cheaper:
    the check runs every call; :func:`robot_il.envs.ur5e.kinematics.tcp_point`).
    ``period`` (s), when given, is the nominal control period:
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
        tool_point: ToolPoint | None = None,
        period: float | None = None,
        on_event: Callable[[SafetyEvent], None] | None = None,
        log_events: bool = True,
    ) -> None:
        if limits.has_workspace and fk is None and tool_point is None:
            raise ActionError("safety filter: a workspace box needs forward kinematics (fk)")
        if period is not None and not period > 0:
            raise ActionError(f"safety filter: period must be positive, got {period!r}")
        self.limits = limits
        if tool_point is None and fk is not None:
            tool_point = _tool_point_of(fk)
        self._tool_point = tool_point
        self.max_dt = None if period is None else 2.0 * period
        self.on_event = on_event
        self.log_events = log_events
        self.counts: Counter[Intervention] = Counter()
        # The limits as float lists, for the per-call arithmetic.
        self._lower = limits.position_lower.tolist()
        self._upper = limits.position_upper.tolist()
        self._speed = limits.velocity.tolist()
        self._accel = limits.acceleration.tolist()
        self._max_step = [float(limits.max_step)] * limits.num_joints
        if limits.has_workspace:
            self._box = (limits.workspace_lower.tolist(), limits.workspace_upper.tolist())
            self._inner_box = (
                [lo + _WALL_MARGIN for lo in self._box[0]],
                [hi - _WALL_MARGIN for hi in self._box[1]],
            )
            """The box shrunk by ``_WALL_MARGIN``: what the braking for its wall aims at."""
        self._estops: frozenset[str] = frozenset()
        """Sources of the latched e-stop; replaced, never changed in place (other threads
        latch and release while the control thread reads it)."""
        self._fault: str | None = None
        self._observation_stamp: float | None = None
        self._future_stamp: float | None = None
        """How far (s) the last observation's stamp was ahead of now (not recorded), or None."""
        self._reference: list[float] | None = None
        self._before: list[float] | None = None
        """The reference before the last call: where :meth:`veto` goes back to."""
        self._velocity = [0.0] * limits.num_joints
        self._last_t = 0.0
        self._start_t = 0.0
        self._before_restart: tuple[list[float], list[float], float] | None = None
        """Reference, velocity and time of the last call before a restart: the restart ramps
        from there if the arm is still following that reference."""
        self._still_since: float | None = None
        """Since when (s) the measured arm has stood still (``_AT_REST``), or None."""
        self._still_at: list[float] | None = None
        """The measured joints (rad) at ``_still_since``: an arm that moved from there by
        more than ``_AT_REST`` for the tracking lag is not still, whatever its driver says
        its velocity is (none reported reads as zeros; NaN)."""
        self._far_since: float | None = None
        """Since when (s) the reference has led the arm by ``NOT_FOLLOWING_LEAD`` or more."""
        self._restart_requested = False
        """Set by :meth:`restart` from any thread (a node's ``safety/reset_estop`` service, a
        device's thread), carried out by the next :meth:`filter` call: a call under way keeps
        the reference it started from, and its last write cannot undo the restart."""
        self._active: set[Intervention] = set()
        self._points: dict[tuple[float, ...], Sequence[float]] = {}
        """Tool point (m) of the last joints checked and of the reference (two entries): the
        reference's is the one its own check found, so a step costs one tool point, and a
        command that repeats the reference none."""

    # -- inputs besides the command ------------------------------------------------------

    def estop(self, source: str = OPERATOR) -> None:
        """Latch the e-stop for ``source`` (who or what stopped the arm: the operator, a
        protective stop, ...): every following call holds position until each latched
        source is released (:meth:`reset_estop`)."""
        self._estops = self._estops | {source}

    def reset_estop(self, source: str = OPERATOR) -> None:
        """Release ``source``'s e-stop; once no source is latched, the next call restarts from
        the measured pose (safe start), even when nothing was latched: a reset is how an
        operator asks for a safe start after moving the arm during a stop this filter did not
        see (a safeguard stop, a program stopped on the pendant). Sources are released one by
        one, so that recovering from a protective stop cannot release the operator's e-stop."""
        self._estops = self._estops - {source}
        if not self._estops:
            self.restart()

    def set_fault(self, detail: str | None) -> None:
        """A device fault (``detail`` says which) holds position until it is cleared (None);
        the arm then restarts from the measured pose (safe start)."""
        if detail is None and self._fault is not None:
            self.restart()
        self._fault = detail

    def restart(self) -> None:
        """Start again, with the safe-start ramp, from the measured pose (or, if the arm is
        still following the reference, from the reference: see the module's docstring). For
        an arm whose command was not sent while it waited (another arm of the cell had no
        pose to start from): the arm may have moved meanwhile, and every limit measures from
        the reference. Safe from any thread: the next :meth:`filter` call restarts."""
        self._restart_requested = True

    def continue_from(self, previous: SafetyFilter) -> None:
        """Start (this new filter's first call) as ``previous`` would restart: from its
        reference while the arm still follows it, else from the measured pose. For a filter
        that replaces another on the same arm (a node's new episode, begun during motion: a
        start from the measured pose, which trails the moving command, jumped the command
        back)."""
        if previous._reference is not None:
            self._before_restart = (previous._reference, previous._velocity, previous._last_t)
        else:
            self._before_restart = previous._before_restart

    @property
    def estopped(self) -> bool:
        """Whether the e-stop is latched (by any source)."""
        return bool(self._estops)

    @property
    def estop_sources(self) -> frozenset[str]:
        """The sources whose e-stop is latched."""
        return self._estops

    def watchdog(self, obs_stamp: float, now: float) -> bool:
        """Record an observation taken at ``obs_stamp`` (s); True if it is fresh at ``now``.

        The filter holds position whenever its newest observation is older than
        ``max_observation_age`` (or none was ever recorded). A stamp more than that age ahead
        of ``now`` (or NaN) cannot be judged: the stamping clock and this one disagree (an
        unsynced driver clock), and recorded it would keep the observations fresh for as long
        as the clocks are apart. It is not recorded, and the filter holds until an
        observation stamped within the age of ``now`` comes. A stamp ahead by less counts
        as taken ``now``.
        """
        max_age = self.limits.max_observation_age
        age = now - obs_stamp
        if not age >= -max_age:
            self._future_stamp = -age
            return False
        self._future_stamp = None
        stamp = min(obs_stamp, now)
        if self._observation_stamp is None or stamp > self._observation_stamp:
            self._observation_stamp = stamp
        return age <= max_age

    @property
    def reference_before(self) -> np.ndarray | None:
        """The reference before the last call (rad): the command sent the period before."""
        return None if self._before is None else np.array(self._before)

    def veto(self, t: float) -> np.ndarray:
        """The command this filter just returned was not sent (a check across arms refused
        it): go back to the reference before it and stop there; returns that command (rad)."""
        if self._before is not None:
            self._reference = self._before
        self._velocity = [0.0] * self.limits.num_joints
        self._last_t = t
        return np.array(self._reference)

    @property
    def started(self) -> bool:
        """Whether the filter has anchored at a measured pose (it has a reference); cheap, for
        a control loop's every tick; False again once :meth:`restart` asked for a new start."""
        return self._reference is not None and not self._restart_requested

    @property
    def moving(self) -> bool:
        """Whether the command moves: the last one let through, or, for a filter that goes on
        from another's reference (:meth:`continue_from`, a :meth:`restart`) at its next call,
        that one (a stop asked now would brake)."""
        if self._reference is not None:  # (a restart goes on from it where the arm follows)
            return any(self._velocity)
        before = self._before_restart
        return before is not None and any(before[1])

    @property
    def longest_stop(self) -> float:
        """s a controlled stop takes at most: the slowest joint from its speed limit."""
        return float(np.max(self.limits.velocity / self.limits.acceleration))

    @property
    def reference(self) -> np.ndarray | None:
        """The last command let through (rad), or None before the first call (and after a
        :meth:`restart`, until the next)."""
        return np.array(self._reference) if self.started else None

    # -- the filter ----------------------------------------------------------------------

    def filter(
        self,
        q_cmd: np.ndarray | None,
        q_measured: np.ndarray,
        t: float,
        *,
        command_stamp: float | None = None,
        qd_measured: np.ndarray | None = None,
    ) -> SafeCommand:
        """The safe command at time ``t`` (s) for the policy's target ``q_cmd`` (rad).

        ``q_cmd`` None means "no command yet" and holds position without an event.
        ``q_measured`` (rad) anchors the safe start; while it is not finite the start waits
        (a ``nonfinite_measurement`` hold), and a filter that never started returns the
        command None. ``command_stamp`` (s) is when the policy computed ``q_cmd``; older than
        ``max_command_age`` holds position (late inference). ``qd_measured`` (rad/s), the
        measured joint velocities, tells a restart whether the arm is still following the
        reference, and turns on the check for an arm that stands still far from it
        (``not_following``); without it, a restart always starts from the measured pose and
        that check does not run.
        """
        n = self.limits.num_joints
        q_measured = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if q_measured.shape != (n,):
            raise ActionError(f"safety filter: measured joints have shape {q_measured.shape}")
        cmd: list[float] | None = None
        if q_cmd is not None:
            q_cmd = np.asarray(q_cmd, dtype=np.float64).reshape(-1)
            if q_cmd.shape != (n,):
                raise ActionError(f"safety filter: commanded joints have shape {q_cmd.shape}")
            cmd = q_cmd.tolist()
        if qd_measured is not None and np.shape(qd_measured) != (n,):
            raise ActionError(
                f"safety filter: measured joint velocities have shape {np.shape(qd_measured)}"
            )
        measured = q_measured.tolist()
        events: list[SafetyEvent] = []
        measured_ok = all(map(math.isfinite, measured))
        if self._restart_requested:
            self._restart_requested = False
            if self._reference is not None:
                self._before_restart = (self._reference, self._velocity, self._last_t)
            self._reference = None
        if self._reference is None and measured_ok:
            events.append(self._anchor(measured, qd_measured, t))
        self._before = self._reference

        hold = self._hold_reasons(cmd, measured, measured_ok, t, command_stamp)
        if hold or cmd is None:
            # a held arm, or one whose pose is stale, tells nothing about following
            self._still_since = self._far_since = self._still_at = None
            events += hold
            if any(event.kind in IMMEDIATE_STOPS for event in hold):
                return self._emit(self._hold(t), events)
            return self._emit(self._controlled_stop(t, events), events)
        stranded = None if qd_measured is None else self._stranded_lead(measured, qd_measured, t)
        if stranded is not None:
            events.append(
                SafetyEvent(
                    Intervention.NOT_FOLLOWING,
                    t,
                    f"the arm stands still {stranded:.3f} rad from its command (stopped at its "
                    "controller?): starting again from where it is",
                )
            )
            self._reference = self._before_restart = None
            events.append(self._anchor(measured, qd_measured, t))
            self._before = self._reference
        dt = t - self._last_t
        if dt <= 0:
            return self._emit(self._reference, events)
        if self.max_dt is not None:
            dt = min(dt, self.max_dt)
        step_events: list[SafetyEvent] = []
        command = self._limited_step(cmd, dt, t, step_events)
        if self.limits.has_workspace:
            outside = self._workspace_violation(command, t)
            if outside is not None:  # the shortened step is moot: report the hold alone
                return self._emit(self._hold(t), [*events, outside])
        reference = self._reference
        self._velocity = [(c - r) / dt for c, r in zip(command, reference, strict=True)]
        self._reference = command
        self._last_t = t
        return self._emit(command, events + step_events)

    # -- steps of the filter -------------------------------------------------------------

    def _stranded_lead(self, q: list[float], qd: np.ndarray, t: float) -> float | None:
        """How far (rad, the largest joint) the reference leads the arm at ``q`` (rad) moving
        at ``qd`` (rad/s) at ``t`` (s), once the arm is not following: it has stood still
        for ``_TRACKING_LAG`` and the reference has been ``NOT_FOLLOWING_LEAD`` or more away
        for ``_NOT_FOLLOWING_DWELL``; else None. Standing still is a reported speed at rest
        and a measured pose within ``_AT_REST * _TRACKING_LAG`` of where it stood: a driver
        that reports no velocities reads as zeros. An arm stopped at its controller is found
        ``_TRACKING_LAG`` after it stopped, and after each new start as soon as its command
        has led it that far for the dwell."""
        still_at = self._still_at
        moved = (
            0.0 if still_at is None else max(abs(a - b) for a, b in zip(q, still_at, strict=True))
        )
        # (a NaN speed compares False: the measured positions alone decide)
        if float(np.abs(qd).max(initial=0.0)) > _AT_REST or moved > _AT_REST * _TRACKING_LAG:
            self._still_since = self._far_since = self._still_at = None
            return None
        lead = max(abs(r - m) for r, m in zip(self._reference, q, strict=True))
        if lead < NOT_FOLLOWING_LEAD:
            self._far_since = None
        elif self._far_since is None or t < self._far_since:
            self._far_since = t
        if self._still_since is None or t < self._still_since:  # (or the clock stepped back)
            self._still_since, self._still_at = t, q
        stranded = (
            self._far_since is not None
            and t - self._still_since >= _TRACKING_LAG
            and t - self._far_since >= _NOT_FOLLOWING_DWELL
        )
        return lead if stranded else None

    def _anchor(self, q: list[float], qd: np.ndarray | None, t: float) -> SafetyEvent:
        """Start (again) at time ``t``: from the reference before the restart if the arm at
        ``q`` (rad) moving at ``qd`` (rad/s) is following it (at its velocity, or at rest if
        the command paused for more than ``max_dt``), else from ``q`` at rest."""
        before, self._before_restart = self._before_restart, None
        self._start_t = t
        self._far_since = None
        if before is not None and qd is not None and _follows(q, qd, before[0], before[2], t):
            self._reference, self._velocity, self._last_t = before
            if self.max_dt is not None and t - self._last_t > self.max_dt:
                # nothing was sent since (a new episode waits for its first action): the
                # command stood still there, and goes on from rest, not at its old speed
                self._velocity, self._last_t = [0.0] * self.limits.num_joints, t
            return SafetyEvent(
                Intervention.SAFE_START, t, f"restarted from the reference {_joints(before[0])}"
            )
        self._reference = _clip(q, self._lower, self._upper)
        self._velocity = [0.0] * self.limits.num_joints
        self._last_t = t
        return SafetyEvent(Intervention.SAFE_START, t, f"anchored at {_joints(q)}")

    def _hold_reasons(
        self,
        q_cmd: list[float] | None,
        q_measured: list[float],
        measured_ok: bool,
        t: float,
        command_stamp: float | None,
    ) -> list[SafetyEvent]:
        limits = self.limits
        reasons = []
        estops = self._estops
        if estops:
            reasons.append(
                SafetyEvent(
                    Intervention.ESTOP, t, lambda: f"e-stop latched by {', '.join(sorted(estops))}"
                )
            )
        if self._fault is not None:
            reasons.append(SafetyEvent(Intervention.DEVICE_FAULT, t, self._fault))
        if not measured_ok:
            reasons.append(
                SafetyEvent(
                    Intervention.NONFINITE_MEASUREMENT,
                    t,
                    lambda: f"measured {np.array(q_measured)}",
                )
            )
        ahead = self._future_stamp
        if ahead is not None:
            reasons.append(
                SafetyEvent(
                    Intervention.STALE_OBSERVATION,
                    t,
                    lambda: (
                        f"observation stamped {ahead:.4f}s ahead of now (> "
                        f"{limits.max_observation_age}s): its clock and this one disagree"
                    ),
                )
            )
        elif self._observation_stamp is None:
            reasons.append(SafetyEvent(Intervention.STALE_OBSERVATION, t, "no observation yet"))
        elif t - self._observation_stamp > limits.max_observation_age:
            age = t - self._observation_stamp
            reasons.append(
                SafetyEvent(
                    Intervention.STALE_OBSERVATION,
                    t,
                    lambda: (
                        f"newest observation is {age:.4f}s old (> {limits.max_observation_age}s)"
                        + (_CLOCKS_APART if age > _CLOCKS_APART_AGE else "")
                    ),
                )
            )
        if command_stamp is not None and t - command_stamp > limits.max_command_age:
            late = t - command_stamp
            reasons.append(
                SafetyEvent(
                    Intervention.LATE_COMMAND,
                    t,
                    lambda: f"command computed {late:.4f}s ago (> {limits.max_command_age}s)",
                )
            )
        if q_cmd is not None and not all(map(math.isfinite, q_cmd)):
            reasons.append(
                SafetyEvent(Intervention.NONFINITE_COMMAND, t, lambda: f"command {np.array(q_cmd)}")
            )
        return reasons

    def _hold(self, t: float) -> list[float] | None:
        """Stop at the reference (None before the first start): zero velocity from now on."""
        self._velocity = [0.0] * self.limits.num_joints
        self._last_t = t
        return self._reference

    def _controlled_stop(self, t: float, events: list[SafetyEvent]) -> list[float] | None:
        """The command at ``t`` (s) of a stop at the acceleration limit: the reference goes on
        along its velocity, every joint's speed cut by one factor (the path in joint space
        stays a straight line) so that no joint's speed changes by more than ``acceleration * dt``,
        until at rest, and then holds. A step that would leave the workspace box (or go
        further out) stops at once instead, reported in ``events``. None before the first
        start."""
        reference, velocity = self._reference, self._velocity
        dt = t - self._last_t
        if self.max_dt is not None:
            dt = min(dt, self.max_dt)
        if reference is None or not any(velocity):
            return self._hold(t)
        if dt <= 0:
            return reference
        slowing = min(a * dt / abs(v) for a, v in zip(self._accel, velocity, strict=True) if v)
        speed_scale = max(0.0, 1.0 - slowing)
        step = [v * speed_scale * dt for v in velocity]
        step_scale = _uniform_scale(step, self._max_step)  # a late call (dt up to max_dt)
        command = _clip(
            [r + s * step_scale for r, s in zip(reference, step, strict=True)],
            self._lower,
            self._upper,
        )
        if self.limits.has_workspace:
            outside = self._workspace_violation(command, t)
            if outside is not None:
                events.append(outside)
                return self._hold(t)
        self._velocity = [(c - r) / dt for c, r in zip(command, reference, strict=True)]
        self._reference = command
        self._last_t = t
        return command

    def _limited_step(
        self, q_cmd: list[float], dt: float, t: float, events: list[SafetyEvent]
    ) -> list[float]:
        """The step towards ``q_cmd`` (rad) that keeps every limit. Each line is the numpy
        filter's array expression joint by joint, in its order of operations."""
        lower, upper = self._lower, self._upper
        reference, velocity = self._reference, self._velocity
        target = _clip(q_cmd, lower, upper)
        clipped = [i for i in range(len(target)) if abs(target[i] - q_cmd[i]) > _TOLERANCE]
        if clipped:
            events.append(
                SafetyEvent(
                    Intervention.POSITION_LIMIT,
                    t,
                    lambda: f"joints {clipped} clipped from {_joints(q_cmd)} to {_joints(target)}",
                )
            )
        error = [g - r for g, r in zip(target, reference, strict=True)]
        desired = [e / dt for e in error]

        # Velocity: the limit, ramped up from zero during the safe start (from zero also when
        # the clock stepped back before the anchor: a bound below zero gave NaN commands).
        ramp = min(1.0, max(0.0, (t - self._start_t) / self.limits.ramp_duration))
        speed_scale = _uniform_scale(desired, [ramp * v for v in self._speed])
        if speed_scale < 1.0:
            kind = Intervention.SAFE_START if ramp < 1.0 else Intervention.VELOCITY_LIMIT
            events.append(
                SafetyEvent(kind, t, lambda: f"speed scaled by {speed_scale:.4f} (ramp {ramp:.3f})")
            )
            desired = [d * speed_scale for d in desired]

        # Braking: no faster than what the acceleration limit can stop within the distance
        # left, then the acceleration limit itself.
        a_dt = [a * dt for a in self._accel]
        stoppable = _stoppable_speeds([abs(e) for e in error], self._accel, dt)
        brake_scale = _uniform_scale(desired, stoppable)
        if self.limits.has_workspace:
            wall_scale = _uniform_scale(desired, self._stoppable_before_the_wall(desired, dt))
            if wall_scale < brake_scale:
                events.append(
                    SafetyEvent(
                        Intervention.WORKSPACE,
                        t,
                        lambda: (
                            "the tool point heads out of the workspace box: braking to stop at "
                            f"its wall (speed scaled by {wall_scale:.4f})"
                        ),
                    )
                )
                brake_scale = wall_scale
        change = [d * brake_scale - v for d, v in zip(desired, velocity, strict=True)]
        accel_scale = _uniform_scale(change, a_dt)
        if brake_scale < 1.0 or accel_scale < 1.0:
            events.append(
                SafetyEvent(
                    Intervention.ACCELERATION_LIMIT,
                    t,
                    lambda: (
                        f"braking scale {brake_scale:.4f}, acceleration scale {accel_scale:.4f}"
                    ),
                )
            )
        # Between the previous velocity and the desired one, both within the velocity limit.
        step = [(v + c * accel_scale) * dt for v, c in zip(velocity, change, strict=True)]
        step_scale = _uniform_scale(step, self._max_step)
        if step_scale < 1.0:
            unscaled = step
            events.append(
                SafetyEvent(
                    Intervention.MAX_STEP,
                    t,
                    lambda: (
                        f"step {_joints(unscaled)} exceeds {self.limits.max_step} rad, "
                        f"scaled {step_scale:.4f}"
                    ),
                )
            )
            step = [s * step_scale for s in step]
        return _clip([r + s for r, s in zip(reference, step, strict=True)], lower, upper)

    def _point_of(self, q: list[float]) -> Sequence[float]:
        """The tool point (m) at joints ``q`` (rad), remembered for two."""
        key = tuple(q)
        point = self._points.get(key)
        if point is None:
            point = self._tool_point(q)
            reference = tuple(self._reference)
            self._points = {k: p for k, p in self._points.items() if k == reference}
            self._points[key] = point
        return point

    def _box_distance_of(self, q: list[float]) -> float:
        """Box distance (m) of the tool point at joints ``q`` (rad)."""
        return _box_distance(self._point_of(q), *self._box)

    def _stoppable_before_the_wall(self, desired: list[float], dt: float) -> list[float]:
        """Each joint's speed (rad/s) from which the arm could still stop, at the acceleration
        limit, before the tool point reaches the wall of the workspace box that moving at
        ``desired`` (rad/s) heads it for: ``_stoppable_speeds`` of ``e``, the joint's distance
        left along ``desired`` until the tool point, going on along that straight line in
        joint space (the path a stop follows), meets the wall. The crossing is searched for
        along the tool point's own path, not along the straight line through its next step:
        a tool point swinging round a joint meets a wall sooner than that line says, and with
        that estimate the arm ran into the wall at speed (stopped there in one period). Only
        as far as the arm could travel while stopping from the fastest the next period can
        take it along the line (a wall further on cannot bind). Unbounded for a tool point
        outside the box (which may only come back) and for one that does not move."""
        unbounded = [math.inf] * len(desired)
        here = self._point_of(self._reference)
        if not any(desired) or not _box_distance(here, *self._box) <= 0.0:  # outside, NaN
            return unbounded
        # The fraction of ``desired`` the next period can reach (each joint's speed changes by
        # at most a dt), and the steps of one period at ``desired`` a stop from it may take.
        reach, steps_to_stop = 1.0, 0.0
        for a, v, d in zip(self._accel, self._velocity, desired, strict=True):
            if d:
                reach = min(reach, (abs(v) + a * dt) / abs(d))
                steps_to_stop = max(steps_to_stop, abs(d) / (2.0 * a * dt))
        horizon = 1.0 + reach * reach * steps_to_stop
        inner, reference = self._inner_box, self._reference

        def outside_at(steps: float) -> float:
            point = self._tool_point(
                [r + d * dt * steps for r, d in zip(reference, desired, strict=True)]
            )
            return _outside_by(point, *inner)

        samples = math.ceil(horizon * dt * max(map(abs, desired)) / _WALL_SEARCH_SPACING)
        steps_to_wall = _first_crossing(outside_at, _outside_by(here, *inner), horizon, samples)
        if steps_to_wall is None:
            return unbounded
        return _stoppable_speeds([abs(d) * dt * steps_to_wall for d in desired], self._accel, dt)

    def _workspace_violation(self, command: list[float], t: float) -> SafetyEvent | None:
        distance = self._box_distance_of(command)
        if distance <= 0.0:
            return None
        # Outside the box: allowed only while it brings the tool point closer to the box
        # (after a start outside it), never further out.
        previous = self._box_distance_of(self._reference)
        if distance < previous - _TOLERANCE:
            return None
        return SafetyEvent(
            Intervention.WORKSPACE,
            t,
            lambda: (
                f"tool point {_joints(self._tool_point(command))} m would be "
                f"{distance:.4f} m outside the workspace"
            ),
        )

    def _emit(self, command: list[float] | None, events: list[SafetyEvent]) -> SafeCommand:
        active = self._active
        if events:
            kinds = set()
            for event in events:
                kind = event.kind
                kinds.add(kind)
                self.counts[kind] += 1
                if kind not in active:
                    if self.log_events:
                        LOGGER.warning("%s", event)
                    if self.on_event is not None:
                        self.on_event(event)
            self._active = kinds
        elif active:
            self._active = set()
        return SafeCommand(command=None if command is None else np.array(command), events=events)


def _follows(
    q: list[float], qd: np.ndarray, reference: list[float], last_t: float, t: float
) -> bool:
    """Whether an arm at ``q`` (rad) moving at ``qd`` (rad/s) is following ``reference``, the
    command of time ``last_t`` (s): it moves, towards the reference, which it trails by no
    more than ``_TRACKING_LAG`` of its motion, and the command is that recent."""
    speeds = np.abs(np.asarray(qd, dtype=np.float64).reshape(-1))
    if t - last_t > _TRACKING_LAG or not speeds.max(initial=0.0) > _AT_REST:
        return False
    lead = np.asarray(reference) - np.asarray(q)
    towards = (lead * np.asarray(qd) >= 0.0) | (np.abs(lead) <= _AT_REST * _TRACKING_LAG)
    return bool(np.all(towards & (np.abs(lead) <= speeds * _TRACKING_LAG + 1e-3)))


def _tool_point_of(fk: ForwardKinematics) -> ToolPoint:
    """The tool point from a pose-giving forward kinematics."""

    def tool_point(q: Sequence[float]) -> Sequence[float]:
        return np.asarray(fk(np.array(q)))[:3, 3].tolist()

    return tool_point


def _stoppable_speeds(distances: list[float], accelerations: list[float], dt: float) -> list[float]:
    """Each joint's highest speed (rad/s) from which steps of one period ``dt`` (s), each
    slower than the one before by at most its ``acceleration * dt``, come to rest within its
    ``distance`` (rad, finite): the discrete form of ``sqrt(2 a d)``, exact. From ``v`` with
    ``m`` whole slowings (``m a dt <= v < (m + 1) a dt``) the steps cover
    ``dt (m + 1) (v - a dt m / 2)``; the most slowings that fit within ``d`` are the floor of
    ``(sqrt(1 + 8 d / (a dt^2)) - 1) / 2``. The quadratic ``v (v + a dt) <= 2 a d`` it
    replaces let the last step, slower than ``a dt``, pass the distance: braking for the
    workspace box's wall, that step left the box and was stopped in one period."""
    floor, sqrt = math.floor, math.sqrt
    speeds = []
    for distance, acceleration in zip(distances, accelerations, strict=True):
        slowings = floor((sqrt(1.0 + 8.0 * distance / (acceleration * dt * dt)) - 1.0) * 0.5)
        speeds.append(distance / (dt * (slowings + 1)) + 0.5 * acceleration * dt * slowings)
    return speeds


def _uniform_scale(vector: list[float], bound: list[float]) -> float:
    """Largest factor in [0, 1] that brings every ``|vector[i]|`` within ``bound[i]``.

    One factor for all joints keeps the step's direction in joint space (a straight line).
    """
    scale = 1.0
    for value, limit in zip(vector, bound, strict=True):
        magnitude = abs(value)
        if magnitude > limit + _TOLERANCE and limit / magnitude < scale:  # bounds are >= 0
            scale = limit / magnitude
    return scale
