"""How ``episode_judge`` deploys a candidate: it asks the policy node by ``policy/stop`` which
checkpoint the next episode runs, so while the candidate loads no policy episode runs (asked
by ``policy/reset``, each ask ran the old checkpoint on, and a lock-step simulation with it:
hundreds of steps a load, on the cores the load needs), and it finds the candidate at the
first ask after the load."""

from __future__ import annotations

import time

import pytest
from deploy_helpers import Client, spinning, wait_for

pytestmark = pytest.mark.ros

LOAD_S = 1.0
"""How long the stand-in policy node takes to load the candidate, s."""


def test_the_judge_waits_for_a_candidate_with_the_policy_stopped(ros_context) -> None:
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    from robot_il.ros.episode_judge import EpisodeJudge
    from robot_il.ros.policy_node import reset_message, stop_message

    class PolicyServices(Node):
        """``policy/stop`` and ``policy/reset`` as the policy node answers them, the
        candidate in force ``LOAD_S`` after the first ask."""

        def __init__(self) -> None:
            super().__init__("policy", context=ros_context)
            self.asks: list[tuple[str, str]] = []
            """(service, checkpoint in force) per call."""
            self.first: float | None = None
            self.create_service(Trigger, "policy/stop", self.on_stop)
            self.create_service(Trigger, "policy/reset", self.on_reset)

        def in_force(self) -> str:
            self.first = self.first or time.monotonic()
            return "candidate" if time.monotonic() - self.first >= LOAD_S else "previous"

        def on_stop(self, request, response):
            checkpoint = self.in_force()
            self.asks.append(("stop", checkpoint))
            response.success, response.message = True, stop_message(checkpoint, 0)
            return response

        def on_reset(self, request, response):
            checkpoint = self.in_force()
            self.asks.append(("reset", checkpoint))
            response.success, response.message = True, reset_message(checkpoint)
            return response

        def shutdown(self) -> None:
            self.destroy_node()

    with (
        spinning(PolicyServices(), ros_context) as policy,
        spinning(EpisodeJudge(context=ros_context), ros_context) as judge,
    ):
        assert judge._deploy("candidate") == 0  # (the safety events published)
    assert {service for service, _ in policy.asks} == {"stop"}  # no episode ran meanwhile
    assert [checkpoint for _, checkpoint in policy.asks].count("candidate") == 1


def test_the_judge_holds_its_rating_until_the_selector_subscribes(ros_context) -> None:
    """A rating published before discovery has matched the selector's subscription is lost
    for good on the volatile feedback topic (and the selector waits for that episode's
    feedback forever): the judge waits for the subscriber. Here the selector's subscription
    appears only after the episode is over."""
    import json

    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.ros.episode_judge import EpisodeJudge
    from robot_il.ros.policy_node import reset_message, stop_message
    from robot_il.ros.selector_node import LATCHED
    from robot_il.select.topics import RATING_TOPIC, STATISTICS_TOPIC

    class Cell(Node):
        """The policy node's and the simulator's services, answered at once, and the
        selector's latched announcement of episode 0 of ``candidate``."""

        def __init__(self) -> None:
            super().__init__("cell", context=ros_context)
            self.resets: list[float] = []
            answers = {"policy/reset": reset_message("candidate"),
                       "policy/stop": stop_message("candidate", 0), "sim/reset": ""}  # fmt: skip
            for name, answer in answers.items():
                self.create_service(Trigger, name, lambda _, r, a=answer: self.on_call(r, a))
            statistics = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 0, "candidate": "candidate"}}
            statistics.publish(String(data=json.dumps(pending)))

        def on_call(self, response, answer: str):
            self.resets.append(time.monotonic())
            response.success, response.message = True, answer
            return response

        def shutdown(self) -> None:
            self.destroy_node()

    time_limit = Parameter("time_limit", value=0.2)
    judge = EpisodeJudge(context=ros_context, parameter_overrides=[time_limit])
    client = Client(ros_context)
    try:
        with spinning(Cell(), ros_context) as cell, spinning(judge, ros_context):
            wait_for(lambda: len(cell.resets) >= 3, 10, "the episode's start")  # deploy (stop),
            time.sleep(0.2 + 0.5)  # sim reset, policy reset; then the episode's time passes
            ratings = client.record(String, RATING_TOPIC)
            wait_for(lambda: ratings, 5, "the rating of episode 0")
        assert json.loads(ratings[0][1].data)["episode"] == 0
    finally:
        client.close()


def test_a_candidate_that_never_loads_is_stopped_naming_its_episode(ros_context) -> None:
    """The judge's intervention names the episode it judged, as the person's does: a bare one
    closed whatever episode was open when it arrived."""
    import json

    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.ros.episode_judge import EpisodeJudge
    from robot_il.ros.policy_node import stop_message
    from robot_il.ros.selector_node import LATCHED
    from robot_il.select.topics import INTERVENE_TOPIC, STATISTICS_TOPIC, read_intervention

    class Cell(Node):
        """A policy node that keeps running the previous checkpoint, and the selector's
        latched announcement of episode 3 of ``candidate``."""

        def __init__(self) -> None:
            super().__init__("cell", context=ros_context)
            self.create_service(Trigger, "policy/stop", self.on_stop)
            statistics = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 3, "candidate": "candidate"}}
            statistics.publish(String(data=json.dumps(pending)))

        def on_stop(self, request, response):
            response.success, response.message = True, stop_message("previous", 0)
            return response

        def shutdown(self) -> None:
            self.destroy_node()

    switch_timeout = Parameter("switch_timeout", value=0.3)
    judge = EpisodeJudge(context=ros_context, parameter_overrides=[switch_timeout])
    client = Client(ros_context)
    try:
        interventions = client.record(String, INTERVENE_TOPIC)
        with spinning(Cell(), ros_context), spinning(judge, ros_context):
            wait_for(lambda: interventions, 10, "the intervention in episode 3")
        assert read_intervention(interventions[0][1].data) == 3
    finally:
        client.close()
