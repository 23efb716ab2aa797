"""Deploy-node timing: observation-to-command latency and the achieved control rate.

Runs ``sim_robot`` (MuJoCo reach, real time, 500 Hz joint states) in its own process and the
policy node in this one, over loopback DDS, for a BC policy and a Diffusion Policy (chunks of
8 actions at 20 Hz, 10 DDIM steps) at command rates of 125 Hz and 500 Hz. The networks have
the training defaults' sizes with untrained weights: inference costs the same.

Figures, each a ratio to its target (the goal in brackets):

- ``rate``: achieved command rate / target rate [1.00]; it counts the ticks the loop runs at
  once to catch up after a late one (``robot_il.deploy.ticker``), so read it with
- ``caught up``: share of ticks that came less than half a period after the previous one;
- ``jitter p99``: 99th percentile of |period - target period| / 1 ms [< 1 for BC at 500 Hz];
- ``max gap``: longest time between two commands / target period [<= 1 + jitter];
- ``latency p50/p99``: age of the joint state a command was computed from / target period;
- ``starved``: longest time the action timeline had run out (the next chunk was late) /
  target period [0 for chunked Diffusion: chunks follow one another without pauses];
- ``gaps > 2``: how many times two commands were more than two periods apart;
- ``steal``: CPU time (ms, both CPUs) the hypervisor gave to other guests during the measured
  window (``/proc/stat``). This machine is a virtual one: a virtual CPU taken away stalls even
  a real-time thread, and no setting inside it can prevent that. BC at 500 Hz as shipped
  (variants ``simfifo``, ``exec2`` and ``same``: the shipped side of each alternated set;
  not the ``hb`` set, run beside heartbeat processes),
  runs started at load 8-12 (``load_before``; one at 7.96 left out: 20 ms of steal, rate
  1.000, gap 1.75): the 13 runs with at most 40 ms of steal per 10 s held rate
  1.000, jitter p99 0.71-0.88 ms and a longest gap of 1.59-1.99 periods (two 2.14 and 2.44);
  the 4 with 60 ms or more had gaps of 2.5-21 periods
  (``benchmarks/results/deploy_stall_diagnosis.jsonl``, tag ``steal``). Read a row with its
  steal, as with its load.

And what the node did meanwhile (read with the gaps): ``tick CPU`` p50/p99, the control
thread's CPU time per tick (µs; ``time.thread_time``: on this virtual machine it may include
time the hypervisor took), the garbage collections of the window (count, longest), for each
of the 5 longest gaps the wall and CPU time of the tick that opened it and the collection
time within it (ms), and each thread's share of a core (``threads' CPU %``: the interpreter
lock's other holders; the executor's ``spin`` thread and its two workers).

With ``--priority`` (default 40) the policy node's threads run in SCHED_FIFO, ``sim_robot``'s
10 below, and the inference process in the normal class at nice -10 (a real-time inference
process stalled the control loop: ``robot_il.deploy.worker``). Run it on a quiet machine:

    .venv/bin/python benchmarks/deploy_latency.py [--seconds 10]

Each row is also appended to ``--results`` (default ``benchmarks/results/deploy_latency.jsonl``,
the committed rows: give a scratch file to check a checkout) with the load average, the code
(commit, ``+changes`` if it differed) and the UTC time.

``--baseline-rounds N`` then runs each policy at 500 Hz ``N`` times more with the control loop
the node had before :mod:`robot_il.deploy.ticker` (sleep to the deadline, start over from
"now" after an overrun) alternated with the node's own, in this process on the same cores:
a ratio that a loaded machine cannot fake (rows with ``"loop": "baseline"``/``"node"``).
``--tick-rounds N`` does the same for the control tick: ``--tick-baseline``'s (default
7790ad8: numpy safety filter, command message from a list, rclpy's clock) against the node's
(rows with ``"tick"``); ``benchmarks/control_tick_cost.py`` times the tick's parts alone.
``--handler-rounds N``: the node with rclpy's default QoS event handlers against without
(rows with ``"qos_event_handlers"``). ``--reader-rounds N``: the node's joint states taken by
its executor (the code before ``robot_il.ros.subscription_reader``) against by its reader
thread (rows with ``"joint_states"``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

RATES = (125.0, 500.0)
RESULTS = Path(__file__).parent / "results" / "deploy_latency.jsonl"


def measure(
    checkpoint: Path,
    rate: float,
    seconds: float,
    context,
    priority: int,
    settle: float,
) -> dict[str, float]:
    """Run the policy node for ``seconds`` (after ``settle`` s) and summarise its timing."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from robot_il.ros.node_main import SpinThread
    from robot_il.ros.policy_node import PolicyNode

    node = PolicyNode(
        context=context,
        parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("control_rate", value=rate),
            Parameter("realtime_priority", value=priority),
            Parameter("inference_nice", value=-10 if priority > 0 else 0),
            # The benchmark measures timing; an untrained network's targets are clipped and
            # held by the safety layer, which costs the same as passing them.
        ],
    )
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spin = SpinThread(executor)
    ticks_cpu, gc_pauses = _record_ticks(node), _GcPauses()
    try:
        deadline = time.monotonic() + 60
        while not node.command_log and time.monotonic() < deadline:
            time.sleep(0.05)
        if not node.command_log:
            raise RuntimeError("the policy node got no joint states from sim_robot")
        time.sleep(settle)
        start, faults_before, steal_before = time.monotonic(), _page_faults(), _steal()
        threads_before = _thread_cpu()
        load_before = os.getloadavg()[0]
        node.starved_ticks, node.longest_starved = 0, 0.0
        with gc_pauses:
            time.sleep(seconds)
        faults, steal = _page_faults() - faults_before, _steal() - steal_before
        threads = {
            name: round(100 * (cpu - threads_before.get(name, 0.0)) / seconds, 1)
            for name, cpu in _thread_cpu().items()
        }
        ticks = np.array([t for t in list(node.tick_times) if t >= start])
        log = np.array(list(node.command_log)[-len(ticks) :])
    finally:
        longest_starved = node.longest_starved
        try:
            spin.stop()
        finally:
            node.shutdown()
    period = 1.0 / rate
    periods = np.diff(ticks)
    jitter = np.abs(periods - period)
    latency = log[:, 1] - log[:, 0]
    own = np.array([row for row in ticks_cpu if row[0] >= start])  # (start, wall, cpu) s
    return _diagnosis(ticks, periods, own, gc_pauses.pauses) | {
        "rate": (len(ticks) - 1) / (ticks[-1] - ticks[0]) / rate,
        "jitter_p99_ms": float(np.percentile(jitter, 99) * 1e3),
        "max_gap": float(periods.max() / period),
        "caught_up": float(np.mean(periods < 0.5 * period)),
        "latency_p50": float(np.percentile(latency, 50) / period),
        "latency_p99": float(np.percentile(latency, 99) / period),
        "starved": float(longest_starved / period),
        "gaps_over_2": int(np.sum(periods > 2 * period)),
        "longest_gaps_ms": np.round(np.sort(periods)[-5:][::-1] * 1e3, 2).tolist(),
        "page_faults_per_s": faults / seconds,
        "steal_ms": steal * 1e3,
        "load_avg_before": load_before,
        "thread_cpu_percent": {k: v for k, v in threads.items() if v >= 0.5},
    }


def _record_ticks(node) -> list[tuple[float, float, float]]:
    """From now on, (monotonic start, wall time, control thread CPU time) in s of each of
    ``node``'s control ticks (about 2 µs of clock reads per tick)."""
    ticks: list[tuple[float, float, float]] = []
    tick = node._control_tick

    def recorded(now: float) -> None:
        start, cpu = time.monotonic(), time.thread_time()
        try:
            tick(now)
        finally:
            ticks.append((start, time.monotonic() - start, time.thread_time() - cpu))

    node._control_tick = recorded
    return ticks


class _GcPauses:
    """(monotonic start, duration) in s of every garbage collection of this process (the
    policy node's) while in the ``with`` block: a collection holds the interpreter lock."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.monotonic()
        else:
            self.pauses.append((self._start, time.monotonic() - self._start))

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _diagnosis(
    ticks: np.ndarray, periods: np.ndarray, own: np.ndarray, pauses: list[tuple[float, float]]
) -> dict[str, object]:
    """What the control thread itself did around its longest gaps: for each of the 5, the
    wall and CPU time (ms) of the tick that opened it (a tick that computes for long makes its
    own gap; one that waited for the interpreter lock or a core has wall >> CPU) and the garbage
    collection time (ms) within it; and the ticks' own CPU (µs) and collections overall."""
    longest = np.argsort(periods)[-5:][::-1]
    gaps = []
    for i in longest:
        begin, end = ticks[i], ticks[i + 1]
        k = int(np.searchsorted(own[:, 0], begin)) if len(own) else 0
        wall, cpu = (own[k, 1], own[k, 2]) if k < len(own) else (np.nan, np.nan)
        collected = sum(d for s, d in pauses if s < end and s + d > begin)
        gaps.append([round(float(1e3 * (end - begin)), 2), round(float(1e3 * wall), 3),
                     round(float(1e3 * cpu), 3), round(float(1e3 * collected), 3)])  # fmt: skip
    cpu = own[:, 2] * 1e6 if len(own) else np.full(1, np.nan)
    return {
        "longest_gaps_wall_cpu_gc_ms": gaps,
        "tick_cpu_us_p50": float(np.percentile(cpu, 50)),
        "tick_cpu_us_p99": float(np.percentile(cpu, 99)),
        "tick_cpu_us_max": float(cpu.max()),
        "gc_collections": len(pauses),
        "gc_longest_ms": max((1e3 * d for _, d in pauses), default=0.0),
    }


def _thread_cpu() -> dict[str, float]:
    """CPU time (s) of each thread of this process so far, by Python thread name (others by
    their kernel name and id): which threads hold the interpreter lock, and how much."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm, fields = (task / "stat").read_text().rsplit(")", 1)
        except OSError:  # the thread ended
            continue
        utime, stime = fields.split()[11:13]  # stat fields 14 and 15, clock ticks
        name = names.get(int(task.name)) or f"{comm.split('(', 1)[1]}-{task.name}"
        out[name] = (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
    return out


def _steal() -> float:
    """CPU time (s, all CPUs) the hypervisor gave to other guests so far: a virtual CPU taken
    away stalls even a real-time thread, and nothing in this machine can see it but here."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf(
        "SC_CLK_TCK"
    )  # cpu user nice system idle iowait irq softirq steal


def _page_faults() -> int:
    """Minor and major page faults of this process (all threads) so far: a thread that
    faults while holding the interpreter lock holds up the control thread."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[9])  # minflt, majflt (stat fields 10 and 12)


def main() -> int:
    from robot_il.cli.flags import DOMAIN_ID

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--settle", type=float, default=5.0, help="unmeasured start, s")
    parser.add_argument(
        "--policies", default="bc,diffusion", help="policy types in the order they run"
    )
    parser.add_argument(
        "--domain", type=DOMAIN_ID, default=None, help="ROS domain (default: a free one)"
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=40,
        help="SCHED_FIFO priority of the policy node (0: off), sim_robot 10 less; inference "
        "stays in the normal class, at nice -10 when this is on",
    )
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=0,
        help="then alternate the old restart-from-now control loop and the node's at 500 Hz, "
        "this many rounds per policy",
    )
    parser.add_argument(
        "--tick-rounds",
        type=int,
        default=0,
        help="then alternate the control tick of --tick-baseline (its safety filter, a command "
        "message built from a list, rclpy's clock) and the node's own at 500 Hz, this many "
        "rounds per policy: the tick's CPU time in the running node",
    )
    parser.add_argument("--tick-baseline", default="7790ad8", help="git revision for --tick-rounds")
    parser.add_argument(
        "--handler-rounds",
        type=int,
        default=0,
        help="then alternate the policy node with rclpy's default QoS event handlers on its "
        "publishers and subscriptions and without (as it runs), at 500 Hz, this many rounds",
    )
    parser.add_argument(
        "--reader-rounds",
        type=int,
        default=0,
        help="then alternate the policy node with its joint states taken by its executor and "
        "by its reader thread, this many rounds per policy",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from robot_il.policies.untrained import untrained_reach_checkpoint
    from subscription_reader import taken_by

    import robot_il.ros.observation as observation
    from robot_il.provenance import code_provenance

    code_provenance()  # the code this process loaded, for its rows (``_append_row``)

    from robot_il.ros.dds import apply_loopback_env, hold_domain, loopback_env

    # the lock, held while the run lasts, keeps other robot_il processes off its domain
    args.domain, args.domain_lock = hold_domain(args.domain, "benchmarks/deploy_latency.py")
    apply_loopback_env(args.domain)
    import rclpy

    bin_dir = Path(sys.executable).parent
    sim = subprocess.Popen(
        [str(bin_dir / "sim_robot"), "--ros-args", "-p", "task:=reach"]
        + ["-p", f"realtime_priority:={max(args.priority - 10, 0)}"],
        env={**os.environ, **loopback_env(args.domain)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain)
    rows = []
    print(f"load average at the start {os.getloadavg()[0]:.1f}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as work:
            for policy_type in args.policies.split(","):
                checkpoint = untrained_reach_checkpoint(policy_type, Path(work))
                for rate in RATES:
                    figures = measure(
                        checkpoint, rate, args.seconds, context, args.priority, args.settle
                    )
                    rows.append((policy_type, rate, figures))
                    print(_row(policy_type, rate, figures), flush=True)
                    _append_row(args.results, {"policy": policy_type, "rate_hz": rate,
                                               **figures}, args.seconds)  # fmt: skip

                at_500 = functools.partial(measure, checkpoint, 500.0, args.seconds, context,
                                           args.priority, args.settle)  # fmt: skip
                ab = _AlternatedRows(policy_type, at_500, args.seconds, args.results)
                ab.run(args.baseline_rounds, ("baseline", "node"), _control_loop, "loop",
                       swap=False)  # fmt: skip
                ab.run(args.tick_rounds, ("baseline", "node"),
                       lambda tick: _control_tick(tick, args.tick_baseline), "tick",
                       extra={"tick_baseline": args.tick_baseline})  # fmt: skip
                ab.run(args.handler_rounds, ("default", "none"), _qos_event_handlers,
                       "qos_event_handlers")  # fmt: skip
                ab.run(args.reader_rounds, ("executor", "reader"),
                       functools.partial(taken_by, observation), "joint_states")  # fmt: skip
    finally:
        rclpy.shutdown(context=context)
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    print(
        f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machine), "
        f"control thread SCHED_FIFO priority {args.priority}"
    )
    return 0


def _restart_from_now_loop(node) -> None:
    """The policy node's control loop before ``robot_il.deploy.ticker`` (the baseline)."""
    from rclpy._rclpy_pybind11 import RCLError

    next_tick = time.monotonic()
    while node._running and node.context.ok():
        now = node._now()
        node.tick_times.append(time.monotonic())
        try:
            node._control_tick(now)
        except RCLError:
            return
        next_tick += node.period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            time.sleep(0.1 * node.period)
            next_tick = time.monotonic()


@contextlib.contextmanager
def _control_loop(loop: str):
    """Policy nodes made inside run the ``baseline`` loop or the ``node``'s own."""
    from robot_il.ros.policy_node import PolicyNode

    own = PolicyNode._control_loop
    if loop == "baseline":
        PolicyNode._control_loop = _restart_from_now_loop
    try:
        yield
    finally:
        PolicyNode._control_loop = own


@contextlib.contextmanager
def _control_tick(tick: str, revision: str):
    """Policy nodes made inside tick as the node does (``node``) or as at ``revision``
    (``baseline``): that revision's safety filter (numpy, the compiled FK, every event's line
    written), command messages filled from a list (the message checks every value; the
    baseline also built a new message per tick) and the time read through rclpy's clock."""
    from robot_il.ros import policy_node

    if tick == "node":
        yield
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from control_tick_cost import baseline_filter_module
    from robot_il.envs.ur5e.kinematics import forward_kinematics

    baseline = baseline_filter_module(revision).SafetyFilter

    def baseline_filter(limits, *, tool_point, **kw):  # the node's tool point: the FK there
        return baseline(limits, forward_kinematics, **kw)

    def fill_from_list(msg, commands) -> None:
        msg.data = np.concatenate(commands).tolist()

    def rclpy_clock(node) -> float:
        return node.get_clock().now().nanoseconds * 1e-9

    own = policy_node.SafetyFilter, policy_node.fill_command, policy_node.PolicyNode._now
    policy_node.SafetyFilter, policy_node.fill_command = baseline_filter, fill_from_list
    policy_node.PolicyNode._now = rclpy_clock
    try:
        yield
    finally:
        policy_node.SafetyFilter, policy_node.fill_command, policy_node.PolicyNode._now = own


@contextlib.contextmanager
def _qos_event_handlers(kind: str):
    """Policy nodes made inside have rclpy's ``default`` QoS event handlers on their
    publishers and subscriptions, or ``none`` (as the node has them)."""
    from rclpy.node import Node

    from robot_il.ros.policy_node import PolicyNode

    own = PolicyNode.create_publisher, PolicyNode.create_subscription
    if kind == "default":
        PolicyNode.create_publisher = Node.create_publisher
        PolicyNode.create_subscription = Node.create_subscription
    try:
        yield
    finally:
        PolicyNode.create_publisher, PolicyNode.create_subscription = own


def _row(policy_type: str, rate: float, f: dict[str, float]) -> str:
    return (
        f"{policy_type:9s} {rate:5.0f} Hz  rate {f['rate']:.3f}  "
        f"jitter p99 {f['jitter_p99_ms']:.2f} (x 1 ms)  max gap {f['max_gap']:.2f}  "
        f"caught up {f['caught_up']:.3f}  "
        f"latency p50 {f['latency_p50']:.2f} p99 {f['latency_p99']:.2f}  "
        f"starved {f['starved']:.2f}  (x period)  gaps > 2: {f['gaps_over_2']}  "
        f"steal {f['steal_ms']:.0f} ms  load {f['load_avg_before']:.1f}  "
        f"tick CPU p50 {f['tick_cpu_us_p50']:.0f} p99 {f['tick_cpu_us_p99']:.0f} µs  "
        f"gc {f['gc_collections']} (longest {f['gc_longest_ms']:.2f} ms)\n"
        f"          longest gaps [gap, its first tick's wall, CPU, gc] ms: "
        f"{f['longest_gaps_wall_cpu_gc_ms']}\n          threads' CPU %: {f['thread_cpu_percent']}"
    )


def _append_row(results: Path, record: dict[str, Any], seconds: float) -> None:
    """Append one row to ``results`` with the measurement's length, the 1-min load average,
    the code that measured it and the UTC time."""
    from robot_il.provenance import revision

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record |= {"seconds": seconds, "load_avg": os.getloadavg()[0], "code": revision(),
               "utc": stamp}  # fmt: skip
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as out:
        out.write(json.dumps(record) + "\n")


class _AlternatedRows:
    """A/B rounds at 500 Hz: each round measures every variant under its switch (a context
    manager that installs it), prints and appends a row naming the variant in ``field``."""

    def __init__(self, policy_type: str, measure_500: Callable[[], dict[str, Any]],
                 seconds: float, results: Path) -> None:  # fmt: skip
        self.policy_type, self.measure_500, self.seconds = policy_type, measure_500, seconds
        self.results = results

    def run(
        self,
        rounds: int,
        variants: tuple[str, str],
        switch: Callable[[str], Any],
        field: str,
        swap: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """``swap``: odd rounds take the variants in reverse order (so neither always goes
        first on a machine whose load drifts)."""
        for round_ in range(rounds):
            order = variants[::-1] if swap and round_ % 2 else variants
            for variant in order:
                with switch(variant):
                    figures = self.measure_500()
                print(f"{field} {variant:8s} " + _row(self.policy_type, 500.0, figures), flush=True)
                record = {"policy": self.policy_type, "rate_hz": 500.0, field: variant, **figures}
                _append_row(self.results, record | {"round": round_, **(extra or {})},
                            self.seconds)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
