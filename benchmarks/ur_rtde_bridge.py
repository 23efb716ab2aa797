"""The RTDE bridge's servo loop and the loopback DDS link it relies on (issue 5).

(a) Loopback DDS round trip: a sensor_msgs/JointState ping-pong between two processes on the
    project's Fast DDS profile, p50/p99 in ms, and as a ratio to the 2 ms servo period.
(b) The servo loop: ``ur_rtde_bridge`` with the fake arm, streamed a moving target at
    125 Hz over DDS, for ``--seconds``: achieved rate against the 500 Hz target, period
    jitter p50/p99 (ms), late ticks (caught up) and skipped periods, each against a baseline:
    the same fixed-grid loop (``robot_il.deploy.ticker``) doing no work, run in the same
    process just before. Also the cost of one safety filter call (the bridge's per-tick
    computation) as a share of the period. ``--command-hz`` sets the target's rate (a policy
    node at ``control_rate:=500`` streams at 500 Hz).
(c) With ``--reader-rounds N``: the servo loop with the commands taken by the bridge's
    executor (the code before ``robot_il.ros.subscription_reader``) and by its reader thread,
    alternated ``N`` times in this process, one JSON row per run appended to ``--results``
    (default ``benchmarks/results/ur_rtde_bridge.jsonl``) with the load average and the code.

    .venv/bin/python benchmarks/ur_rtde_bridge.py [--seconds 5] [--command-hz 500]

The machine's other load shows in every figure: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from json_lines import append_json_line

from robot_il.provenance import revision
from robot_il.ros.dds import MAX_DOMAIN_ID, apply_loopback_env

PERIOD = 1.0 / 500.0
RESULTS = Path(__file__).parent / "results" / "ur_rtde_bridge.jsonl"

_ECHO = textwrap.dedent(
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import JointState
    rclpy.init()
    node = rclpy.create_node("echo")
    pong = node.create_publisher(JointState, "pong", 10)
    node.create_subscription(JointState, "ping", pong.publish, 10)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    """
)


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def round_trip(count: int) -> list[float]:
    """(a): ``count`` JointState round trips (s) at up to 500 Hz, after discovery."""
    import rclpy
    from sensor_msgs.msg import JointState

    echo = subprocess.Popen([sys.executable, "-c", _ECHO], env=os.environ.copy())
    try:
        node = rclpy.create_node("ping")
        ping = node.create_publisher(JointState, "ping", 10)
        received: list[float] = []
        node.create_subscription(
            JointState, "pong", lambda m: received.append(time.perf_counter()), 10
        )
        msg = JointState(name=[f"joint_{i}" for i in range(6)], position=[0.0] * 6)
        while ping.get_subscription_count() == 0 or not received:
            ping.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.05)
        rtts = []
        for _ in range(count):
            before = len(received)
            sent = time.perf_counter()
            ping.publish(msg)
            while len(received) == before:
                rclpy.spin_once(node, timeout_sec=0.1)
            rtts.append(received[-1] - sent)
            time.sleep(max(0.0, PERIOD - (time.perf_counter() - sent)))
        node.destroy_node()
        return rtts
    finally:
        echo.terminate()
        echo.wait()


def bare_loop(seconds: float) -> dict[str, float]:
    """Baseline for (b): the bridge's pacing (its ticker) with no work."""
    from robot_il.deploy.ticker import Ticker
    from robot_il.ros.ur_rtde_bridge import LoopStats

    stats = LoopStats(Ticker(PERIOD))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stats.tick(time.monotonic())
        stats.ticker.wait()
    return stats.summary()


def bridge_loop(seconds: float, command_hz: float) -> dict[str, float]:
    """(b): the bridge with a fake arm, driven by a moving target at ``command_hz`` over DDS."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from std_msgs.msg import Float64MultiArray

    from robot_il.ros.rtde import FakeRTDE
    from robot_il.ros.ur_rtde_bridge import UrRtdeBridge
    from robot_il.ros.ur_topics import COMMAND_TOPIC

    bridge = UrRtdeBridge(rtde=FakeRTDE(HOME_JOINT_POS))
    policy = rclpy.create_node("policy")
    commands = policy.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)

    def publish() -> None:
        target = HOME_JOINT_POS.copy()
        target[0] += 0.5 * np.sin(np.pi * time.monotonic())
        commands.publish(Float64MultiArray(data=target.tolist()))

    policy.create_timer(1.0 / command_hz, publish)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(bridge)
    executor.add_node(policy)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    time.sleep(seconds)
    summary = bridge.stats.summary()
    executor.shutdown()
    bridge.shutdown()
    return summary


def filter_cost(calls: int) -> float:
    """Mean seconds of one UR5e safety filter call with the workspace box (FK included)."""
    import logging

    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from robot_il.envs.ur5e.kinematics import forward_kinematics

    from robot_il.safety import SafetyFilter, SafetyLimits

    logging.getLogger("robot_il.safety").setLevel(logging.ERROR)
    safety = SafetyFilter(SafetyLimits.ur5e(), forward_kinematics, period=PERIOD)
    t = 0.0
    start = time.perf_counter()
    for i in range(calls):
        t += PERIOD
        safety.watchdog(t, t)
        target = HOME_JOINT_POS + 0.3 * np.sin(i / 100.0)
        safety.filter(target, HOME_JOINT_POS, t)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each loop run")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--command-hz", type=float, default=125.0, help="the target's rate")
    parser.add_argument("--reader-rounds", type=int, default=0, help="(c): alternated rounds")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines for (c)")
    args = parser.parse_args()
    apply_loopback_env(1 + os.getpid() % MAX_DOMAIN_ID)
    import rclpy

    rclpy.init()
    try:
        rtts = round_trip(args.round_trips)
        p50, p99 = percentiles(rtts)
        print("(a) loopback DDS JointState round trip, two processes")
        print(
            f"    p50 {p50 * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms  "
            f"(p99 / servo period = {p99 / PERIOD:.2f})"
        )

        baseline = bare_loop(args.seconds)
        bridge = bridge_loop(args.seconds, args.command_hz)
        print(f"(b) servo loop, target 500 Hz, {args.seconds:g} s each")
        for label, figures in (("bare loop (baseline)", baseline), ("ur_rtde_bridge", bridge)):
            print(
                f"    {label:22s} rate {figures['rate_hz']:7.1f} Hz "
                f"({figures['rate_hz'] / 500.0:.3f} of target)  jitter p50 "
                f"{figures['jitter_p50_ms']:.3f} ms  p99 {figures['jitter_p99_ms']:.3f} ms  "
                f"max period {figures['max_period_ms']:.2f} ms  late {figures['late']}  "
                f"skipped {figures['skipped']}"
            )
        print(
            f"    bridge / baseline: rate {bridge['rate_hz'] / baseline['rate_hz']:.3f}, "
            f"p99 jitter {bridge['jitter_p99_ms'] / max(baseline['jitter_p99_ms'], 1e-6):.1f}x"
        )
        cost = filter_cost(5000)
        print(
            f"    safety filter call (UR5e, workspace box): {cost * 1e6:.0f} us = "
            f"{cost / PERIOD:.3f} of a servo period"
        )
        print(f"    (round trips measured: {statistics.fmean(rtts) * 1e3:.3f} ms mean)")
        from subscription_reader import taken_by

        from robot_il.ros import ur_rtde_bridge

        for round_ in range(args.reader_rounds):
            for taker in ("executor", "reader")[:: 1 - 2 * (round_ % 2)]:
                with taken_by(ur_rtde_bridge, taker):
                    figures = bridge_loop(args.seconds, args.command_hz)
                print(f"(c) commands taken by the {taker:8s} {json.dumps(figures)}", flush=True)
                row = {"code": revision(), "taker": taker, "round": round_,
                       "command_hz": args.command_hz, "seconds": args.seconds,
                       "load_avg": os.getloadavg()[0]}  # fmt: skip
                append_json_line(args.results, row | figures)
    finally:
        rclpy.shutdown()


if __name__ == "__main__":
    main()
