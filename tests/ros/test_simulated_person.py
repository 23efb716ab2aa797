"""The simulated person's feedback reaches the selector however discovery orders the matches."""

from __future__ import annotations

import json
import time

import pytest
from deploy_helpers import Client, spinning, wait_for

pytestmark = pytest.mark.ros


def test_an_intervention_waits_for_its_own_topic_to_be_matched(ros_context, own_context) -> None:
    """Each feedback topic is matched on its own: with the rating topic matched and the
    intervention's not yet, an intervention sent then is lost for good (volatile), and the
    selector waits for that episode's feedback forever. Here the selector (its own DDS
    participant) subscribes to interventions half a second after its rating subscription is
    matched."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from robot_il.ros.selector_node import LATCHED
    from robot_il.ros.simulated_person_node import SimulatedPersonNode
    from robot_il.select.topics import (
        INTERVENE_TOPIC,
        RATING_TOPIC,
        STATISTICS_TOPIC,
        read_intervention,
    )

    unsafe = Parameter("profiles", value=json.dumps({"risky": {"success": 0.5, "unsafe": 1.0}}))
    person = SimulatedPersonNode(context=own_context, parameter_overrides=[unsafe])
    person.shutdown = person.destroy_node
    selector = Client(ros_context, "selector")
    try:
        with spinning(person, own_context):
            ratings = selector.record(String, RATING_TOPIC)
            statistics = selector.node.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 0, "candidate": "risky"}}
            statistics.publish(String(data=json.dumps(pending)))
            wait_for(lambda: person.episode is not None, 10, "the person to see episode 0")
            wait_for(lambda: person.rating_pub.get_subscription_count() > 0, 10, "the match")
            time.sleep(0.5)  # the person's timer ticks every 20 ms
            interventions = selector.record(String, INTERVENE_TOPIC)
            wait_for(lambda: interventions, 5, "the intervention in episode 0")
        assert not ratings
        assert [read_intervention(msg.data) for _, msg in interventions] == [0]
    finally:
        selector.close()
