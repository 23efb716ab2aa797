"""``robot-il eval --ros`` of a camera checkpoint: the simulator renders the checkpoint's camera
at its frame size once per policy step and the policy node reads it (resizing to the
checkpoint's size by default), with no parameter from the user; a node that exits while the
evaluation waits for its services is reported at once, with its log."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import constant_checkpoint

from robot_il.errors import ConfigError


def _camera_checkpoint(directory: Path) -> Path:
    """A reach checkpoint that holds the arm at its start pose and sees ``rgb_front`` at
    24x32, a size no node defaults to."""
    from robot_il.envs import make_env

    env = make_env("reach")
    q0 = env.reset(seed=10_000)[0]["joint_pos"].astype(np.float64)
    env.close()
    return constant_checkpoint(directory, np.append(q0, 0.0), camera="front", image_size=(24, 32))


@pytest.mark.ros
def test_a_camera_checkpoint_runs_over_ros_with_its_camera(ros_context, ros_env, tmp_path):
    from robot_il.ros.ros_eval import evaluate_over_ros

    checkpoint = _camera_checkpoint(tmp_path / "camera")
    result = evaluate_over_ros(checkpoint, episodes=1, seed=10_000, context=ros_context,
                               env=ros_env, log_dir=tmp_path / "logs",
                               episode_wall_timeout=60.0)  # fmt: skip
    assert result.seeds == [10_000]
    # a policy without its frames holds the lock-step simulator: the episode would not run out
    assert result.lengths == [80], (tmp_path / "logs" / "policy.log").read_text()[-2000:]


@pytest.mark.ros
def test_a_node_that_exits_is_reported_at_once(ros_context, ros_env, tmp_path):
    """The policy node refuses a camera checkpoint without the camera (``cameras:=""``) and
    exits; the evaluation says so with the node's error, not 'service did not come up' two
    minutes later."""
    from robot_il.ros.ros_eval import evaluate_over_ros

    checkpoint = _camera_checkpoint(tmp_path / "camera")
    start = time.monotonic()
    with pytest.raises(
        ConfigError,
        match=r"(?s)policy exited.*observes rgb_front, which this node has no "
        r"camera for; start it with cameras:=front \(a deploy launch file's argument: "
        r"camera:=front\)",
    ):
        evaluate_over_ros(checkpoint, episodes=1, seed=10_000, context=ros_context,
                          env=ros_env, log_dir=tmp_path / "logs",
                          policy_params={"cameras": '""'})  # fmt: skip
    assert time.monotonic() - start < 60


def test_checkpoints_the_simulator_cannot_show_are_refused_before_any_node(tmp_path) -> None:
    from robot_il.deploy.worker import CheckpointInfo
    from robot_il.ros.ros_eval import camera_params

    spec = {"control_hz": 20.0, "observation": {"joint_pos": [6], "rgb_front": [24, 32, 3],
                                                "rgb_wrist": [24, 32, 3]}}  # fmt: skip
    info = CheckpointInfo(tmp_path, "bc", spec, sorted(spec["observation"]), 1, 1)
    with pytest.raises(ConfigError, match="observes rgb_front, rgb_wrist; sim_robot renders one"):
        camera_params(info)
    state_only = CheckpointInfo(tmp_path, "bc", {**spec, "observation": {"joint_pos": [6]}},
                                ["joint_pos"], 1, 1)  # fmt: skip
    assert camera_params(state_only) == ({}, {})
