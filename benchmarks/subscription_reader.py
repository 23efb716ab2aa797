"""CPU a node spends on 500 Hz joint states, taken by its executor or a SubscriptionReader.

The policy node and the recorder take in the UR controller's joint states at 500 Hz
(``robot_il.ros.observation``). Taken by rclpy's ``MultiThreadedExecutor``, each message cost
about half a millisecond of interpreter time, which a 500 Hz control loop in the same process
waited for (``deploy_latency``: the executor's threads 45% of a core, the longest gap between
commands over two periods). This builds a ``RobotObservation`` on a ``QuietNode`` spun by the
nodes' executor (two threads, as ``robot_il.ros.node_main`` spins them), with its joint states
taken by the executor (the code before ``SubscriptionReader``, stood in here) and by the
reader, alternated ``--rounds`` times, while a thread publishes a UR5e joint state every 2 ms
(real rclpy over loopback DDS). Each measurement: the CPU of every thread but the publisher's
(``/proc/self/task/*/stat``, user + system) over ``--seconds`` s after a 1 s warm-up, per
message taken in (µs) and in percent of a core; and the messages taken against those sent.
Not a timing of wall clock; still, run it on a quiet machine.

    .venv/bin/python benchmarks/subscription_reader.py [--rounds 3] [--seconds 4]

Each run appends a row to ``--results`` (default
``benchmarks/results/subscription_reader.jsonl``) with the load average and the code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from json_lines import append_row_with_load

RESULTS = Path(__file__).parent / "results" / "subscription_reader.jsonl"
STATE_PERIOD = 0.002
"""s between two joint states: the UR controller's 500 Hz."""


class ExecutorTaken:
    """Stands in for ``SubscriptionReader`` as the code was before it: ordinary subscriptions
    of the node, whose messages the node's executor takes."""

    def __init__(self, node: Any, name: str) -> None:
        self._node = node

    def subscribe(self, msg_type: type, topic: str, callback: Any, qos: Any) -> Any:
        return self._node.create_subscription(msg_type, topic, callback, qos)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def taken_by(module: ModuleType, taker: str) -> Iterator[None]:
    """Nodes of ``module`` made inside take the messages of their ``SubscriptionReader`` by
    the ``executor`` (the code before it, stood in by :class:`ExecutorTaken`) or by their
    ``reader`` thread (as they do)."""
    own = module.SubscriptionReader
    if taker == "executor":
        module.SubscriptionReader = ExecutorTaken
    try:
        yield
    finally:
        module.SubscriptionReader = own


def _thread_cpu_seconds(skip: int) -> float:
    """User + system CPU (s) of this process's threads, but thread ``skip`` (a native id)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        if int(task.name) == skip:
            continue
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def take_in_cost(seconds: float) -> dict[str, float]:
    """CPU of a node taking in joint states at 500 Hz for ``seconds`` s (under
    :func:`taken_by`): µs per message, percent of a core, messages taken and sent."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from sensor_msgs.msg import JointState

    import robot_il.ros.observation as observation
    from robot_il.ros.node_main import SpinThread
    from robot_il.ros.quiet_node import QuietNode
    from robot_il.ros.ur_topics import JOINT_STATES_TOPIC

    context = Context()
    rclpy.init(context=context)
    node = QuietNode("policy", context=context)
    robot = observation.RobotObservation(node, "reach", subscribe=set())
    driver = rclpy.create_node("driver", context=context)
    publisher = driver.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spin = SpinThread(executor)
    names = robot.layout.joint_names(0)
    state = JointState(name=names, position=HOME_JOINT_POS.tolist(), velocity=[0.0] * 6)
    sending, sent, sender_id = threading.Event(), [0], [0]
    sending.set()

    def send() -> None:
        sender_id[0] = threading.get_native_id()
        next_time = time.monotonic()
        while sending.is_set():
            publisher.publish(state)
            sent[0] += 1
            next_time += STATE_PERIOD
            time.sleep(max(0.0, next_time - time.monotonic()))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        time.sleep(1.0)
        with robot.lock:
            taken_before = robot.messages
        sent_before, cpu_before = sent[0], _thread_cpu_seconds(sender_id[0])
        started = time.monotonic()
        time.sleep(seconds)
        cpu = _thread_cpu_seconds(sender_id[0]) - cpu_before
        wall = time.monotonic() - started
        with robot.lock:
            taken = robot.messages - taken_before
        sent_now = sent[0] - sent_before
    finally:
        sending.clear()
        sender.join()
        spin.stop(timeout=10.0)
        robot.close()
        node.destroy_node()
        driver.destroy_node()
        rclpy.shutdown(context=context)
    return {
        "us_per_message": round(1e6 * cpu / max(taken, 1), 1),
        "core_percent": round(100.0 * cpu / wall, 1),
        "taken": taken,
        "sent": sent_now,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured s per round")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    import robot_il.ros.observation as observation
    from robot_il.provenance import code_provenance, revision
    from robot_il.ros.dds import apply_loopback_env, hold_domain

    args.domain, args.domain_lock = hold_domain(None, "benchmarks/subscription_reader.py")
    apply_loopback_env(args.domain)
    code_provenance()
    row: dict[str, Any] = {"code": revision(), "seconds": args.seconds,
                           "load_before": os.getloadavg(), "executor": [],
                           "reader": []}  # fmt: skip
    for _ in range(args.rounds):
        for key in ("executor", "reader"):
            with taken_by(observation, key):
                row[key].append(take_in_cost(args.seconds))
            print(f"joint states taken by the {key}: {row[key][-1]}", flush=True)
    executor, reader = (
        sorted(r["us_per_message"] for r in row[key]) for key in ("executor", "reader")
    )
    row["median_ratio"] = round(executor[args.rounds // 2] / reader[args.rounds // 2], 2)
    print(f"CPU per message, executor / reader (medians): {row['median_ratio']}x")
    append_row_with_load(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
