"""The ``main()`` every robot_il node shares: init, spin, one-line errors, clean shutdown."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from robot_il.errors import ConfigError, RobotILError
from robot_il.stop_signals import sigterm_as_interrupt, stops_deferred, write_stacks_on_request

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from rclpy.context import Context
    from rclpy.executors import Executor
    from rclpy.publisher import Publisher


def run_node(make_node: Callable[[], object], args: list[str] | None = None) -> int:
    """Run the node ``make_node()`` builds until Ctrl-C, SIGTERM or shutdown; returns the exit
    code.

    SIGTERM (``docker stop``, systemd, ``kill PID``, a launcher's escalation after SIGINT) stops
    the node as Ctrl-C does: rclpy's handlers of both shut its context down, its spin ends and
    its ``shutdown()`` runs (a second stop meanwhile waits for it, a third cuts it short:
    :func:`_teardown_held_from_stops`). Before ``rclpy.init`` (the node's imports) SIGTERM
    ends the process at once; nothing of the node exists yet.

    The node spins on a multi-threaded executor, so a node's service callbacks never wait behind
    its timers. A ``RobotILError`` raised while building the node (a bad parameter, an
    unreadable checkpoint) is printed as one line and exits with code 2, unless a stop signal
    came first: a SIGTERM to the process group while the policy node's inference process loaded
    its policy killed that process, and the stop ended as "the inference process exited (code
    -15)" with exit code 2, which a launcher or a service manager reads as a failure. A node
    with a ``shutdown()`` method gets it called instead of ``destroy_node()``, once the
    callbacks the executor still runs have ended (:func:`stop_executor`). A node whose control
    thread failed and shut it down (its ``fatal_error`` set) exits with code 1, so that a
    launcher or a service manager sees the failure. SIGUSR1 writes every thread's Python stack
    to stderr, for a node that does not stop (``stop_process`` sends it before killing one); a
    crash (SIGSEGV, SIGABRT) writes them before the process ends.
    """
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    os.environ.setdefault("MUJOCO_GL", "egl")
    write_stacks_on_request()  # SIGUSR1, and a crash in native code: every thread's stack
    spinning = threading.Event()
    _interrupt_unless(spinning)  # before rclpy's handlers, which chain to it
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.ALL)  # SIGINT, SIGTERM
    node = executor = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        end_shutdown_watch = _wake_at_shutdown(executor)
        spinning.set()
        try:
            executor.spin()
        finally:
            spinning.clear()
            end_shutdown_watch()
    except KeyboardInterrupt:  # during make_node (its half-built node goes after this)
        # the executor's context: before its guard conditions, then a half-built node's, go
        await_signal_shutdown(rclpy.get_default_context())
    except ExternalShutdownException:
        pass
    except RCLError:
        if rclpy.ok():
            raise  # else: Ctrl-C shut the context down under the executor's wait or a callback
    except RobotILError as error:
        if not rclpy.ok():
            return 0  # a stop during the build cut it short (see the docstring): not an error
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        with _teardown_held_from_stops():
            if executor is not None:
                stop_executor(executor)
            if node is not None:
                getattr(node, "shutdown", node.destroy_node)()
            rclpy.try_shutdown()
    return 1 if getattr(node, "fatal_error", None) is not None else 0


def _interrupt_unless(spinning: threading.Event) -> None:
    """Make Ctrl-C raise ``KeyboardInterrupt`` in the main thread only while ``spinning`` is
    clear (the node's build, its teardown); call before ``rclpy.init``, whose handlers chain
    to Python's.

    The main thread's spin is rclpy's executor code: a ``KeyboardInterrupt`` raised there
    cut an rclpy ``Task`` off in its constructor, and the half-built task printed an ignored
    ``AttributeError`` traceback when collected (a recording launch's teleop, stopped by the
    launch; 7 of 10 Ctrl-Cs with the constructor slowed by 2 ms). While spinning, Ctrl-C now
    stops the node as SIGTERM does: rclpy's signal thread shuts the context down and the
    spin ends (:func:`_wake_at_shutdown`). A SIGINT the process inherited as ignored, or a
    handler an embedding program set, is left as it is."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return

    def interrupt(signum: int, frame: object) -> None:
        if not spinning.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


@contextlib.contextmanager
def _teardown_held_from_stops() -> Iterator[None]:
    """A node's teardown, which a second stop signal (a double Ctrl-C, a launcher's SIGTERM
    after its SIGINT) waits for; a third cuts it short. The node is stopping already: a
    held stop ends nothing more, and the exit code stays the node's.

    rclpy's handlers go first: on each signal its thread walks the signal guard conditions
    that this teardown destroys (:func:`await_signal_shutdown`), and chained to Python's,
    raised ``KeyboardInterrupt`` in the middle of a node's ``shutdown()``: a recorder's
    line of what it kept cut off, a half-built rclpy ``Task`` printing an ignored
    ``AttributeError`` traceback (1 of 22 double stops of a recording launch).
    """
    from rclpy.signals import uninstall_signal_handlers

    uninstall_signal_handlers()
    with contextlib.suppress(KeyboardInterrupt), sigterm_as_interrupt(), stops_deferred():
        yield


SIGNAL_SHUTDOWN_WAIT = 1.0
"""Longest wait (s) of :func:`await_signal_shutdown` for rclpy's signal thread."""


def await_signal_shutdown(context: Context, cancelled: Callable[[], bool] = lambda: False) -> None:
    """After SIGINT or SIGTERM, wait until rclpy's signal thread has shut ``context`` down, its
    last step (at most :data:`SIGNAL_SHUTDOWN_WAIT` s, and no longer once ``cancelled()``).

    That thread (C++) first triggers every signal guard condition, the executors' and the
    subscription readers', one by one from a list it read once. Ctrl-C's
    ``KeyboardInterrupt`` can reach the main thread, and its teardown, before the list is
    done (SIGTERM raises nothing, nor does SIGINT in :func:`run_node`'s spin: a spin ends
    only once the context is down); destroying a signal guard condition then (an executor's
    shutdown, a reader's close) frees that list, and the guard condition, under rclpy's
    thread, which crashes the process with SIGSEGV.
    With rclpy's thread slowed down by 3 ms a trigger (``rcl_trigger_guard_condition``
    interposed), 6 of 6 Ctrl-Cs of a node whose guard conditions came after its executor's
    crashed so; unslowed it is rare, and the likely cause of ``sim_robot``'s exit -11 at a
    stop in CI. A second signal (a double Ctrl-C, a launcher's SIGTERM after its SIGINT)
    would walk the list again: :func:`run_node` takes rclpy's handlers down before its
    teardown."""
    deadline = time.monotonic() + SIGNAL_SHUTDOWN_WAIT
    while context.ok() and not cancelled() and time.monotonic() < deadline:
        time.sleep(0.001)


SHUTDOWN_LOOK = 0.05
"""Seconds between two looks of :func:`_wake_at_shutdown` at the executor's context."""


def _wake_at_shutdown(executor: Executor) -> Callable[[], None]:
    """Start a thread that wakes ``executor`` once its context is shut down; returns the
    function that ends the thread (call it before the executor's shutdown).

    rclpy's signal handling (a thread of its C++ library) wakes every executor on SIGINT or
    SIGTERM, then shuts the contexts down. An executor that looked at its context between the
    two found it up and waited again; a node that nothing else woke (no timer, no message
    coming) then never stopped: an idle two-arm ``sim_robot`` hung so in 6 of 200 stops by
    SIGTERM. Ctrl-C stops a spinning node the same way (:func:`_interrupt_unless`);
    ``rclpy.shutdown()`` from Python wakes executors itself."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(SHUTDOWN_LOOK):
            if not executor.context.ok():
                executor.wake()  # (its guard condition stays until end() has joined)
                return

    thread = threading.Thread(target=watch, name="shutdown-watch", daemon=True)
    thread.start()

    def end() -> None:
        done.set()
        thread.join()

    return end


def stop_executor(executor: Executor) -> None:
    """Shut ``executor`` down once every callback it handed out has ended, raising the first
    that failed (as its next spin would have) other than by its context's shutdown; call once
    its spin has returned, before its nodes are destroyed.

    rclpy 7.1 (Jazzy) does not wait itself: ``Executor.shutdown`` skips its wait for running
    callbacks (an inverted test) and destroys the guard condition each triggers as it ends, and
    a node destroyed under a running callback fails it. A ``MultiThreadedExecutor`` keeps those
    failures in tasks that only its next spin reads, so they were printed ("The following
    exception was never retrieved: cannot use Destroyable because destruction was requested")
    whenever the garbage collector reached them: on the terminal of a node stopped by Ctrl-C,
    in the output of whatever test ran next. Its worker threads are the
    ``concurrent.futures.ThreadPoolExecutor`` it keeps as ``_executor`` and its handed-out
    tasks are ``_futures``: rclpy 7.1 has no public way to wait for them.
    """
    from rclpy.executors import MultiThreadedExecutor

    failures = []
    if isinstance(executor, MultiThreadedExecutor):
        _wait_for_workers(executor._executor)
        failures = [task.exception() for task in executor._futures]  # each read, none printed
        executor._futures.clear()
    executor.shutdown()
    for failure in failures:
        if failure is not None and not _cut_short(failure, executor.context):
            raise failure


CALLBACK_GRACE = 5.0
"""Seconds the callbacks a stopped executor still runs get to end before each one's stack is
printed: a node that does not stop on Ctrl-C says which callback holds it."""


def _wait_for_workers(pool: ThreadPoolExecutor) -> None:
    """Shut ``pool`` (a multi-threaded executor's worker threads) down and wait for the
    callbacks they run. One still running :data:`CALLBACK_GRACE` s later has its thread's
    Python stack printed to stderr, once, and is then waited for: what hangs is named in the
    node's log before whoever stops it gives up (a launcher's SIGKILL, a test's deadline)."""
    pool.shutdown(wait=False)
    workers = list(pool._threads)
    deadline = time.monotonic() + CALLBACK_GRACE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    stuck = [worker for worker in workers if worker.is_alive()]
    frames = sys._current_frames()
    for worker in stuck:
        stack = (
            "".join(traceback.format_stack(frames[worker.ident])) if worker.ident in frames else ""
        )
        print(f"a callback has not ended {CALLBACK_GRACE:g} s after its executor stopped "
              f"({worker.name}):\n{stack}", file=sys.stderr, flush=True)  # fmt: skip
    for worker in stuck:
        worker.join()


def _cut_short(failure: Exception, context: Context) -> bool:
    """Whether ``failure`` is a callback's or a wait's ``RCLError`` from ``context``'s
    shutdown (a node's fatal error, Ctrl-C) rather than a fault: ``run_node`` exits quietly on
    it."""
    from rclpy._rclpy_pybind11 import RCLError

    return isinstance(failure, RCLError) and not context.ok()


class SpinThread:
    """``executor`` spun on a background thread until :meth:`stop`, its context's shutdown or
    a callback's exception; after :meth:`stop` no callback of it runs, so its nodes may be
    destroyed. For a process that does its own work beside a node (an evaluation's watcher, a
    teleop device, a benchmark), where :func:`run_node` spins in the main thread.

    A callback's exception ends the spin as it ends ``run_node``'s, and :meth:`stop` raises it
    (it was left to the thread's excepthook, and ``stop`` returned as if the nodes had been
    served to the end).

    Not ``executor.spin`` ended by ``executor.shutdown()``: that destroys, under callbacks still
    running, the guard condition each triggers as it ends (:func:`stop_executor`). Each wait of
    the executor is bounded (:data:`POLL` s) so that the loop sees the stop: waking the
    executor does not end a wait that finds no work.
    """

    POLL = 0.05
    """Seconds one wait of the executor lasts at most: how long :meth:`stop` waits for it."""

    def __init__(self, executor: Executor, name: str = "ros-spin") -> None:
        self.executor = executor
        self._stopping = threading.Event()
        self._failure: Exception | None = None
        """The callback exception that ended the spin, raised by :meth:`stop`."""
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        context = self.executor.context
        try:
            while context.ok() and not self._stopping.is_set():
                self.executor.spin_once(timeout_sec=self.POLL)
        except ExternalShutdownException:
            pass  # a node shut its context down
        except Exception as failure:  # a callback's, re-raised by spin_once
            if not _cut_short(failure, context):
                self._failure = failure

    def stop(self, timeout: float | None = None) -> None:
        """End the spin (waiting up to ``timeout`` s, None: for good, for the callback it
        runs), wait for the callbacks it handed out, and shut the executor down; then raise
        the first callback exception (the one that ended the spin, else one that ended
        meanwhile), once. ``RuntimeError`` if the spin did not end in time (the executor then
        still runs a callback: its nodes must stay)."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name}: a callback did not end within {timeout} s")
        failure, self._failure = self._failure, None
        try:
            stop_executor(self.executor)
        except Exception as later:
            failure = failure or later  # rclpy may hand one failed task out twice
        if failure is not None:
            raise failure


def log_or_print(node, message: str, *, error: bool = False) -> None:
    """Log ``message`` on ``node``'s logger (info, or with ``error`` an error), or once a stop
    has shut its context down print it to stderr: the ROS logger's rosout went with the
    context, and a line logged then came with "Failed to publish log message to rosout" (the
    RTDE bridge's gripper thread saying "active" as a launch stopped it, 8 of 160 stops in a
    loop). One call of rclpy's logger per severity: it refuses a second severity from one
    source line."""
    if not node.context.ok():
        print(f"[{node.get_name()}] {message}", file=sys.stderr, flush=True)
    elif error:
        node.get_logger().error(message)
    else:
        node.get_logger().info(message)


LISTENER_WAIT = 5.0
"""Seconds a one-shot message waits for its topic's first subscriber."""


def wait_for_subscriber(
    publisher: Publisher,
    timeout: float = LISTENER_WAIT,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """Whether ``publisher`` is matched with a subscriber within ``timeout`` s (False at once
    once ``cancelled()``); call before a one-shot message (a rating, an intervention, an
    e-stop).

    On a volatile topic a message published before discovery has matched a subscriber is lost
    for good, and a node that has just received another topic of the same peer may not be
    matched on this one yet: CI lost an intervention sent right after the selector's latched
    statistics arrived."""
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() == 0:
        if cancelled() or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def declare_float(node, name: str, default: float) -> float:
    """Declare a float parameter that also accepts an integer value (``rate:=500`` from a launch
    file or the command line is an integer to rcl's YAML reader); returns its value."""
    from rcl_interfaces.msg import ParameterDescriptor

    value = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
    try:
        return float(value)
    except (TypeError, ValueError):
        message = f"{node.get_name()}: parameter {name} must be a number, got {value!r}"
        raise ConfigError(message) from None


def declare_text(node, name: str, default: str) -> str:
    """Declare a string parameter that also accepts a number (``serial_number:=20245500001``
    or ``device:=0`` is an integer to rcl's YAML reader); returns its value as text."""
    from rcl_interfaces.msg import ParameterDescriptor

    any_type = ParameterDescriptor(dynamic_typing=True)
    return str(node.declare_parameter(name, default, any_type).value)


def declare_task(node, default: str = "reach") -> str:
    """Declare ``task`` and return it; "" (deploy_sim.launch.yaml's default) is the task the
    checkpoint of the ``checkpoint`` parameter was trained on, so that a checkpoint deployed
    without ``task:=`` runs in its own scene (a push checkpoint ran in the reach scene, said
    only in the policy node's warning)."""
    task = declare_text(node, "task", default)
    if task:
        return task
    if node.has_parameter("checkpoint"):
        checkpoint = str(node.get_parameter("checkpoint").value)
    else:
        checkpoint = declare_text(node, "checkpoint", "")
    from robot_il.policies import read_checkpoint

    trained = read_checkpoint(checkpoint)[1]["spec"].get("task") if checkpoint else None
    if not trained:
        named = f"checkpoint {checkpoint} names none" if checkpoint else "no checkpoint:= given"
        raise ConfigError(f"{node.get_name()}: task:= is empty and {named}; pass task:=T")
    return trained


def use_realtime_priority(node, priority: int) -> bool:
    """Put every thread of this process in Linux's SCHED_FIFO class at ``priority`` (1..99;
    0 leaves them); threads started later inherit it from their creator.

    A control loop that sleeps each period wakes on time only if the scheduler runs it at
    once; on a loaded machine a normal thread waits for milliseconds (measured here: p99
    jitter 2.9 ms normal, 0.11 ms SCHED_FIFO at load 12 on 2 cores). Every thread, because the
    loop also waits for the ones it depends on: those holding the interpreter lock, and the
    DDS threads delivering joint states. ros2_control runs its loop the same way. Every thread
    here blocks or sleeps between events, so none can monopolise a core. Needs CAP_SYS_NICE
    or an rtprio limit; without it the node warns and runs as before.
    """
    if priority <= 0:
        return False
    param = os.sched_param(min(int(priority), 99))
    try:
        for thread_id in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setscheduler(int(thread_id), os.SCHED_FIFO, param)
    except (OSError, AttributeError) as error:
        node.get_logger().warning(f"real-time priority {priority} refused ({error}); not using it")
        return False
    return True


WAKE_LATENCY_DEVICE = "/dev/cpu_dma_latency"
"""Linux's PM QoS device: a process that writes a latency (int32, µs) to it and keeps it open
holds every CPU to idle states that wake within it."""


def keep_cpus_awake(node, device: str = WAKE_LATENCY_DEVICE) -> BinaryIO | None:
    """Ask Linux to wake every CPU at once (a PM QoS wake-up latency of 0 µs, ``device``)
    for as long as the returned file stays open (closed with it, or at the process's exit,
    even killed); None, with a warning, where the device cannot be written.

    Two processes that wake each other every period (a lock-step simulator and its policy)
    wait, at each exchange, for a sleeping CPU to wake. Where idle CPUs halt (a virtual
    machine's ``haltpoll`` idle, a laptop's deep C-states) that takes tens to hundreds of
    milliseconds: measured here (2-vCPU virtual machine, ``benchmarks/lock_step_rate.py``,
    three alternated rounds each on a quiet machine), the bare lock-step exchange ran 9-12
    steps/s, 94-98 with this request held, 200-250 with a core kept busy. An idle CPU then
    polls instead of halting: a core's power while held, as a robot's real-time tuning does.
    Needs write access to the device (root, or a udev rule granting it).
    """
    request = None
    try:
        request = open(device, "wb", buffering=0)  # noqa: SIM115 (held open: the request)
        request.write(struct.pack("i", 0))
    except OSError as error:
        if request is not None:
            request.close()
        node.get_logger().warning(
            f"CPU wake-up latency request refused ({device}: {error.strerror}); idle CPUs may "
            "wake slowly and lock-step run slower"
        )
        return None
    return request


def freeze_startup_objects() -> None:
    """Move every object alive now (imported modules: torch alone brings ~150k) out of the
    garbage collector's reach; call at the end of a real-time node's start-up.

    A full collection walks every tracked object with the interpreter lock held: measured here
    with torch imported, 100-300 ms, during which no thread of the process runs, so a 125 Hz
    control loop skips a dozen periods whenever the allocations of the other threads (joint
    states at 500 Hz, an inference every 50 ms) trigger one. Frozen objects are never walked:
    a full collection then costs what the objects made since start-up cost (microseconds).
    """
    gc.collect()
    gc.freeze()
