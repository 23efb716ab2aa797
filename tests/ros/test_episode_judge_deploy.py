"""How ``episode_judge`` learns that the policy node runs the candidate it asked for: each
``policy/reset`` it sends to ask starts (and logs) a policy episode, so while a candidate
loads it asks ever less often (85 "new episode with" lines for 4 selection episodes before)."""

from __future__ import annotations

import time

import pytest
from deploy_helpers import spinning

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
