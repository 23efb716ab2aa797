"""The Robotiq 2F-85 URCap client against the fake gripper server, over real TCP on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest

from robot_il.errors import ConfigError, HardwareError
from robot_il.ros.robotiq import (
    FakeRobotiqServer,
    ObjectStatus,
    RobotiqGripper,
    closure_to_position,
)


@pytest.fixture
def server():
    fake = FakeRobotiqServer()
    yield fake
    fake.close()


@pytest.fixture
def gripper(server):
    client = RobotiqGripper("127.0.0.1", server.port, timeout=0.5)
    client.connect()
    yield client
    client.close()


def test_activation_resets_then_activates_and_is_idempotent(server, gripper):
    assert gripper.get("STA") == 0 and not gripper.state().activated
    sent = len(server.commands)
    gripper.activate(timeout=2.0)
    assert gripper.state().activated
    assert server.commands[sent : sent + 3] == ["GET STA", "SET ACT 0 ATR 0", "SET ACT 1 GTO 1"]
    sent = len(server.commands)
    gripper.activate()  # already active: one GET, no reset
    assert server.commands[sent:] == ["GET STA"]


def test_open_close_and_position(server, gripper):
    gripper.activate(timeout=2.0)
    gripper.move(255, speed=255, force=100)
    closed = gripper.wait_until_stopped(timeout=2.0)
    assert closed.position == 255 and closed.requested == 255
    assert closed.object_status == ObjectStatus.AT_POSITION and not closed.object_detected
    assert closed.closure == pytest.approx(1.0)
    gripper.move(closure_to_position(0.4), speed=0)
    moving = gripper.state()
    assert moving.object_status == ObjectStatus.MOVING and moving.position > 102
    half = gripper.wait_until_stopped(timeout=3.0)
    assert half.position == 102 and half.closure == pytest.approx(0.4, abs=0.003)
    gripper.move(0)
    assert gripper.wait_until_stopped(timeout=2.0).position == 0


def test_speed_register_sets_the_finger_speed(server, gripper):
    gripper.activate(timeout=2.0)
    durations = []
    for speed, goal in ((255, 255), (0, 0)):
        start = time.monotonic()
        gripper.move(goal, speed=speed)
        gripper.wait_until_stopped(timeout=3.0)
        durations.append(time.monotonic() - start)
    # 255 units at 1500 u/s (0.17 s) against 200 u/s (1.3 s)
    assert durations[1] > 3 * durations[0]


def test_object_detected_while_closing(server, gripper):
    gripper.activate(timeout=2.0)
    server.object_at = 140
    gripper.move(255)
    held = gripper.wait_until_stopped(timeout=2.0)
    assert held.object_status == ObjectStatus.CONTACT_CLOSING and held.object_detected
    assert held.position == 140 and held.requested == 255
    gripper.move(0)  # opening away from the object is free
    released = gripper.wait_until_stopped(timeout=2.0)
    assert released.position == 0 and not released.object_detected


def test_a_stopped_state_holds_the_position_the_fingers_stopped_at():
    """Polled without pause through 12 full strokes of fast fingers (a stroke in 2.5 ms, so
    a stroke often ends between two register reads of one poll), the first state that says
    the fingers are at the requested position also holds that position: the registers are
    read one at a time, and a position read before the stop status could be short of it."""
    server = FakeRobotiqServer(max_speed=100_000.0)
    gripper = RobotiqGripper("127.0.0.1", server.port, timeout=0.5)
    gripper.connect()
    try:
        check_strokes(gripper)
    finally:
        gripper.close()
        server.close()


def check_strokes(gripper: RobotiqGripper) -> None:
    gripper.activate(timeout=2.0)
    for goal in (255, 0) * 6:
        gripper.move(goal, speed=255)
        deadline = time.monotonic() + 2.0
        while (state := gripper.state()).object_status == ObjectStatus.MOVING:
            assert time.monotonic() < deadline, "fingers still moving"
        assert state.object_status == ObjectStatus.AT_POSITION
        assert state.position == goal, f"stopped at {goal} but read {state.position}"


def test_connection_lost_is_a_clear_error_and_can_be_regained(server, gripper):
    gripper.activate(timeout=2.0)
    gripper.move(200)
    server.drop_connections()
    with pytest.raises(HardwareError, match=r"127\.0\.0\.1:\d+: link lost during 'GET POS'"):
        gripper.get("POS")
    assert not gripper.connected
    with pytest.raises(HardwareError, match="not connected"):
        gripper.get("POS")
    gripper.connect()
    assert gripper.state().activated  # the gripper kept its state across the lost link
    assert gripper.wait_until_stopped(timeout=2.0).position == 200


def test_unreachable_and_refusing_gripper():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(HardwareError, match=f"127.0.0.1:{free_port}: cannot connect"):
        RobotiqGripper("127.0.0.1", free_port, timeout=0.2).connect()


def test_bad_values_fail_before_anything_is_sent(server, gripper):
    with pytest.raises(ConfigError, match="POS must be in 0..255, got 300"):
        gripper.move(300)
    with pytest.raises(ConfigError, match="finite"):
        closure_to_position(float("nan"))
    assert server.commands == []
    with pytest.raises(HardwareError, match="answered '\\?'"):
        gripper.get("XYZ")
