"""An OPT-AIL checkpoint is an ordinary robot_il checkpoint: the ROS 2 policy node loads it
and drives sim_robot through the UR driver's topics and the safety layer."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import Client, node_process, wait_for

pytestmark = pytest.mark.ros

SEED = 0
OFFSET = np.array([0.3, -0.2, 0.2, 0.0, 0.0, 0.0])
"""How far (rad) the checkpoint's target posture lies from the arm's initial pose."""


def opt_ail_checkpoint(directory, target: np.ndarray):
    """A real OPT-AIL actor, saved by its own ``save``, whose deterministic action
    ``tanh(mu)`` is ``target`` (7,) in the reach env's joint action box, whatever it sees."""
    import torch
    from robot_il.envs import make_env
    from robot_il.policies.opt_ail import OPTAILConfig, OPTAILPolicy
    from robot_il.policies.opt_ail.policy import identity_observation_normalizer

    env = make_env("reach")
    low, high = env.action_space.low, env.action_space.high
    env.close()
    spec = {"robot": "ur5e", "task": "reach", "backend": "mujoco", "control_hz": 20.0,
            "action_mode": "joint", "observation": {"joint_pos": [6]}, "action_dim": 7}  # fmt: skip
    normalizer = identity_observation_normalizer(spec, low, high)
    policy = OPTAILPolicy(OPTAILConfig(obs_keys=("joint_pos",), hidden_dims=(16,)), spec,
                          normalizer)  # fmt: skip
    unit = normalizer.normalize("action", target.astype(np.float32))
    last = policy.actor[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[:7] = torch.atanh(torch.as_tensor(unit))
    return policy.save(directory)


def test_opt_ail_checkpoint_drives_sim_robot(ros_context, ros_env, tmp_path) -> None:
    from robot_il.envs import make_env
    from robot_il.policies import load_policy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    env = make_env("reach")
    q0 = env.reset(seed=SEED)[0]["joint_pos"].astype(np.float64)
    env.close()
    target = np.append(q0 + OFFSET, 0.0)
    checkpoint = opt_ail_checkpoint(tmp_path / "opt_ail", target)
    assert load_policy(checkpoint).policy_type == "opt_ail"
    logs = (tmp_path / "sim.log", tmp_path / "policy.log")
    with (
        node_process("sim_robot", {"task": "reach", "seed": SEED}, ros_env, logs[0]) as sim,
        node_process("policy", {"checkpoint": str(checkpoint)}, ros_env, logs[1]) as policy,
    ):
        client = Client(ros_context)
        try:
            commands = client.record(Float64MultiArray, "forward_position_controller/commands")
            states = client.record(JointState, "joint_states", 100)

            def settled() -> bool:
                if not commands or not states:
                    return False
                measured = np.array(states[-1][1].position[:6])
                commanded = np.array(commands[-1][1].data[:6])
                # the speed-limited command stream ends at the target, the arm near it
                return bool(
                    np.abs(measured - target[:6]).max() < 0.02
                    and np.abs(commanded - target[:6]).max() < 1e-3
                )

            wait_for(settled, 90, "the arm at the OPT-AIL policy's target", (sim, policy), logs)
            motion = np.array([m.data for _, m in commands])
            assert np.all(np.isfinite(motion))
            assert np.abs(motion[0][:6] - q0).max() < 0.05, "starts from the measured pose"
            np.testing.assert_allclose(motion[-1][:6], target[:6], atol=1e-3)
        finally:
            client.close()
