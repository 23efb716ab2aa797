"""A node whose publishers and subscriptions come without rclpy's default QoS event handlers.

rclpy gives every publisher and subscription handlers for its QoS events by default (they log
incompatible QoS, which the peer logs too). Each is a waitable that the executor's thread adds
to its wait set, in Python, on every wake-up, and a node woken by every joint state (500 Hz)
pays for them each time: the policy node's executor thread took 28-30% of a core with them
and 15% without (BC at 500 Hz, ``benchmarks/deploy_latency.py``). In the recorder they did
worse: its executor thread spun at a full core while joint states, commands and task inputs
came at 600 messages a second, and held the interpreter lock so long that other threads of
its process waited 50-500 ms for it (a thread's 5 ms sleep took that long), and the recorder
went 0.4-1.0 s without a joint state; without them it takes about a tenth of a core.
"""

from __future__ import annotations

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node


class QuietNode(Node):
    """:class:`rclpy.node.Node` creating publishers and subscriptions without default QoS
    event handlers, unless ``event_callbacks`` are given (a subscription whose peer's
    incompatible QoS must be logged: an e-stop's)."""

    def create_publisher(self, *args, **kwargs):
        kwargs.setdefault("event_callbacks", PublisherEventCallbacks(use_default_callbacks=False))
        return super().create_publisher(*args, **kwargs)

    def create_subscription(self, *args, **kwargs):
        kwargs.setdefault(
            "event_callbacks", SubscriptionEventCallbacks(use_default_callbacks=False)
        )
        return super().create_subscription(*args, **kwargs)
