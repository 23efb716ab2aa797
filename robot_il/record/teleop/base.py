"""The one interface every teleoperation device implements.

A device turns what the operator does into an end-effector *delta* for one control period,
plus a gripper command and episode events. The env consumes it in ``action_mode="eef_delta"``:
``action = [dx, dy, dz, rx, ry, rz, gripper]`` with translation in metres and rotation as an
axis-angle vector in radians, both in the robot base (world) frame, and gripper in [0, 1]
(1 = closed). Keeping velocity-to-delta conversion inside the device (it knows its period) means
recording code never cares which device is attached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from robot_il.record.control import EpisodeEvent


@dataclass(frozen=True)
class TeleopCommand:
    """One control period's worth of operator intent.

    ``eef_delta`` (6,) float32: dxyz (m) then axis-angle drot (rad), base frame.
    ``gripper``: 0.0 open .. 1.0 closed (the device remembers the last command).
    ``events``: episode events raised since the previous ``read()``, oldest first.
    """

    eef_delta: np.ndarray
    gripper: float
    events: tuple[EpisodeEvent, ...] = field(default=())

    def action(self) -> np.ndarray:
        """The env action in ``eef_delta`` mode: (7,) float32 ``[delta (6), gripper]``."""
        return np.concatenate([self.eef_delta, [self.gripper]]).astype(np.float32)


@runtime_checkable
class TeleopDevice(Protocol):
    """An input device driving the arm in ``eef_delta`` action mode.

    ``read()`` never blocks for input: it returns what happened since the last call (an idle
    command when nothing did). ``close()`` releases the device (terminal modes, joysticks, ROS
    nodes) and is safe to call twice. ``controls`` is one line for the operator, shown as a
    session starts: what moves the arm and what ends an episode on this device (each device
    has its own keys or buttons for them).
    """

    name: str
    controls: str

    def read(self) -> TeleopCommand: ...

    def hold_gripper(self, closure: float) -> None:
        """Carry on from the gripper at ``closure`` (0 open .. 1 closed): the next commands
        hold it until the operator works the gripper. A takeover starts from the gripper as
        the deployed policy left it, so that the first toggle of a closed gripper opens it."""
        ...

    def close(self) -> None: ...
