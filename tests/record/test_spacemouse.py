"""The SpaceMouse device over a stand-in for pyspacemouse 2.1 (not installed without the
``hardware`` extra, and no puck is attached here): a HID report queue read as pyspacemouse
reads it, one report per ``read()``, decoded in the axis convention that ``open`` asks for."""

from __future__ import annotations

import enum
import sys
import threading
import time
import types
from collections import deque

import numpy as np
import pytest

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent
from robot_il.record.demos import EnvTeleopSource
from robot_il.record.teleop.spacemouse import SpaceMouseTeleop

HID_AXES = ("x", "y", "z", "rx", "ry", "rz")
"""HID's six axes: x right, y toward the operator, z down (right-handed), and the turns about
them."""


class AxisConvention(str, enum.Enum):
    LEGACY = "legacy"
    HID_Z_UP = "hid_z_up"


CONVENTIONS = {
    # pyspacemouse 2.1 (config_helpers._HID_TO_CONVENTION): output axis <- (HID axis, sign)
    AxisConvention.LEGACY: {
        "x": ("x", 1), "y": ("y", -1), "z": ("z", -1),
        "roll": ("ry", -1), "pitch": ("rx", -1), "yaw": ("rz", 1),
    },
    AxisConvention.HID_Z_UP: {
        "x": ("x", 1), "y": ("y", -1), "z": ("z", -1),
        "roll": ("rx", 1), "pitch": ("ry", -1), "yaw": ("rz", -1),
    },
}  # fmt: skip


class QueuedPuck:
    """pyspacemouse 2.1's ``SpaceMouseDevice`` over a hidraw queue, as far as robot_il uses
    it: ``read()`` processes at most one queued report, calls the callback after it and
    returns the state (which keeps the last values until a report changes them)."""

    def __init__(self, convention: AxisConvention, callback) -> None:
        self.mapping = CONVENTIONS[convention]
        self.callback = callback
        self.reports: deque[dict] = deque()
        self.hid = dict.fromkeys(HID_AXES, 0.0)
        self.state = types.SimpleNamespace(t=-1.0, buttons=[0, 0], **self._axes())
        self.closed = False

    def _axes(self) -> dict[str, float]:
        return {out: sign * self.hid[axis] for out, (axis, sign) in self.mapping.items()}

    def push(self, repeat: int = 1, **report) -> None:
        """Queue ``repeat`` reports, each of HID axis values in [-1, 1] and/or ``buttons``."""
        self.reports.extend(dict(report) for _ in range(repeat))

    def read(self):
        if self.reports:
            report = self.reports.popleft()
            self.state.buttons = list(report.pop("buttons", self.state.buttons))
            self.hid.update(report)
            vars(self.state).update(self._axes())
            if self.callback is not None:
                self.callback(self.state)
        return self.state

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def pyspacemouse(monkeypatch):
    """The stand-in ``pyspacemouse`` module; ``module.opened`` is the device ``open`` gave."""
    module = types.ModuleType("pyspacemouse")
    module.__version__ = "2.1.0"
    module.AxisConvention = AxisConvention

    def open_device(callback=None, axis_convention=None, **_):
        module.opened = QueuedPuck(axis_convention or AxisConvention.LEGACY, callback)
        return module.opened

    module.open = open_device
    monkeypatch.setitem(sys.modules, "pyspacemouse", module)
    return module


def test_a_read_takes_every_queued_report(pyspacemouse) -> None:
    """The puck reports faster than the 20 Hz loop reads: a read is the puck's state now, not
    one report a period (1 s held at 60 reports/s once moved the arm 0.45 m, not 0.15, the
    last of it 2 s after release). A click within one period still counts."""
    device = SpaceMouseTeleop(control_hz=20.0, max_linear_speed=0.15)
    puck = pyspacemouse.opened
    puck.push(repeat=60, y=-1.0)  # one second pushed away, queued
    puck.push(y=0.0)  # released
    assert np.all(device.read().eef_delta == 0)
    assert not puck.reports
    puck.push(repeat=3, y=-1.0)
    np.testing.assert_allclose(device.read().eef_delta, [0.0075, 0, 0, 0, 0, 0], atol=1e-7)
    puck.push(buttons=[1, 0])
    puck.push(buttons=[0, 0])  # a click shorter than a period
    puck.push(repeat=5, y=0.0)
    command = device.read()
    assert command.gripper == 1.0 and np.all(command.eef_delta == 0)
    puck.push(buttons=[0, 1])
    assert device.read().events == (EpisodeEvent.NEXT,)
    assert device.read().events == (), "a held button fires once, on press"
    device.close()
    assert puck.closed


@pytest.mark.parametrize(
    ("hid", "expected"),
    [
        # HID axis deflected -> base frame delta; the operator faces along base +x
        ("x", [0, -1, 0, 0, 0, 0]),  # push right: base -y
        ("y", [-1, 0, 0, 0, 0, 0]),  # pull toward the operator: base -x
        ("z", [0, 0, -1, 0, 0, 0]),  # press down: base -z
        ("rx", [0, 0, 0, 0, -1, 0]),  # turn about HID +x (right) = base -y
        ("ry", [0, 0, 0, -1, 0, 0]),  # turn about HID +y (toward the operator) = base -x
        ("rz", [0, 0, 0, 0, 0, -1]),  # turn about HID +z (down) = base -z
    ],
)
def test_puck_motions_move_the_tool_the_same_way_in_the_base_frame(
    pyspacemouse, hid, expected
) -> None:
    """Each HID axis, a right-handed frame on the puck, maps to the base frame by one rotation,
    twists included (pyspacemouse's default convention once turned pitch and yaw the wrong
    way). The device asks for the ``HID_Z_UP`` convention that the mapping assumes."""
    device = SpaceMouseTeleop(control_hz=1.0, max_linear_speed=1.0, max_angular_speed=1.0)
    pyspacemouse.opened.push(**{hid: 1.0})
    np.testing.assert_allclose(device.read().eef_delta, expected, atol=1e-7)
    assert pyspacemouse.opened.mapping is CONVENTIONS[AxisConvention.HID_Z_UP]


def test_a_pyspacemouse_without_axis_conventions_is_refused(pyspacemouse) -> None:
    del pyspacemouse.AxisConvention
    pyspacemouse.__version__ = "1.1.5"
    with pytest.raises(RecordingError, match=r"pyspacemouse >= 2\.1.*found 1\.1\.5") as error:
        SpaceMouseTeleop()
    assert "\n" not in str(error.value)


def test_a_spacemouse_session_names_the_puck_s_buttons(pyspacemouse, tmp_path) -> None:
    """A SpaceMouse session told the operator the keyboard's episode keys (Left arrow,
    Backspace, Esc), which it does not read: it names the puck's buttons, and that
    Ctrl-C is the way to stop. The right button keeps the episode."""
    pytest.importorskip("mujoco")
    from robot_il.envs import make_env

    from robot_il.dataset import Dataset, DatasetWriter
    from robot_il.record import Recorder
    from robot_il.record.demos import env_stream, record_teleop

    env = make_env(
        "reach", "mujoco", action_mode="eef_delta", control_hz=20.0, max_episode_steps=10_000
    )
    device = SpaceMouseTeleop(control_hz=20.0)
    source = EnvTeleopSource(env, device)
    writer = DatasetWriter.create(tmp_path / "d.zarr", robot="ur5e", control_hz=20.0, fsync=False)
    said: list[str] = []

    def operator() -> None:  # presses the right button once the episode has run 3 steps
        deadline = time.monotonic() + 20
        while source.steps < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        pyspacemouse.opened.push(buttons=[0, 1])

    presser = threading.Thread(target=operator, daemon=True)
    presser.start()
    try:
        with Recorder([env_stream(20.0, source)], {"env": writer}, realtime=False) as recorder:
            summary = record_teleop(source, recorder, episodes=1, progress=False, say=said.append)
    finally:
        presser.join(timeout=5)
        device.close()
        env.close()
    assert said[0].startswith("SpaceMouse teleop:") and "right button = next" in said[0]
    assert "Ctrl-C" in said[0] and "arrow" not in said[0]
    assert said[1].startswith("episode 0: next")  # the button ended it, not the env
    assert summary.kept == 1 and Dataset.open(tmp_path / "d.zarr").num_episodes == 1


def test_an_episode_starts_still_whatever_the_puck_queued_before(pyspacemouse) -> None:
    """``EnvTeleopSource.reset`` reads the device once to drop what came before the episode:
    with one report a read, that dropped one of 40 queued reports, and the episode's first
    steps moved the arm by the rest."""
    pytest.importorskip("mujoco")
    from robot_il.envs import make_env

    env = make_env("reach", "mujoco", action_mode="eef_delta", control_hz=20.0)
    device = SpaceMouseTeleop(control_hz=20.0)
    source = EnvTeleopSource(env, device)
    try:
        pyspacemouse.opened.push(buttons=[0, 1])  # "next", pressed before the episode
        pyspacemouse.opened.push(repeat=40, y=-1.0, buttons=[0, 0])
        pyspacemouse.opened.push(y=0.0)
        source.reset(seed=0)
        frame = source.read()
        assert np.all(frame["action"] == 0), "no motion from before the episode"
        assert source.events.empty(), "no event from before the episode"
    finally:
        device.close()
        env.close()
