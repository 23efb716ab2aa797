"""What the safety layer reports each time it changes or withholds a command.

Every intervention is a typed :class:`SafetyEvent`, so that logs, the ROS ``~/events`` topic and
tests can tell "clipped at a joint limit" from "held because the observations went stale".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import Enum


class Intervention(str, Enum):
    """Why the safety layer changed a command. Values are stable strings for logs and topics."""

    SAFE_START = "safe_start"
    """Anchored at the measured pose, or the start-up ramp limited the speed."""
    NONFINITE_COMMAND = "nonfinite_command"
    """The command held NaN or inf: a controlled stop."""
    NONFINITE_MEASUREMENT = "nonfinite_measurement"
    """The measured joint positions held NaN or inf: a controlled stop (a start waits for
    finite ones, with nothing to send before the first)."""
    POSITION_LIMIT = "position_limit"
    """A target beyond a joint's position limit was clipped to the limit."""
    VELOCITY_LIMIT = "velocity_limit"
    """The step was shortened to respect the joint velocity limits."""
    ACCELERATION_LIMIT = "acceleration_limit"
    """The change of velocity was limited (including braking early enough to stop on target)."""
    MAX_STEP = "max_step"
    """The step exceeded the largest allowed change per call (rad) and was shortened."""
    WORKSPACE = "workspace"
    """The tool point heads out of the workspace box: the arm brakes to stop at its wall (or,
    where a step would still leave the box or go further out of it, is held at once)."""
    STALE_OBSERVATION = "stale_observation"
    """No fresh observation within the allowed age, or one stamped further than that ahead
    of now (its clock and the filter's disagree): a controlled stop."""
    LATE_COMMAND = "late_command"
    """The command was computed too long ago (late inference): a controlled stop."""
    ESTOP = "estop"
    """The e-stop is latched (by one or more sources): held position until each is reset."""
    CLEARANCE = "clearance"
    """Two arms' commands, or one arm's command and where the other arm is (its measured
    pose), would bring their links closer than the clearance: the arm held."""
    DEVICE_FAULT = "device_fault"
    """A device the arm works with (its gripper) lost its link: a controlled stop, held until
    it is back."""
    NOT_FOLLOWING = "not_following"
    """The arm stood still far from its command (stopped at its controller): the filter starts
    again from where the arm is (a safe start follows)."""


HOLD_INTERVENTIONS = frozenset(
    {
        Intervention.NONFINITE_COMMAND,
        Intervention.NONFINITE_MEASUREMENT,
        Intervention.WORKSPACE,
        Intervention.STALE_OBSERVATION,
        Intervention.LATE_COMMAND,
        Intervention.ESTOP,
        Intervention.DEVICE_FAULT,
        Intervention.CLEARANCE,
    }
)
"""Interventions that stop the arm: the command is a held position or a step of a controlled
stop to it, never a step towards the policy's target."""

IMMEDIATE_STOPS = frozenset({Intervention.ESTOP, Intervention.WORKSPACE, Intervention.CLEARANCE})
"""Holds that stop the command in the call they start, leaving the braking to the arm's own
servo: an e-stop asks for the shortest stop, and the workspace box and the arms' clearance are
limits that a braking path could cross. Every other hold (stale observations, late inference,
a non-finite command or measurement, a device fault, and no command) is a controlled stop: the
command goes on along its path, slowing at the acceleration limit, to rest. Stopped in one
call, a command at full speed (pi rad/s) asked a 500 Hz servo for 1,570 rad/s^2 of
deceleration, and a hold of a few periods (a late joint state on a loaded computer) jolted the
arm to a stop and back to speed."""


class SafetyEvent:
    """One intervention: its kind, the filter time ``t`` (s) it happened at, and a detail line
    naming joints and values (rad, rad/s, m).

    ``detail`` may be given as a function that writes the line: a filter at a limit reports an
    event every control tick, and the line is read only when the event is logged or published
    (once per onset), so it is written then (once)."""

    __slots__ = ("kind", "t", "_detail")

    def __init__(self, kind: Intervention, t: float, detail: str | Callable[[], str]) -> None:
        self.kind, self.t, self._detail = kind, t, detail

    @property
    def detail(self) -> str:
        """The detail line."""
        if not isinstance(self._detail, str):
            self._detail = self._detail()
        return self._detail

    def _key(self) -> tuple[Intervention, float, str]:
        return self.kind, self.t, self.detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SafetyEvent) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"SafetyEvent(kind={self.kind!r}, t={self.t!r}, detail={self.detail!r})"

    def __str__(self) -> str:
        return f"[safety t={self.t:.4f}s] {self.kind.value}: {self.detail}"


class EventSummary:
    """What a node prints of its safety events: each kind's first event in full, then per
    ``window`` (s) one line of counts per kind, so that interventions toggling many times a
    second (a policy at the workspace boundary, observations at the staleness limit) cost one
    line a second instead of a line each."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._seen: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._start: float | None = None

    def lines(self, kinds_and_lines: list[tuple[str, str]], now: float) -> list[str]:
        """Account for new events (kind, full line) at ``now`` (s, any clock); returns the
        lines to print: new kinds' first events and, once a window is over, its counts."""
        out = []
        for kind, line in kinds_and_lines:
            if kind not in self._seen:
                self._seen.add(kind)
                out.append(line)
            else:
                self._counts[kind] += 1
        if self._start is None:
            self._start = now
        if now - self._start >= self.window:
            if self._counts:
                counts = ", ".join(f"{kind} x{n}" for kind, n in sorted(self._counts.items()))
                out.append(f"safety events in the last {now - self._start:.1f} s: {counts}")
            self._counts.clear()
            self._start = now
        return out
