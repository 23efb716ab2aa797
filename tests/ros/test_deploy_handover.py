"""A ``bimanual_handover`` policy over ROS 2 on the two-arm ``sim_robot`` in lock-step, in the
dual-arm tutorial's per-arm layout (tf prefixes ``alice_``/``bob_``, per-arm controllers):
at least 80% of 20 held-out seeded episodes (slow: records 400 demonstrations and trains
30,000 steps, about 40 minutes on 2 shared cores, then the ROS episodes). The default suite's
short version is ``test_deploy_two_arms.py``.

Recipe (``benchmarks/results/handover_bc_recipes.jsonl``): 400 expert demonstrations in the
end-effector-delta action mode, recorded past success with DART noise 0.005, and BC with two
observation steps and action chunks (8 predicted, 4 executed) for 30,000 steps: 16 of 20
(80%) on seeds 10000-10019 in ``robot-il eval``. With 100 demonstrations and one observation
step BC solved 0 of 20, with 200 and two observation steps 7 of 20.

Over ROS 2 that checkpoint solved 0 of seeds 10000-10009 (8 of 10 in eval) while the guard
kept the grippers' capsules apart: holding one cube they overlap by up to 3.8 cm (the capsules
over-approximate the gripper), so the cell sets ``gripper_clearance`` -0.05 m as
``deploy_two_arm_sim.launch.yaml`` does; every pair with a link keeps the 5 cm clearance.
With it no arm is held any more, and the checkpoint still solved 0 of 10 over ROS 2 (0 of 4
and 0 of 3 after two lock-step fixes): another difference between the ROS path and the env
remains, not in the eef_delta conversion, the tool or object pose observations, nor a one-step
lag of the object pose or the gripper (each checked in-process; all still solve). In-process,
the node's safety filter at its default joint acceleration limit (10 rad/s^2, 20 Hz commands)
costs success (1 of 3 seeds; 3 of 3 at the UR5e's rated 15), but over ROS 2 a limit of 15
still gave 0 of 3: the cause is not found yet (``benchmarks/results/handover_ros.jsonl``).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAYOUT = {"tf_prefixes": "['alice_','bob_']", "controller_layout": "per_arm"}
HANDOVER_CELL = {**LAYOUT, "gripper_clearance": -0.05, "acceleration_limit": 15.0}


def train_handover_bc(out):
    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.trainer import train

    dataset = record_expert_demos(
        "bimanual_handover",
        out / "demos",
        episodes=400,
        action_noise=0.005,
        action_mode="eef_delta",
        terminate_on_success=False,
        progress=True,
    )
    config = BCTrainConfig(
        dataset=str(dataset), out=str(out / "run"), steps=30_000, eval=EvalConfig(episodes=0)
    )
    config.policy.horizon, config.policy.n_action_steps, config.policy.n_obs_steps = 8, 4, 2
    return train(config).checkpoint


def test_handover_policy_succeeds_over_ros_in_the_per_arm_layout(ros_context, ros_env, tmp_path):
    from robot_il.ros.ros_eval import evaluate_over_ros

    checkpoint = train_handover_bc(tmp_path)
    result = evaluate_over_ros(
        checkpoint,
        episodes=20,
        seed=10_000,
        context=ros_context,
        env=ros_env,
        log_dir=tmp_path / "logs",
        sim_params=LAYOUT,
        policy_params=HANDOVER_CELL,
        progress=True,
    )
    print(f"bimanual_handover over ROS 2, per-arm layout: {result.line()}")
    assert result.success_rate >= 0.8, result.successes
