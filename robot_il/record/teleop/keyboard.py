"""Keyboard teleoperation in a terminal: no display, no X server, works over SSH.

The terminal is put in cbreak mode (keys arrive one by one, not echoed; Ctrl-C still
interrupts), and a reader thread parses bytes as they come. A terminal reports key *presses*
only (auto-repeat while a key is held), never releases, so each press moves the tool by one
fixed step: holding a key moves it steadily at the terminal's repeat rate.

Keys (shown by :data:`KEYBOARD_HELP`):
  w/s +x/-x, a/d +y/-y, r/f +z/-z (base frame);  u/o, i/k, j/l roll, pitch, yaw +/-;
  space toggles the gripper;  episode keys as in :mod:`robot_il.record.control`.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty

import numpy as np

from robot_il.errors import RecordingError
from robot_il.record.control import EPISODE_KEYS_HELP, EpisodeEvent
from robot_il.record.teleop.base import TeleopCommand

KEYBOARD_HELP = (
    "keyboard teleop: w/s a/d r/f move x/y/z, u/o i/k j/l rotate roll/pitch/yaw, "
    "space toggles gripper; " + EPISODE_KEYS_HELP
)

# Key -> (axis index in the 6-vector, sign).
_MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
    "u": (3, 1.0),
    "o": (3, -1.0),
    "i": (4, 1.0),
    "k": (4, -1.0),
    "j": (5, 1.0),
    "l": (5, -1.0),
}
_EVENT_KEYS: dict[str, EpisodeEvent] = {
    "RIGHT": EpisodeEvent.NEXT,
    "LEFT": EpisodeEvent.RERECORD,
    "BACKSPACE": EpisodeEvent.DISCARD,
    "ESC": EpisodeEvent.QUIT,
    "q": EpisodeEvent.QUIT,
}
_ESCAPE_SEQUENCES = {b"[A": "UP", b"[B": "DOWN", b"[C": "RIGHT", b"[D": "LEFT"}


def parse_keys(data: bytes) -> list[str]:
    """Key names in ``data`` as a terminal sends them.

    Printable keys are returned as themselves (lower case), arrows as ``UP``/``DOWN``/``LEFT``/
    ``RIGHT`` (``ESC [ A..D``, also the ``ESC O A..D`` application mode), Backspace (DEL or BS)
    as ``BACKSPACE``, space as ``" "``, and an Escape that starts no sequence as ``ESC``. Other
    escape sequences (Delete, Home, F1, Ctrl+arrow ...) are skipped whole: read as a lone
    Escape they would end the session.
    """
    keys: list[str] = []
    i = 0
    while i < len(data):
        byte = data[i : i + 1]
        if byte == b"\x1b" and (end := _escape_sequence_end(data, i)) is not None:
            name = _ESCAPE_SEQUENCES.get(data[i + 1 : end].replace(b"O", b"[", 1))
            if name is not None:
                keys.append(name)
            i = end
            continue
        if byte == b"\x1b":
            keys.append("ESC")
        elif byte in (b"\x7f", b"\x08"):
            keys.append("BACKSPACE")
        else:
            keys.append(byte.decode("latin-1").lower())
        i += 1
    return keys


def _escape_sequence_end(data: bytes, i: int) -> int | None:
    """Index just past the escape sequence starting at ``data[i]`` (ESC), or None when the
    ESC starts none (the Escape key itself).

    ECMA-48: a CSI sequence is ``ESC [``, parameter and intermediate bytes 0x20-0x3F, and one
    final byte 0x40-0x7E; an SS3 sequence is ``ESC O`` and one byte. A sequence cut short at
    the end of ``data`` ends there (it is dropped, not read as keys).
    """
    introducer = data[i + 1 : i + 2]
    if introducer == b"O":
        return min(i + 3, len(data))
    if introducer != b"[":
        return None
    j = i + 2
    while j < len(data) and 0x20 <= data[j] <= 0x3F:
        j += 1
    return j + 1 if j < len(data) and 0x40 <= data[j] <= 0x7E else j


class KeyboardTeleop:
    """A :class:`~robot_il.record.teleop.base.TeleopDevice` reading keys from a terminal.

    ``fd`` is the terminal to read (default: standard input, which must be a TTY).
    ``linear_step`` (m) and ``angular_step`` (rad) are the motion per key press;
    ``max_linear``/``max_angular`` cap one ``read()``'s delta so a burst of queued presses
    cannot fling the arm.
    """

    name = "keyboard"
    controls = KEYBOARD_HELP

    def __init__(
        self,
        fd: int | None = None,
        *,
        linear_step: float = 0.005,
        angular_step: float = 0.05,
        max_linear: float = 0.03,
        max_angular: float = 0.3,
    ) -> None:
        self._fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self._fd):
            raise RecordingError(
                f"keyboard teleop needs a terminal, but file descriptor {self._fd} is not a TTY "
                "(run it in an interactive shell, not with input redirected)"
            )
        self._steps = np.array([linear_step] * 3 + [angular_step] * 3, dtype=np.float64)
        self._limits = np.array([max_linear] * 3 + [max_angular] * 3, dtype=np.float64)
        self._lock = threading.Lock()
        self._delta = np.zeros(6, dtype=np.float64)
        self._gripper = 0.0
        self._events: list[EpisodeEvent] = []
        self._saved_mode = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="keyboard-teleop", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 256)
            except OSError:  # the terminal went away: behave as an idle device
                return
            if not data:
                return
            for key in parse_keys(data):
                self._apply(key)

    def _apply(self, key: str) -> None:
        with self._lock:
            if key in _MOTION_KEYS:
                axis, sign = _MOTION_KEYS[key]
                self._delta[axis] += sign * self._steps[axis]
            elif key == " ":
                self._gripper = 0.0 if self._gripper > 0.5 else 1.0
            elif key in _EVENT_KEYS:
                self._events.append(_EVENT_KEYS[key])

    def read(self) -> TeleopCommand:
        """Motion from the key presses since the last call, capped per axis."""
        with self._lock:
            delta = np.clip(self._delta, -self._limits, self._limits)
            self._delta[:] = 0.0
            events, self._events = tuple(self._events), []
            gripper = self._gripper
        return TeleopCommand(delta.astype(np.float32), gripper, events)

    def hold_gripper(self, closure: float) -> None:
        """The gripper command is ``closure`` until the operator works the gripper."""
        with self._lock:
            self._gripper = float(closure)

    def close(self) -> None:
        """Stop reading and give the terminal back its original mode."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_mode)
