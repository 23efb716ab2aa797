"""Smoothness of the deployed joint commands at each transition, over ROS 2 in real time.

Launches ``deploy_sim.launch.yaml`` (the simulated arm) or ``deploy_ur5e.launch.yaml
use_fake_hardware:=true`` (the RTDE bridge on its fake arm, loopback only) as a user does,
records ``forward_position_controller/commands`` and ``joint_states`` with their publication
times (DDS source timestamps), and drives the transitions a deployment meets: the safe start,
``policy/reset`` while the arm moves, an e-stop and its release, stale observations (the
robot's process stopped for 0.3 s: SIGSTOP) and their recovery, and with ``--switch-to`` a
checkpoint switch taking over at a reset. Per transition (from 0.1 s before it to 1.5 s after,
or the next one), against the limits the safety filter claims (UR5e: pi rad/s; acceleration
``acceleration_limit``, 10 rad/s^2 by default):

- ``back``: the largest step of a joint's command against the way it moved just before (rad):
  a command that jumps back towards the trailing measured pose (a jolt a real arm feels);
- ``step``: the largest change between two commands (rad); ``speed``: the largest change over
  its publication interval, taken as at least one period and at most two (the filter counts a
  late tick as two periods at most), rad/s;
- ``stop``: where the stream holds (e-stop, stale observations), the speed before the hold
  divided by the time the command takes to come to rest (at least one period): the mean
  deceleration the command asks for (rad/s^2), and ``stop_time`` that time (s). An e-stop
  stops the command in one period by design, the arm's own servo braking; every other hold
  is a controlled stop at the acceleration limit;
- ``accel`` and ``jerk``: the largest over 10 ms windows of publication time (rad/s^2, rad/s^3).
  On a loaded machine the node's tick times vary by a millisecond or more, which the filter's
  steps follow; shorter windows measure that jitter, not the commands;
- ``arm_accel``: the same for the measured joints (joint_states stamps), the fake RTDE arm's
  reply (its stamps are its samples'; the simulator's real-time stamps are not its physics
  time, so for ``sim`` read it as an upper bound).

Run on a shared machine: the figures print with the load average, and each run appends rows
to ``--results`` (default ``benchmarks/results/deploy_smoothness.jsonl``).

    .venv/bin/python benchmarks/deploy_smoothness.py --robot sim --checkpoint CKPT --task push
    .venv/bin/python benchmarks/deploy_smoothness.py --robot ur5e_fake \
        --checkpoint tests/ros/fixtures/bc_reach --targets "0.35,-0.2,0.95;0.55,0.2,1.2"
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from robot_il.provenance import revision

RESULTS = Path(__file__).parent / "results" / "deploy_smoothness.jsonl"
BIN = Path(sys.executable).parent
WINDOW = 0.01
"""s of publication time over which velocities, accelerations and jerks are taken."""
LAUNCH = {"sim": "deploy_sim.launch.yaml", "ur5e_fake": "deploy_ur5e.launch.yaml"}
ROBOT_PROCESS = {"sim": "sim_robot", "ur5e_fake": "ur_rtde_bridge"}


def child_pids(pid: int, name: str) -> list[int]:
    """Processes whose parent is ``pid`` and whose command line holds ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and name in command:
            found.append(int(entry.name))
    return found


def windowed(t: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest |velocity|, |acceleration|, |jerk| per sample, from differences over
    :data:`WINDOW` s (``t`` s increasing, ``q`` (n, 6) rad)."""
    grid = np.arange(t[0], t[-1], WINDOW)
    if len(grid) < 4:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    positions = np.stack([np.interp(grid, t, q[:, j]) for j in range(q.shape[1])], axis=1)
    velocity = np.diff(positions, axis=0) / WINDOW
    acceleration = np.diff(velocity, axis=0) / WINDOW
    jerk = np.diff(acceleration, axis=0) / WINDOW
    return (np.abs(velocity).max(1), np.abs(acceleration).max(1), np.abs(jerk).max(1))


def figures(record: dict, period: float) -> list[dict]:
    """One row per transition of a recorded run (see the module docstring)."""
    commands = sorted(record["commands"])
    t = np.array([c[0] for c in commands])
    q = np.array([c[1] for c in commands])
    states = sorted(record["states"])
    ts = np.array([s[0] for s in states])
    qs = np.array([s[1] for s in states])
    rows = []
    marks = record["marks"]
    for i, (name, at) in enumerate(marks):
        end = min(marks[i + 1][1] if i + 1 < len(marks) else t[-1], at + 1.5)
        inside = np.flatnonzero((t >= at - 0.1) & (t < end))
        if len(inside) < 10:
            continue
        steps = np.diff(q[inside], axis=0)
        intervals = np.clip(np.diff(t[inside]), period, 2 * period)
        # against the way each joint moved over the 10 ms before each step
        before = np.array([q[k] - q[max(k - 5, 0)] for k in inside[:-1]])
        back = np.where(np.abs(before) > 1e-6, -steps * np.sign(before), 0.0).max(initial=0.0)
        row = {
            "transition": name,
            "back": float(back),
            "step": float(np.abs(steps).max()),
            "speed": float((np.abs(steps).max(1) / intervals).max()),
        }
        held = [h for h in record["holds"] if at - 0.1 <= h < end]
        if held:
            k = np.searchsorted(t, held[0])
            if k > 5:
                speed = np.abs(q[k - 1] - q[k - 6]).max() / (t[k - 1] - t[k - 6])
                moving = np.abs(np.diff(q[k - 1 : inside[-1] + 1], axis=0)).max(1) > 1e-9
                rest = k - 1 + (int(np.argmin(moving)) if not moving.all() else len(moving))
                row["stop_time"] = float(max(t[rest] - t[k - 1], period))
                row["stop"] = float(speed / row["stop_time"])
        _, acceleration, jerk = windowed(t[inside], q[inside])
        row["accel"] = float(acceleration.max(initial=0.0))
        row["jerk"] = float(jerk.max(initial=0.0))
        measured = (ts >= at - 0.1) & (ts < end)
        if measured.sum() > 10:
            row["arm_accel"] = float(windowed(ts[measured], qs[measured])[1].max(initial=0.0))
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> dict:
    """Launch, drive the transitions, return what was recorded."""
    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64MultiArray, String
    from std_srvs.srv import Trigger

    from robot_il.ros.dds import apply_loopback_env, claim_free_domain, loopback_env
    from robot_il.ros.node_main import SpinThread

    domain, lock = claim_free_domain("benchmarks/deploy_smoothness.py")
    apply_loopback_env(domain)
    argv = [str(BIN / "robot-il"), "launch", "--domain-id", str(domain), LAUNCH[args.robot]]
    argv += [f"checkpoint:={args.checkpoint}", f"control_rate:={args.control_rate}"]
    argv += [f"task:={args.task}"] + (["use_fake_hardware:=true"] if args.robot != "sim" else [])
    log = open(args.log, "w")  # noqa: SIM115 (the launch writes to it until it ends)
    env = {**os.environ, **loopback_env(domain)}
    launch = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(args=[], context=context, domain_id=domain)
    node = rclpy.create_node("smoothness_client", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = SpinThread(executor)
    record: dict = {"commands": [], "states": [], "holds": [], "marks": []}
    guard = threading.Lock()

    def on_command(msg, info) -> None:
        with guard:
            record["commands"].append((info["source_timestamp"] * 1e-9, list(msg.data)))

    def on_state(msg, info) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with guard:
            record["states"].append((stamp, list(msg.position[:6])))

    def on_event(msg) -> None:
        event = json.loads(msg.data)
        if event["kind"] in ("estop", "stale_observation"):
            with guard:
                record["holds"].append(event["t"])

    node.create_subscription(
        Float64MultiArray, "forward_position_controller/commands", on_command, 5000
    )
    node.create_subscription(JointState, "joint_states", on_state, 5000)
    node.create_subscription(String, "safety/events", on_event, 1000)
    estop = node.create_publisher(Bool, "safety/estop", 10)
    switch = node.create_publisher(String, "policy/switch", 10)
    if args.targets:  # the task's input where no simulator publishes it (the RTDE bridge)
        points = [[float(v) for v in p.split(",")] for p in args.targets.split(";")]
        target = node.create_publisher(PointStamped, "task/target", 10)

        def publish_target() -> None:  # a new point every second: the arm keeps moving
            msg = PointStamped()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.point.x, msg.point.y, msg.point.z = points[int(time.time()) % len(points)]
            target.publish(msg)

        node.create_timer(0.02, publish_target)

    def call(name: str) -> None:
        client = node.create_client(Trigger, name)
        if not client.wait_for_service(timeout_sec=30):
            raise SystemExit(f"service {name} not available")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + 30
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)

    def mark(name: str) -> None:
        record["marks"].append((name, time.time()))

    try:
        deadline = time.monotonic() + 180
        while not record["commands"]:
            if launch.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"no command from the launch; see {args.log}")
            time.sleep(0.02)
        mark("safe start")
        for step in ["reset", "estop", "stale"] + (["switch"] if args.switch_to else []):
            time.sleep(args.settle)
            if step == "reset":
                mark("reset in motion")
                call("policy/reset")
            elif step == "estop":
                mark("e-stop")
                estop.publish(Bool(data=True))
                time.sleep(1.0)
                mark("e-stop release")
                call("safety/reset_estop")
            elif step == "stale":
                robot = child_pids(launch.pid, ROBOT_PROCESS[args.robot])
                mark("stale observations")
                for pid in robot:
                    os.kill(pid, signal.SIGSTOP)
                time.sleep(0.3)
                for pid in robot:
                    os.kill(pid, signal.SIGCONT)
                mark("stale recovery")
            elif step == "switch":
                switch.publish(String(data=args.switch_to))
                while "loaded" not in Path(args.log).read_text():
                    time.sleep(0.05)
                mark("switch at reset")
                call("policy/reset")
        time.sleep(args.settle)
    finally:
        launch.send_signal(signal.SIGINT)
        try:
            launch.wait(30)
        except subprocess.TimeoutExpired:
            launch.kill()
        spin.stop(timeout=5)
        node.destroy_node()
        rclpy.shutdown(context=context)
        lock.close()
        log.close()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", choices=sorted(LAUNCH), default="sim")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", default="reach")
    parser.add_argument("--switch-to", default="", help="checkpoint to switch to at a reset")
    parser.add_argument("--targets", default="", help="x,y,z;x,y,z: task/target points (m)")
    parser.add_argument("--control-rate", type=float, default=500.0)
    parser.add_argument("--settle", type=float, default=2.0, help="s between transitions")
    parser.add_argument("--acceleration-limit", type=float, default=10.0)
    parser.add_argument("--log", default="/tmp/deploy_smoothness.log")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    record = run(args)
    rows = figures(record, 1.0 / args.control_rate)
    print(
        f"{args.robot}, {args.checkpoint}, {args.control_rate:g} Hz; limits: speed pi rad/s, "
        f"acceleration {args.acceleration_limit:g} rad/s^2; load average {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"
    )
    print(f"{'transition':20s} {'back':>7s} {'step':>7s} {'speed':>6s} {'stop':>7s} "
          f"{'stop_time':>9s} {'accel':>7s} {'jerk':>8s} {'arm_accel':>9s}")  # fmt: skip
    for row in rows:
        print(
            f"{row['transition']:20s} {row['back']:7.4f} {row['step']:7.4f} {row['speed']:6.2f} "
            f"{row.get('stop', float('nan')):7.0f} {row.get('stop_time', float('nan')):9.3f} "
            f"{row['accel']:7.1f} {row['jerk']:8.0f} "
            f"{row.get('arm_accel', float('nan')):9.1f}"
        )
    common = {
        "robot": args.robot,
        "checkpoint": args.checkpoint,
        "control_rate": args.control_rate,
        "load_avg": load,
        "code": revision(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as out:
        for row in rows:
            out.write(json.dumps({**common, **row}) + "\n")


if __name__ == "__main__":
    main()
