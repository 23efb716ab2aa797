"""The RTDE bridge over real rclpy and loopback DDS, against the fake arm.

The bridge runs in this process (so the test can read what reached the fake arm); the client
that knows only the UR driver's topics runs in another process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from robot_il.envs.ur5e.description import HOME_JOINT_POS

pytestmark = pytest.mark.ros

PERIOD = 1.0 / 500.0
MAX_STEP = np.pi * 2 * PERIOD  # velocity limit over the longest step the filter allows

# Plays a scripted session on the UR driver's topics and prints one JSON line per phase.
_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64MultiArray, String
    from std_srvs.srv import Trigger
    HOME = [0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0]
    rclpy.init()
    node = rclpy.create_node("client")
    state, events = {}, set()
    node.create_subscription(JointState, "joint_states", lambda m: state.update(q=list(m.position), n=state.get("n", 0) + 1), 10)
    node.create_subscription(String, "safety/events", lambda m: events.add(json.loads(m.data)["kind"]), 100)
    commands = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    estop = node.create_publisher(Bool, "safety/estop", 10)
    reset = node.create_client(Trigger, "safety/reset_estop")
    def spin_for(seconds, target=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if target is not None:
                commands.publish(Float64MultiArray(data=target))
            rclpy.spin_once(node, timeout_sec=0.02)
    def report(phase):
        print(json.dumps({"phase": phase, "q": state.get("q"), "events": sorted(events)}), flush=True)
    while state.get("n", 0) < 10 or commands.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    report("ready")
    spin_for(1.5, [HOME[0] + 0.3] + HOME[1:])
    report("moved")
    spin_for(0.2, [float("nan")] + HOME[1:])
    report("nan")
    spin_for(0.3, [HOME[0] + 1.3] + HOME[1:])
    estop.publish(Bool(data=True))
    spin_for(0.5, [HOME[0] + 1.3] + HOME[1:])
    report("estopped")
    assert reset.wait_for_service(timeout_sec=5.0)
    future = reset.call_async(Trigger.Request())
    while not future.done():
        rclpy.spin_once(node, timeout_sec=0.05)
    spin_for(1.5, [HOME[0] + 0.1] + HOME[1:])
    report("after_reset")
    """
)


def spin_in_thread(node, context):
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


def test_bridge_streams_only_safe_servo_commands(ros_context, ros_env) -> None:
    from rclpy.parameter import Parameter

    from robot_il.ros.rtde import FakeRTDE
    from robot_il.ros.ur_rtde_bridge import UrRtdeBridge

    fake = FakeRTDE(HOME_JOINT_POS)
    bridge = UrRtdeBridge(
        context=ros_context,
        rtde=fake,
        parameter_overrides=[
            Parameter("ramp_duration", value=0.2),
            Parameter("lookahead_time", value=0.05),
        ],
    )
    latched_at: list[float] = []
    estop = bridge.safety.estop
    bridge.safety.estop = lambda: (latched_at.append(time.monotonic()), estop())
    executor, thread = spin_in_thread(bridge, ros_context)
    try:
        client = subprocess.run(
            [sys.executable, "-c", _CLIENT],
            env=ros_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
    finally:
        stats = bridge.stats.summary()
        bridge.shutdown()
        executor.shutdown()
        thread.join(timeout=5)
    phases = {r["phase"]: r for r in map(json.loads, client.stdout.splitlines())}

    # The arm followed the commands: 0.3 rad on the base joint, then (after the reset) back
    # to HOME + 0.1 from wherever the e-stop left it.
    assert phases["moved"]["q"][0] == pytest.approx(HOME_JOINT_POS[0] + 0.3, abs=0.01)
    assert phases["after_reset"]["q"][0] == pytest.approx(HOME_JOINT_POS[0] + 0.1, abs=0.01)
    # Every intervention reached the events topic.
    seen = set(phases["after_reset"]["events"])
    assert {"safe_start", "nonfinite_command", "acceleration_limit", "estop"} <= seen

    q = np.array([call.q for call in fake.servo_calls])
    t = np.array([call.t for call in fake.servo_calls])
    assert len(q) > 1000 and np.all(np.isfinite(q))
    assert np.max(np.abs(np.diff(q, axis=0))) <= MAX_STEP + 1e-9  # no 1 rad jump got through
    assert all(c.lookahead_time == 0.05 and c.gain == 300.0 for c in fake.servo_calls)
    # E-stop: from one control period after it latched until the reset, one held command.
    (latched,) = latched_at
    reset_at = t[
        np.argmax(
            (t > latched) & (np.abs(q[:, 0] - q[np.searchsorted(t, latched + PERIOD), 0]) > 1e-12)
        )
    ]
    held = q[(t > latched + PERIOD) & (t < reset_at)]
    assert len(held) > 100 and np.all(held == held[0])
    assert phases["estopped"]["q"][0] < HOME_JOINT_POS[0] + 1.3 - 0.1  # stopped short
    assert fake.stopped and fake.script_stopped  # servoStop on shutdown
    assert stats["rate_hz"] > 400, stats
    print("bridge loop", stats)
