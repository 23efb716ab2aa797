"""Gamepad teleoperation through pygame's joystick API, headless (SDL's dummy video driver).

Sticks are velocities: full deflection moves the tool at ``max_linear_speed`` (m/s) or turns it
at ``max_angular_speed`` (rad/s), so one ``read()`` gives speed / ``control_hz``. The default
layout is SDL's for Xbox-style pads on Linux:

  left stick   up/down +x/-x, left/right +y/-y      right stick  up/down +z/-z, left/right yaw
  LB / RB      roll -/+                              LT / RT      pitch -/+
  A close gripper, B open gripper, Start next, Back re-record, X discard, Y quit
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent
from robot_il.record.teleop.base import TeleopCommand


@dataclass(frozen=True)
class GamepadLayout:
    """Axis and button numbers of a pad as SDL's joystick API reports them."""

    left_x: int = 0
    left_y: int = 1
    left_trigger: int = 2
    right_x: int = 3
    right_y: int = 4
    right_trigger: int = 5
    button_a: int = 0
    button_b: int = 1
    button_x: int = 2
    button_y: int = 3
    button_lb: int = 4
    button_rb: int = 5
    button_back: int = 6
    button_start: int = 7


def gamepad_command(
    axes: Sequence[float],
    buttons: Sequence[bool],
    previous_buttons: Sequence[bool],
    gripper: float,
    *,
    layout: GamepadLayout,
    deadzone: float,
    linear_per_step: float,
    angular_per_step: float,
) -> TeleopCommand:
    """The command for one control period from a pad's state.

    ``axes`` in [-1, 1] (SDL: stick up is negative y; triggers rest at -1); ``buttons`` now and
    at the previous read, so that an event fires once per press, not once per period held.
    ``linear_per_step`` (m) and ``angular_per_step`` (rad) are the motion at full deflection.
    """

    def stick(index: int) -> float:
        value = float(axes[index]) if index < len(axes) else 0.0
        return 0.0 if abs(value) < deadzone else value

    def trigger(index: int) -> float:  # rest -1 .. pulled +1  ->  0 .. 1
        value = (float(axes[index]) + 1.0) / 2.0 if index < len(axes) else 0.0
        return 0.0 if value < deadzone else value

    def held(index: int) -> bool:
        return index < len(buttons) and bool(buttons[index])

    def pressed(index: int) -> bool:
        before = index < len(previous_buttons) and bool(previous_buttons[index])
        return held(index) and not before

    roll = float(held(layout.button_rb)) - float(held(layout.button_lb))
    pitch = trigger(layout.right_trigger) - trigger(layout.left_trigger)
    delta = np.array(
        [
            -stick(layout.left_y) * linear_per_step,
            -stick(layout.left_x) * linear_per_step,
            -stick(layout.right_y) * linear_per_step,
            roll * angular_per_step,
            pitch * angular_per_step,
            -stick(layout.right_x) * angular_per_step,
        ],
        dtype=np.float32,
    )
    if pressed(layout.button_a):
        gripper = 1.0
    elif pressed(layout.button_b):
        gripper = 0.0
    event_buttons = (
        (layout.button_start, EpisodeEvent.NEXT),
        (layout.button_back, EpisodeEvent.RERECORD),
        (layout.button_x, EpisodeEvent.DISCARD),
        (layout.button_y, EpisodeEvent.QUIT),
    )
    events = tuple(event for button, event in event_buttons if pressed(button))
    return TeleopCommand(delta, gripper, events)


class GamepadTeleop:
    """A :class:`~robot_il.record.teleop.base.TeleopDevice` reading joystick ``index``.

    Raises :class:`~robot_il.errors.RecordingError` when pygame is missing or sees no pad.
    """

    name = "gamepad"
    controls = (
        "gamepad teleop: left stick x/y, right stick z and yaw, LB/RB roll, LT/RT pitch, "
        "A/B close/open gripper; Start = next (keep), Back = re-record, X = discard, "
        "Y = keep and quit"
    )

    def __init__(
        self,
        index: int = 0,
        *,
        control_hz: float = 20.0,
        max_linear_speed: float = 0.15,
        max_angular_speed: float = 0.8,
        deadzone: float = 0.1,
        layout: GamepadLayout | None = None,
    ) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as error:
            raise RecordingError(
                "gamepad teleop needs pygame: pip install 'robot_il[hardware]'"
            ) from error
        self._pygame = pygame
        pygame.display.init()  # the event pump needs a video system; the dummy one draws nothing
        pygame.joystick.init()
        count = pygame.joystick.get_count()
        if index >= count:
            pygame.quit()
            raise RecordingError(
                f"no gamepad {index}: pygame sees {count} joystick(s) "
                "(is one plugged in and readable under /dev/input?)"
            )
        self._joystick = pygame.joystick.Joystick(index)
        self._layout = layout or GamepadLayout()
        self._deadzone = deadzone
        self._linear_per_step = max_linear_speed / control_hz
        self._angular_per_step = max_angular_speed / control_hz
        self._gripper = 0.0
        self._buttons: list[bool] = []

    def read(self) -> TeleopCommand:
        """The pad's state now, scaled to one control period."""
        self._pygame.event.pump()
        joystick = self._joystick
        axes = [joystick.get_axis(i) for i in range(joystick.get_numaxes())]
        buttons = [bool(joystick.get_button(i)) for i in range(joystick.get_numbuttons())]
        command = gamepad_command(
            axes,
            buttons,
            self._buttons,
            self._gripper,
            layout=self._layout,
            deadzone=self._deadzone,
            linear_per_step=self._linear_per_step,
            angular_per_step=self._angular_per_step,
        )
        self._buttons = buttons
        self._gripper = command.gripper
        return command

    def hold_gripper(self, closure: float) -> None:
        """The gripper command is ``closure`` until the operator works the gripper."""
        self._gripper = float(closure)

    def close(self) -> None:
        """Release the joystick and SDL."""
        self._pygame.quit()
