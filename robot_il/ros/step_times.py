"""Times each ``task/success`` by the simulated step that published it.

``task/success`` (std_msgs/Bool) has no stamp. A lock-step simulator publishes each step's
``/clock`` just before it, so the step's time is that of the last ``/clock`` sent before the
message, matched by DDS source timestamp (the publisher's system clock in ns, on this
machine). The latest clock a subscriber has *processed* is no such time: ``/clock`` and
``task/success`` are different topics, and a subscriber held up (a loaded core) may process
the next step's clock first, a policy period of jitter at random.

A message is timed once a clock sent after it has come: each topic arrives in order, so the
clock before it has come by then. Without ``use_sim_time`` (real time) a message's time is
its source timestamp itself, the system clock being then the ROS clock.

Used by ``episode_judge`` and ``robot-il eval --ros`` (:mod:`robot_il.ros.ros_eval`); the
subscriptions feed it from the executor's thread, the episode's thread reads it (``deque``
appends and pops are atomic).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rclpy.node import Node

BACKLOG = 1000
"""Depth of the ``task/success`` and ``/clock`` subscriptions and the clocks kept: a
subscriber held up (a loaded core) takes every step's message later rather than losing the
one that said "solved"."""


class StepTimes:
    """``task/success`` messages with the ROS time (s) of the step that published each."""

    def __init__(self, sim_time: bool) -> None:
        self.sim_time = sim_time
        """Whether ROS time is ``/clock``'s (``use_sim_time``), else the system clock."""
        self._clocks: deque[tuple[int, float]] = deque(maxlen=BACKLOG)
        """(DDS source timestamp ns, simulated time s) of the latest ``/clock`` messages."""
        self._successes: deque[tuple[int, bool]] = deque()
        """(source timestamp ns, solved) of the ``task/success`` messages not yet timed."""
        self._since = 0
        """Source timestamp (ns) before which a message belongs to an earlier episode."""

    def subscribe(self, node: Node, success_topic: str) -> None:
        """Feed this from ``node``'s subscriptions to ``success_topic`` and, with
        ``sim_time``, ``/clock``."""
        from rclpy.time import Time
        from rosgraph_msgs.msg import Clock
        from std_msgs.msg import Bool

        def on_success(msg: Bool, info: dict) -> None:
            self.add_success(info["source_timestamp"], msg.data)

        def on_clock(msg: Clock, info: dict) -> None:
            self.add_clock(info["source_timestamp"], Time.from_msg(msg.clock).nanoseconds * 1e-9)

        node.create_subscription(Bool, success_topic, on_success, BACKLOG)
        if self.sim_time:
            node.create_subscription(Clock, "/clock", on_clock, BACKLOG)

    def add_clock(self, sent: int, t: float) -> None:
        """A ``/clock`` of simulated time ``t`` (s), sent at ``sent`` (source timestamp, ns)."""
        self._clocks.append((sent, t))

    def add_success(self, sent: int, solved: bool) -> None:
        """A ``task/success`` sent at ``sent`` (source timestamp, ns)."""
        self._successes.append((sent, solved))

    def restart(self, since: int) -> None:
        """Begin an episode whose messages are those sent from ``since`` (system time, ns,
        taken before the simulator's reset was asked for): the earlier ones, received or still
        on their way, belong to the episode before and are never timed."""
        self._since = since

    def start_time(self) -> float | None:
        """Simulated time (s) of the first ``/clock`` sent since :meth:`restart`, None while
        none has come: the reset's time, a lock-step simulator holding its clock from the
        reset until the next command."""
        return next((t for sent, t in list(self._clocks) if sent >= self._since), None)

    def timed_successes(self) -> list[tuple[float, bool]]:
        """The ``task/success`` messages that can be timed since the last call, in order, each
        as (ROS time s of the step that published it, solved)."""
        timed = []
        if not self.sim_time:
            while self._successes:
                sent, solved = self._successes.popleft()
                if sent >= self._since:
                    timed.append((sent * 1e-9, solved))
            return timed
        clocks = list(self._clocks)
        while self._successes and clocks and self._successes[0][0] < clocks[-1][0]:
            sent, solved = self._successes.popleft()
            before = [t for clock_sent, t in clocks if clock_sent <= sent]
            if sent >= self._since and before:  # else: an earlier episode's
                timed.append((before[-1], solved))
        return timed
