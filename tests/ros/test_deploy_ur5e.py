"""``deploy_ur5e.launch.yaml`` with the RTDE bridge on its fake arm: the policy node drives the
bridge through the UR driver's topics, its task input coming from a "perception" publisher."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from deploy_helpers import BIN, Client, wait_for
from make_reach_checkpoint import FIXTURE

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def test_policy_drives_the_rtde_bridge_to_the_target(ros_context, ros_env, tmp_path) -> None:
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import PointStamped
    from robot_il.envs import make_env
    from robot_il.envs.arm import Arm
    from robot_il.envs.backends.base import ArmMount
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    env = make_env("reach")
    obs = env.reset(seed=0)[0]
    env.close()

    log = tmp_path / "launch.log"
    argv = [
        str(BIN / "robot-il"),
        "launch",
        "deploy_ur5e.launch.yaml",
        f"checkpoint:={FIXTURE}",
        "use_fake_hardware:=true",
    ]
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    client = Client(ros_context)
    try:
        states = client.record(JointState, "joint_states", 100)
        perception = client.node.create_publisher(PointStamped, "task/target", 10)
        trajectory = client.node.create_publisher(
            JointTrajectory, "scaled_joint_trajectory_controller/joint_trajectory", 10
        )
        wait_for(lambda: states, 60, "joint_states from the bridge", (launch,), (log,))
        # The operator first brings the arm to where the task starts; the policy waits for
        # its task input and commands nothing meanwhile.
        point = JointTrajectoryPoint(positions=obs["joint_pos"].astype(float).tolist())
        point.time_from_start = Duration(sec=4)
        names = list(states[-1][1].name)
        trajectory.publish(JointTrajectory(joint_names=names, points=[point]))
        wait_for(
            lambda: np.abs(np.array(states[-1][1].position) - obs["joint_pos"]).max() < 0.01,
            15,
            "the arm at the task's start",
            (launch,),
            (log,),
        )
        arm = Arm(ArmMount())
        start = arm.tcp_pose(np.array(states[-1][1].position))[:3]
        target = obs["target_pos"].astype(float)
        message = PointStamped()
        message.point.x, message.point.y, message.point.z = target.tolist()
        deadline = time.monotonic() + 40
        distance = np.linalg.norm(start - target)
        while time.monotonic() < deadline and distance > 0.03:
            assert launch.poll() is None, log.read_text()[-3000:]
            perception.publish(message)
            time.sleep(0.1)
            distance = np.linalg.norm(arm.tcp_pose(np.array(states[-1][1].position))[:3] - target)
        assert distance < 0.03, f"tool point still {distance:.3f} m from the target"
    finally:
        client.close()
        launch.send_signal(signal.SIGINT)
        code = launch.wait(timeout=20)
    assert code in (0, 130), log.read_text()[-3000:]
