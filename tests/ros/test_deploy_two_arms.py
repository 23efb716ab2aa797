"""Two-arm deployment over ROS 2 in the dual-arm tutorial's per-arm layout (and, slow, with
one driver per arm in its namespace): the policy node reads each arm's own joint state
messages, commands each arm on its own controller, and its inter-arm clearance check holds the
arm that would come closer than the clearance.

The policy is a real BC checkpoint that commands a fixed target per arm (``bimanual_handover``
scene, seed 3): each target alone is free, together they put the arms' links into each other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS, Client, constant_checkpoint, node_process, wait_for

pytestmark = pytest.mark.ros

ALICE = np.array([2.122, -0.874, 0.625, -1.786, -1.904, -1.779])
BOB = np.array([3.857, -0.914, 0.999, -1.747, -1.756, -2.079])
CLEARANCE = 0.05
PREFIXES = ("alice_", "bob_")


TOPICS = {
    "per_arm": "{p}forward_position_controller/commands",
    "namespaced": "{ns}/forward_position_controller/commands",
}


@pytest.mark.parametrize("layout", ["per_arm", pytest.param("namespaced", marks=pytest.mark.slow)])
def test_two_arm_policy_keeps_the_clearance(layout, ros_context, ros_env, tmp_path):
    from robot_il.envs.arm import Arm
    from robot_il.envs.separation import arm_separation
    from robot_il.envs.tasks import TASKS
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    bases = [Arm(mount).world_from_base for mount in TASKS["bimanual_handover"]().mounts()]
    assert arm_separation(ALICE, bases[0], BOB, bases[1]) < 0  # the targets collide
    action = np.concatenate([ALICE, [0.0], BOB, [0.0]])
    checkpoint = constant_checkpoint(tmp_path / "policy", action, task="bimanual_handover")
    cell = {"tf_prefixes": "['alice_','bob_']", "controller_layout": layout}
    cell["arm_namespaces"] = "['alice','bob']"
    sim_params = {"task": "bimanual_handover", "seed": 3, "lock_step": True}
    sim_params |= {"steps_per_command": 25, "publish_every": 25, **cell}
    policy_params = {"checkpoint": checkpoint, "task": "bimanual_handover", **cell}
    policy_params |= {"use_sim_time": True, "control_rate": 20.0, "clearance": CLEARANCE}
    sim_log, policy_log = tmp_path / "sim_robot.log", tmp_path / "policy.log"
    # Subscribed before the nodes start: safety events are published once, at their onset,
    # and a lock-step cell may reach the clearance within a second of its start.
    client = Client(ros_context)
    state_topics = ["joint_states"]
    if layout == "namespaced":
        state_topics = ["alice/joint_states", "bob/joint_states"]
    states = [client.record(JointState, t, depth=5000) for t in state_topics]
    clock = client.record(Clock, "/clock", depth=10)
    events = client.record(String, "safety/events", depth=1000, transient_local=True)
    commands = {
        p: client.record(Float64MultiArray, TOPICS[layout].format(p=p, ns=p.rstrip("_")))
        for p in PREFIXES
    }
    with (
        node_process("sim_robot", sim_params, ros_env, sim_log) as sim,
        node_process("policy", policy_params, ros_env, policy_log) as policy,
    ):
        try:
            nodes, logs = (sim, policy), (sim_log, policy_log)

            def sim_time() -> float:
                return clock[-1][1].clock.sec + 1e-9 * clock[-1][1].clock.nanosec if clock else 0

            wait_for(lambda: sim_time() > 8.0, 240, "8 s of simulated time", nodes, logs)

            def arm(prefix: str) -> np.ndarray:
                with client.lock:
                    received = [m for topic in states for _, m in topic[-50:]]
                msg = next(m for m in reversed(received) if m.name[0].startswith(prefix))
                assert msg.name[:6] == [prefix + j for j in UR_JOINTS]
                return np.array(msg.position[:6])

            alice, bob = arm("alice_"), arm("bob_")
            for p in PREFIXES:
                assert commands[p] and all(len(m.data) == 6 for _, m in commands[p])
            distance = float(arm_separation(alice, bases[0], bob, bases[1]))
            published = [json.loads(m.data) for _, m in events]
            kinds = [event["kind"] for event in published]
        finally:
            client.close()
    # Both arms moved towards their targets, and stopped the clearance apart (what the arms
    # measure lags the commands by a little).
    start_alice = np.array([2.8, -1.74, 1.81, -1.62, -1.61, -1.88])
    assert np.linalg.norm(alice - start_alice) > 0.3, alice
    assert CLEARANCE - 0.01 < distance < CLEARANCE + 0.05, distance
    assert "clearance" in kinds, kinds
    # Each arm's own filter names its arm: a limit's or a safe start's joints are its six.
    own = [e["detail"] for e in published if e["kind"] in ("velocity_limit", "safe_start")]
    labels = ("arm left (alice_): ", "arm right (bob_): ")
    assert own and all(d.startswith(labels) for d in own), own[:5]
