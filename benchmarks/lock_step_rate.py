"""Lock-step exchange rate with ``sim_robot``: how many simulated steps a second a client that
answers every joint state at once gets, on an idle machine and with one core kept busy.

Why: ``robot-il select sim``, ``robot-il eval --ros`` and the demo run ``sim_robot`` in
lock-step, one DDS round trip per step, and every round trip wakes a sleeping thread twice.
On a virtual machine whose idle virtual CPUs halt (this one: Firecracker, ``cpuidle``
haltpoll with ``guest_halt_poll_ns=0``), each wake-up can take tens to hundreds of ms, so the
exchange runs far slower on an idle machine than on a busy one. Three conditions are
alternated in one process (``--rounds``): idle; idle with the CPUs kept awake (a PM QoS
wake-up latency of 0 held, what ``sim_robot`` itself asks for in lock-step by default:
``robot_il.ros.node_main.keep_cpus_awake``; here ``sim_robot`` runs with
``keep_cpus_awake:=false`` and the benchmark holds it); and beside a child process that
spins on one core. The ratios to idle are what the machine's wake-up latency costs and how
much of it the request wins back.

The client is the bare protocol (no policy, no safety layer): on each joint state it
publishes the measured joints as the next command. ``sim_robot`` runs MuJoCo ``reach`` with
25 physics steps (50 ms) per command, as ``deploy_select_sim.launch.yaml`` does.

    .venv/bin/python benchmarks/lock_step_rate.py [--seconds 10] [--rounds 2]

Each condition's row is appended to ``--results`` (default
``benchmarks/results/lock_step_rate.jsonl``, the committed rows: give a scratch file to check
a checkout) with the load average, the hypervisor's steal (CPU time given to other guests,
``/proc/stat``), the code (commit) and the UTC time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "lock_step_rate.jsonl"
STEPS_PER_COMMAND = 25
COMMANDS = "forward_position_controller/commands"
CONDITIONS = ("idle", "kept awake", "busy core")


def _spin_forever() -> None:
    while True:
        pass


def _steal() -> float:
    """CPU time (s, all CPUs) the hypervisor gave to other guests so far."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


class Responder:
    """The bare lock-step client: on each joint state it publishes the measured joints as the
    next command, and notes when states arrive and how long each round trip took."""

    def __init__(self, context) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        self._message = Float64MultiArray
        self.node = Node("lock_step_rate", context=context)
        self._publisher = self.node.create_publisher(Float64MultiArray, COMMANDS, 10)
        self.node.create_subscription(JointState, "joint_states", self._answer, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.arrivals: list[float] = []
        self.round_trips: list[float] = []
        self._sent: float | None = None

    def _answer(self, msg) -> None:
        now = time.monotonic()
        self.arrivals.append(now)
        if self._sent is not None:
            self.round_trips.append(now - self._sent)
        self._publisher.publish(self._message(data=list(msg.position[:6])))
        self._sent = time.monotonic()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def measure(self, seconds: float) -> dict[str, float]:
        """The exchange's rate (steps/s) over ``seconds`` s, its round trips (command out to
        the next joint state in, ms) and the hypervisor's steal meanwhile."""
        self.arrivals.clear()
        self.round_trips.clear()
        steal = _steal()
        self.spin(seconds)
        trips = np.array(self.round_trips) * 1e3
        return {
            "steps_per_s": len(self.arrivals) / seconds,
            "round_trip_ms_p50": float(np.median(trips)) if trips.size else float("nan"),
            "round_trip_ms_p90": float(np.percentile(trips, 90)) if trips.size else float("nan"),
            "steal_ms": (_steal() - steal) * 1e3,
        }


def main() -> int:
    from robot_il.cli.flags import DOMAIN_ID

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per row")
    parser.add_argument("--rounds", type=int, default=2, help="idle/busy pairs, alternated")
    parser.add_argument(
        "--domain", type=DOMAIN_ID, default=None, help="ROS domain (default: a free one)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")
    from robot_il.provenance import code_provenance, revision

    code_provenance()  # the code this process loaded, for its rows

    from robot_il.ros.dds import apply_loopback_env, hold_domain, loopback_env
    from robot_il.ros.node_main import keep_cpus_awake
    from robot_il.ros.ros_eval import stop_process

    # the lock, held while the run lasts, keeps other robot_il processes off its domain
    args.domain, args.domain_lock = hold_domain(args.domain, "benchmarks/lock_step_rate.py")
    apply_loopback_env(args.domain)
    import rclpy

    sim = subprocess.Popen(
        [str(Path(sys.executable).parent / "sim_robot"), "--ros-args", "-p", "task:=reach"]
        + ["-p", "lock_step:=true", "-p", f"steps_per_command:={STEPS_PER_COMMAND}"]
        + ["-p", f"publish_every:={STEPS_PER_COMMAND}", "-p", "keep_cpus_awake:=false"],
        env={**os.environ, **loopback_env(args.domain)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain)
    responder = Responder(context)
    rows = []
    try:
        deadline = time.monotonic() + 60.0
        while not responder.arrivals and time.monotonic() < deadline:
            responder.spin(0.1)  # sim_robot starting
        if not responder.arrivals:
            raise SystemExit("sim_robot sent no joint state within 60 s")
        responder.spin(2.0)  # warm-up
        for round_index in range(args.rounds):
            for condition in CONDITIONS:
                spinner = wake_request = None
                if condition == "busy core":
                    spinner = multiprocessing.Process(target=_spin_forever, daemon=True)
                    spinner.start()
                if condition == "kept awake":
                    wake_request = keep_cpus_awake(responder.node)
                    if wake_request is None:
                        continue  # not permitted here (warned): no row
                load = os.getloadavg()[0]
                row = responder.measure(args.seconds)
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()
                if wake_request is not None:
                    wake_request.close()
                row |= {"condition": condition, "round": round_index, "load_avg": load}
                rows.append(row)
                print(
                    f"round {round_index} {condition:10s}: {row['steps_per_s']:6.1f} steps/s, "
                    f"round trip p50 {row['round_trip_ms_p50']:.2f} ms p90 "
                    f"{row['round_trip_ms_p90']:.2f} ms, steal {row['steal_ms']:.0f} ms, "
                    f"load {load:.2f}",
                    flush=True,
                )
    finally:
        responder.executor.shutdown()
        responder.node.destroy_node()
        rclpy.try_shutdown(context=context)
        stop_process(sim)  # SIGINT; killed if a loaded machine keeps it past the deadline
    rates = {c: [r["steps_per_s"] for r in rows if r["condition"] == c] for c in CONDITIONS}
    idle = np.mean(rates["idle"])
    ratios = ", ".join(f"{c} / idle {np.mean(rates[c]) / idle:.1f}x" for c in CONDITIONS[1:]
                       if rates[c])  # fmt: skip
    print(f"{ratios} ({os.cpu_count()} CPUs, {args.seconds:g} s rows)")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for row in rows:
            out.write(json.dumps(row | {"utc": stamp, "seconds": args.seconds,
                                        "code": revision()}) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
