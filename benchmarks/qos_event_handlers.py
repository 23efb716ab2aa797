"""CPU of ``sim_robot``'s executor thread with and without rclpy's default QoS event handlers.

rclpy gives every publisher and subscription handlers for its QoS events by default; in a node
woken by messages at hundreds of hertz they made the executor thread spin far harder
(``robot_il.ros.quiet_node``). This runs ``sim_robot`` (real MuJoCo, real rclpy over
loopback DDS) in this process, with its class based on ``rclpy.node.Node`` (the handlers) and
on ``QuietNode`` (none), alternated ``--rounds`` times, while a publisher sends it joint
commands at 500 Hz, as the policy node does; each measurement is the executor thread's CPU
(``/proc/self/task/<tid>/stat``, user + system) over ``--seconds`` s after a 2 s warm-up (the
measured wall time: a sleep beside a thread that holds the interpreter wakes late), in
percent of a core. Not a timing of wall clock: it may run beside other work, though a loaded
machine wakes the thread less often.

    .venv/bin/python benchmarks/qos_event_handlers.py [--rounds 2] [--seconds 3]

Each run appends a row to ``--results`` (default
``benchmarks/results/qos_event_handlers.jsonl``) with the load average and the code.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from json_lines import append_row_with_load

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).parent / "results" / "qos_event_handlers.jsonl"
COMMAND_PERIOD = 0.002
"""s between two joint commands: the policy node's 500 Hz."""


def executor_cpu(base: type, seconds: float) -> float:
    """Percent of a core that ``sim_robot``'s executor thread used over ``seconds`` s, its
    class based on ``base``, under joint commands at 500 Hz."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from std_msgs.msg import Float64MultiArray

    import robot_il.ros.sim_robot as sim_robot
    from robot_il.ros.node_main import SpinThread
    from robot_il.ros.ur_topics import COMMAND_TOPIC

    bases, sim_robot.SimRobot.__bases__ = sim_robot.SimRobot.__bases__, (base,)
    context = Context()
    rclpy.init(context=context)
    robot = sim_robot.SimRobot(context=context)
    client = rclpy.create_node("commands", context=context)
    publisher = client.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(robot)
    spin = SpinThread(executor)
    sending = threading.Event()
    sending.set()
    command = Float64MultiArray(data=HOME_JOINT_POS.tolist())

    def send() -> None:
        while sending.is_set():
            publisher.publish(command)
            time.sleep(COMMAND_PERIOD)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    stat = Path(f"/proc/self/task/{spin._thread.native_id}/stat")

    def cpu_ticks() -> int:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

    try:
        time.sleep(2.0)
        before, started = cpu_ticks(), time.monotonic()
        time.sleep(seconds)  # (it may wake late: the executor thread holds the interpreter)
        used = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
        seconds = time.monotonic() - started
    finally:
        sending.clear()
        sender.join()
        spin.stop(timeout=10.0)
        robot.shutdown()
        client.destroy_node()
        rclpy.shutdown(context=context)
        sim_robot.SimRobot.__bases__ = bases
    return 100.0 * used / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured s per round")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from rclpy.node import Node

    from robot_il.provenance import code_provenance, revision
    from robot_il.ros.dds import apply_loopback_env, hold_domain
    from robot_il.ros.quiet_node import QuietNode

    args.domain, args.domain_lock = hold_domain(None, "benchmarks/qos_event_handlers.py")
    apply_loopback_env(args.domain)
    code_provenance()
    row = {"code": revision(), "seconds": args.seconds, "load_before": os.getloadavg(),
           "with_handlers_percent": [], "without_percent": []}  # fmt: skip
    for _ in range(args.rounds):
        for base, key in ((Node, "with_handlers_percent"), (QuietNode, "without_percent")):
            row[key].append(round(executor_cpu(base, args.seconds), 1))
            print(f"sim_robot executor thread, {key}: {row[key][-1]}% of a core", flush=True)
    append_row_with_load(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
