"""An ``eef_delta`` checkpoint (TCP deltas, world frame) deployed through the UR driver's joint
topics: the policy node converts each action with the env's IK and solves the simulated task."""

from __future__ import annotations

import pytest
from make_eef_reach_checkpoint import FIXTURE
from test_deploy_sim import deploy_and_wait_for_success

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def test_fixture_is_an_eef_delta_policy() -> None:
    """Guards the test below: a joint-mode fixture would pass it without any conversion."""
    from robot_il.deploy.worker import CheckpointInfo

    assert CheckpointInfo.read(FIXTURE).spec["action_mode"] == "eef_delta"


def test_deploy_sim_launch_solves_reach_with_eef_delta_policy(
    ros_context, ros_env, tmp_path
) -> None:
    deploy_and_wait_for_success(
        FIXTURE, ros_context, ros_env, tmp_path / "launch.log", lock_step=True
    )
