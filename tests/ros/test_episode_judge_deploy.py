"""How ``episode_judge`` learns that the policy node runs the candidate it asked for: each
``policy/reset`` it sends to ask starts (and logs) a policy episode, so while a candidate
loads it asks ever less often (85 "new episode with" lines for 4 selection episodes before)."""

from __future__ import annotations

import time

import pytest
from deploy_helpers import Client, spinning, wait_for

pytestmark = pytest.mark.ros

LOAD_S = 2.0
"""How long the stand-in policy node takes to load the candidate, s."""


def test_the_judge_asks_which_checkpoint_runs_ever_less_often(ros_context) -> None:
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    from robot_il.ros.episode_judge import EpisodeJudge

    class PolicyResets(Node):
        """``policy/reset`` as the policy node answers it, the candidate in force after
        ``LOAD_S`` from the first ask."""

        def __init__(self) -> None:
            super().__init__("policy", context=ros_context)
            self.asks: list[float] = []
            self.create_service(Trigger, "policy/reset", self.on_reset)

        def on_reset(self, request, response):
            self.asks.append(time.monotonic())
            loaded = self.asks[-1] - self.asks[0] >= LOAD_S
            response.success = True
            response.message = f"new episode with {'candidate' if loaded else 'previous'}"
            return response

        def shutdown(self) -> None:
            self.destroy_node()

    with (
        spinning(PolicyResets(), ros_context) as policy,
        spinning(EpisodeJudge(context=ros_context), ros_context) as judge,
    ):
        assert judge._deploy("candidate")
    waited = policy.asks[-1] - policy.asks[0]
    assert LOAD_S <= waited < LOAD_S + 1.5  # found soon after the load
    assert len(policy.asks) <= 8, len(policy.asks)  # every 0.1 s: 21 asks


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
    from robot_il.ros.selector_node import LATCHED
    from robot_il.select.topics import RATING_TOPIC, STATISTICS_TOPIC

    class Cell(Node):
        """The policy node's and the simulator's services, answered at once, and the
        selector's latched announcement of episode 0 of ``candidate``."""

        def __init__(self) -> None:
            super().__init__("cell", context=ros_context)
            self.resets: list[float] = []
            for name in ("policy/reset", "policy/stop", "sim/reset"):
                self.create_service(Trigger, name, self.on_call)
            statistics = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 0, "candidate": "candidate"}}
            statistics.publish(String(data=json.dumps(pending)))

        def on_call(self, request, response):
            self.resets.append(time.monotonic())
            response.success, response.message = True, "new episode with candidate"
            return response

        def shutdown(self) -> None:
            self.destroy_node()

    time_limit = Parameter("time_limit", value=0.2)
    judge = EpisodeJudge(context=ros_context, parameter_overrides=[time_limit])
    client = Client(ros_context)
    try:
        with spinning(Cell(), ros_context) as cell, spinning(judge, ros_context):
            wait_for(lambda: len(cell.resets) >= 4, 10, "the episode's start")  # deploy, stop,
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
    from robot_il.ros.selector_node import LATCHED
    from robot_il.select.topics import INTERVENE_TOPIC, STATISTICS_TOPIC, read_intervention

    class Cell(Node):
        """A policy node that keeps running the previous checkpoint, and the selector's
        latched announcement of episode 3 of ``candidate``."""

        def __init__(self) -> None:
            super().__init__("cell", context=ros_context)
            self.create_service(Trigger, "policy/reset", self.on_reset)
            statistics = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 3, "candidate": "candidate"}}
            statistics.publish(String(data=json.dumps(pending)))

        def on_reset(self, request, response):
            response.success, response.message = True, "new episode with previous"
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
