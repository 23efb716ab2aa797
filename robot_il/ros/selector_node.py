"""The ``selector`` node: before each episode it picks the candidate policy to deploy.

It publishes the chosen candidate (checkpoint name or path) on
:data:`~robot_il.select.topics.CANDIDATE_TOPIC` for the policy node, closes the episode when
the person's rating (std_msgs/Float64 on ``RATING_TOPIC``) or intervention (std_msgs/Bool on
``INTERVENE_TOPIC``, a failure) arrives, then at once picks and publishes the next candidate.
Candidates therefore switch only between episodes, or immediately on intervention. After
every change it publishes :meth:`Selector.statistics` as JSON on ``STATISTICS_TOPIC``
(the open episode is ``pending``). Candidate and statistics are latched (transient local),
so nodes that start later see the current ones.

The selection state file (``state_path``) is rewritten durably after every change; a
restarted node resumes from it, re-publishing the episode that was open.

Parameters: ``candidates`` (string list), ``rule`` (ucb1 | conservative_ucb |
epsilon_greedy | uniform), ``default_candidate`` and ``default_mean`` (the known-safe policy
and its mean rating, for conservative_ucb), ``alpha``, ``delta``, ``epsilon``, ``seed``,
``state_path`` ("" keeps the state in memory), ``episodes`` (stop after this many rated
episodes and print the winner; 0 runs until shut down).
"""

from __future__ import annotations

import json
import sys

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float64, String

from robot_il.errors import FeedbackError, SelectionError
from robot_il.ros.node_main import declare_float, run_node
from robot_il.select import UCB1, ConservativeUCB, EpsilonGreedy, SelectionRule, Selector, Uniform
from robot_il.select.topics import (
    CANDIDATE_TOPIC,
    INTERVENE_TOPIC,
    RATING_TOPIC,
    STATISTICS_TOPIC,
)

LATCHED = QoSProfile(
    depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE
)
"""QoS of the candidate and statistics topics: late subscribers get the latest message."""

FEEDBACK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of the feedback topics: no rating may be dropped."""


def make_rule(
    rule: str,
    candidates: list[str],
    *,
    default_candidate: str,
    default_mean: float,
    alpha: float,
    delta: float,
    epsilon: float,
) -> SelectionRule:
    """The selection rule named ``rule``, with the parameters that rule uses."""
    if rule == "ucb1":
        return UCB1()
    if rule == "uniform":
        return Uniform()
    if rule == "epsilon_greedy":
        return EpsilonGreedy(epsilon)
    if rule == "conservative_ucb":
        if default_candidate not in candidates:
            raise SelectionError(
                f"conservative_ucb: default_candidate {default_candidate!r} is not one of "
                f"{candidates}"
            )
        return ConservativeUCB(candidates.index(default_candidate), default_mean, alpha, delta)
    raise SelectionError(
        f"unknown rule {rule!r}; use ucb1, conservative_ucb, epsilon_greedy or uniform"
    )


class SelectorNode(Node):
    """Chooses a candidate per episode from the person's feedback."""

    def __init__(self) -> None:
        super().__init__("selector")
        candidates = list(self.declare_parameter("candidates", [""]).value)
        rule = make_rule(
            self.declare_parameter("rule", "ucb1").value,
            candidates,
            default_candidate=self.declare_parameter("default_candidate", "").value,
            default_mean=declare_float(self, "default_mean", 0.5),
            alpha=declare_float(self, "alpha", 0.1),
            delta=declare_float(self, "delta", 0.05),
            epsilon=declare_float(self, "epsilon", 0.1),
        )
        seed = int(self.declare_parameter("seed", 0).value)
        state_path = self.declare_parameter("state_path", "").value
        self.episodes = int(self.declare_parameter("episodes", 0).value)
        if state_path:
            self.selector = Selector.open(state_path, candidates, rule, seed=seed)
        else:
            self.selector = Selector.create(candidates, rule, seed=seed)
        self.finished = False

        self.candidate_pub = self.create_publisher(String, CANDIDATE_TOPIC, LATCHED)
        self.statistics_pub = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
        self.create_subscription(Float64, RATING_TOPIC, self.on_rating, FEEDBACK_QOS)
        self.create_subscription(Bool, INTERVENE_TOPIC, self.on_intervene, FEEDBACK_QOS)
        # The first episode opens once spinning (a finished state shuts down from there).
        self._first = self.create_timer(0.0, self.on_first_episode)

    def on_first_episode(self) -> None:
        self._first.cancel()
        self.start_episode()

    def on_rating(self, msg: Float64) -> None:
        self.close_episode(msg.data, intervened=False)

    def on_intervene(self, msg: Bool) -> None:
        if msg.data:
            self.close_episode(0.0, intervened=True)

    def close_episode(self, rating: float, *, intervened: bool) -> None:
        """Record the open episode's feedback and start the next episode."""
        pending = self.selector.pending
        if self.finished or pending is None:
            self.get_logger().warning(f"feedback {rating} ignored: no episode is open")
            return
        try:
            self.selector.feedback(pending.episode, rating, intervened=intervened)
        except FeedbackError as error:
            self.get_logger().warning(str(error))
            return
        what = "intervened" if intervened else f"rated {rating:.2f}"
        self.get_logger().info(f"episode {pending.episode} ({pending.candidate}): {what}")
        self.start_episode()

    def start_episode(self) -> None:
        """Open the next episode (or re-announce the open one) and publish it."""
        finished = self.episodes and len(self.selector.log) >= self.episodes
        if not finished:
            choice = self.selector.pending or self.selector.choose()
            self.candidate_pub.publish(String(data=choice.candidate))
        statistics = self.selector.statistics()
        self.statistics_pub.publish(String(data=json.dumps(statistics)))
        if finished:
            self.finish(statistics)

    def finish(self, statistics: dict) -> None:
        """Print the winner and shut the node down (``episodes`` reached)."""
        self.finished = True
        best = next(c for c in statistics["candidates"] if c["name"] == statistics["best"])
        print(
            f"selection finished after {statistics['episodes']} episodes: best candidate "
            f"{best['name']} (mean rating {best['mean_rating']:.3f} over {best['plays']} "
            "episodes)",
            flush=True,
        )
        self.context.try_shutdown()


def main(args: list[str] | None = None) -> int:
    """Console script ``selector``; ROS parameters via ``--ros-args -p name:=value``."""
    return run_node(SelectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
