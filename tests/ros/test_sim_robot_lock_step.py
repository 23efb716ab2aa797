"""``sim_robot`` in lock-step moves the arm exactly as ``robot-il eval``'s env does, a
command meant for the episode before a reset never moves the new one, and the CPUs are kept
awake while it runs."""

from __future__ import annotations

import os
import struct
import threading
import time

import numpy as np
import pytest
from deploy_helpers import COMMANDS, Client, node_process, spinning, wait_for

pytestmark = pytest.mark.ros

POLICY_HZ = 20.0
STEPS_PER_COMMAND = 25  # 500 Hz physics / 20 Hz commands


def stamp_seconds(message) -> float:
    return message.header.stamp.sec + 1e-9 * message.header.stamp.nanosec


def test_a_lock_step_command_moves_the_arm_as_one_env_step(ros_context, ros_env, tmp_path):
    """Each command of a 20 Hz client is one env step at 20 Hz, bit for bit: the servo plans
    one move per command period. (Planned every 2 ms, it braked into each held target and the
    arm ended each period elsewhere: 0 of 10 handover episodes over ROS, 8 of 10 in eval.)"""
    from robot_il.envs import make_env
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    log = tmp_path / "sim_robot.log"
    params = {
        "task": "reach",
        "seed": 5,
        "lock_step": "true",
        "steps_per_command": STEPS_PER_COMMAND,
        "publish_every": STEPS_PER_COMMAND,
        "lock_step_timeout": 10.0,
    }
    with node_process("sim_robot", params, ros_env, log) as sim:
        client = Client(ros_context)
        try:
            states = client.record(JointState, "joint_states", depth=5000)
            wait_for(lambda: states, 60, "first joint state", (sim,), (log,))
            commands = client.publisher(Float64MultiArray, COMMANDS, (sim,), (log,))
            start = np.array(states[-1][1].position[:6])
            gripper = states[-1][1].position[6]
            # fast moves (1.2 rad/s, then a reversal): where the two servo plans differ most
            directions = [1, 1, 1, 1, -1, -1, -1, 0]
            targets = [start.copy()]
            for direction in directions:
                targets.append(targets[-1] + 0.06 * direction * np.array([1, -1, 1, 0, 1, 0]))
            reached = []
            for target in targets[1:]:
                seen = stamp_seconds(states[-1][1])
                commands.publish(Float64MultiArray(data=target.tolist()))
                wait_for(
                    lambda t=seen: stamp_seconds(states[-1][1]) > t,
                    10, "lock-step joint state", (sim,), (log,),
                )  # fmt: skip
                reached.append(np.array(states[-1][1].position[:6]))
            # one command period per command
            assert stamp_seconds(states[-1][1]) == pytest.approx(len(directions) / POLICY_HZ)
        finally:
            client.close()

    env = make_env("reach", "mujoco", control_hz=POLICY_HZ)
    try:
        obs, _ = env.reset(seed=5)
        np.testing.assert_array_equal(obs["joint_pos"], np.float32(start))
        for target, joints in zip(targets[1:], reached, strict=True):
            obs, *_ = env.step(np.append(target, gripper).astype(np.float32))
            np.testing.assert_array_equal(joints, obs["joint_pos"].astype(np.float64))
    finally:
        env.close()
    assert np.abs(reached[3] - start).max() > 0.2  # the arm did move


def test_a_command_sent_before_a_reset_is_dropped(ros_context) -> None:
    """A command published before ``sim/reset`` (by its DDS source timestamp) belongs to the
    episode before: taken as the new episode's first command, it moved the arms toward the
    old episode's pose."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    from robot_il.ros.sim_robot import SimRobot

    overrides = [
        Parameter("task", value="reach"),
        Parameter("lock_step", value=True),
        Parameter("steps_per_command", value=STEPS_PER_COMMAND),
    ]
    sim = SimRobot(context=ros_context, parameter_overrides=overrides)
    try:
        sent_before = time.time_ns()
        response = sim._on_reset(Trigger.Request(), Trigger.Response())
        assert response.success, response.message
        initial = sim._targets.copy()
        stale = Float64MultiArray(data=(initial + 0.3).tolist())
        sim._on_command(0, stale, {"source_timestamp": sent_before})
        np.testing.assert_array_equal(sim._targets, initial)  # dropped
        sim._on_command(0, stale, {"source_timestamp": time.time_ns()})
        np.testing.assert_allclose(sim._targets, initial + 0.3)  # a new one is taken
    finally:
        sim.shutdown()


def lock_step_sim(context):
    """An in-process lock-step ``sim_robot`` of ``reach``, a joint state every command."""
    from rclpy.parameter import Parameter

    from robot_il.ros.sim_robot import SimRobot

    overrides = [
        Parameter("task", value="reach"),
        Parameter("lock_step", value=True),
        Parameter("steps_per_command", value=STEPS_PER_COMMAND),
        Parameter("publish_every", value=STEPS_PER_COMMAND),
    ]
    return SimRobot(context=context, parameter_overrides=overrides)


def test_commands_are_taken_off_the_executor_and_each_steps_the_arm(ros_context) -> None:
    """A policy node commands at up to 500 Hz: taken by the spinning executor, each command
    held the interpreter for half a millisecond beside the physics thread. The command reader
    takes every joint and gripper command, none the executor, and each joint command still
    steps lock-step once and moves the arm."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray

    sim = lock_step_sim(ros_context)
    takers: set[str] = set()

    def noting_the_taker(callback):
        def take(*args) -> None:
            takers.add(threading.current_thread().name)
            callback(*args)

        return take

    sim._on_command = noting_the_taker(sim._on_command)
    sim._on_gripper = noting_the_taker(sim._on_gripper)
    client = Client(ros_context)
    try:
        with spinning(sim, ros_context):
            states = client.record(JointState, "joint_states", depth=5000)
            wait_for(lambda: states, 30, "the first joint state")
            commands = client.publisher(Float64MultiArray, COMMANDS)
            gripper = client.publisher(Float64, "gripper/command")
            start = np.array(states[-1][1].position)
            gripper.publish(Float64(data=1.0))
            for step in range(1, 11):
                seen = stamp_seconds(states[-1][1])
                commands.publish(Float64MultiArray(data=(start[:6] + 0.02 * step).tolist()))
                wait_for(lambda t=seen: stamp_seconds(states[-1][1]) > t, 10, "a step")
            assert stamp_seconds(states[-1][1]) == pytest.approx(10 / POLICY_HZ)  # one each
            reached = np.array(states[-1][1].position)
    finally:
        client.close()
    assert takers == {"sim_robot-commands"}
    assert np.all(reached[:6] - start[:6] > 0.05), reached - start  # toward start + 0.2
    assert reached[6] > start[6] + 0.1  # the gripper closes


def test_a_command_sent_during_a_reset_is_the_new_episodes_first(ros_context) -> None:
    """A client that commands while another resets (the teleop servo, while the recorder asks
    for the next scene): a command taken during the reset waits for its end and steps the new
    episode, as when the executor took it after the reset's answer. Stored at once, the reset
    overwrote it and consumed its lock-step arrival: the new episode waited for a command that
    had come."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    sim = lock_step_sim(ros_context)
    reset = sim.env.reset

    def slow_reset(**kwargs):
        time.sleep(0.5)  # a command comes meanwhile
        return reset(**kwargs)

    sim.env.reset = slow_reset
    client = Client(ros_context)
    answers = []
    try:
        with spinning(sim, ros_context):
            states = client.record(JointState, "joint_states", depth=5000)
            wait_for(lambda: states, 30, "the first joint state")
            commands = client.publisher(Float64MultiArray, COMMANDS)
            start = np.array(states[-1][1].position[:6])
            commands.publish(Float64MultiArray(data=start.tolist()))
            wait_for(lambda: stamp_seconds(states[-1][1]) > 0, 10, "the first step")
            before = stamp_seconds(states[-1][1])
            resetting = threading.Thread(
                target=lambda: answers.append(client.call(Trigger, "sim/reset"))
            )
            resetting.start()
            wait_for(sim._reset_requested.is_set, 10, "the reset under way")
            during = start + 0.1
            commands.publish(Float64MultiArray(data=during.tolist()))
            resetting.join(timeout=30)
            assert answers and answers[0].success, answers
            wait_for(lambda: stamp_seconds(states[-1][1]) > before, 10, "the new episode's step")
            np.testing.assert_allclose(sim._targets, during)
    finally:
        client.close()
    assert sim.episode == 1


def read_wake_latency() -> int:
    """The CPU wake-up latency (µs) Linux holds every CPU to now: the strictest request."""
    from robot_il.ros.node_main import WAKE_LATENCY_DEVICE

    with open(WAKE_LATENCY_DEVICE, "rb") as device:
        return struct.unpack("i", device.read(4))[0]


def test_a_lock_step_simulator_keeps_the_cpus_awake_while_it_runs(ros_context) -> None:
    """Lock-step wakes a CPU at every exchange; where idle CPUs halt (this virtual machine)
    each wake took tens to hundreds of ms: 9-12 steps/s against 94-98 with the request."""
    from rclpy.parameter import Parameter

    from robot_il.ros.node_main import WAKE_LATENCY_DEVICE
    from robot_il.ros.sim_robot import SimRobot

    if not os.access(WAKE_LATENCY_DEVICE, os.W_OK):
        pytest.skip(f"{WAKE_LATENCY_DEVICE} is not writable here (not root)")
    overrides = [Parameter("lock_step", value=True)]
    sim = SimRobot(context=ros_context, parameter_overrides=overrides)
    try:
        assert read_wake_latency() == 0  # the strictest request: this node's
    finally:
        sim.shutdown()
    assert sim._wake_request.closed  # withdrawn with the node


def test_a_refused_wake_latency_request_warns_and_runs_on(
    ros_context, tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:
    from rclpy.node import Node

    from robot_il.ros.node_main import keep_cpus_awake

    node = Node("not_root", context=ros_context)
    try:
        assert keep_cpus_awake(node, str(tmp_path / "missing" / "cpu_dma_latency")) is None
    finally:
        node.destroy_node()
    assert "CPU wake-up latency request refused" in capfd.readouterr().err


def test_a_negative_seed_is_refused_in_one_line(ros_context) -> None:
    """``deploy_sim ... seed:=-1`` ended in the env generator's traceback after start-up."""
    from rclpy.parameter import Parameter

    from robot_il.errors import ConfigError
    from robot_il.ros.sim_robot import SimRobot

    with pytest.raises(ConfigError, match=r"sim_robot: seed -1 is negative"):
        SimRobot(context=ros_context, parameter_overrides=[Parameter("seed", value=-1)])
