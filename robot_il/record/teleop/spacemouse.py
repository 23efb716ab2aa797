"""3Dconnexion SpaceMouse teleoperation through ``pyspacemouse`` (raw HID, no vendor driver).

The puck's six axes (each in [-1, 1]) are velocities, scaled like a gamepad's sticks by
``max_linear_speed`` (m/s) and ``max_angular_speed`` (rad/s) over one control period. Axes are
mapped for an operator facing along the robot's +x: push the puck away = +x, left = +y, lift
= +z. The left button toggles the gripper, the right button ends the episode (next).

Only usable where a device is plugged in: without ``pyspacemouse``, ``hidapi`` or a device the
constructor raises :class:`~robot_il.errors.RecordingError` saying which is missing.
"""

from __future__ import annotations

import numpy as np

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent
from robot_il.record.teleop.base import TeleopCommand


def spacemouse_command(
    axes: tuple[float, float, float, float, float, float],
    buttons: tuple[bool, bool],
    previous_buttons: tuple[bool, bool],
    gripper: float,
    *,
    deadzone: float,
    linear_per_step: float,
    angular_per_step: float,
) -> TeleopCommand:
    """The command for one period from puck axes ``(x, y, z, roll, pitch, yaw)``.

    Device frame: x right, y away from the operator, z up. Buttons fire on press.
    """
    x, y, z, roll, pitch, yaw = (0.0 if abs(value) < deadzone else value for value in axes)
    delta = np.array(
        [
            y * linear_per_step,
            -x * linear_per_step,
            z * linear_per_step,
            roll * angular_per_step,
            -pitch * angular_per_step,
            yaw * angular_per_step,
        ],
        dtype=np.float32,
    )
    left_pressed = buttons[0] and not previous_buttons[0]
    right_pressed = buttons[1] and not previous_buttons[1]
    if left_pressed:
        gripper = 0.0 if gripper > 0.5 else 1.0
    events = (EpisodeEvent.NEXT,) if right_pressed else ()
    return TeleopCommand(delta, gripper, events)


class SpaceMouseTeleop:
    """A :class:`~robot_il.record.teleop.base.TeleopDevice` for the first SpaceMouse found."""

    name = "spacemouse"

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
        try:
            device = pyspacemouse.open()
        except Exception as error:  # pyspacemouse raises bare Exceptions from HID enumeration
            raise RecordingError(f"no SpaceMouse could be opened: {error}") from error
        if not device:
            raise RecordingError(
                "no SpaceMouse found: pyspacemouse sees no supported 3Dconnexion device "
                "(plugged in? readable /dev/hidraw*?)"
            )
        self._device = device
        self._deadzone = deadzone
        self._linear_per_step = max_linear_speed / control_hz
        self._angular_per_step = max_angular_speed / control_hz
        self._gripper = 0.0
        self._buttons = (False, False)

    def read(self) -> TeleopCommand:
        """The puck's deflection now, scaled to one control period."""
        state = self._device.read()
        # Versions of pyspacemouse name the field ``buttons`` or ``button``.
        raw = list(getattr(state, "buttons", getattr(state, "button", ()))) + [0, 0]
        buttons = (bool(raw[0]), bool(raw[1]))
        command = spacemouse_command(
            (state.x, state.y, state.z, state.roll, state.pitch, state.yaw),
            buttons,
            self._buttons,
            self._gripper,
            deadzone=self._deadzone,
            linear_per_step=self._linear_per_step,
            angular_per_step=self._angular_per_step,
        )
        self._buttons = buttons
        self._gripper = command.gripper
        return command

    def close(self) -> None:
        """Release the HID device."""
        if self._device is not None:
            self._device.close()
            self._device = None
