"""The teleop node's servo over real rclpy and loopback DDS, driven by a real keyboard device
on a pseudo-terminal: what it sends the arm and its gripper while the safety layer holds, and
after a simulator reset."""

from __future__ import annotations

import contextlib
import os
import pty
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from deploy_helpers import COMMANDS, DEADLINE_SCALE, UR_JOINTS, Client, spinning, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

from robot_il.ros.node_main import SpinThread

pytestmark = pytest.mark.ros


@contextlib.contextmanager
def teleop_node(context, parameters: dict[str, object]) -> Iterator[tuple[object, int]]:
    """A teleop node driven by a real keyboard device on a pseudo-terminal, spun on its own
    thread; yields the node and the terminal's master end (what the operator types)."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from robot_il.record.teleop.keyboard import KeyboardTeleop
    from robot_il.ros.teleop_node import TeleopNode

    master, slave = pty.openpty()
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    node = TeleopNode(context=context, device=KeyboardTeleop(slave), parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = SpinThread(executor)
    try:
        yield node, master
    finally:
        spin.stop(timeout=10 * DEADLINE_SCALE)
        node.shutdown()
        os.close(master)
        os.close(slave)


def test_teleop_sends_no_gripper_command_while_the_arm_is_held(ros_context) -> None:
    """Stale joint states hold the arm; the operator's gripper toggle must wait for them to
    be fresh again: the node once sent the gripper its command every tick, held or not."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray

    with teleop_node(ros_context, {"rate": 50.0, "task": "reach"}) as (node, master):
        client = Client(ros_context)
        try:
            commands = client.record(Float64MultiArray, "forward_position_controller/commands")
            grippers = client.record(Float64, "gripper/command")
            states = client.publisher(JointState, "joint_states")
            matched = node.robot_gripper_pub.get_subscription_count
            wait_for(lambda: matched() > 0, 10.0, "the test's gripper subscription")

            def publish_states(age: float, seconds: float) -> None:
                """Joint states at home, stamped ``age`` s before now, for ``seconds``."""
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    msg = JointState(name=UR_JOINTS, position=HOME_JOINT_POS.tolist())
                    stamp = client.node.get_clock().now().nanoseconds * 1e-9 - age
                    msg.header.stamp.sec, frac = int(stamp), stamp % 1.0
                    msg.header.stamp.nanosec = int(frac * 1e9)
                    states.publish(msg)
                    time.sleep(0.01)

            os.write(master, b" ")  # the operator closes the gripper
            publish_states(age=5.0, seconds=0.2)  # stale: the filter holds from its start
            wait_for(lambda: len(commands) > 10, 5.0, "held commands to the arm")
            publish_states(age=5.0, seconds=0.3)
            held = np.array([r[1].data for r in commands])
            assert np.all(held == HOME_JOINT_POS), "the arm holds at the measured pose"
            assert not grippers, "a gripper command went out while the arm was held"

            publish_states(age=0.0, seconds=0.3)  # fresh: the arm and the gripper follow again
            wait_for(lambda: grippers, 5.0, "the gripper command once the arm is free")
            assert grippers[-1][1].data == 1.0
        finally:
            client.close()


class FollowingArm:
    """An arm that moves towards its last joint command at 1 rad/s per joint (a command sent
    before its last :meth:`reset` is dropped, as ``sim_robot`` drops it), reporting joint
    states stamped now every 5 ms."""

    def __init__(self, client: Client, position: np.ndarray) -> None:
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        self.position = position
        self.commands = client.record(Float64MultiArray, COMMANDS)
        self._reset_at = 0.0
        self._publisher = client.publisher(JointState, "joint_states")
        self._clock = client.node.get_clock()
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from sensor_msgs.msg import JointState

        msg = JointState(name=UR_JOINTS)
        last = time.monotonic()
        while self._running:
            now = time.monotonic()
            if self.commands and self.commands[-1].sent > self._reset_at:
                step = np.array(self.commands[-1][1].data) - self.position
                self.position = self.position + np.clip(step, last - now, now - last)
            last = now
            msg.header.stamp = self._clock.now().to_msg()
            msg.position = self.position.tolist()
            self._publisher.publish(msg)
            time.sleep(0.005)

    def reset(self, position: np.ndarray) -> None:
        """Put the arm at ``position`` (rad) at once, as a simulator's reset does."""
        self._reset_at = time.time()
        self.position = position

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


START = HOME_JOINT_POS + [0.1, 0.1, -0.1, 0.1, 0.1, 0.1]
"""Where the arm starts (rad): near home, which itself is singular."""


def move_tool_along_x(master: int, arm: FollowingArm, presses: int, pause: float) -> None:
    """The operator presses w ``presses`` times, ``pause`` s apart (5 mm along +x a press),
    and the arm follows until its tool is that far along, less a centimetre."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    for _ in range(presses):
        os.write(master, b"w")
        time.sleep(pause)
    wait_for(lambda: tcp_point(arm.position)[0] - tcp_point(START)[0] > 0.005 * presses - 0.01,
             10, "the arm to follow the operator")  # fmt: skip


@contextlib.contextmanager
def servoed_arm(
    context, parameters: dict[str, object], start: np.ndarray = START
) -> Iterator[tuple[object, int, Client, FollowingArm]]:
    """A teleop node (``parameters``) on a keyboard, servoing a :class:`FollowingArm` that
    starts at ``start``; yields the node, the terminal's master end, the client and the arm."""
    with teleop_node(context, parameters) as (node, master):
        client = Client(context)
        arm = FollowingArm(client, start.copy())
        try:
            yield node, master, client, arm
        finally:
            arm.close()
            client.close()


def test_the_servo_starts_again_where_a_reset_put_the_arm(ros_context) -> None:
    """The servo set its target once, at start: after a simulator reset it drove the arm
    back to where the operator had left it in the episode before."""

    parameters = {"rate": 50.0, "max_observation_age": 1.0}
    with servoed_arm(ros_context, parameters) as (node, master, client, arm):
        wait_for(lambda: len(arm.commands) > 10, 10, "the servo's commands")
        move_tool_along_x(master, arm, 10, 0.04)  # 5 cm
        time.sleep(0.3)
        reset = HOME_JOINT_POS + [0.2, -0.1, 0.1, 0.0, 0.05, 0.1]
        arm.reset(reset.copy())  # the next episode; the operator touches nothing
        time.sleep(1.0)
        # Until the servo sees the jump (one period and a DDS hop), its commands still
        # aim at the old target and the arm creeps a few hundredths of a radian towards
        # it; the old servo drove it the whole 0.2 rad back. After that it holds still.
        np.testing.assert_allclose(arm.position, reset, atol=0.03)
        np.testing.assert_allclose(arm.commands[-1][1].data, arm.position, atol=1e-3)


def test_the_servo_starts_from_the_first_finite_joint_reading(ros_context) -> None:
    """A driver may report NaN joints before its first real reading: the servo took its
    target from that reading, and the arm never followed the operator afterwards."""

    parameters = {"rate": 50.0, "max_observation_age": 1.0}
    with servoed_arm(ros_context, parameters, np.full(6, np.nan)) as (node, master, _, arm):
        wait_for(lambda: node.obs.joint_pos is not None, 10, "the first (NaN) reading")
        time.sleep(0.2)
        arm.position = START.copy()
        wait_for(lambda: arm.commands, 10, "the servo's first command")
        move_tool_along_x(master, arm, 10, 0.04)  # 5 cm


def test_an_estop_holds_the_operator_s_motion_until_its_reset(ros_context) -> None:
    """``safety/estop`` latched the policy node and the RTDE bridge but not teleop: with
    Universal Robots' driver (no robot_il safety layer of its own), an operator's e-stop left
    teleoperation moving the arm. Latched, its commands hold and its twist is zero while the
    device still asks for motion; after ``safety/reset_estop`` it servos again, from where the
    arm is (not towards where the device moved the target during the stop)."""
    from geometry_msgs.msg import Twist
    from robot_il.envs.ur5e.kinematics import tcp_point
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    from robot_il.ros.teleop_node import TWIST_TOPIC

    def push(presses: int) -> None:
        """The operator moves the tool along +x (5 mm a press)."""
        for _ in range(presses):
            os.write(master, b"w")
            time.sleep(0.04)

    parameters = {"rate": 50.0, "max_observation_age": 1.0}
    with servoed_arm(ros_context, parameters) as (node, master, client, arm):
        twists = client.record(Twist, TWIST_TOPIC)
        wait_for(lambda: len(arm.commands) > 10, 10, "the servo's commands")
        push(4)
        wait_for(lambda: tcp_point(arm.position)[0] - tcp_point(START)[0] > 0.015, 10,
                 "the arm to follow the operator")  # fmt: skip
        estop = client.publisher(Bool, "safety/estop")

        def latched() -> bool:
            """Press the e-stop until the node has it: published once before discovery
            matched the publisher, or waited for a fixed 0.3 s, it was lost or late."""
            if not node._estop_latched:
                estop.publish(Bool(data=True))
            return node._estop_latched

        wait_for(latched, 10, "the e-stop to latch")
        time.sleep(0.3)  # the commands already under way
        latched_at = time.monotonic()
        push(10)
        time.sleep(0.3)
        held = [msg.data for t, msg in list(arm.commands) if t > latched_at]
        assert len(held) > 10, "the servo sent nothing while latched"
        assert all(command == held[0] for command in held), "commands moved while latched"
        moving = [msg for t, msg in list(twists) if t > latched_at]
        assert moving and all(msg.linear.x == 0.0 for msg in moving), "a twist while latched"
        stopped = arm.position.copy()

        assert client.call(Trigger, "safety/reset_estop").success
        time.sleep(0.5)  # the operator touches nothing: the arm stays where it stopped
        np.testing.assert_allclose(arm.position, stopped, atol=0.01)
        push(10)
        wait_for(lambda: tcp_point(arm.position)[0] - tcp_point(stopped)[0] > 0.04, 10,
                 "the arm to follow the operator again")  # fmt: skip


def test_an_episode_key_waits_for_the_recorder_to_subscribe(ros_context, own_context) -> None:
    """An episode key pressed before the recorder's subscription is matched (a recorder
    started a moment ago) was published to nobody and lost on the volatile topic: the episode
    never closed. The node holds it until a subscriber is matched (up to 5 s). Here the
    recorder, another DDS participant, subscribes half a second after the key."""
    from std_msgs.msg import String

    from robot_il.ros.teleop_node import EVENT_TOPIC

    with teleop_node(own_context, {"rate": 50.0, "servo": False}) as (node, master):
        recorder = Client(ros_context, "recorder")
        try:
            os.write(master, b"\x1b[C")  # the right arrow: next episode
            time.sleep(0.5)
            events = recorder.record(String, EVENT_TOPIC)
            wait_for(lambda: events, 5, "the next-episode event")
            assert [msg.data for _, msg in events] == ["next"]
        finally:
            recorder.close()


def largest_servo_step(context, servo_rate: float) -> float:
    """The largest joint step (rad) between two servo commands while the operator moves the
    tool 4 cm along +x with the keyboard at 20 Hz, the servo at ``servo_rate`` (0: 20 Hz)."""

    parameters = {"rate": 20.0, "servo_rate": servo_rate, "max_observation_age": 1.0}
    with servoed_arm(context, parameters) as (node, master, _, arm):
        wait_for(lambda: len(arm.commands) > 10, 10, "the servo's commands")
        moving_from = len(arm.commands)
        move_tool_along_x(master, arm, 8, 0.06)  # 4 cm
        sent = np.array([m.data for _, m in arm.commands[moving_from:]])
    return float(np.abs(np.diff(sent, axis=0)).max())


def test_a_servo_rate_glides_to_each_target_in_small_steps(ros_context) -> None:
    """At the device's 20 Hz each new target reached a position controller as one step;
    with ``servo_rate`` the filter goes there in steps of its own period (acceleration- and
    speed-limited at 5 ms), the arm following the same targets."""
    at_device_rate = largest_servo_step(ros_context, 0.0)
    gliding = largest_servo_step(ros_context, 200.0)
    assert gliding <= np.pi / 200.0 + 1e-6, gliding  # the speed limit over one 5 ms period
    assert gliding < at_device_rate / 2, (gliding, at_device_rate)


def test_a_servo_rate_below_the_device_rate_is_refused(ros_context) -> None:
    from rclpy.parameter import Parameter

    from robot_il.errors import ConfigError
    from robot_il.ros.teleop_node import TeleopNode

    overrides = [Parameter("rate", value=20.0), Parameter("servo_rate", value=10.0)]
    with pytest.raises(ConfigError, match=r"servo_rate 10 is not in \[rate 20, 500\] Hz"):
        TeleopNode(context=ros_context, parameter_overrides=overrides)


def test_a_recording_takes_the_operator_s_target_as_the_action_not_the_glide(
    ros_context, tmp_path
) -> None:
    """With the servo at 200 Hz and the device at 20 Hz the arm's commands glide to each
    target of the operator's; the recorder sampled the newest of them, a point part-way,
    as the step's action. With ``teleop_target`` (the teleop launch files) each action is a
    target the operator asked for, or the measured start before the first."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64MultiArray

    from robot_il.dataset import Dataset
    from robot_il.ros.recorder_node import RecorderNode
    from robot_il.ros.ur_topics import TELEOP_TARGET_TOPIC

    parameters = {"rate": 20.0, "servo_rate": 200.0, "max_observation_age": 1.0}
    path = tmp_path / "teleop.zarr"
    recording = {"path": str(path), "task": "reach", "record_hz": 20.0, "fsync": False,
                 "autostart": True, "gripper": "", "task_inputs": False,
                 "teleop_target": True}  # fmt: skip
    with servoed_arm(ros_context, parameters) as (node, master, client, arm):
        targets = client.record(Float64MultiArray, TELEOP_TARGET_TOPIC)
        overrides = [Parameter(k, value=v) for k, v in recording.items()]
        with spinning(
            RecorderNode(context=ros_context, parameter_overrides=overrides), ros_context
        ) as recorder:
            wait_for(lambda: recorder._episode is not None and recorder._episode.num_steps > 5,
                     10, "the recording's first steps")  # fmt: skip
            move_tool_along_x(master, arm, 8, 0.06)  # 4 cm
            time.sleep(0.3)
            recorder.stop()
        asked = np.array([START, *(msg.data for _, msg in targets)])
        sent = np.array([msg.data for _, msg in arm.commands])
    actions = Dataset.open(path).episode(0)["action"][:, :6]
    distance = np.abs(actions[:, None, :] - asked[None, :, :]).max(axis=2).min(axis=1)
    assert np.all(distance < 1e-6), distance.max()
    assert len(np.unique(actions.round(6), axis=0)) >= 4, "the motion was recorded"
    # the commands the arm got while it moved glide between the targets: most are none
    moving = sent[1:][np.abs(np.diff(sent, axis=0)).max(axis=1) > 1e-9]
    gliding = np.abs(moving[:, None, :] - asked[None, :, :]).max(axis=2).min(axis=1) > 1e-4
    assert gliding.mean() > 0.5, gliding.mean()


def test_a_teleop_refused_after_its_task_is_read_exits_with_one_line(ros_env) -> None:
    """A two-arm task for the one-arm servo is refused in one line with exit code 2. The ROS
    device was opened before that check and left open, and its thread aborted the process at
    exit (SIGABRT, code 134, "terminate called without an active exception")."""
    import subprocess
    import sys
    from pathlib import Path

    teleop = Path(sys.executable).parent / "teleop"
    command = [str(teleop), "--ros-args", "-p", "task:=bimanual_handover", "-p", "device:=ros"]
    result = subprocess.run(command, env=ros_env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr.strip()) == (
        2, "error: teleop: servo drives one arm; task 'bimanual_handover' has two"
    ), result.stderr  # fmt: skip


def test_a_teleop_stopped_as_its_keyboard_opens_gives_the_terminal_back(
    own_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop just after the keyboard device put the terminal in cbreak mode (SIGTERM: rclpy's
    handler shut the context down, and the node's timer failed) ended the node's construction,
    and ``run_node``, with no node to shut down, left the operator's terminal without echo
    (exit code 0, no word said)."""
    import termios

    from rclpy._rclpy_pybind11 import RCLError

    from robot_il.record import teleop
    from robot_il.record.teleop.keyboard import KeyboardTeleop
    from robot_il.ros.teleop_node import TeleopNode

    master, slave = pty.openpty()
    operators_mode = termios.tcgetattr(slave)

    def open_then_stopped(name: str, control_hz: float) -> KeyboardTeleop:
        device = KeyboardTeleop(slave)
        own_context.handle.shutdown()  # rcl alone, as rclpy's signal thread does on SIGTERM
        return device

    monkeypatch.setattr(teleop, "make_teleop_device", open_then_stopped)
    try:
        with pytest.raises(RCLError, match="context is not valid"):
            TeleopNode(context=own_context)
        assert termios.tcgetattr(slave) == operators_mode
    finally:
        os.close(master)
        os.close(slave)
