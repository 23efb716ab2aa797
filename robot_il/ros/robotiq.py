"""The Robotiq 2F-85 through its URCap's socket, and a fake gripper that speaks the same protocol.

With Robotiq's gripper URCap installed on the UR controller, the controller listens on TCP
port 63352 for ASCII lines, one command per line:

- ``SET <VAR> <int> [<VAR> <int> ...]`` writes registers and is answered ``ack``;
- ``GET <VAR>`` is answered ``<VAR> <int>``.

The registers the bridge uses (all integers): ``ACT`` activation request (1 activate, 0
reset), ``GTO`` go to the requested position, ``ATR`` automatic release, ``POS`` requested
(SET) or actual (GET) finger position 0 (open) .. 255 (closed), ``SPE`` speed and ``FOR``
force 0..255, ``STA`` gripper status (0 reset, 1 activating, 3 active), ``PRE`` the position
request echoed, ``OBJ`` object detection (:class:`ObjectStatus`) and ``FLT`` fault code.

:class:`RobotiqGripper` is the client; every failure of the link (refused, timed out, closed,
an unexpected answer) is a :class:`robot_il.errors.HardwareError` naming the host and the
command, and :meth:`RobotiqGripper.connect` may be called again to regain the link.
:class:`FakeRobotiqServer` binds 127.0.0.1 and simulates the fingers in wall-clock time
(travel at the commanded speed, stop on an object placed at a position), so the bridge and
its tests run without a gripper; :meth:`FakeRobotiqServer.drop_connections` cuts every link.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from robot_il.errors import ConfigError, HardwareError

ROBOTIQ_PORT = 63352
"""TCP port of the Robotiq URCap's socket on the UR controller."""
POSITION_RANGE = 255
"""Finger position register: 0 fully open .. 255 fully closed."""
STROKE = 0.085
"""2F-85 stroke (m): the opening between the fingers at position 0."""


class ObjectStatus(IntEnum):
    """The ``OBJ`` register: what stopped the fingers."""

    MOVING = 0
    """Fingers moving towards the requested position (no object seen)."""
    CONTACT_OPENING = 1
    """Fingers stopped by contact while opening."""
    CONTACT_CLOSING = 2
    """Fingers stopped by contact while closing: an object is held."""
    AT_POSITION = 3
    """Fingers at the requested position: no object."""


ACTIVE = 3
"""``STA`` once activation has completed."""


@dataclass(frozen=True)
class GripperState:
    """One reading of the gripper: activation, positions (0..255) and object detection."""

    activated: bool
    position: int
    """Actual finger position, 0 open .. 255 closed."""
    requested: int
    """The position request in force (``PRE``)."""
    object_status: ObjectStatus
    fault: int

    @property
    def closure(self) -> float:
        """Finger closure in [0, 1] (1 closed): the ROS gripper convention of robot_il."""
        return self.position / POSITION_RANGE

    @property
    def object_detected(self) -> bool:
        """Whether the fingers stopped on something (either direction)."""
        return self.object_status in (ObjectStatus.CONTACT_OPENING, ObjectStatus.CONTACT_CLOSING)


def closure_to_position(closure: float) -> int:
    """A closure in [0, 1] as the ``POS`` register (clipped; ConfigError when not finite)."""
    if not closure == closure or closure in (float("inf"), float("-inf")):
        raise ConfigError(f"gripper closure must be finite, got {closure}")
    return round(min(max(closure, 0.0), 1.0) * POSITION_RANGE)


def _register(name: str, value: int) -> str:
    if not 0 <= int(value) <= POSITION_RANGE:
        raise ConfigError(f"Robotiq register {name} must be in 0..255, got {value}")
    return f"{name} {int(value)}"


class RobotiqGripper:
    """Client of the Robotiq URCap socket at ``host``:``port``; ``timeout`` (s) per answer.

    Thread-safe: one command and its answer at a time. Not connected until :meth:`connect`.
    """

    def __init__(self, host: str, port: int = ROBOTIQ_PORT, timeout: float = 1.0) -> None:
        self.host, self.port, self.timeout = host, int(port), float(timeout)
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"Robotiq gripper at {self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def connect(self) -> None:
        """Open (or reopen) the link; HardwareError when the socket refuses or times out."""
        with self._lock:
            self._close_socket()
            try:
                self._socket = socket.create_connection((self.host, self.port), self.timeout)
            except OSError as error:
                raise HardwareError(f"{self.where}: cannot connect ({error})") from None
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        with self._lock:
            self._close_socket()

    # -- protocol ------------------------------------------------------------------------

    def set(self, **registers: int) -> None:
        """``SET`` the registers in one line (in the order given); expects ``ack``."""
        line = "SET " + " ".join(_register(name, value) for name, value in registers.items())
        answer = self._exchange(line)
        if answer != "ack":
            raise HardwareError(f"{self.where}: {line!r} answered {answer!r}, not 'ack'")

    def get(self, name: str) -> int:
        """``GET`` one register; expects ``<name> <int>``."""
        line = f"GET {name}"
        answer = self._exchange(line)
        parts = answer.split()
        if len(parts) != 2 or parts[0] != name or not parts[1].lstrip("-").isdigit():
            raise HardwareError(f"{self.where}: {line!r} answered {answer!r}")
        return int(parts[1])

    def _exchange(self, line: str) -> str:
        with self._lock:
            if self._socket is None:
                raise HardwareError(f"{self.where}: not connected (command {line!r})")
            try:
                self._socket.sendall(line.encode("ascii") + b"\n")
                while b"\n" not in self._buffer:
                    chunk = self._socket.recv(1024)
                    if not chunk:
                        raise ConnectionResetError("connection closed by the gripper")
                    self._buffer += chunk
            except OSError as error:  # timeouts and resets are OSErrors
                self._close_socket()
                raise HardwareError(f"{self.where}: link lost during {line!r} ({error})") from None
            answer, self._buffer = self._buffer.split(b"\n", 1)
            return answer.decode("ascii", errors="replace").strip()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket, self._buffer = None, b""

    # -- the gripper ---------------------------------------------------------------------

    def activate(self, timeout: float = 5.0) -> None:
        """Activate (reset first, as the URCap does) unless already active; waits for ``STA``
        3 at most ``timeout`` s."""
        if self.get("STA") == ACTIVE:
            return
        self.set(ACT=0, ATR=0)
        self.set(ACT=1, GTO=1)
        deadline = time.monotonic() + timeout
        while self.get("STA") != ACTIVE:
            if time.monotonic() > deadline:
                raise HardwareError(f"{self.where}: not active {timeout} s after activation")
            time.sleep(0.01)

    def move(self, position: int, speed: int = 255, force: int = 150) -> None:
        """Request a finger position (0 open .. 255 closed) at ``speed`` and ``force`` (0..255);
        returns at once (read :meth:`state` for progress)."""
        self.set(POS=position, SPE=speed, FOR=force, GTO=1)

    def state(self) -> GripperState:
        """Activation, actual and requested position, object detection and fault.

        The registers are read one at a time while the fingers may move: ``OBJ`` is read
        before ``POS``, so a state that says the fingers stopped holds the position they
        stopped at (read the other way round, ``POS`` may be a step short of it)."""
        object_status = ObjectStatus(self.get("OBJ"))
        return GripperState(
            activated=self.get("STA") == ACTIVE,
            position=self.get("POS"),
            requested=self.get("PRE"),
            object_status=object_status,
            fault=self.get("FLT"),
        )

    def wait_until_stopped(self, timeout: float = 5.0) -> GripperState:
        """Poll until the fingers stop (at the request or on an object); HardwareError after
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state.object_status != ObjectStatus.MOVING:
                return state
            if time.monotonic() > deadline:
                raise HardwareError(f"{self.where}: fingers still moving after {timeout} s")
            time.sleep(0.01)


class FakeRobotiqServer:
    """A simulated 2F-85 behind the URCap socket protocol, on 127.0.0.1.

    ``port`` 0 takes a free port (read :attr:`port`). Fingers travel at
    ``min_speed + SPE/255 * (max_speed - min_speed)`` position units per second towards
    ``POS`` while ``GTO`` is 1 and the gripper is active; an object at :attr:`object_at`
    (position units, None: none) stops closing fingers there (``OBJ`` 2). Activation takes
    ``activation_time`` s. Unknown lines are answered ``?``, as a refusal the client reports.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        activation_time: float = 0.1,
        min_speed: float = 200.0,
        max_speed: float = 1500.0,
    ) -> None:
        self.activation_time = activation_time
        self.min_speed, self.max_speed = min_speed, max_speed
        self.object_at: int | None = None
        self.commands: list[str] = []
        """Every line received, in order."""
        self._registers = {"ACT": 0, "GTO": 0, "ATR": 0, "ARD": 0, "POS": 0, "SPE": 255}
        self._registers.update({"FOR": 150, "PRE": 0, "FLT": 0})
        self._position = 0.0
        self._status = 0
        self._activated_at: float | None = None
        self._object_status = ObjectStatus.AT_POSITION
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.05)  # accept() wakes to see close(): a closed fd does not
        self.port = self._listener.getsockname()[1]
        self._running = True
        self._accept_thread = threading.Thread(target=self._accept, name="robotiq", daemon=True)
        self._accept_thread.start()

    # -- test controls -------------------------------------------------------------------

    @property
    def position(self) -> float:
        """Actual finger position (0..255)."""
        with self._lock:
            self._advance()
            return self._position

    def drop_connections(self) -> None:
        """Close every client link, as a cable pull or a URCap restart would."""
        with self._lock:
            for client in self._clients:
                client.shutdown(socket.SHUT_RDWR)
                client.close()
            self._clients.clear()

    def close(self) -> None:
        """Stop listening and drop every link."""
        self._running = False
        self._accept_thread.join(timeout=1.0)
        self._listener.close()
        self.drop_connections()

    # -- server --------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                chunk = client.recv(1024)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    answer = self._answer(line.decode("ascii", errors="replace").strip())
                    client.sendall(answer.encode("ascii") + b"\n")
        except OSError:
            return
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()

    def _answer(self, line: str) -> str:
        words = line.split()
        with self._lock:
            self.commands.append(line)
            self._advance()
            if len(words) == 2 and words[0] == "GET":
                value = self._read(words[1])
                return "?" if value is None else f"{words[1]} {value}"
            pairs = words[1:]
            if words and words[0] == "SET" and pairs and len(pairs) % 2 == 0:
                updates = dict(zip(pairs[::2], pairs[1::2], strict=True))
                if all(k in self._registers and v.isdigit() for k, v in updates.items()):
                    for name, value in updates.items():
                        self._write(name, int(value))
                    return "ack"
            return "?"

    def _read(self, name: str) -> int | None:
        if name == "STA":
            return self._status
        if name == "POS":
            return round(self._position)
        if name == "OBJ":
            return int(self._object_status)
        return self._registers.get(name)

    def _write(self, name: str, value: int) -> None:
        self._registers[name] = min(max(value, 0), POSITION_RANGE)
        if name == "ACT":
            if value == 0:
                self._status, self._activated_at = 0, None
            elif self._status == 0:
                self._status, self._activated_at = 1, time.monotonic()
        if name == "POS":
            self._registers["PRE"] = self._registers["POS"]
            self._object_status = ObjectStatus.MOVING

    def _advance(self) -> None:
        """Move the simulated fingers to now (call with the lock held)."""
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self._status == 1 and now - self._activated_at >= self.activation_time:
            self._status = ACTIVE
        if self._status != ACTIVE or not self._registers["GTO"]:
            return
        goal = float(self._registers["PRE"])
        speed_fraction = self._registers["SPE"] / POSITION_RANGE
        speed = self.min_speed + speed_fraction * (self.max_speed - self.min_speed)
        closing = goal > self._position
        if closing and self.object_at is not None and self._position <= self.object_at:
            goal = min(goal, float(self.object_at))
        step = min(abs(goal - self._position), speed * dt)
        self._position += step if goal > self._position else -step
        if abs(goal - self._position) > 1e-9:
            self._object_status = ObjectStatus.MOVING
        elif goal != self._registers["PRE"]:
            self._object_status = ObjectStatus.CONTACT_CLOSING
        else:
            self._object_status = ObjectStatus.AT_POSITION


class GripperLink:
    """Keeps a :class:`RobotiqGripper` connected, active and following the newest command,
    on its own thread so that gripper I/O never delays a servo loop.

    Every ``poll_period`` s it sends the newest closure (if new) and reads the state; a lost
    link is reported once to ``on_link`` (``False, reason``) and retried every
    ``retry_period`` s; a regained one (connected and activated again) as ``True, where``.
    Closure speed and force are the registers' 0..255.
    """

    def __init__(
        self,
        gripper: RobotiqGripper,
        on_link: Callable[[bool, str], None],
        *,
        speed: int = 255,
        force: int = 150,
        poll_period: float = 0.02,
        retry_period: float = 0.5,
    ) -> None:
        for name, value in (("SPE", speed), ("FOR", force)):
            _register(name, value)  # ConfigError now rather than on the gripper thread
        self.gripper, self.on_link = gripper, on_link
        self.speed, self.force = speed, force
        self.poll_period, self.retry_period = poll_period, retry_period
        self.state: GripperState | None = None
        """Newest reading while the link is up; None while it is down."""
        self._wanted: int | None = None
        self._sent: int | None = None
        self._running = True
        self._thread = threading.Thread(target=self._run, name="gripper", daemon=True)
        self._thread.start()

    def command(self, closure: float) -> None:
        """Ask for a closure in [0, 1] (1 closed); the thread sends it."""
        self._wanted = closure_to_position(closure)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.gripper.close()

    def _run(self) -> None:
        up: bool | None = None
        while self._running:
            try:
                if not self.gripper.connected:
                    self.gripper.connect()
                    self.gripper.activate()
                    self._sent = None  # resend the command in force to a restarted URCap
                wanted = self._wanted
                if wanted is not None and wanted != self._sent:
                    self.gripper.move(wanted, self.speed, self.force)
                    self._sent = wanted
                self.state = self.gripper.state()
                if up is not True:
                    up = True
                    self.on_link(True, self.gripper.where)
                time.sleep(self.poll_period)
            except HardwareError as error:
                self.gripper.close()
                self.state = None
                if up is not False:
                    up = False
                    self.on_link(False, str(error))
                time.sleep(self.retry_period)
