"""The slice of Universal Robots' RTDE interface the bridge uses, the real one and a fake.

The real interface is ``ur_rtde``'s ``RTDEControlInterface`` and ``RTDEReceiveInterface``
(imported only when connecting, so nothing else needs ``ur_rtde``). :class:`FakeRTDE` has the
same method names and simulates an arm in wall-clock time, so the bridge and its tests run
without a robot. Units: rad, rad/s, s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class RTDEControl(Protocol):
    """What the bridge calls on ``rtde_control.RTDEControlInterface``."""

    def servoJ(  # noqa: N802 (ur_rtde's name)
        self,
        q: Sequence[float],
        speed: float,
        acceleration: float,
        time: float,
        lookahead_time: float,
        gain: float,
    ) -> bool: ...

    def servoStop(self, a: float = 10.0) -> bool: ...  # noqa: N802

    def stopScript(self) -> None: ...  # noqa: N802

    def disconnect(self) -> None: ...


class RTDEReceive(Protocol):
    """What the bridge reads from ``rtde_receive.RTDEReceiveInterface``."""

    def getActualQ(self) -> list[float]: ...  # noqa: N802

    def getActualQd(self) -> list[float]: ...  # noqa: N802

    def getTimestamp(self) -> float: ...  # noqa: N802

    def isProtectiveStopped(self) -> bool: ...  # noqa: N802

    def isEmergencyStopped(self) -> bool: ...  # noqa: N802

    def disconnect(self) -> None: ...


def connect_rtde(host: str, frequency: float) -> tuple[RTDEControl, RTDEReceive]:
    """Connect to the UR controller at ``host`` with ``ur_rtde`` (the ``hardware`` extra)."""
    import rtde_control
    import rtde_receive

    receive = rtde_receive.RTDEReceiveInterface(host, frequency)
    control = rtde_control.RTDEControlInterface(host, frequency)
    return control, receive


@dataclass(frozen=True)
class ServoCall:
    """One ``servoJ`` the fake received: when (monotonic s), the target and its settings."""

    t: float
    q: np.ndarray
    time: float
    lookahead_time: float
    gain: float


class FakeRTDE:
    """A simulated UR arm behind the RTDE control and receive method names.

    The arm follows the last ``servoJ`` target as a first-order lag with time constant
    ``lookahead_time`` (s), at most ``max_speed`` rad/s per joint, advanced in wall-clock time
    whenever it is read; ``servoStop`` stops it where it is. Every call is recorded
    (:attr:`servo_calls`, :attr:`stopped`, :attr:`script_stopped`) so tests can check what
    reached "the robot". :meth:`freeze` stops the receive timestamp (a stalled RTDE link) and
    :meth:`protective_stop` mimics the controller's protective stop.
    """

    def __init__(self, initial_q: Sequence[float], max_speed: float = np.pi) -> None:
        self._q = np.array(initial_q, dtype=np.float64)
        self._qd = np.zeros_like(self._q)
        self._target: np.ndarray | None = None
        self._lookahead = 0.1
        self.max_speed = max_speed
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()
        self._frozen_at: float | None = None
        self._protective_stop = False
        self.servo_calls: list[ServoCall] = []
        self.stopped = False
        self.script_stopped = False
        self.connected = True

    # -- control -------------------------------------------------------------------------

    def servoJ(  # noqa: N802
        self,
        q: Sequence[float],
        speed: float,
        acceleration: float,
        time: float,
        lookahead_time: float,
        gain: float,
    ) -> bool:
        with self._lock:
            self._advance()
            target = np.array(q, dtype=np.float64)
            self.servo_calls.append(ServoCall(self._last, target, time, lookahead_time, gain))
            if self._protective_stop:
                return False
            self._target, self._lookahead = target, lookahead_time
            self.stopped = False
            return True

    def servoStop(self, a: float = 10.0) -> bool:  # noqa: N802
        with self._lock:
            self._advance()
            self._target = None
            self._qd[:] = 0.0
            self.stopped = True
            return True

    def stopScript(self) -> None:  # noqa: N802
        self.script_stopped = True

    def disconnect(self) -> None:
        self.connected = False

    # -- receive -------------------------------------------------------------------------

    def getActualQ(self) -> list[float]:  # noqa: N802
        with self._lock:
            self._advance()
            return self._q.tolist()

    def getActualQd(self) -> list[float]:  # noqa: N802
        with self._lock:
            self._advance()
            return self._qd.tolist()

    def getTimestamp(self) -> float:  # noqa: N802
        with self._lock:
            now = self._frozen_at if self._frozen_at is not None else time.monotonic()
            return round((now - self._start) / 0.002) * 0.002  # the controller's 2 ms ticks

    def isProtectiveStopped(self) -> bool:  # noqa: N802
        return self._protective_stop

    def isEmergencyStopped(self) -> bool:  # noqa: N802
        return False

    # -- faults --------------------------------------------------------------------------

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the receive timestamp, as a stalled RTDE connection would."""
        with self._lock:
            self._frozen_at = time.monotonic() if frozen else None

    def protective_stop(self) -> None:
        """Stop the arm and refuse servo commands, as the controller's protective stop does."""
        with self._lock:
            self._advance()
            self._protective_stop, self._target = True, None
            self._qd[:] = 0.0

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self._target is None or dt <= 0:
            self._qd[:] = 0.0
            return
        velocity = (self._target - self._q) / max(self._lookahead, dt)
        velocity = np.clip(velocity, -self.max_speed, self.max_speed)
        self._q += velocity * dt
        self._qd = velocity
