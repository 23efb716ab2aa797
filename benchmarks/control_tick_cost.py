"""CPU of the policy node's control tick, part by part, against a baseline revision.

The control thread of ``policy`` spends each 500 Hz tick on the safety filter (hold checks,
the joint position/velocity/acceleration step, the workspace box with its tool point, the
events), the command message and its publish, and reading the clock; every microsecond of it
holds Python's interpreter lock, which the node's other threads then wait for and it waits
for in turn. This times each part's CPU time (the calling thread's, ``time.thread_time``:
on a loaded machine the wall time is mostly other processes' turns) here and in a baseline
revision of the code (default 7790ad8, before the tick was cut: its
``robot_il/safety/filter.py`` read from git, its message and clock expressions below),
alternated round by round in this process, so that the ratios hold on a loaded machine.
Two command streams at 500 Hz:

- ``tracking``: smooth targets within every limit (a trained policy): few events;
- ``clipped``: random targets beyond the joint limits, a new one every 25 ticks (the
  untrained networks of ``deploy_latency.py``): limits, braking and workspace holds at every
  tick.

Both implementations must let through the same commands on the tracking stream, within 10
µrad (checked here: since ffb9b19 the filter brakes for a target at the exact discrete
stopping speed; the recorded replay of ``tests/safety/test_filter_reference.py`` checks
today's bit for bit).
On the clipped stream they differ since the filter brakes for the workspace box's wall
(1d9e74f), where 7790ad8 held at it: its figures time the same stream, not the same steps.
Publishing goes to a subscriber in another process over loopback DDS, as to ``sim_robot``.

    .venv/bin/python benchmarks/control_tick_cost.py [--rounds 5] [--ticks 3000]

Each run appends a row to ``--results`` (default ``benchmarks/results/control_tick_cost.jsonl``,
the committed rows: give a scratch file to check a checkout) with the load average before and
after, the code (commit) and the UTC time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from git_revision import module_at
from json_lines import append_json_line

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).parent / "results" / "control_tick_cost.jsonl"
PERIOD = 0.002
"""s: the policy node's 500 Hz."""
HOME = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
FILTER_PARTS = ("_hold_reasons", "_limited_step", "_workspace_violation", "_emit")
"""The filter's steps, the same methods in both implementations."""


def baseline_filter_module(revision: str):
    """``robot_il/safety/filter.py`` of ``revision`` as a module of its own."""
    return module_at(revision, "robot_il/safety/filter.py", "baseline_filter")


def node_limits():
    """The policy node's limits at 500 Hz (its parameters' defaults)."""
    from robot_il.envs.ur5e.description import JOINT_VEL_LIMITS

    from robot_il.safety import SafetyLimits

    return SafetyLimits.ur5e(
        acceleration=np.full(6, 10.0),
        max_step=max(0.05, float(np.max(JOINT_VEL_LIMITS)) * PERIOD),
        max_observation_age=0.1,
        max_command_age=0.5,
        ramp_duration=1.0,
    )


def command_stream(kind: str, ticks: int, limits) -> np.ndarray:
    """(ticks, 6) joint targets (rad) of stream ``kind``."""
    if kind == "tracking":
        phase = np.arange(ticks)[:, None] * PERIOD * 2 * np.pi * 0.5
        return HOME + 0.3 * np.sin(phase + np.arange(6))
    rng = np.random.default_rng(0)
    lower, upper = limits.position_lower - 0.5, limits.position_upper + 0.5
    return np.repeat(rng.uniform(lower, upper, (ticks // 25 + 1, 6)), 25, axis=0)[:ticks]


def make_filter(module, limits):
    """A filter of ``module`` as the policy node makes it (the current one with the
    closed-form tool point, which the baseline did not have)."""
    from robot_il.envs.ur5e.kinematics import forward_kinematics, tcp_point

    kw = dict(period=PERIOD, on_event=lambda event: None, log_events=False)
    if "tool_point" in module.SafetyFilter.__init__.__code__.co_varnames:
        kw["tool_point"] = tcp_point
    return module.SafetyFilter(limits, forward_kinematics, **kw)


def _timed(spent: dict[str, int], name: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0) + time.thread_time_ns() - start

    return wrapper


def run_filter(module, limits, targets: np.ndarray, parts: bool) -> tuple[dict, np.ndarray]:
    """Feed ``targets`` to a fresh filter at 500 Hz; µs per tick of the whole call (and with
    ``parts`` of each step and the tool point/FK, through timing wrappers), and the commands.
    The first second (the safe start's ramp) is not timed."""
    safety = make_filter(module, limits)
    spent: dict[str, int] = {}
    if parts:
        for name in FILTER_PARTS:
            setattr(safety, name, _timed(spent, name, getattr(safety, name)))
        kinematics = "_tool_point" if hasattr(safety, "_tool_point") else "fk"
        setattr(safety, kinematics, _timed(spent, "tool point / FK", getattr(safety, kinematics)))
    skip = int(limits.ramp_duration / PERIOD)
    out, total, t, measured = np.empty_like(targets), 0, 100.0, HOME.copy()
    for i, target in enumerate(targets):
        t += PERIOD
        safety.watchdog(t - 0.001, t)
        if i == skip:
            spent.clear()
        start = time.thread_time_ns()
        command = safety.filter(target, measured, t, command_stamp=t - 0.01).command
        if i >= skip:
            total += time.thread_time_ns() - start
        out[i] = measured = command
    timed = len(targets) - skip
    figures = {"filter": total / timed / 1e3}
    figures |= {name: ns / timed / 1e3 for name, ns in spent.items()}
    return figures, out


def baseline_message(commands: list[np.ndarray]):
    """The baseline's command message: a new one per tick, from a list."""
    from std_msgs.msg import Float64MultiArray

    return Float64MultiArray(data=np.concatenate(commands).tolist())


SUBSCRIBER = """
import os, signal, sys
import rclpy
from std_msgs.msg import Float64MultiArray
rclpy.init(domain_id=int(sys.argv[1]))
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
node = rclpy.create_node("tick_cost_subscriber")
node.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                         lambda msg: None, 10)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def per_call_us(function: Callable[[], object], calls: int) -> float:
    start = time.thread_time_ns()
    for _ in range(calls):
        function()
    return (time.thread_time_ns() - start) / calls / 1e3


def main() -> int:
    from robot_il.cli.flags import DOMAIN_ID

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds")
    parser.add_argument("--ticks", type=int, default=3000, help="ticks per stream and round")
    parser.add_argument("--baseline", default="7790ad8", help="git revision to compare with")
    parser.add_argument(
        "--domain", type=DOMAIN_ID, default=None, help="ROS domain (default: a free one)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from tqdm import tqdm

    import robot_il.safety.filter as current
    from robot_il.provenance import code_provenance, revision
    from robot_il.ros.dds import apply_loopback_env, hold_domain, loopback_env

    # the lock, held while the run lasts, keeps other robot_il processes off its domain
    args.domain, args.domain_lock = hold_domain(args.domain, "benchmarks/control_tick_cost.py")
    apply_loopback_env(args.domain)
    limits = node_limits()
    untimed = int(limits.ramp_duration / PERIOD)  # ``run_filter``: the safe start's ramp
    if args.ticks <= untimed:
        parser.error(f"--ticks {args.ticks}: the first {untimed} ticks (the safe start's "
                     f"{limits.ramp_duration:g} s ramp) are not timed; give more")  # fmt: skip
    code_provenance()  # the code this process loaded, for its row
    load_before = os.getloadavg()
    baseline = baseline_filter_module(args.baseline)
    implementations = {"baseline": baseline, "current": current}
    streams = {kind: command_stream(kind, args.ticks, limits) for kind in ("tracking", "clipped")}

    import rclpy
    from std_msgs.msg import Float64MultiArray

    from robot_il.ros.ur_topics import fill_command

    def current_message(msg, commands: list[np.ndarray]):
        """The node's command message: one refilled from bytes."""
        fill_command(msg, commands)
        return msg

    subscriber = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, str(args.domain)],
        env={**os.environ, **loopback_env(args.domain)},
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain)
    node = rclpy.create_node("tick_cost", context=context)
    publisher = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    msg, arm = Float64MultiArray(), [HOME.copy()]
    calls = 20 * args.ticks
    other_parts: dict[str, dict[str, Callable[[], object]]] = {
        "baseline": {
            "message": lambda: baseline_message(arm),
            "message + publish": lambda: publisher.publish(baseline_message(arm)),
            "clock": lambda: node.get_clock().now().nanoseconds * 1e-9,
        },
        "current": {
            "message": lambda: current_message(msg, arm),
            "message + publish": lambda: publisher.publish(current_message(msg, arm)),
            "clock": lambda: time.time_ns() * 1e-9,
        },
    }

    samples: dict[tuple[str, str, str], list[float]] = {}
    try:
        for round_ in tqdm(range(args.rounds), desc="rounds"):
            order = list(implementations) if round_ % 2 == 0 else list(implementations)[::-1]
            for name in order:
                outputs = {}
                for kind, targets in streams.items():
                    whole, outputs[kind] = run_filter(implementations[name], limits, targets, False)
                    parts, _ = run_filter(implementations[name], limits, targets, True)
                    samples.setdefault((name, kind, "filter"), []).append(whole["filter"])
                    for part, value in parts.items():
                        if part != "filter":
                            samples.setdefault((name, kind, part), []).append(value)
                for part, function in other_parts[name].items():
                    samples.setdefault((name, "-", part), []).append(per_call_us(function, calls))
                if name == "baseline":
                    reference = outputs
                elif not np.allclose(outputs["tracking"], reference["tracking"], rtol=0, atol=1e-5):
                    # (within rounding of the exact discrete stopping speed, ffb9b19, which
                    # brakes for targets a few microradians otherwise; the clipped stream's
                    # differ since the filter brakes for the workspace box's wall, 1d9e74f: its
                    # timings compare the same stream, not the same decisions)
                    raise SystemExit("tracking: the filters let different commands through")
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        subscriber.terminate()
        try:
            subscriber.wait(timeout=10)
        except subprocess.TimeoutExpired:
            subscriber.kill()
            subscriber.wait()

    load_after = os.getloadavg()
    print(
        f"\nCPU µs per tick, median of {args.rounds} alternated rounds ({args.ticks} ticks each):"
    )
    print(f"{'stream':9s} {'part':22s} {'baseline':>9s} {'current':>9s} {'ratio':>6s}")
    row: dict[str, object] = {}
    for stream, part in sorted({(k[1], k[2]) for k in samples}):
        old = float(np.median(samples.get(("baseline", stream, part), [np.nan])))
        new = float(np.median(samples.get(("current", stream, part), [np.nan])))
        print(f"{stream:9s} {part:22s} {old:9.2f} {new:9.2f} {old / new:6.2f}")
        row[f"{stream}/{part}"] = {"baseline": round(old, 3), "current": round(new, 3)}
    for stream in streams:
        totals = {}
        for name in implementations:
            totals[name] = sum(
                float(np.median(samples[(name, key[0], key[1])]))
                for key in ((stream, "filter"), ("-", "message + publish"), ("-", "clock"))
            )
        print(
            f"{stream:9s} {'tick (filter+publish+clock)':22s} {totals['baseline']:9.2f} "
            f"{totals['current']:9.2f} {totals['baseline'] / totals['current']:6.2f}"
        )
        row[f"{stream}/tick"] = totals
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    row |= {"baseline": args.baseline, "rounds": args.rounds, "ticks": args.ticks}
    row |= {"load_before": load_before, "load_after": load_after, "code": revision(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    append_json_line(args.results, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
