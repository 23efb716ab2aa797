"""``benchmarks/deploy_latency.py`` stops the executor of each measured policy node without
leaving a callback to fail on a destroyed handle: rclpy 7.1's ``shutdown`` alone let queued
callbacks run after it destroyed their guard condition, and their ``InvalidHandle`` was printed
at exit as "The following exception was never retrieved: cannot use Destroyable ..."."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_stopping_the_spin_lets_every_handed_callback_end_before_the_node_goes(
    ros_context, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import deploy_latency

    node = Node("busy_node", context=ros_context)
    running = []

    def slow() -> None:  # a callback outlasting its 2 kHz period keeps both workers queued
        running.append(1)
        time.sleep(0.02)
        running.pop()

    node.create_timer(0.0005, slow, callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=deploy_latency._spin, args=(executor, stop), daemon=True)
    spinner.start()
    time.sleep(0.3)
    deploy_latency._stop_spinning(executor, spinner, stop)
    assert not spinner.is_alive() and not running  # every callback handed out has ended
    node.destroy_node()
    del executor
    gc.collect()  # an unread task's exception is printed as the task is collected
    assert "never retrieved" not in capfd.readouterr().err
