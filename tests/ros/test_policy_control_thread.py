"""The policy node's control thread under faults, over real rclpy and loopback DDS: the node
runs in this process (so the test sees its thread), a real checkpoint drives it, and the test
plays the robot driver, publishing the arm's joint states."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS, Client, constant_checkpoint, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

pytestmark = pytest.mark.ros


class Driver:
    """Joint states of one arm at :attr:`position` (rad), stamped now, every 5 ms."""

    def __init__(self, client: Client) -> None:
        from sensor_msgs.msg import JointState

        self.position = HOME_JOINT_POS.copy()
        self._publisher = client.publisher(JointState, "joint_states")
        self._clock = client.node.get_clock()
        self._msg = JointState(name=UR_JOINTS)
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            self._msg.header.stamp = self._clock.now().to_msg()
            self._msg.position = self.position.tolist()
            self._publisher.publish(self._msg)
            time.sleep(0.005)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


@contextlib.contextmanager
def policy_node(context, directory) -> Iterator[object]:
    """A policy node (100 Hz control) deploying a checkpoint that steers the base joint
    0.2 rad from home, spun on its own thread."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from robot_il.ros.policy_node import PolicyNode

    target = np.append(HOME_JOINT_POS + [0.2, 0, 0, 0, 0, 0], 0.0)
    checkpoint = constant_checkpoint(directory / "steer", target)
    node = PolicyNode(
        context=context,
        parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("control_rate", value=100.0),
        ],
    )
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        node.shutdown()


def test_nonfinite_joint_readings_at_an_estop_reset_wait_for_finite_ones(
    ros_context, tmp_path
) -> None:
    """After an e-stop reset the filter restarts from the measured pose; a NaN reading then
    once raised in the control thread, which died while the node looked alive. The start now
    waits, publishing nothing, and starts from the first finite reading."""
    from std_msgs.msg import Bool, Float64MultiArray, String
    from std_srvs.srv import Trigger

    with policy_node(ros_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            commands = client.record(Float64MultiArray, "forward_position_controller/commands")
            events = client.record(String, "safety/events")
            estop = client.publisher(Bool, "safety/estop")

            def kinds(since: float) -> set[str]:
                return {json.loads(r[1].data)["kind"] for r in events if r.sent >= since}

            wait_for(lambda: len(commands) > 20, 60, "the policy's commands")
            pressed = time.time()
            estop.publish(Bool(data=True))
            wait_for(lambda: "estop" in kinds(pressed), 10, "the e-stop's event")
            nan_at = time.time()
            driver.position = HOME_JOINT_POS.copy()
            driver.position[3] = np.nan  # the driver reports a NaN wrist
            wait_for(lambda: "nonfinite_measurement" in kinds(nan_at), 10, "the NaN's event")
            assert client.call(Trigger, "safety/reset_estop").success
            released = time.time()
            time.sleep(0.3)
            assert node._control.is_alive(), "the control thread died"
            sent = [r for r in commands if r.sent > released + 0.05]
            assert not sent, "a command went out with no finite pose to start from"

            moved = HOME_JOINT_POS + [0.0, 0.0, 0.0, 0.1, 0.0, 0.0]  # moved by hand meanwhile
            finite = time.time()
            driver.position = moved
            wait_for(lambda: any(r.sent > finite for r in commands), 10, "commands again")
            first = next(np.array(r[1].data) for r in commands if r.sent > finite)
            np.testing.assert_allclose(first, moved, atol=1e-3)  # a safe start where it is
            wait_for(lambda: "safe_start" in kinds(finite), 10, "the safe start's event")
        finally:
            driver.close()
            client.close()


@pytest.fixture
def own_context(ros_domain_id: int) -> Iterator[object]:
    """An rclpy context on loopback DDS that the node under test may shut down itself."""
    import rclpy

    from robot_il.ros.dds import apply_loopback_env

    apply_loopback_env()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        yield context
    finally:
        context.try_shutdown()


def test_a_failing_control_tick_shuts_the_node_down(own_context, tmp_path, capfd) -> None:
    """Whatever fails in the control thread ends the node with a fatal log line, as the RTDE
    bridge's servo thread does, and the process exits with code 1: a node whose control thread
    died and that went on looking alive left the robot without commands and its operator
    without a word."""

    def fail(now: float) -> None:  # an unforeseen error (none is known once defects are fixed)
        raise RuntimeError("injected failure")

    with policy_node(own_context, tmp_path) as node:
        time.sleep(0.1)
        assert node._control.is_alive()
        node._control_tick = fail
        wait_for(lambda: not node._control.is_alive(), 5, "the control thread to end")
        wait_for(lambda: not own_context.ok(), 5, "the node's context to shut down")
        assert isinstance(node.fatal_error, RuntimeError)  # run_node's exit code 1
    assert "control loop failed: RuntimeError('injected failure')" in capfd.readouterr().err
