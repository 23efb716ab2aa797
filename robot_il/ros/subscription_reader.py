"""Subscriptions whose messages a thread of their own takes, outside the node's executor.

rclpy's ``MultiThreadedExecutor`` spends about half a millisecond of interpreter time on each
message it delivers (a wait set rebuilt from every entity of the node, a task and a pool
thread per callback): the UR controller's 500 Hz joint states cost a deploying node a quarter
of a core, all of it holding the interpreter lock its 500 Hz control loop needs
(``benchmarks/subscription_reader.py``). A thread waiting on a wait set of just these
subscriptions, which takes each message as it comes, costs about a tenth of that.

The subscriptions are the node's own (its name, namespace, remappings and QoS; ``ros2 topic
info`` lists them), in a callback group that no executor runs (:class:`_TakenByReader`), so
spinning the node never takes their messages. Their callbacks run one at a time, on the
reader's thread: they must guard what other threads read, as an executor's callbacks must. A
callback of two parameters gets the message's DDS info too (``source_timestamp``,
``received_timestamp``: ns on the system clock), as the executor gives it.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any

from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import CallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerGuardCondition
from rclpy.subscription import Subscription

from robot_il.ros.node_main import await_signal_shutdown

WAIT_TIMEOUT_NS = 100_000_000
"""Longest wait (ns) before the thread looks whether the context was shut down (Ctrl-C)."""

_RUNNING: weakref.WeakSet[SubscriptionReader] = weakref.WeakSet()
"""Readers started and not yet closed."""


@atexit.register
def _close_running_readers() -> None:
    """Close every reader still running when the interpreter exits (a node that failed to
    build after its observation started one, a script that never closed its node): a thread
    left in rcl's wait while the interpreter finalises aborts the process (SIGABRT, every
    time), which would turn a node's one-line error and exit code 2 into a crash."""
    for reader in list(_RUNNING):
        reader.close()


class _TakenByReader(CallbackGroup):
    """A callback group no executor runs: a :class:`SubscriptionReader` takes its messages."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


class SubscriptionReader:
    """Takes the messages of the subscriptions made with :meth:`subscribe` on a thread of its
    own from :meth:`start` until :meth:`close` (or the context's shutdown). A callback that
    raises is logged (at most every 5 s) and the reader goes on with the next message."""

    def __init__(self, node: Node, name: str) -> None:
        self._node = node
        self._name = name
        self._group = _TakenByReader()
        self._subscriptions: list[Subscription] = []
        self._wake = SignalHandlerGuardCondition(node.context)
        """Triggered by :meth:`close`, so the thread stops waiting at once, and by rclpy's
        signal handler (SIGINT, SIGTERM) just before it shuts the context down."""
        self._closing = False
        self._thread: threading.Thread | None = None

    def subscribe(
        self, msg_type: type, topic: str, callback: Callable[..., None], qos: QoSProfile
    ) -> Subscription:
        """The node's subscription to ``topic``, whose messages this reader takes (made before
        :meth:`start`)."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name}: subscribe before the reader starts")
        subscription = self._node.create_subscription(
            msg_type, topic, callback, qos, callback_group=self._group
        )
        self._subscriptions.append(subscription)
        return subscription

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        _RUNNING.add(self)

    def close(self) -> None:
        """Stop taking messages; returns once a callback under way has ended. Once is enough;
        a second call does nothing."""
        if self._closing:
            return
        self._closing = True
        _RUNNING.discard(self)
        with contextlib.suppress(InvalidHandle, RCLError):  # (a context shut down: the wait
            self._wake.trigger()  # ends within its timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._wake.destroy()

    def _run(self) -> None:
        context = self._node.context
        wait_set = _rclpy.WaitSet(len(self._subscriptions), 1, 0, 0, 0, 0, context.handle)
        while not self._closing and context.ok():
            try:
                # (held in use: a subscription destroyed meanwhile is not freed under the wait)
                with contextlib.ExitStack() as in_use:
                    for subscription in self._subscriptions:
                        in_use.enter_context(subscription.handle)
                    in_use.enter_context(self._wake.handle)
                    wait_set.clear_entities()
                    for subscription in self._subscriptions:
                        wait_set.add_subscription(subscription.handle)
                    wait_set.add_guard_condition(self._wake.handle)
                    wait_set.wait(WAIT_TIMEOUT_NS)
                    if self._wake.handle.pointer in wait_set.get_ready_entities("guard_condition"):
                        self._await_shutdown(context)  # (or close(): then at once)
                        continue
                    for subscription in self._subscriptions:
                        self._take_all(subscription)
            except InvalidHandle:
                return  # the node was destroyed under the reader
            except Exception:
                if self._closing or not context.ok():
                    return  # the context shut down under the wait
                raise

    def _await_shutdown(self, context: Any) -> None:
        """Woken by a signal: wait, outside rcl, for the shutdown of the context that rclpy's
        signal thread does next (:func:`~robot_il.ros.node_main.await_signal_shutdown`; at once
        on :meth:`close`), rather than wait in ``rcl_wait`` again meanwhile."""
        await_signal_shutdown(context, cancelled=lambda: self._closing)

    def _take_all(self, subscription: Subscription) -> None:
        while not self._closing:
            taken = subscription.handle.take_message(subscription.msg_type, subscription.raw)
            if taken is None:
                return
            try:
                # rclpy told the two kinds apart by the callback's signature (its executor's
                # way; a private attribute of rclpy 7.1, Jazzy)
                if subscription._callback_type is Subscription.CallbackType.WithMessageInfo:
                    subscription.callback(*taken)
                else:
                    subscription.callback(taken[0])
            except Exception as error:
                self._node.get_logger().error(
                    f"{self._name}: a callback of {subscription.topic_name} failed: "
                    f"{type(error).__name__}: {error}",
                    throttle_duration_sec=5.0,
                )
