"""Teleoperation devices behind one interface, :class:`TeleopDevice`.

Each device module imports its driver (termios, pygame, pyspacemouse, rclpy) only when that
device is made, so recording with a keyboard never needs ROS or SDL installed.
"""

from __future__ import annotations

from robot_il.errors import RecordingError
from robot_il.record.teleop.base import TeleopCommand, TeleopDevice

TELEOP_DEVICES = ("keyboard", "gamepad", "spacemouse", "ros")
"""Names accepted by :func:`make_teleop_device` and ``robot-il record --teleop``."""


def make_teleop_device(name: str, *, control_hz: float = 20.0) -> TeleopDevice:
    """Open the teleop device ``name`` for a loop running at ``control_hz`` (Hz).

    Raises :class:`~robot_il.errors.RecordingError` for an unknown name or an absent device.
    """
    if name == "keyboard":
        from robot_il.record.teleop.keyboard import KeyboardTeleop

        return KeyboardTeleop()
    if name == "gamepad":
        from robot_il.record.teleop.gamepad import GamepadTeleop

        return GamepadTeleop(control_hz=control_hz)
    if name == "spacemouse":
        from robot_il.record.teleop.spacemouse import SpaceMouseTeleop

        return SpaceMouseTeleop(control_hz=control_hz)
    if name == "ros":
        from robot_il.record.teleop.ros_twist import RosTwistTeleop

        return RosTwistTeleop(control_hz=control_hz)
    raise RecordingError(
        f"unknown teleop device {name!r}; expected one of {', '.join(TELEOP_DEVICES)}"
    )


__all__ = [
    "TELEOP_DEVICES",
    "TeleopCommand",
    "TeleopDevice",
    "make_teleop_device",
]
