"""Teleop devices: the keyboard through a real pseudo-terminal, the pad and puck mappings, and
clear errors where no device is attached."""

from __future__ import annotations

import glob
import os
import pty
import termios
import time

import numpy as np
import pytest

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent, parse_event
from robot_il.record.teleop import TeleopDevice, make_teleop_device
from robot_il.record.teleop.gamepad import GamepadLayout, gamepad_command
from robot_il.record.teleop.keyboard import KeyboardTeleop, parse_keys
from robot_il.record.teleop.spacemouse import spacemouse_command


@pytest.fixture
def terminal():
    """A pseudo-terminal: keys written to ``master`` arrive on ``slave`` as a user's would."""
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def read_until(device: TeleopDevice, predicate, timeout_s: float = 2.0):
    """Accumulate reads until ``predicate(delta_sum, events, gripper)`` holds."""
    delta, events, gripper = np.zeros(6), [], 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        command = device.read()
        delta += command.eef_delta
        events += command.events
        gripper = command.gripper
        if predicate(delta, events, gripper):
            break
        time.sleep(0.01)
    return delta, events, gripper


def test_parse_keys_reads_arrows_escape_and_backspace():
    keys = parse_keys(b"wW\x1b[C\x1bOD\x7f \x1b")
    assert keys == ["w", "w", "RIGHT", "LEFT", "BACKSPACE", " ", "ESC"]


def test_parse_keys_skips_other_escape_sequences_whole():
    """Delete, Ctrl+Right, Home, F1 (SS3), F5 and a sequence cut short: none is Escape (which
    would end the session) nor leaves stray characters (``[``, ``~``, ``5``)."""
    keys = parse_keys(b"\x1b[3~w\x1b[1;5C\x1b[H\x1bOPa\x1b[15~\x1b[A\x1b\x1b[")
    assert keys == ["w", "a", "UP", "ESC"]


def test_keyboard_moves_toggles_gripper_and_raises_episode_events(terminal):
    master, slave = terminal
    device = KeyboardTeleop(slave, linear_step=0.01, angular_step=0.1)
    try:
        assert not termios.tcgetattr(slave)[3] & termios.ICANON, "terminal must be in cbreak"
        os.write(master, b"www" + b"d" + b"j")
        delta, _, _ = read_until(device, lambda d, e, g: abs(d[5]) > 0)
        np.testing.assert_allclose(delta, [0.03, -0.01, 0, 0, 0, 0.1], atol=1e-6)

        os.write(master, b" ")
        _, _, gripper = read_until(device, lambda d, e, g: g == 1.0)
        assert gripper == 1.0
        os.write(master, b"\x1b[3~\x1b[1;5C\x1b[C\x1b[D\x7fq")  # Delete, Ctrl+Right: nothing
        _, events, gripper = read_until(device, lambda d, e, g: len(e) == 4)
        assert events == [
            EpisodeEvent.NEXT,
            EpisodeEvent.RERECORD,
            EpisodeEvent.DISCARD,
            EpisodeEvent.QUIT,
        ]
        assert gripper == 1.0, "the gripper command holds until toggled again"
        assert np.all(device.read().eef_delta == 0), "motion is consumed by the read that got it"
    finally:
        device.close()
    assert termios.tcgetattr(slave)[3] & termios.ICANON, "close restores the terminal mode"


def test_keyboard_caps_a_burst_of_presses(terminal):
    master, slave = terminal
    device = KeyboardTeleop(slave, linear_step=0.01, max_linear=0.03)
    try:
        os.write(master, b"r" * 10)
        time.sleep(0.3)
        assert device.read().eef_delta[2] == pytest.approx(0.03)
    finally:
        device.close()


def test_keyboard_refuses_a_non_terminal():
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(RecordingError, match="not a TTY"):
            KeyboardTeleop(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_gamepad_sticks_scale_to_one_period_and_buttons_fire_once():
    layout = GamepadLayout()
    axes = [0.5, -1.0, -1.0, 0.05, 0.0, 1.0]  # left half right, left full up, RT fully pulled
    buttons = [False] * 10
    buttons[layout.button_a] = buttons[layout.button_start] = True
    kwargs = dict(layout=layout, deadzone=0.1, linear_per_step=0.01, angular_per_step=0.1)
    command = gamepad_command(axes, buttons, [False] * 10, 0.0, **kwargs)
    np.testing.assert_allclose(command.eef_delta, [0.01, -0.005, 0, 0, 0.1, 0], atol=1e-7)
    assert command.gripper == 1.0 and command.events == (EpisodeEvent.NEXT,)
    held = gamepad_command(axes, buttons, buttons, 1.0, **kwargs)
    assert held.events == (), "a held button fires once, on press"


def test_spacemouse_axes_map_to_the_base_frame():
    """Puck axes in pyspacemouse's HID_Z_UP frame (x right, y away, z up, turns about them)
    turned 90 degrees about z into the base frame; pitch is inside the deadzone."""
    command = spacemouse_command(
        (0.5, 1.0, -1.0, 0.3, 0.02, 1.0),
        (True, False),
        0.0,
        deadzone=0.05,
        linear_per_step=0.01,
        angular_per_step=0.1,
    )
    np.testing.assert_allclose(command.eef_delta, [0.01, -0.005, -0.01, 0, -0.03, 0.1], atol=1e-7)
    assert command.gripper == 1.0
    assert command.action().shape == (7,)


@pytest.mark.skipif(
    bool(glob.glob("/dev/input/js*") or glob.glob("/dev/hidraw*")),
    reason="a joystick or HID device is attached to this machine",
)
def test_absent_devices_fail_with_one_clear_line():
    with pytest.raises(RecordingError, match="gamepad") as gamepad_error:
        make_teleop_device("gamepad")
    with pytest.raises(RecordingError, match="SpaceMouse") as spacemouse_error:
        make_teleop_device("spacemouse")
    for error in (gamepad_error, spacemouse_error):
        assert "\n" not in str(error.value)
    with pytest.raises(RecordingError, match="unknown teleop device 'wiimote'"):
        make_teleop_device("wiimote")


def test_parse_event_accepts_spellings_and_names_the_choices():
    assert parse_event(" Re-Record ") is EpisodeEvent.RERECORD
    with pytest.raises(ValueError, match="next, rerecord, discard, quit"):
        parse_event("save")
