"""A checkpoint trained in the push task frame deploys like any other: over ROS 2 the policy
node reads the world topics (joint states, ``task/object_pose``, ``task/target``), its
inference process turns them into the frame and the actions back to the world
(``robot_il.envs.task_frame.WorldFramePolicy``), and it pushes as in the simulated frame env."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros


def test_a_push_frame_checkpoint_pushes_over_ros_as_in_its_env(ros_context, ros_env, tmp_path):
    from robot_il.policies import load_policy

    from robot_il.cli import main as cli
    from robot_il.ros.ros_eval import evaluate_over_ros
    from robot_il.train.config import load_config
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.evaluate import evaluate, make_eval_env
    from robot_il.train.trainer import train

    world = record_expert_demos("push", tmp_path / "world", episodes=10, action_noise=0.005,
                                action_mode="eef_delta", terminate_on_success=False,
                                max_episode_steps=70)  # fmt: skip
    framed = tmp_path / "frame.zarr"
    assert cli(["data", "frame", str(world), str(framed)]) == 0
    # The benchmark's 10 demonstrations and half its recipe's 4000 steps: training seeds 0-4
    # pushed on 49 of their 50 evaluation seeds from 10_000 (session 52).
    settings = ["--dataset", str(framed), "--out", str(tmp_path / "bc"), "--steps", "2000",
                "--lr", "1e-3", "--weight-decay", "1e-3", "--policy.head", "gaussian",
                "--policy.normalization", "gaussian", "--eval.episodes", "0",
                "--no-progress"]  # fmt: skip
    checkpoint = train(load_config("bc", None, settings)).checkpoint
    env = make_eval_env(load_policy(checkpoint).spec)
    try:
        in_env = evaluate(load_policy(checkpoint), env, episodes=2, seed=10_000)
    finally:
        env.close()
    over_ros = evaluate_over_ros(checkpoint, episodes=2, seed=10_000, context=ros_context,
                                 env=ros_env, log_dir=tmp_path / "logs")  # fmt: skip
    assert over_ros.seeds == in_env.seeds
    assert in_env.successes == [True, True], "the frame policy no longer pushes in its env"
    assert over_ros.successes == [True, True]
