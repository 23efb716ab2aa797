"""Real-time chunking over ROS 2: with ``inpaint_committed`` each chunk a Diffusion policy
computes while the arm moves begins with the actions the current chunk still executes during
its inference, in real time on the node's own planner, worker process and threads.

The node runs in this process (so the test reads its action timelines), an untrained Diffusion
checkpoint drives it (its chunks are noise, so two chunks agree only when one is conditioned on
the other), and the test plays the robot driver and the perception node."""

from __future__ import annotations

import time

import numpy as np
import pytest
from deploy_helpers import Client, spinning
from test_policy_control_thread import FollowingDriver

pytestmark = pytest.mark.ros

CHUNKS = 6
"""Chunk switches compared per run: each new chunk that came while the one before lasted."""


def first_action_gaps(ros_context, tmp_path, inpaint: bool) -> list[float]:
    """For each of ``CHUNKS`` chunk switches, the largest |new - old| (rad) of the new chunk's
    first action against the old chunk's action due at the same grid time: the first of the
    actions a switch commits (at least one, the margin being > 0)."""
    from geometry_msgs.msg import PointStamped
    from rclpy.parameter import Parameter
    from robot_il.policies.untrained import untrained_reach_checkpoint

    from robot_il.ros.policy_node import PolicyNode

    checkpoint = untrained_reach_checkpoint("diffusion", tmp_path / str(inpaint))
    parameters = [
        Parameter("checkpoint", value=str(checkpoint)),
        Parameter("control_rate", value=100.0),
        Parameter("inpaint_committed", value=inpaint),
    ]
    node = PolicyNode(context=ros_context, parameter_overrides=parameters)
    client = Client(ros_context)
    message = PointStamped()
    message.point.x, message.point.y, message.point.z = 0.4, 0.1, 1.0
    gaps: list[float] = []
    try:
        with spinning(node, ros_context):
            driver = FollowingDriver(client)
            target = client.publisher(PointStamped, "task/target")
            old, deadline = None, time.monotonic() + 60.0
            while len(gaps) < CHUNKS and time.monotonic() < deadline:
                target.publish(message)
                new = node._timeline
                if new is not None and new is not old:
                    # (a chunk late on a loaded machine, after the old one ran out, has none)
                    due = None if old is None else old.action_at(new.t_obs + 1e-6)
                    if due is not None:
                        gaps.append(float(np.abs(new.actions[0] - due[0]).max()))
                    old = new
                time.sleep(0.002)
            driver.close()
    finally:
        client.close()
    assert len(gaps) == CHUNKS, f"{len(gaps)} chunk switches in 60 s"
    return gaps


def test_chunks_begin_with_the_actions_the_arm_still_executes(ros_context, tmp_path) -> None:
    gaps = first_action_gaps(ros_context, tmp_path, inpaint=True)
    assert max(gaps) < 1e-4, gaps


def test_without_inpainting_the_chunks_disagree(ros_context, tmp_path) -> None:
    """The check above can fail: the same switches without ``inpaint_committed``."""
    gaps = first_action_gaps(ros_context, tmp_path, inpaint=False)
    assert min(gaps) > 1e-2, gaps
