"""A ``bimanual_handover`` policy over ROS 2 on the two-arm ``sim_robot`` in lock-step, in the
dual-arm tutorial's per-arm layout (tf prefixes ``alice_``/``bob_``, per-arm controllers):
at least 80% of 20 held-out seeded episodes (slow: records 400 demonstrations and trains
30,000 steps, then the ROS episodes: 5.5, 5 and 2 minutes on 2 shared cores at load 2-12 on
2026-12-06). ``--basetemp DIR`` keeps what it made: the checkpoint in
``DIR/test_handover_policy_succeeds_0/run``, the nodes' logs in ``.../logs``. The default
suite's short version is ``test_deploy_two_arms.py``.

Recipe (``benchmarks/results/handover_bc_recipes.jsonl``): 400 expert demonstrations in the
end-effector-delta action mode, recorded past success with DART noise 0.005, and BC with two
observation steps and action chunks (8 predicted, 4 executed) for 30,000 steps: 16 of 20
(80%) on seeds 10000-10019 in ``robot-il eval``. With 100 demonstrations and one observation
step BC solved 0 of 20, with 200 and two observation steps 7 of 20.

Over ROS 2 that checkpoint first solved 0 of seeds 10000-10009 (8 of 10 in eval). The grippers'
capsules overlap by up to 4.3 cm holding one cube in the scripted expert's handovers (they
over-approximate the gripper), so the cell sets ``gripper_clearance`` -0.05 m as
``deploy_two_arm_sim.launch.yaml`` does; every pair with a link keeps the 5 cm clearance. What
remained (found by tracing one seed's commands and joint states over ROS against the env's,
step by step): ``sim_robot`` stepped its servo 2 ms at a time, braking into each held 20 Hz
target, a different arm from the env's (which plans one move per step): now one env step per
command period in lock-step; a command of the old episode started each new one; the object pose
was a step old at random. With those fixed: 12 of 20 at the node's default acceleration limit
(10 rad/s^2) and 15 of 20 at 15 rad/s^2, against 16 of 20 in eval
(``benchmarks/results/handover_ros.jsonl``). This test's own run (2026-12-01, load 12-19, 45.8
min) trained a checkpoint that solved 15 of 20 in eval but 3 of 20 over ROS 2.

What remained is the safety layer, not the transport: the checkpoint stepping the env through
the node's own converter, safety filters and clearance guard, without ROS
(``benchmarks/handover_cell_limits.py``), solves the seeds the ROS 2 run solved (10000-10005,
the first four in the very same number of steps; a gripper command may still reach the
simulator a period late over ROS, see ``robot_il.ros.ros_eval``).
The filter models a command stream as one speed per control period and brakes so that it
could stop *on* each target within its acceleration limit ``a``; an end-effector-delta policy
sets every target one step ahead of the measured arm, so at the 20 Hz command period of
lock-step no joint may cruise faster than ``a * dt`` (0.75 rad/s at 15 rad/s^2), while the
simulated arm the policy was trained on (braking ``sqrt(2 a d)``, the env's servo) cruises up
to ``2 a dt`` (1.5 rad/s). The cell therefore sets ``acceleration_limit`` 30 rad/s^2 (ur_rtde
accepts up to 40; UR publishes no servo acceleration limit), which lets through what the arm
does at 15; the arm still limits itself to 15. The first checkpoint at 30: 17 of 20 without ROS
(``benchmarks/results/handover_cell_limits.jsonl``), 16 of 20 over ROS 2 (load 14-20), as in
eval; that checkpoint is lost. README's "passed at 30 rad/s^2 in 16 min" (9584df6) has no
result row.

This test at 30, with the policy node's workspace clamp (an end-effector-delta target outside
the workspace box is put on it, ``workspace_clamp``), 2026-12-06 (code 0dee560): it FAILED. Its
checkpoint (training seed 0) solves 0 of 20 in ``robot-il eval``, 0 of 20 through the node's
filters without ROS and 0 of 20 over ROS 2: it hands the cube over and carries it above the bin
but never lets go (seed 10000's video; every episode's return is 206-213). Not the transport,
the safety layer nor the clamp (it acted in seed 10013 only, without ROS as over ROS 2), and no
code change since 9584df6: that code records the same demonstrations (the first 37 episodes
agree to 1e-4), trains with the same loss at every logged step and its eval of this checkpoint
gives 0 of 20 too (the checkpoints of 2026-12-01 solved 15 and 16 of 20 with the same seed 0:
where such a policy opens was arbitrary, see below). The recipe depended on the training seed:
on the same demonstrations seed 1 solves 16 of 20 in eval, 16 without ROS and 17 over ROS 2 (no
clamp); seed 2 solves 20 of 20 in eval but 16 without ROS and 16 over ROS 2, the same four
seeds failing in both, the only four with ``workspace_clamp`` (in seed 10000 the right arm's
target goes below its base plane just after the 1 s safe start; in the env it stays in the box).
The code before the clamp (the filter held the arm at the box) fails the same four without ROS
(``benchmarks/results/handover_ros.jsonl``, ``handover_cell_limits.jsonl``).

Why: the expert's drop pose lay below the lowest the right arm reaches sideways (its wrist on
the table), so every demonstration held the cube still above the bin for the waypoint's 4 s
timeout and then opened; nothing in two observation steps tells that moment from the 77
before it, and where BC opens was left to its training seed (seeds 0-4: 0, 16, 20, 20, 1 of
20 in eval; seed 0 commands the gripper closed at the rest pose for the last 10 s). The expert
now opens on arriving (``DROP_CLEARANCE`` 0.08 m, 41d2fa6), and this recipe on its
demonstrations solves 20 of 20 in eval with each of seeds 0-4
(``benchmarks/handover_recipe.py``, ``results/handover_recipe_seeds.jsonl``); seed 0's
checkpoint solves 20 of 20 over ROS 2 in this cell (``handover_ros.jsonl``). This test then
passed (41d2fa6, load 2-6, 9.6 min): 20 of 20 over ROS 2. It keeps the recipe's seed 0 and its
goal.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAYOUT = {"tf_prefixes": "['alice_','bob_']", "controller_layout": "per_arm"}
HANDOVER_CELL = {**LAYOUT, "gripper_clearance": -0.05, "acceleration_limit": 30.0}


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


@pytest.mark.timeout(7200)  # 12 min on 2 shared cores at load 2-12, 46 min at load 12-19
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
    print(f"checkpoint {checkpoint}, seeds {result.seeds}")
    print(f"successes {result.successes}, lengths {result.lengths}")
    assert result.success_rate >= 0.8, result.successes
