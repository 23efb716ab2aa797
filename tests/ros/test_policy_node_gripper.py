"""The policy node on a cell without a gripper (``gripper:=''``, the real-cell launch files'
default): a checkpoint that observes ``gripper`` is refused at start, in one line naming the
key and the parameter, instead of waiting forever for a key the joint states never carry."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import constant_checkpoint

pytestmark = pytest.mark.ros

Q0 = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]


def _node(ros_context, **parameters):
    from rclpy.parameter import Parameter

    from robot_il.ros.policy_node import PolicyNode

    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    return PolicyNode(context=ros_context, parameter_overrides=overrides)


def test_a_gripper_checkpoint_is_refused_on_a_cell_without_one(ros_context, tmp_path) -> None:
    from robot_il.errors import CheckpointError

    checkpoint = constant_checkpoint(tmp_path / "grip", np.append(Q0, 0.0), gripper=True)
    with pytest.raises(CheckpointError) as refused:
        _node(ros_context, checkpoint=str(checkpoint), gripper="")
    message = str(refused.value)
    assert "\n" not in message
    assert "observes gripper" in message and "gripper:=''" in message


def test_a_misspelt_gripper_is_refused(ros_context, tmp_path) -> None:
    from robot_il.errors import ConfigError

    checkpoint = constant_checkpoint(tmp_path / "plain", np.append(Q0, 0.0))
    with pytest.raises(ConfigError, match="gripper 'robotic' is not one of"):
        _node(ros_context, checkpoint=str(checkpoint), gripper="robotic")
