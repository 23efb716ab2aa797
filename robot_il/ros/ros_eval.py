"""Evaluate a checkpoint over ROS 2 exactly as ``robot-il eval`` evaluates it in the env.

The deployment path (``sim_robot`` in lock-step, the ``policy`` node with its safety layer,
each in its own process, over loopback DDS) runs episode ``i`` on env seed ``seed + i``, the
seeds ``robot-il eval`` uses, and judges success as the env does: the task solved at any
policy step within the env's episode length (``episode_seconds`` of the task, in simulated
seconds). What would make the two differ, and how this run removes it:

- *inference time*: in lock-step the policy node waits for each chunk and observes the
  simulator at the chunk's grid time (:class:`robot_il.deploy.ChunkPlanner` with
  ``lock_step``), so inference takes no simulated time and a chunk of n actions executes all
  n, as in the env;
- *command timing*: the command rate is a multiple of the policy's rate (``control_rate``,
  default the policy's own), so every action starts on its own period's first physics step;
- *command interpolation*: off by default (``interpolate``): the env holds each joint target
  for the period, and so does the simulator;
- *episode judging*: ``task/success`` is published at the policy's rate and counted from the
  reset on, for the env's episode length, each message timed by the simulated step that
  published it (:class:`robot_il.ros.step_times.StepTimes`), never by when this process
  happens to read it: the latest ``/clock`` read was a period late at random on a loaded
  machine, and a success in the episode's last period could fall past the limit;
- *reset state*: the policy stops (``policy/stop``: it publishes nothing more), the
  simulator resets to the seed's initial state (dropping any command sent before) and its
  time stands still until the policy's first command of the new episode (``policy/reset``);
  a command of the old episode once started the new one, moving the arms toward the old
  episode's pose;
- *the simulated servo*: ``sim_robot`` in lock-step moves the arm one env step per command
  period, as the env does (stepped 2 ms at a time its servo braked into every held target:
  a different arm);
- *observation timing*: the policy observes the joint states and the object pose of its grid
  time (each in its own message; the object pose used to be a step old at random);
- *sampling*: the policy node seeds episode ``i``'s samples (Diffusion's noise) with
  ``seed + i`` (its ``seed`` parameter), as ``robot-il eval`` does, so an evaluation of a
  sampling policy over ROS 2 repeats itself (it drew from the node's worker's own stream).

A gripper command travels on a topic of its own and may still reach the simulator after the
joint commands that start its step (a period late); taking the grippers' commands first in
one callback group made a real-time test of the e-stop flaky (commands reached its client
late), so that is left as it was.

What remains is the safety layer itself (velocity, acceleration and workspace limits, its safe
start ramp): a policy that needs a faster motion than the limits allow is slower on the robot.
At the policy's 20 Hz the filter, braking to stop on each target, lets a joint of an
end-effector-delta policy cruise at ``acceleration_limit * dt`` only, half of what the
simulated arm does at the same acceleration; ``benchmarks/handover_cell_limits.py`` measures
what a cell's limits cost without ROS (the handover cell sets 30 rad/s^2).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from robot_il.errors import ConfigError
from robot_il.ros.node_main import SpinThread
from robot_il.ros.step_times import StepTimes

PHYSICS_HZ = 500.0


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """SIGINT (a node's Ctrl-C); a node still running ``timeout`` s later gets SIGUSR1, which
    makes a robot_il node write every thread's stack to its log (:func:`run_node`), and is
    killed a second after. Returns the exit code (-9 when it was killed)."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            process.kill()
            process.wait()
    return process.returncode


@contextlib.contextmanager
def node_process(
    executable: str, params: dict[str, object], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """A robot_il node (its console script beside this Python) with ``-p`` parameters, its
    output in ``log``; stopped by :func:`stop_process` on exit."""
    argv = [str(Path(sys.executable).parent / executable), "--ros-args"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    with open(log, "w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process)


class _Watcher:
    """An rclpy node spun on a thread: the steps' task success, and service calls."""

    def __init__(self, context) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_srvs.srv import Trigger

        self.node = rclpy.create_node("ros_eval", context=context)
        self.steps = StepTimes(sim_time=True)
        self.steps.subscribe(self.node, "task/success")
        self.sim_reset = self.node.create_client(Trigger, "sim/reset")
        self.policy_reset = self.node.create_client(Trigger, "policy/reset")
        self.policy_stop = self.node.create_client(Trigger, "policy/stop")
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(self.node)
        self._spin = SpinThread(executor, name="ros-eval")

    def reset(self, nodes: dict[str, tuple[subprocess.Popen, Path]]) -> float:
        """Reset the simulator; returns the simulated time (s) of the reset, from which this
        episode's ``task/success`` messages count."""
        self.steps.restart(time.time_ns())
        self.call(self.sim_reset, 120.0, nodes)
        deadline = time.monotonic() + 120.0
        while (start := self.steps.start_time()) is None:
            _check_running(nodes)
            if time.monotonic() > deadline:
                raise ConfigError("ros eval: the simulator announced no clock after its reset")
            time.sleep(0.002)
        return start

    def watch(self, start: float, time_limit: float, deadline: float) -> tuple[bool, float]:
        """Follow the episode reset at simulated time ``start`` (s) until it is decided;
        returns whether it was solved and its end (simulated s): the step of the first
        "solved" after a "not solved" within ``time_limit`` s, else the limit, or the last
        step seen when the episode stalls until ``deadline`` (``time.monotonic()`` s)."""
        from robot_il.ros.policy_node import CLOCK_TOLERANCE

        limit = start + time_limit
        end, unsolved_seen = start, False
        while time.monotonic() < deadline:
            for t, solved in self.steps.timed_successes():
                if t > limit + CLOCK_TOLERANCE:
                    return False, limit
                if solved and unsolved_seen:
                    return True, t
                unsolved_seen = unsolved_seen or not solved
                end = t
            time.sleep(0.01)
        return False, end  # a stalled episode is a failure

    def call(self, client, timeout: float, nodes: dict[str, tuple[subprocess.Popen, Path]]) -> str:
        """Call ``client``'s Trigger service; ``ConfigError`` with a node's log when one of
        ``nodes`` (name: process, log) exits while the service is awaited."""
        from std_srvs.srv import Trigger

        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.5):
            _check_running(nodes)
            if time.monotonic() > deadline:
                raise ConfigError(f"ros eval: service {client.srv_name} did not come up")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise ConfigError(f"ros eval: service {client.srv_name} did not answer")
            time.sleep(0.001)
        return future.result().message

    def close(self) -> None:
        """Stop spinning, then destroy the node (destroyed under a spin, a callback fails), also
        when the spin stopped on a failed callback (``SpinThread.stop`` raises it)."""
        try:
            self._spin.stop(timeout=10.0)
        finally:
            self.node.destroy_node()


def _check_running(nodes: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    """``ConfigError`` with the end of its log if a node process has exited."""
    for name, (process, log) in nodes.items():
        if process.poll() is not None:
            raise ConfigError(f"ros eval: {name} exited\n{log.read_text()[-2000:]}")


def camera_params(info) -> tuple[dict[str, object], dict[str, object]]:
    """The ``sim_robot`` and ``policy`` parameters that give a camera checkpoint (``info``, a
    :class:`robot_il.deploy.worker.CheckpointInfo`) its camera: the simulator renders it at the
    checkpoint's frame size once per policy step, the policy node subscribes to it (and
    resizes to that size by default). Empty for a checkpoint without cameras; ``ConfigError``
    for one the simulator cannot serve (it renders one colour camera)."""
    from robot_il.ros.observation import is_camera_key

    cameras = [key for key in info.obs_keys if is_camera_key(key)]
    if not cameras:
        return {}, {}
    if len(cameras) > 1 or not cameras[0].startswith("rgb_"):
        raise ConfigError(
            f"ros eval: {info.directory} observes {', '.join(cameras)}; sim_robot renders "
            "one colour camera (rgb_<name>)"
        )
    camera = cameras[0].removeprefix("rgb_")
    size = [int(n) for n in info.spec["observation"][cameras[0]][:2]]
    sim = {"camera": camera, "camera_hz": info.control_hz, "image_size": size}
    return sim, {"cameras": camera}


def evaluate_over_ros(
    checkpoint: str | Path,
    *,
    episodes: int,
    seed: int,
    context,
    env: dict[str, str],
    log_dir: Path,
    task: str | None = None,
    backend: str = "mujoco",
    control_rate: float | None = None,
    interpolate: bool = False,
    policy_params: dict[str, object] | None = None,
    sim_params: dict[str, object] | None = None,
    episode_wall_timeout: float = 300.0,
    progress: bool = False,
):
    """Success per episode of ``checkpoint`` over ROS 2, seeds ``seed .. seed + episodes - 1``.

    ``context`` is an initialised rclpy context and ``env`` the environment of the node
    processes (both on the same DDS domain); node logs go to ``log_dir``. ``control_rate``
    (Hz, default the policy's rate) must divide the physics rate and be a multiple of the
    policy's rate. ``policy_params``/``sim_params`` add node parameters (an arm layout, safety
    limits). Returns a :class:`robot_il.train.evaluate.EvalResult` (lengths in policy steps).
    """
    from tqdm import tqdm

    from robot_il.deploy.worker import CheckpointInfo
    from robot_il.envs.tasks import TASKS
    from robot_il.train.evaluate import EvalResult

    info = CheckpointInfo.read(checkpoint)
    task = task or info.spec.get("task")
    if task not in TASKS:
        raise ConfigError(f"ros eval: task {task!r} is not one of {', '.join(TASKS)}")
    policy_hz = info.control_hz
    control_rate = float(control_rate or policy_hz)
    steps_per_command = PHYSICS_HZ / control_rate
    ratio = control_rate / policy_hz
    if abs(steps_per_command - round(steps_per_command)) > 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        raise ConfigError(
            f"ros eval: control_rate {control_rate} Hz must divide {PHYSICS_HZ:g} Hz and be a "
            f"multiple of the policy's {policy_hz:g} Hz"
        )
    steps = round(TASKS[task].episode_seconds * policy_hz)
    time_limit = steps / policy_hz
    sim_camera, policy_camera = camera_params(info)
    sim = {
        **sim_camera,
        "task": task,
        "backend": backend,
        "seed": seed,
        "reset_first": True,  # each episode starts with a reset: episode i runs seed + i
        "lock_step": True,
        "steps_per_command": round(steps_per_command),
        "publish_every": round(steps_per_command),
        "task_hz": policy_hz,
        **(sim_params or {}),
    }
    policy = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "task": task,
        "control_rate": control_rate,
        "use_sim_time": True,
        "interpolate": interpolate,
        "seed": seed,
        **policy_camera,
        **(policy_params or {}),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    result = EvalResult()
    with (
        node_process("sim_robot", sim, env, log_dir / "sim_robot.log") as sim_process,
        node_process("policy", policy, env, log_dir / "policy.log") as policy_process,
    ):
        nodes = {"sim_robot": (sim_process, log_dir / "sim_robot.log"),
                 "policy": (policy_process, log_dir / "policy.log")}  # fmt: skip
        watcher = _Watcher(context)
        try:
            for i in tqdm(range(episodes), desc="ros eval", unit="ep", disable=not progress):
                _check_running(nodes)
                # the policy stops first: no command of the old episode reaches the new one
                watcher.call(watcher.policy_stop, 120.0, nodes)
                start = watcher.reset(nodes)
                watcher.call(watcher.policy_reset, 120.0, nodes)
                deadline = time.monotonic() + episode_wall_timeout
                solved, end = watcher.watch(start, time_limit, deadline)
                result.seeds.append(seed + i)
                result.successes.append(solved)
                result.lengths.append(min(steps, round((end - start) * policy_hz)))
        finally:
            watcher.close()
    return result
