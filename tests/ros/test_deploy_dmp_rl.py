"""A DMP+RL checkpoint (DMPs from recorded ``bimanual_cross`` demos, the shipped PPO
coordinator, the distance shield) over ROS 2 on the two-arm ``sim_robot`` in lock-step, in the
dual-arm tutorial's per-arm layout, behind the policy node's two-arm safety layer; and the
launch file that starts the same pair of nodes.

Needs the task's inputs over ROS (``sim_robot`` publishes ``tool_goals``, ``start_delays`` ...
on ``task/<key>``). Run on 2026-12-01 (load about 10 on 2 cores): 10/10 episodes, 11.5 s
each; again 10/10 after the via-point drift fix (load about 6, 83 s for the test)."""

from __future__ import annotations

from pathlib import Path

import pytest

LAYOUT = {"tf_prefixes": "['alice_','bob_']", "controller_layout": "per_arm"}
CLEARANCE = 0.01
"""The safety layer's inter-arm clearance (m); the checkpoint's shield keeps 2 cm."""


def dmp_rl_checkpoint(out: Path, demos: int = 6) -> Path:
    from robot_il.policies.dmp.coordinator import CoordinatorNet

    from robot_il.train.coordinator import SHIPPED_NET, export_dmp_rl
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.dmp import train_dmp

    if not SHIPPED_NET.exists():
        pytest.skip(
            f"no trained coordinator at {SHIPPED_NET}: make it with "
            "`benchmarks/dmp_multiarm.py --train-coordinator 131072` (about 4-20 min)"
        )
    dataset = record_expert_demos("bimanual_cross", out / "demos", episodes=demos)
    dmp = train_dmp(str(dataset), out / "dmp").checkpoint
    return export_dmp_rl(dmp, CoordinatorNet.load(SHIPPED_NET), out / "dmp_rl", None, 0.02)


def test_launch_file_starts_the_two_arm_sim_and_the_policy_on_bimanual_cross():
    from robot_il.launch import load_launch

    launch = Path(__file__).parents[2] / "launch" / "deploy_dmp_rl_sim.launch.yaml"
    plan = load_launch(launch, {"checkpoint": "/ckpt/dmp_rl", "lock_step": "true"})
    sim, policy = plan.processes
    assert (sim.name, policy.name) == ("sim_robot", "policy")
    assert "task:=bimanual_cross" in sim.argv and "task:=bimanual_cross" in policy.argv
    assert "checkpoint:=/ckpt/dmp_rl" in policy.argv and "use_sim_time:=true" in policy.argv
    assert "controller_layout:=per_arm" in policy.argv and "clearance:=0.01" in policy.argv
    # the grippers keep the clearance: the two-arm file's handover allowance (-0.05 m, the
    # grippers' capsules overlapping) has no place in a cell whose arms only pass each other
    assert "gripper_clearance:=0.01" in policy.argv


@pytest.mark.ros
@pytest.mark.slow  # records 6 demos, then 10 lock-step episodes of 8 s over ROS 2
@pytest.mark.timeout(3600)
def test_dmp_rl_checkpoint_solves_bimanual_cross_over_ros(ros_context, ros_env, tmp_path):
    from robot_il.ros.ros_eval import evaluate_over_ros

    checkpoint = dmp_rl_checkpoint(tmp_path)
    result = evaluate_over_ros(
        checkpoint,
        episodes=10,
        seed=10_000,
        context=ros_context,
        env=ros_env,
        log_dir=tmp_path / "logs",
        sim_params=LAYOUT,
        policy_params={**LAYOUT, "clearance": CLEARANCE},
        progress=True,
    )
    print(f"dmp_rl_shield over ROS 2, bimanual_cross, per-arm layout: {result.line()}")
    assert result.success_rate >= 0.8, result.successes


@pytest.mark.ros
def test_a_dmp_checkpoint_in_a_one_arm_cell_is_refused_naming_its_launch_file(
    ros_context, tmp_path
) -> None:
    """A two-arm DMP checkpoint given to a one-arm cell is refused naming the launch file that
    deploys it (deploy_dmp_rl_sim sets its cell's command rate and clearance; the plain two-arm
    file does not), and its summary says what runs the arms: a plain DMP checkpoint and a DMP +
    RL one share the spec, and only this line tells them apart in the node's log."""
    from rclpy.parameter import Parameter

    from robot_il.deploy.worker import CheckpointInfo
    from robot_il.errors import CheckpointError
    from robot_il.ros.policy_node import PolicyNode
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.dmp import train_dmp

    dataset = record_expert_demos("bimanual_cross", tmp_path / "demos", episodes=6)
    checkpoint = train_dmp(str(dataset), tmp_path / "dmp").checkpoint
    assert CheckpointInfo.read(checkpoint).controller == (
        "coupled DMPs, hand-set coupling, at 100 Hz"
    )
    with pytest.raises(CheckpointError) as error:
        PolicyNode(context=ros_context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("task", value="reach")
        ])  # fmt: skip
    assert "acts for 2 arm(s), this node drives 1; deploy it with deploy_dmp_rl_sim" in str(
        error.value
    )
