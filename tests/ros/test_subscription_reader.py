"""A ``SubscriptionReader`` takes its subscriptions' messages on its own thread: every message,
in order, under the node's remappings, none of them by an executor spinning the node; a
callback that raises loses only its message; after ``close`` no callback runs."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.ros


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_the_reader_takes_every_message_and_the_executor_none(ros_context) -> None:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from std_msgs.msg import Int32

    from robot_il.ros.subscription_reader import SubscriptionReader

    # The node's remapping holds for the reader's subscription: it hears /robot/counts.
    node = rclpy.create_node(
        "reader_owner", context=ros_context, cli_args=["--ros-args", "-r", "counts:=/robot/counts"]
    )
    talker = rclpy.create_node("talker", context=ros_context)
    executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    received: list[int] = []
    threads: set[str] = set()
    failures = {3}  # the callback raises on this message

    def on_count(msg: Int32) -> None:
        threads.add(threading.current_thread().name)
        if msg.data in failures:
            raise ValueError(f"count {msg.data}")
        received.append(msg.data)

    reader = SubscriptionReader(node, "counts-reader")
    subscription = reader.subscribe(Int32, "counts", on_count, 100)
    reader.start()
    publisher = talker.create_publisher(Int32, "/robot/counts", 100)
    try:
        assert subscription.topic_name == "/robot/counts"
        assert _wait_for(lambda: publisher.get_subscription_count() == 1)
        for count in range(50):
            publisher.publish(Int32(data=count))
            time.sleep(0.001)
        assert _wait_for(lambda: len(received) == 49), received
        assert received == [count for count in range(50) if count not in failures]
        assert threads == {"counts-reader"}  # not one taken by the spinning executor
        with pytest.raises(RuntimeError, match="before the reader starts"):
            reader.subscribe(Int32, "more_counts", on_count, 10)

        reader.close()
        reader.close()  # a node's shutdown may come twice
        publisher.publish(Int32(data=100))
        time.sleep(0.3)
        assert received[-1] == 49  # closed: nobody takes it
    finally:
        executor.shutdown()
        spin.join(timeout=5.0)
        talker.destroy_node()
        node.destroy_node()


def test_a_callback_of_two_parameters_gets_each_messages_dds_info(ros_context) -> None:
    """As the executor gives it: the message's source timestamp (the publisher's system clock,
    ns) between the publish's start and end, its reception at or after it. sim_robot and the
    recorder drop commands sent before a reset by it; the reader called such a callback with
    the message alone (a TypeError, logged, every command lost)."""
    import rclpy
    from std_msgs.msg import Int32

    from robot_il.ros.subscription_reader import SubscriptionReader

    node = rclpy.create_node("info_reader_owner", context=ros_context)
    talker = rclpy.create_node("info_talker", context=ros_context)
    received: list[tuple[int, dict]] = []
    reader = SubscriptionReader(node, "info-reader")
    reader.subscribe(
        Int32, "stamped_counts", lambda msg, info: received.append((msg.data, info)), 10
    )
    reader.start()
    publisher = talker.create_publisher(Int32, "stamped_counts", 10)
    try:
        assert _wait_for(lambda: publisher.get_subscription_count() == 1)
        sent = []
        for count in range(5):
            before = time.time_ns()
            publisher.publish(Int32(data=count))
            sent.append((before, time.time_ns()))
            time.sleep(0.002)
        assert _wait_for(lambda: len(received) == 5), received
    finally:
        reader.close()
        talker.destroy_node()
        node.destroy_node()
    assert [count for count, _ in received] == list(range(5))
    for (_, info), (before, after) in zip(received, sent, strict=True):
        assert before <= info["source_timestamp"] <= after
        assert info["received_timestamp"] >= info["source_timestamp"]


def test_a_node_destroyed_under_the_reader_ends_its_thread(ros_context) -> None:
    """A node whose owner forgot :meth:`close` (a test, a node that failed to build): its
    destruction ends the reader's thread rather than leaving it waiting on freed handles."""
    import rclpy
    from std_msgs.msg import Int32

    from robot_il.ros.subscription_reader import SubscriptionReader

    node = rclpy.create_node("forgetful_owner", context=ros_context)
    reader = SubscriptionReader(node, "forgotten-reader")
    reader.subscribe(Int32, "counts", lambda msg: None, 10)
    reader.start()
    node.destroy_node()
    assert _wait_for(lambda: not reader._thread.is_alive(), timeout=2.0)


def test_a_process_exiting_with_a_reader_still_running_exits_cleanly(ros_env) -> None:
    """A reader never closed (a node that failed to build after its observation started one):
    its thread left in rcl's wait while the interpreter finalised aborted the process, 15 runs
    of 15. The reader is closed at exit."""
    import subprocess
    import sys

    script = (
        "import rclpy, time\n"
        "from std_msgs.msg import Int32\n"
        "from robot_il.ros.subscription_reader import SubscriptionReader\n"
        "rclpy.init()\n"
        "reader = SubscriptionReader(rclpy.create_node('exiting'), 'exiting-reader')\n"
        "reader.subscribe(Int32, 'counts', lambda msg: None, 10)\n"
        "reader.start()\n"
        "time.sleep(0.05)\n"
    )
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", script], env=ros_env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, (result.returncode, result.stderr[-500:])


def test_a_signal_wakes_the_reader_before_rclpy_shuts_the_context_down(ros_env) -> None:
    """SIGINT or SIGTERM: rclpy's signal handler shuts the context down from a thread of its
    own, and a reader left in rcl's wait on it meanwhile crashed the process (SIGSEGV in 5 of
    120 ``sim_robot`` stops by SIGINT). The handler wakes the reader first, which then waits
    for the shutdown outside rcl: here it is woken by the signal, before anything closes it."""
    import signal
    import subprocess
    import sys

    script = (
        "import os, signal, time, rclpy\n"
        "from rclpy.signals import SignalHandlerOptions\n"
        "from std_msgs.msg import Int32\n"
        "from robot_il.ros.subscription_reader import SubscriptionReader\n"
        "rclpy.init(signal_handler_options=SignalHandlerOptions.ALL)\n"
        "node = rclpy.create_node('signalled')\n"
        "reader = SubscriptionReader(node, 'signalled-reader')\n"
        "await_shutdown = reader._await_shutdown\n"
        "def noting(context):\n"
        "    print('woken, closing:', reader._closing, flush=True)\n"
        "    await_shutdown(context)\n"
        "reader._await_shutdown = noting\n"
        "reader.subscribe(Int32, 'counts', lambda msg: None, 10)\n"
        "reader.start()\n"
        "print('ready', flush=True)\n"
        "while rclpy.ok():\n"
        "    time.sleep(0.01)\n"
        "reader.close()\n"
    )
    outputs = []
    for _ in range(5):  # the shutdown may still overtake the woken reader on a loaded machine
        process = subprocess.Popen([sys.executable, "-c", script], env=ros_env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.2)  # the reader in its wait
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        outputs.append(output)
        if output.startswith("woken, closing: False"):
            return
    raise AssertionError(f"never woken by the signal: {outputs}")
