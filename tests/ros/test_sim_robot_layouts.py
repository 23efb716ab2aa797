"""Two-arm ``sim_robot`` in the layouts of real two-arm UR cells, each driven by a client that
knows only that layout's topics:

- ``per_arm``: Universal Robots' dual-arm tutorial (tf prefixes ``alice_``/``bob_``, a joint
  state broadcaster per arm on ``joint_states``, ``<prefix>forward_position_controller``);
- ``namespaced``: one driver per arm, under ``/alice`` and ``/bob``.
"""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS, Client, log_tail, node_process, wait_for

pytestmark = pytest.mark.ros

PREFIXES = ("alice_", "bob_")

LAYOUTS = {
    "per_arm": {
        "joint_states": {"alice_": "joint_states", "bob_": "joint_states"},
        "commands": {p: f"{p}forward_position_controller/commands" for p in PREFIXES},
        "gripper": {p: f"{p}gripper/command" for p in PREFIXES},
    },
    "namespaced": {
        "joint_states": {"alice_": "alice/joint_states", "bob_": "bob/joint_states"},
        "commands": {
            "alice_": "alice/forward_position_controller/commands",
            "bob_": "bob/forward_position_controller/commands",
        },
        "gripper": {"alice_": "alice/alice_gripper/command", "bob_": "bob/bob_gripper/command"},
    },
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_client_of_the_layouts_topics_reads_both_arms_and_moves_each(
    layout, ros_context, ros_env, tmp_path
) -> None:
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray

    topics = LAYOUTS[layout]
    log = tmp_path / "sim_robot.log"
    params = {
        "task": "bimanual_handover",
        "seed": 3,
        "tf_prefixes": "['alice_','bob_']",
        "controller_layout": layout,
        "arm_namespaces": "['alice','bob']",
    }
    with node_process("sim_robot", params, ros_env, log) as sim:
        client = Client(ros_context)
        try:
            received = {
                topic: client.record(JointState, topic, depth=4000)
                for topic in set(topics["joint_states"].values())
            }
            commands = {
                p: client.node.create_publisher(Float64MultiArray, topics["commands"][p], 10)
                for p in PREFIXES
            }
            grippers = {
                p: client.node.create_publisher(Float64, topics["gripper"][p], 10) for p in PREFIXES
            }

            def latest(prefix: str):
                """The newest message with this arm's joints (each arm has its own)."""
                with client.lock:
                    messages = list(received[topics["joint_states"][prefix]])
                for _, msg in reversed(messages):
                    if f"{prefix}shoulder_pan_joint" in msg.name:
                        return msg
                return None

            def arm(prefix: str) -> np.ndarray:
                msg = latest(prefix)
                return np.array([msg.position[msg.name.index(prefix + j)] for j in UR_JOINTS])

            def gripper(prefix: str) -> float:
                msg = latest(prefix)
                return msg.position[msg.name.index(prefix + "gripper_joint")]

            both = (sim,), (log,)
            wait_for(lambda: all(latest(p) for p in PREFIXES), 60, "both arms' states", *both)
            for p in PREFIXES:  # a broadcaster per arm: only that arm's joints in its messages
                other = next(q for q in PREFIXES if q != p)
                assert latest(p).name == [p + j for j in UR_JOINTS] + [p + "gripper_joint"]
                assert not any(name.startswith(other) for name in latest(p).name)
                connected = commands[p].get_subscription_count
                wait_for(lambda c=connected: c() > 0, 30, f"{p} controller", *both)
            start = {p: arm(p) for p in PREFIXES}

            def drive(prefix: str, goal: np.ndarray, close: bool) -> None:
                def sent_and_arrived() -> bool:
                    commands[prefix].publish(Float64MultiArray(data=goal.tolist()))
                    grippers[prefix].publish(Float64(data=1.0 if close else 0.0))
                    return (
                        np.abs(arm(prefix) - goal).max() < 0.02 and (gripper(prefix) > 0.5) == close
                    )

                wait_for(sent_and_arrived, 15, f"{prefix} reaching its goal", *both)

            # Alice moves with her own controller (6 values); Bob, never commanded, stays.
            alice_goal = start["alice_"] + np.array([0.3, -0.2, 0.25, 0.0, 0.2, 0.4])
            drive("alice_", alice_goal, close=True)
            np.testing.assert_allclose(arm("bob_"), start["bob_"], atol=0.02)
            assert gripper("bob_") < 0.2
            # Then Bob with his; Alice holds her last command.
            bob_goal = start["bob_"] + np.array([-0.25, 0.15, -0.2, 0.1, 0.0, -0.3])
            drive("bob_", bob_goal, close=True)
            np.testing.assert_allclose(arm("alice_"), alice_goal, atol=0.02)
            # A twelve-value (combined) command on one arm's controller is refused.
            commands["alice_"].publish(Float64MultiArray(data=[0.0] * 12))
            wait_for(lambda: "expected 6 finite" in log.read_text(), 10, "the refusal", *both)
            np.testing.assert_allclose(arm("alice_"), alice_goal, atol=0.02)
        finally:
            client.close()
    assert sim.returncode == 0, log_tail(log)
