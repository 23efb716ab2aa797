"""The ``simulated_person`` node: stands in for the supervising person in tests and demos.

It watches the selector's statistics (:data:`~robot_il.select.topics.STATISTICS_TOPIC`);
for every episode it announces it lets ``episode_s`` seconds pass, draws the episode's
outcome from the deployed candidate's profile (success and unsafe probabilities) and gives
the :class:`~robot_il.select.SimulatedPerson`'s feedback on that episode: an intervention
(std_msgs/String ``{"episode": N}``) when it was unsafe, else a rating (std_msgs/String
``{"episode": N, "rating": r}``). Outcomes depend only on ``seed`` and the episode number, so
runs are reproducible whatever the message timing.

Parameters: ``profiles`` (JSON: ``{"candidate": {"success": p, "unsafe": q}, ...}``),
``noise_std`` (rating noise), ``seed``, ``episode_s``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from rclpy.node import Node
from std_msgs.msg import String

from robot_il.errors import SelectionError
from robot_il.ros.node_main import declare_float, run_node
from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
from robot_il.select import CandidateProfile, SimulatedPerson, simulate_feedback
from robot_il.select.topics import (
    INTERVENE_TOPIC,
    RATING_TOPIC,
    STATISTICS_TOPIC,
    intervention_message,
    rating_message,
)


def parse_profiles(text: str) -> dict[str, CandidateProfile]:
    """Candidate profiles from the ``profiles`` parameter's JSON."""
    try:
        spec = json.loads(text)
        return {
            name: CandidateProfile(name, float(p["success"]), float(p.get("unsafe", 0.0)))
            for name, p in spec.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise SelectionError(
            f'profiles parameter: expected {{"name": {{"success": p, "unsafe": q}}}}, got '
            f"{text!r} ({error!r})"
        ) from None


class SimulatedPersonNode(Node):
    """Rates every episode the selector opens, as a person would, after ``episode_s``."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("simulated_person", **node_kwargs)
        self.profiles = parse_profiles(self.declare_parameter("profiles", "{}").value)
        self.person = SimulatedPerson(declare_float(self, "noise_std", 0.15))
        self.seed = int(self.declare_parameter("seed", 0).value)
        self.episode_s = declare_float(self, "episode_s", 0.0)
        self.rating_pub = self.create_publisher(String, RATING_TOPIC, FEEDBACK_QOS)
        self.intervene_pub = self.create_publisher(String, INTERVENE_TOPIC, FEEDBACK_QOS)
        self.create_subscription(String, STATISTICS_TOPIC, self.on_statistics, LATCHED)
        self.create_timer(0.02, self.give_feedback)
        self.episode: tuple[int, str, float] | None = None  # (number, candidate, due time)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_statistics(self, msg: String) -> None:
        # Every announcement of an open episode gets feedback, even one already given: a
        # restarted selector re-announces the episode whose rating it may not have received.
        pending = json.loads(msg.data).get("pending")
        if pending:
            self.episode = (pending["episode"], pending["candidate"], self.now_s() + self.episode_s)

    def give_feedback(self) -> None:
        """Once the episode's time is up and the selector listens on the topic of what
        happened, say it (each topic is matched on its own, and on these volatile topics a
        message sent before the match is lost: the selector would wait for it forever)."""
        if self.episode is None or self.now_s() < self.episode[2]:
            return
        number, candidate, _ = self.episode
        if candidate not in self.profiles:
            raise SelectionError(f"episode {number}: no profile for candidate {candidate!r}")
        rng = np.random.default_rng([self.seed, number])
        rating, intervened = simulate_feedback(
            [self.profiles[candidate]], np.asarray(0), self.person, rng
        )
        if intervened:
            publisher, text = self.intervene_pub, intervention_message(number)
        else:
            publisher, text = self.rating_pub, rating_message(number, rating)
        if publisher.get_subscription_count() == 0:
            return  # drawn again at the next tick, the same from the same seed and episode
        publisher.publish(String(data=text))
        self.episode = None


def main(args: list[str] | None = None) -> int:
    """Console script ``simulated_person``; parameters via ``--ros-args -p name:=value``."""
    return run_node(SimulatedPersonNode, args)


if __name__ == "__main__":
    sys.exit(main())
