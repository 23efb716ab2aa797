"""3Dconnexion SpaceMouse teleoperation through ``pyspacemouse`` (raw HID, no vendor driver).

The puck's six axes (each in [-1, 1]) are velocities, scaled like a gamepad's sticks by
``max_linear_speed`` (m/s) and ``max_angular_speed`` (rad/s) over one control period. The left
button toggles the gripper, the right button ends the episode (next).

Axes: the device is opened in pyspacemouse's ``HID_Z_UP`` convention (pyspacemouse >= 2.1), a
right-handed frame on the puck: x to the operator's right, y away from the operator, z up; roll,
pitch and yaw turn about x, y and z, counterclockwise seen from the axis's tip. The operator faces
along the robot's +x, so the base frame is the puck's turned 90 degrees about z: push away = +x,
left = +y, lift = +z, and a twist turns the tool about the same axis as it turns the puck (roll
about base -y, pitch about base +x, yaw about base +z). pyspacemouse's default (``LEGACY``)
convention swaps roll and pitch and flips yaw, so it is never used.

Only usable where a device is plugged in: without ``pyspacemouse`` 2.1, ``hidapi`` or a device
the constructor raises :class:`~robot_il.errors.RecordingError` saying which is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent
from robot_il.record.teleop.base import TeleopCommand


def spacemouse_command(
    axes: tuple[float, float, float, float, float, float],
    pressed: tuple[bool, bool],
    gripper: float,
    *,
    deadzone: float,
    linear_per_step: float,
    angular_per_step: float,
) -> TeleopCommand:
    """The command for one period from puck axes ``(x, y, z, roll, pitch, yaw)`` in the
    ``HID_Z_UP`` frame (module docstring) and which buttons (left, right) were pressed during
    the period.

    The puck frame maps to the base frame by one rotation, for translations and rotation
    vectors alike: base (x, y, z) = puck (y, -x, z).
    """
    x, y, z, roll, pitch, yaw = (0.0 if abs(value) < deadzone else value for value in axes)
    delta = np.array(
        [
            y * linear_per_step,
            -x * linear_per_step,
            z * linear_per_step,
            pitch * angular_per_step,
            -roll * angular_per_step,
            yaw * angular_per_step,
        ],
        dtype=np.float32,
    )
    if pressed[0]:
        gripper = 0.0 if gripper > 0.5 else 1.0
    events = (EpisodeEvent.NEXT,) if pressed[1] else ()
    return TeleopCommand(delta, gripper, events)


class SpaceMouseTeleop:
    """A :class:`~robot_il.record.teleop.base.TeleopDevice` for the first SpaceMouse found."""

    name = "spacemouse"
    controls = (
        "SpaceMouse teleop: the puck moves and turns the tool, left button toggles the gripper, "
        "right button = next (keep); it has no re-record, discard or quit: Ctrl-C stops the "
        "session (the episode under way is lost)"
    )

    def __init__(
        self,
        *,
        control_hz: float = 20.0,
        max_linear_speed: float = 0.15,
        max_angular_speed: float = 0.8,
        deadzone: float = 0.05,
    ) -> None:
        try:
            import pyspacemouse
        except (ImportError, OSError) as error:  # OSError: hidapi's shared library is missing
            raise RecordingError(
                "SpaceMouse teleop needs pyspacemouse and the hidapi library: "
                f"pip install 'robot_il[hardware]' and apt-get install libhidapi-dev ({error})"
            ) from error
        if not hasattr(pyspacemouse, "AxisConvention"):
            raise RecordingError(
                "SpaceMouse teleop needs pyspacemouse >= 2.1 (its axis conventions), found "
                f"{getattr(pyspacemouse, '__version__', 'an older one')}: "
                "pip install -U 'robot_il[hardware]'"
            )
        self._reported = False
        self._held = (False, False)
        self._pressed = (False, False)
        try:
            self._device = pyspacemouse.open(
                callback=self._on_report, axis_convention=pyspacemouse.AxisConvention.HID_Z_UP
            )
        except Exception as error:  # pyspacemouse raises bare Exceptions from HID enumeration
            raise RecordingError(f"no SpaceMouse could be opened: {error}") from error
        self._deadzone = deadzone
        self._linear_per_step = max_linear_speed / control_hz
        self._angular_per_step = max_angular_speed / control_hz
        self._gripper = 0.0

    def _on_report(self, state: Any) -> None:
        """Called by pyspacemouse for every HID report it processes: notes that one came, and
        each button it pressed, so that a click shorter than a control period still counts."""
        self._reported = True
        buttons = (list(state.buttons) + [0, 0])[:2]
        held = (bool(buttons[0]), bool(buttons[1]))
        self._pressed = tuple(
            pressed or (down and not before)
            for pressed, down, before in zip(self._pressed, held, self._held, strict=True)
        )
        self._held = held

    def read(self) -> TeleopCommand:
        """The puck's deflection now, scaled to one control period.

        While deflected the puck sends HID reports faster than the control loop reads them,
        and pyspacemouse processes one report per ``read``: taking one a period, the motion
        would lag ever further behind the hand and run on after release (with the kernel's
        64-report buffer full, the release report itself is dropped and the arm never stops).
        So every queued report is processed here, until a read finds none.
        """
        self._reported = True
        while self._reported:
            self._reported = False
            state = self._device.read()
        pressed, self._pressed = self._pressed, (False, False)
        command = spacemouse_command(
            (state.x, state.y, state.z, state.roll, state.pitch, state.yaw),
            pressed,
            self._gripper,
            deadzone=self._deadzone,
            linear_per_step=self._linear_per_step,
            angular_per_step=self._angular_per_step,
        )
        self._gripper = command.gripper
        return command

    def hold_gripper(self, closure: float) -> None:
        """The gripper command is ``closure`` until the operator works the gripper."""
        self._gripper = float(closure)

    def close(self) -> None:
        """Release the HID device."""
        if self._device is not None:
            self._device.close()
            self._device = None
