"""``robot-il launch deploy_two_arm_ur5e.launch.yaml use_fake_hardware:=true gripper:=robotiq``:
a two-arm cell of RTDE bridges (fake arms, fake Robotiq grippers on 127.0.0.1), one per arm in
the namespaces ``alice``/``bob``, driven by the policy node in the namespaced layout."""

from __future__ import annotations

import signal
import subprocess

import numpy as np
import pytest
from deploy_helpers import BIN, UR_JOINTS, Client, constant_checkpoint, log_tail, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

pytestmark = pytest.mark.ros

ALICE = HOME_JOINT_POS + np.array([0.2, -0.1, 0.1, 0.0, 0.0, 0.2])
BOB = HOME_JOINT_POS + np.array([-0.2, 0.1, -0.1, 0.0, 0.0, -0.2])


def test_two_fake_arms_with_grippers_follow_a_two_arm_policy(ros_context, ros_env, tmp_path):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    action = np.concatenate([ALICE, [1.0], BOB, [0.0]])  # alice closes her gripper
    checkpoint = constant_checkpoint(tmp_path / "policy", action, task="bimanual_handover")
    log = tmp_path / "launch.log"
    argv = [str(BIN / "robot-il"), "launch", "deploy_two_arm_ur5e.launch.yaml"]
    argv += [f"checkpoint:={checkpoint}", "use_fake_hardware:=true", "gripper:=robotiq"]
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    client = Client(ros_context)
    try:
        states = {
            arm: client.record(JointState, f"{arm}/joint_states", depth=50)
            for arm in ("alice", "bob")
        }

        def reading(arm: str) -> dict[str, float]:
            with client.lock:
                msg = states[arm][-1][1] if states[arm] else None
            return {} if msg is None else dict(zip(msg.name, msg.position, strict=True))

        def at(arm: str, goal: np.ndarray) -> bool:
            values = reading(arm)
            names = [f"{arm}_{joint}" for joint in UR_JOINTS]
            return all(n in values for n in names) and np.allclose(
                [values[n] for n in names], goal, atol=0.01
            )

        both = (launch,), (log,)
        wait_for(lambda: at("alice", ALICE) and at("bob", BOB), 120, "both arms at goal", *both)
        wait_for(lambda: reading("alice").get("alice_gripper_joint", 0) > 0.99, 30, "closed", *both)
        assert reading("bob").get("bob_gripper_joint", 1.0) < 0.01  # bob's stays open

        # One e-stop for the cell: /safety/estop latches both bridges, and the one reset
        # the README names releases both (it released the policy node's alone: the arms
        # held for good until /alice/... and /bob/safety/reset_estop were found).
        client.publisher(Bool, "/safety/estop", *both).publish(Bool(data=True))
        for arm in ("alice", "bob"):
            wait_for(lambda a=arm: f"[{a}.ur_rtde_bridge]: e-stop latched" in log.read_text(),
                     10, f"{arm}'s bridge latched", *both)  # fmt: skip
        assert client.call(Trigger, "/safety/reset_estop").success
        for arm in ("alice", "bob"):
            wait_for(lambda a=arm: f"[{a}.ur_rtde_bridge]: e-stop reset" in log.read_text(),
                     10, f"{arm}'s bridge released", *both)  # fmt: skip
    finally:
        client.close()
        launch.send_signal(signal.SIGINT)
        try:
            code = launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launch.kill()
            raise
    assert code in (0, 130), log_tail(log)


def test_an_arm_of_another_serial_number_stops_the_cell_before_it_moves(ros_env, tmp_path):
    """``bob_serial`` reaches bob's bridge, which refuses a controller of another serial number
    (swapped IPs), and the launch ends with the bridge's one-line reason."""
    checkpoint = constant_checkpoint(tmp_path / "policy", np.concatenate([ALICE, [0], BOB, [0]]),
                                     task="bimanual_handover")  # fmt: skip
    argv = [str(BIN / "robot-il"), "launch", "deploy_two_arm_ur5e.launch.yaml",
            f"checkpoint:={checkpoint}", "use_fake_hardware:=true",
            "bob_serial:=20245500001"]  # digits, as a UR serial number is  # fmt: skip
    finished = subprocess.run(argv, env=ros_env, capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    refusal = "reports serial number '20245500000', not serial_number '20245500001'"
    assert refusal in finished.stdout + finished.stderr, finished.stdout[-3000:]
