"""The slice of Universal Robots' RTDE interface the bridge uses, the real one and a fake.

The real interface is ``ur_rtde``'s ``RTDEControlInterface``, ``RTDEReceiveInterface`` and
``DashboardClient`` (imported only when connecting, so nothing else needs ``ur_rtde``).
:class:`FakeRTDE` has the same method names and simulates an arm in wall-clock time, and
:class:`FakeDashboard` its dashboard server (protective-stop unlock, program, power), so the
bridge and its tests run without a robot. Units: rad, rad/s, s, m, N, N m.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robot_il.errors import HardwareError


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

    def reuploadScript(self) -> bool: ...  # noqa: N802

    def isProgramRunning(self) -> bool: ...  # noqa: N802

    def disconnect(self) -> None: ...


class Dashboard(Protocol):
    """What the bridge calls on ``dashboard_client.DashboardClient`` (the controller's
    dashboard server, TCP port 29999)."""

    def unlockProtectiveStop(self) -> None: ...  # noqa: N802

    def closeSafetyPopup(self) -> None: ...  # noqa: N802

    def play(self) -> None: ...

    def powerOn(self) -> None: ...  # noqa: N802

    def powerOff(self) -> None: ...  # noqa: N802

    def brakeRelease(self) -> None: ...  # noqa: N802

    def getSerialNumber(self) -> str: ...  # noqa: N802

    def disconnect(self) -> None: ...


class RTDEReceive(Protocol):
    """What the bridge reads from ``rtde_receive.RTDEReceiveInterface``."""

    def getActualQ(self) -> list[float]: ...  # noqa: N802

    def getActualQd(self) -> list[float]: ...  # noqa: N802

    def getTimestamp(self) -> float: ...  # noqa: N802

    def isProtectiveStopped(self) -> bool: ...  # noqa: N802

    def isEmergencyStopped(self) -> bool: ...  # noqa: N802

    def getSpeedScaling(self) -> float: ...  # noqa: N802

    def getActualTCPPose(self) -> list[float]: ...  # noqa: N802

    def getActualTCPForce(self) -> list[float]: ...  # noqa: N802

    def disconnect(self) -> None: ...


def connect_rtde(host: str, frequency: float) -> tuple[RTDEControl, RTDEReceive, Dashboard]:
    """Connect to the UR controller at ``host`` with ``ur_rtde`` (the ``hardware`` extra).

    Raises :class:`~robot_il.errors.HardwareError` naming ``host`` when a connection fails (a
    wrong ``robot_ip``, an arm that is off, remote control disabled): ``ur_rtde`` raises a bare
    ``RuntimeError``, a traceback to the user. The interfaces opened before it are closed.
    """
    import dashboard_client
    import rtde_control
    import rtde_receive

    opened: list[RTDEReceive | RTDEControl | Dashboard] = []
    try:
        opened.append(rtde_receive.RTDEReceiveInterface(host, frequency))
        opened.append(rtde_control.RTDEControlInterface(host, frequency))
        opened.append(dashboard_client.DashboardClient(host))
        opened[-1].connect()
    except RuntimeError as error:
        for interface in opened:
            interface.disconnect()
        raise HardwareError(
            f"robot_ip {host}: {error} (is the arm on, reachable and in remote control?)"
        ) from None
    receive, control, dashboard = opened
    return control, receive, dashboard


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
    reached "the robot". :meth:`freeze` stops the receive timestamp (a stalled RTDE link),
    :meth:`stall` blocks the next ``servoJ`` call (a stalled link, or a descheduled caller),
    :meth:`protective_stop` mimics the controller's protective stop (which stops the control
    program too), :meth:`emergency_stop` its emergency stop button, :meth:`stop_program` the
    pendant's stop button and :meth:`drop_link` a lost connection. While the arm is stopped or
    its control program is not running, ``servoJ`` returns False and nothing moves, as
    ``ur_rtde``'s does.

    ``status_lag`` (s) is how long the controller takes to report what the dashboard and a
    script upload changed: after :meth:`unlock_protective_stop` the status still reads a
    protective stop, and after ``reuploadScript`` the program is not running yet, for that
    long (a real controller's unlock answers "releasing", and its upload returns before the
    program starts).
    """

    def __init__(
        self, initial_q: Sequence[float], max_speed: float = np.pi, status_lag: float = 0.0
    ) -> None:
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
        self._emergency_stop = False
        self.status_lag = status_lag
        self._stop_reported_until = 0.0
        """Monotonic s until which the status still reads the unlocked protective stop."""
        self._program_from: float | None = self._start
        """Monotonic s from which the control program runs; None: it is stopped."""
        self._stall = 0.0
        self._link_lost = False
        self.servo_calls: list[ServoCall] = []
        self.script_uploads = 0
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
        self._sit_out_stall()
        with self._lock:
            self._check_link()
            self._advance()
            target = np.array(q, dtype=np.float64)
            self.servo_calls.append(ServoCall(self._last, target, time, lookahead_time, gain))
            if self._protective_stop or self._emergency_stop or not self._program_running():
                return False
            self._target, self._lookahead = target, lookahead_time
            self.stopped = False
            return True

    def servoStop(self, a: float = 10.0) -> bool:  # noqa: N802
        with self._lock:
            self._check_link()
            self._advance()
            self._target = None
            self._qd[:] = 0.0
            self.stopped = True
            return True

    def stopScript(self) -> None:  # noqa: N802
        self._check_link()
        with self._lock:
            self.script_stopped, self._program_from = True, None

    def reuploadScript(self) -> bool:  # noqa: N802
        self._check_link()
        with self._lock:
            self.script_uploads += 1
            self.script_stopped = False
            if self._protective_stop:
                return False  # the controller refuses to start it
            self._program_from = time.monotonic() + self.status_lag
            return True

    def isProgramRunning(self) -> bool:  # noqa: N802
        with self._lock:
            return self._program_running()

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
        return self._protective_stop or time.monotonic() < self._stop_reported_until

    def isEmergencyStopped(self) -> bool:  # noqa: N802
        return self._emergency_stop

    def getSpeedScaling(self) -> float:  # noqa: N802
        return 0.0 if self._protective_stop else 1.0

    def getActualTCPPose(self) -> list[float]:  # noqa: N802
        """TCP position (m) and rotation vector (rad) in the base frame, as the controller."""
        from robot_il.envs.spatial import matrix_to_axis_angle
        from robot_il.envs.ur5e.kinematics import forward_kinematics

        pose = forward_kinematics(np.array(self.getActualQ()))
        return [*pose[:3, 3].tolist(), *matrix_to_axis_angle(pose[:3, :3]).tolist()]

    def getActualTCPForce(self) -> list[float]:  # noqa: N802
        return [0.0] * 6  # no contact in the fake

    # -- faults --------------------------------------------------------------------------

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the receive timestamp, as a stalled RTDE connection would."""
        with self._lock:
            self._frozen_at = time.monotonic() if frozen else None

    def stall(self, seconds: float) -> None:
        """Block the next ``servoJ`` call for ``seconds``; it is recorded when it returns."""
        with self._lock:
            self._stall = seconds

    def _sit_out_stall(self) -> None:
        with self._lock:
            stall, self._stall = self._stall, 0.0
        if stall:
            time.sleep(stall)  # not holding the lock: the arm can be read meanwhile

    def protective_stop(self) -> None:
        """Stop the arm and its control program and refuse servo commands, as the controller's
        protective stop does."""
        with self._lock:
            self._advance()
            self._protective_stop, self._target, self._program_from = True, None, None
            self._qd[:] = 0.0

    def unlock_protective_stop(self) -> None:
        """The dashboard's unlock: the arm may move again (once its program is restarted);
        the status reports the stop ``status_lag`` s longer."""
        with self._lock:
            if self._protective_stop:
                self._protective_stop = False
                self._stop_reported_until = time.monotonic() + self.status_lag

    def stop_program(self) -> None:
        """Stop the control program, as the pendant's stop button does: the arm stops and
        ``servoJ`` returns False until ``reuploadScript`` starts the program again."""
        with self._lock:
            self._advance()
            self._program_from, self._target = None, None
            self._qd[:] = 0.0

    def emergency_stop(self, pressed: bool = True) -> None:
        """Press (or release) the emergency stop: the arm stops and refuses servo commands
        while it is pressed."""
        with self._lock:
            self._advance()
            self._emergency_stop, self._target = pressed, None
            self._qd[:] = 0.0

    def drop_link(self) -> None:
        """Lose the connection (a pulled cable, a controller that rebooted): as ``ur_rtde``,
        control calls raise ``RuntimeError`` (its reconnect fails) and receive goes on
        returning the last state, its timestamp frozen. The controller's script keeps the last
        ``servoJ`` target, so the arm comes to rest there."""
        with self._lock:
            self._link_lost = True
            self._frozen_at = time.monotonic()

    def _program_running(self) -> bool:
        return self._program_from is not None and time.monotonic() >= self._program_from

    def _check_link(self) -> None:
        if self._link_lost:
            raise RuntimeError("RTDEControlInterface: lost connection to the robot")

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


class FakeDashboard:
    """The dashboard server of a :class:`FakeRTDE` arm: every call is recorded in
    :attr:`calls`; ``unlockProtectiveStop`` unlocks the fake's protective stop;
    ``serial_number`` is the controller's, as its dashboard reports it."""

    def __init__(self, arm: FakeRTDE, serial_number: str = "20245500000") -> None:
        self.arm = arm
        self.serial_number = serial_number
        self.calls: list[str] = []

    def getSerialNumber(self) -> str:  # noqa: N802
        self.calls.append("getSerialNumber")
        return self.serial_number

    def unlockProtectiveStop(self) -> None:  # noqa: N802
        self.calls.append("unlockProtectiveStop")
        self.arm.unlock_protective_stop()

    def closeSafetyPopup(self) -> None:  # noqa: N802
        self.calls.append("closeSafetyPopup")

    def play(self) -> None:
        self.calls.append("play")

    def powerOn(self) -> None:  # noqa: N802
        self.calls.append("powerOn")

    def powerOff(self) -> None:  # noqa: N802
        self.calls.append("powerOff")

    def brakeRelease(self) -> None:  # noqa: N802
        self.calls.append("brakeRelease")

    def disconnect(self) -> None:
        self.calls.append("disconnect")
