"""Stopping a node: SIGUSR1 makes a robot_il node write every thread's Python stack to its
log, and a process that Ctrl-C does not stop gets it before it is killed, so a hang on a robot
or in CI can be read."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import (
    DEADLINE_SCALE,
    Client,
    constant_checkpoint,
    log_tail,
    node_process,
    spinning,
    stop,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.ros


def test_a_node_writes_its_stacks_on_sigusr1_and_runs_on(ros_env, tmp_path) -> None:
    log = tmp_path / "recorder.log"
    params = {"path": str(tmp_path / "demos.zarr"), "autostart": "false"}
    with node_process("recorder", params, ros_env, log) as recorder:
        wait_for(lambda: "recording reach" in log.read_text(), 30, "the recorder", (recorder,))
        os.kill(recorder.pid, signal.SIGUSR1)
        # the main thread's stack comes last, down to the script's module: the dump is whole
        # (on "node_main.py", a helper thread's, a loaded machine's reads came mid-dump)
        wait_for(lambda: "in <module>" in log.read_text().partition("in run_node")[2], 10,
                 "the stacks", (recorder,))  # fmt: skip
        assert "Thread 0x" in log.read_text()
        # a failure message shows the threads doing something, not the idle pool workers
        assert "in _worker" in log.read_text()
        shown = log_tail(log, 100_000)
        assert "in _worker" not in shown and "in run_node" in shown, shown
        assert stop(recorder) in (0, 130), log_tail(log)


def test_a_node_that_crashes_writes_its_threads_stacks(ros_env, tmp_path) -> None:
    """A crash in native code (MuJoCo, rcl, torch) ended a node with its exit status alone
    (once, sim_robot with -11 at the end of a test under a loaded suite): its Python stacks,
    every thread's, now come before it ends. The node idles in lock-step (no client): the
    dump reads the other threads' frames unlocked, and one of a real-time physics loop that
    ran meanwhile cut it short in a CI run (its third thread's first line, then nothing)."""
    log = tmp_path / "sim.log"
    with node_process("sim_robot", {"task": "reach", "lock_step": True}, ros_env, log) as sim:
        wait_for(lambda: "lock-step on /clock" in log.read_text(), 60, "sim_robot", (sim,))
        os.kill(sim.pid, signal.SIGSEGV)
        assert sim.wait(30 * DEADLINE_SCALE) == -signal.SIGSEGV
    text = log.read_text()
    assert "Fatal Python error: Segmentation fault" in text, log_tail(log)
    assert "in _physics_loop" in text and "in run_node" in text, log_tail(log)


def test_a_process_that_ignores_ctrl_c_is_asked_for_its_stacks_then_killed() -> None:
    hung = (
        "import faulthandler, signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)  # the hang\n"
    )
    process = subprocess.Popen([sys.executable, "-c", hung], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout.readline() == "ready\n"
    assert stop_process(process, timeout=0.5) == -signal.SIGKILL
    assert 'File "<string>", line 5' in process.stdout.read()


def run_node_process(node_class: str, ros_env: dict[str, str]) -> subprocess.CompletedProcess:
    """``run_node`` of the ``Node`` subclass whose source is ``node_class`` (the first class
    it defines), in a process of its own; its output captured."""
    name = re.search(r"class (\w+)", node_class).group(1)
    script = (
        "import _thread, sys, threading, time\n"
        "from rclpy.node import Node\n"
        "from robot_il.ros.node_main import run_node\n"
        f"{textwrap.dedent(node_class)}\n"
        f"sys.exit(run_node({name}))\n"
    )
    return subprocess.run([sys.executable, "-c", script], env=ros_env, capture_output=True,
                          text=True, timeout=10 * DEADLINE_SCALE)  # fmt: skip


def test_a_node_whose_control_thread_failed_exits_with_code_1(ros_env) -> None:
    """A node that shut itself down after a fatal failure (``fatal_error`` set, as the policy
    node's and the RTDE bridge's control threads do) must not exit 0: a launcher or a service
    manager would read that as a clean stop."""
    failing = """
        class Failing(Node):
            def __init__(self):
                super().__init__('failing')
                self.fatal_error = None
                self.create_timer(0.05, self._fail)
            def _fail(self):
                self.fatal_error = RuntimeError('control tick failed')
                self.context.try_shutdown()
    """
    result = run_node_process(failing, ros_env)
    assert result.returncode == 1, result.stderr[-2000:]


def test_a_build_a_stop_cut_short_is_a_stop_not_an_error(ros_env) -> None:
    """A SIGTERM to the process group while the policy node's inference process loaded its
    policy killed that process, and the node's build failed on it: "error: ... the inference
    process exited (code -15)", exit code 2, a failure to a launcher. Here the build fails
    after rcl shut the context down, as rclpy's signal thread does: a quiet stop, exit code 0."""
    cut_short = """
        class CutShort(Node):
            def __init__(self):
                super().__init__('cut_short')
                self.context.handle.shutdown()  # a SIGTERM meanwhile
                from robot_il.errors import CheckpointError
                raise CheckpointError('the inference process exited (code -15)')
    """
    result = run_node_process(cut_short, ros_env)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]


def test_an_idle_node_stops_when_its_context_is_shut_down_behind_its_executor(ros_env) -> None:
    """rclpy's signal thread wakes the executors, then shuts the contexts down (rcl alone, no
    Python callback). An executor that looked between the two waited again; an idle node
    (no timer, no message) then hung at a stop. Here the context goes down by rcl alone while
    the executor waits: the node must stop at once, not at the test's deadline."""
    idle = """
        class Idle(Node):
            def __init__(self):
                super().__init__('idle')
                threading.Thread(target=self._shut_down_later, daemon=True).start()
            def _shut_down_later(self):
                time.sleep(1.0)  # the executor waits by then
                self.context.handle.shutdown()  # rcl_shutdown, as rclpy's signal thread
    """
    assert run_node_process(idle, ros_env).returncode == 0


def test_ctrl_c_tears_a_node_down_once_rclpy_s_signal_thread_is_done(ros_env) -> None:
    """On SIGINT rclpy's signal thread triggers every signal guard condition from a list, then
    shuts the context down; Ctrl-C's ``KeyboardInterrupt`` can reach the main thread before
    that. A teardown meanwhile destroyed guard conditions under the thread: SIGSEGV. Here the
    ``KeyboardInterrupt`` comes 0.3 s before the context's shutdown by rcl alone (the thread's
    last step): the node's ``shutdown()`` must find the context already down."""
    interrupted = """
        class Interrupted(Node):
            def __init__(self):
                super().__init__('interrupted')
                self.create_timer(0.01, lambda: None)  # wakes the main thread's executor
                threading.Thread(target=self._signal_thread, daemon=True).start()
            def _signal_thread(self):
                time.sleep(0.5)
                _thread.interrupt_main()  # Ctrl-C reaches the main thread first
                time.sleep(0.3)
                self.context.handle.shutdown()
            def shutdown(self):
                print('context up at teardown:', self.context.ok(), flush=True)
                self.destroy_node()
    """
    result = run_node_process(interrupted, ros_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "context up at teardown: False" in result.stdout, result.stdout


def test_ctrl_c_while_the_executor_builds_a_task_stops_the_node_quietly(ros_env) -> None:
    """Ctrl-C's ``KeyboardInterrupt`` landed in the spinning executor's code, in an rclpy
    ``Task``'s constructor, and the half-built task printed an ignored ``AttributeError``
    traceback when collected (a recording launch's teleop, stopped as the launch ended).
    Here each task's construction takes 20 ms, so that the stop lands in one: the spin must
    end by the context's shutdown, as at SIGTERM, with nothing printed."""
    busy = """
        class Busy(Node):
            def __init__(self):
                super().__init__('busy')
                self.create_timer(0.001, lambda: None)  # a task built at each tick
                threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    """
    slow_tasks = (
        "import os, signal, rclpy.task\n"
        "build = rclpy.task.Task.__init__\n"
        "def slow_build(task, *args, **kwargs):\n"
        "    time.sleep(0.02)\n"
        "    build(task, *args, **kwargs)\n"
        "rclpy.task.Task.__init__ = slow_build\n"
    )
    result = run_node_process(slow_tasks + textwrap.dedent(busy), ros_env)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]


@pytest.mark.parametrize("second", ["SIGINT", "SIGTERM"])
def test_a_second_stop_during_the_teardown_waits_for_it(ros_env, second) -> None:
    """A double Ctrl-C (or a launcher's SIGTERM after its SIGINT) raised in the middle of a
    node's ``shutdown()`` (a recording launch printed a half-built rclpy Task's traceback,
    1 of 22 double stops), and rclpy's thread walked the guard conditions it destroys. The
    second stop now waits for the teardown, and the node exits as the first stop ends it."""
    stopped_twice = f"""
        class StoppedTwice(Node):
            def __init__(self):
                super().__init__('stopped_twice')
                self.create_timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
            def shutdown(self):
                os.kill(os.getpid(), signal.{second})
                time.sleep(0.5)  # a teardown's work: a recorder closing its writers
                print('teardown done', flush=True)
                self.destroy_node()
    """
    result = run_node_process("import os, signal\n" + textwrap.dedent(stopped_twice), ros_env)
    assert (result.returncode, result.stdout) == (0, "teardown done\n"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


def busy_node(context=None, stop_after: float = 0.0):
    """A node whose two executor threads are always in a callback (20 ms of work every
    0.5 ms, publishing at its end); with ``stop_after`` (s) it shuts its context down then,
    as a node does on a fatal error."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.node import Node
    from std_msgs.msg import Float64

    node = Node("busy", context=context)
    publisher = node.create_publisher(Float64, "busy", 10)

    def work() -> None:
        time.sleep(0.02)
        publisher.publish(Float64(data=1.0))

    node.create_timer(0.0005, work, callback_group=ReentrantCallbackGroup())
    if stop_after:
        node.create_timer(stop_after, node.context.try_shutdown)
    return node


def test_a_busy_node_spun_in_a_test_stops_with_every_callback_ended(
    ros_context, capfd: pytest.CaptureFixture[str]
) -> None:
    """``spinning`` (a ``SpinThread``) stops the executor as ``run_node`` does: a callback
    running at the stop ends before the executor's guard condition and the node go, else it
    fails in a task nobody reads, printed when collected in whichever test runs then (it broke
    an exact-stderr assertion of test_deploy_parity)."""
    for _ in range(20):
        node = busy_node(ros_context)
        node.shutdown = node.destroy_node
        with spinning(node, ros_context):
            time.sleep(0.05)
    gc.collect()  # an unread task's exception is printed as the task is collected
    assert "never retrieved" not in capfd.readouterr().err


def test_a_busy_node_run_by_run_node_stops_with_every_callback_ended(ros_env) -> None:
    """``run_node`` destroys the node once the callbacks its executor still runs have ended;
    destroyed under them, each failed with "cannot use Destroyable" in a task printed as "The
    following exception was never retrieved" on the user's terminal at a stop."""
    script = (
        "import gc, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_node_stop import busy_node\n"
        "from robot_il.ros.node_main import run_node\n"
        "code = run_node(lambda: busy_node(stop_after=0.3))\n"
        "gc.collect()\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=ros_env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "never retrieved" not in result.stderr


def test_a_stopped_spin_thread_leaves_no_callback_running(
    ros_context, capfd: pytest.CaptureFixture[str]
) -> None:
    """``SpinThread.stop`` (the evaluation's watcher, the teleop device, the latency benchmark)
    returns once every callback its executor handed out has ended, so the node may go then:
    rclpy 7.1's ``shutdown`` alone let queued callbacks run after it destroyed their guard
    condition."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from robot_il.ros.node_main import SpinThread

    node = Node("busy_node", context=ros_context)
    running = []

    def slow() -> None:  # a callback outlasting its 2 kHz period keeps both workers queued
        running.append(1)
        time.sleep(0.02)
        running.pop()

    node.create_timer(0.0005, slow, callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
    executor.add_node(node)
    spin = SpinThread(executor)
    time.sleep(0.3)
    spin.stop(timeout=10 * DEADLINE_SCALE)
    assert not running  # every callback handed out has ended
    node.destroy_node()
    del executor, spin
    gc.collect()  # an unread task's exception is printed as the task is collected
    assert "never retrieved" not in capfd.readouterr().err


@pytest.mark.parametrize("threads", [1, 2])
def test_a_callback_failure_ends_a_spin_thread_and_its_stop_raises_it(
    ros_context, threads: int, capfd: pytest.CaptureFixture[str]
) -> None:
    """A callback's exception ends a ``SpinThread``'s spin, as it ends ``run_node``'s, and
    ``stop`` raises it, once. A single-threaded executor's (the teleop device's, the eval
    watcher's) was left to the thread's excepthook and ``stop`` returned quietly: the node had
    heard nothing since, and an evaluation counted every later episode as a failure."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node

    from robot_il.ros.node_main import SpinThread

    node = Node("failing", context=ros_context)

    def fail() -> None:
        raise ValueError("callback failed")

    node.create_timer(0.01, fail)
    executor = (
        SingleThreadedExecutor(context=ros_context)
        if threads == 1
        else MultiThreadedExecutor(num_threads=threads, context=ros_context)
    )
    executor.add_node(node)
    spin = SpinThread(executor)
    time.sleep(0.3)
    with pytest.raises(ValueError, match="callback failed"):
        spin.stop(timeout=10 * DEADLINE_SCALE)
    spin.stop()  # raised once
    node.destroy_node()
    assert "Exception in thread" not in capfd.readouterr().err


def test_a_spin_thread_whose_node_shut_its_context_down_stops_quietly(own_context) -> None:
    """A node that shuts its context down (a fatal error) under callbacks that publish: those
    fail with "publisher's context is invalid", which ``run_node`` exits quietly on, and which
    ``SpinThread.stop`` raised (30 of 30 times here)."""
    from rclpy.executors import MultiThreadedExecutor

    from robot_il.ros.node_main import SpinThread

    node = busy_node(own_context, stop_after=0.05)
    executor = MultiThreadedExecutor(num_threads=2, context=own_context)
    executor.add_node(node)
    spin = SpinThread(executor)
    wait_for(lambda: not own_context.ok(), 10, "the node's shutdown")
    spin.stop(timeout=10 * DEADLINE_SCALE)
    node.destroy_node()


def test_a_callback_that_outlasts_the_stop_is_named_with_its_stack(
    ros_context, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A callback still running when its executor is stopped is waited for (its node must not
    be destroyed under it), and after ``CALLBACK_GRACE`` s its stack is printed: a node that
    hangs on Ctrl-C names the callback holding it in its own log (CI once killed a recorder
    whose stop hung, and the stack that mattered was not in the 3000 characters shown)."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from robot_il.ros import node_main

    monkeypatch.setattr(node_main, "CALLBACK_GRACE", 0.2)
    node = Node("held_up", context=ros_context)
    started, ended = threading.Event(), threading.Event()

    def held_up() -> None:
        if not started.is_set():
            started.set()
            time.sleep(1.5)
            ended.set()

    node.create_timer(0.01, held_up)
    executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
    executor.add_node(node)
    spin = node_main.SpinThread(executor)
    assert started.wait(10 * DEADLINE_SCALE)
    spin.stop(timeout=10 * DEADLINE_SCALE)
    assert ended.is_set()  # waited for
    node.destroy_node()
    err = capfd.readouterr().err
    assert "a callback has not ended 0.2 s after its executor stopped" in err, err
    assert "in held_up" in err, err


_SLOW_IMPORT = """\
import sys, time
class SlowImport:  # stands in for a node module's seconds of imports (rclpy, torch, mujoco)
    def find_spec(self, name, path=None, target=None):
        if name == "robot_il.ros.ur_rtde_bridge":
            print("importing the node", flush=True)
            time.sleep(60)
        return None
sys.meta_path.insert(0, SlowImport())
"""


def test_a_node_interrupted_while_it_imports_stops_quietly(ros_env, tmp_path) -> None:
    """``robot-il launch`` stopped by Ctrl-C (or by another node's exit) while a node was
    still importing printed a KeyboardInterrupt traceback through the import machinery, the
    node's and every other one still starting: a screen of tracebacks that buried the one
    line saying why the launch stopped. The node now exits quietly with 130."""
    (tmp_path / "sitecustomize.py").write_text(_SLOW_IMPORT)
    env = {**ros_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), ros_env.get("PYTHONPATH", "")])}
    log = tmp_path / "launch.log"
    argv = [str(Path(sys.executable).parent / "robot-il"), "launch", "ur5e_rtde.launch.yaml",
            "use_fake_hardware:=true"]  # fmt: skip
    with log.open("w") as output:
        launch = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "importing the node" in log.read_text(), 30, "the node's import",
                     (launch,), (log,))  # fmt: skip
        finally:
            code = stop(launch)
    text = log.read_text()
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def _process_tree(pid: int) -> list[int]:
    """``pid``'s descendants (children of each of its threads, recursively), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # a thread that just ended
            continue
        for child in map(int, children):
            found += [child, *_process_tree(child)]
    return found


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited one that nobody reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_a_recorder_and_a_policy_node_as_ctrl_c_does(ros_context, ros_env, tmp_path):
    """``docker stop``, systemd, ``kill PID`` and a launcher's escalation send SIGTERM, not
    SIGINT. A node run by ``run_node`` stops on it as on Ctrl-C (rclpy's handlers of both shut
    its context down): the recorder says which episode under way it dropped and what the
    dataset holds, which stays valid with its committed episode, and the policy node's
    inference worker (and the fork server it came from) ends with it."""
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    path = tmp_path / "demos.zarr"
    checkpoint = constant_checkpoint(tmp_path / "hold", np.append(HOME_JOINT_POS, 0.0))
    logs = tmp_path / "sim.log", tmp_path / "policy.log", tmp_path / "recorder.log"
    with (
        node_process("sim_robot", {"task": "reach"}, ros_env, logs[0]) as sim,
        node_process("policy", {"checkpoint": str(checkpoint)}, ros_env, logs[1]) as policy,
        node_process("recorder", {"path": str(path)}, ros_env, logs[2]) as recorder,
    ):
        nodes = (sim, policy, recorder)
        client = Client(ros_context)
        try:

            def recording(episode: int) -> bool:
                answer = client.call(Trigger, "recorder/start").message
                return re.fullmatch(rf"episode {episode} is already recording \([3-9]\d* steps\)",
                                    answer) is not None  # fmt: skip

            wait_for(lambda: recording(0), 60, "steps of episode 0", nodes, logs)
            assert client.call(Trigger, "recorder/stop").message.startswith("episode 0 committed")
            wait_for(lambda: recording(1), 30, "steps of episode 1", nodes, logs)
            wait_for(lambda: "safe_start: anchored" in logs[1].read_text(), 60,
                     "the policy's first command", nodes, logs)  # fmt: skip
        finally:
            client.close()
        workers = _process_tree(policy.pid)
        assert workers, "the policy node has no inference worker"
        for node in (policy, recorder):
            node.send_signal(signal.SIGTERM)
        codes = [node.wait(30 * DEADLINE_SCALE) for node in (policy, recorder)]
    assert codes == [0, 0], "\n".join(log_tail(log) for log in logs[1:])
    stopped = (rf"\[recorder\] stopped: episode 1 under way discarded \(\d+ steps; next or quit "
               rf"commits an episode, recorder/stop too\), 1 episodes in {re.escape(str(path))}, "
               "1 of them recorded now")  # fmt: skip
    assert re.search(stopped, logs[2].read_text()), log_tail(logs[2])
    assert validate(path).ok
    assert Dataset.open(path).num_episodes == 1
    wait_for(lambda: not any(map(_running, workers)), 10, "the inference worker's end")


def _predicting(pid: int) -> bool:
    """Whether process ``pid`` runs on a core (state R): an inference process computes a
    chunk, else it waits for a request."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"


@contextlib.contextmanager
def _deployed_mid_prediction(ros_env, tmp_path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """A ``sim_robot`` and a policy node deploying an untrained Diffusion checkpoint of 50
    denoising steps (hundreds of ms a chunk here), the node in a session of its own as
    ``robot-il launch`` starts it; yields the node, its inference process's pid and the node's
    log once the arm is commanded and the inference process is computing a chunk."""
    from robot_il.policies.untrained import untrained_reach_checkpoint

    checkpoint = untrained_reach_checkpoint("diffusion", tmp_path, num_inference_steps=50)
    logs = tmp_path / "sim.log", tmp_path / "policy.log"
    argv = [str(Path(sys.executable).parent / "policy"), "--ros-args", "-p",
            f"checkpoint:={checkpoint}"]  # fmt: skip
    with (
        node_process("sim_robot", {"task": "reach"}, ros_env, logs[0]) as sim,
        logs[1].open("w") as output,
    ):
        policy = subprocess.Popen(argv, env=ros_env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
        try:
            wait_for(lambda: "safe_start: anchored" in logs[1].read_text(), 60,
                     "the policy's first command", (sim, policy), logs)  # fmt: skip
            worker = int(re.search(r"inference in pid (\d+)", logs[1].read_text())[1])
            wait_for(lambda: _predicting(worker), 10, "a prediction", (sim, policy), logs)
            yield policy, worker, logs[1]
        finally:
            stop(policy)


def test_a_policy_node_stopped_mid_prediction_says_nothing_failed(ros_env, tmp_path) -> None:
    """A service manager's stop (systemd signals every process of the unit) and a launcher's
    escalation after Ctrl-C send SIGTERM to the node's inference process and fork server
    too: the prediction under way ended with them, and the stopping node logged "inference
    failed: ...: the inference process exited (code 255)" (3 stops of 4). Nothing failed."""
    with _deployed_mid_prediction(ros_env, tmp_path) as (policy, _, log):
        os.killpg(policy.pid, signal.SIGTERM)
        code = policy.wait(30 * DEADLINE_SCALE)
    assert code == 0, log_tail(log)
    text = log.read_text()
    assert "[ERROR]" not in text and "inference process" not in text, log_tail(log)


def test_an_inference_process_dying_mid_run_brakes_the_arm_and_ends_the_node(
    ros_env, tmp_path
) -> None:
    """The check above can fail: an inference process killed (the OOM killer) while the node
    runs is a fatal line naming the checkpoint and how the process ended, the arm braked to
    rest, and the node's exit with code 1, on its own. It used to log the error at every grid
    time (58 lines in 3 s) while the arm held and the node looked alive."""
    with _deployed_mid_prediction(ros_env, tmp_path) as (policy, worker, log):
        os.kill(worker, signal.SIGKILL)
        code = policy.wait(30 * DEADLINE_SCALE)
    assert code == 1, log_tail(log)
    text = log.read_text()
    assert re.search(r"\[FATAL\].*the inference process exited \(code -9\)", text), log_tail(log)
    assert "braking the arms to rest" in text, log_tail(log)
    assert text.count("inference process") <= 2, log_tail(log)
