"""``deploy_ur5e.launch.yaml`` with the RTDE bridge on its fake arm: the policy node drives the
bridge through the UR driver's topics, its task input coming from a "perception" publisher."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from deploy_helpers import BIN, Client, log_tail, wait_for
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
        assert np.linalg.norm(start - target) > 0.1  # the policy has a way to go
        published, distance = [-1.0], [np.inf]

        def at_target() -> bool:
            """The target keeps coming at the perception's 10 Hz; the tool within 3 cm?"""
            if time.monotonic() - published[0] >= 0.1:
                perception.publish(message)
                published[0] = time.monotonic()
            tool = arm.tcp_pose(np.array(states[-1][1].position))[:3]
            distance[0] = float(np.linalg.norm(tool - target))
            return distance[0] < 0.03

        # How long the policy takes depends on the machine's load: a deadline, not a wall-clock
        # budget. (At load ~20 on 2 cores it has stopped 0.198 m short even after 160 s, the
        # policy's safety filter reporting stale joint states, older than max_observation_age,
        # several times a second: not a matter of waiting longer.)
        try:
            wait_for(at_target, 40, "the tool point within 3 cm of the target", (launch,), (log,))
        except AssertionError as error:
            raise AssertionError(f"tool point still {distance[0]:.3f} m away: {error}") from None
    finally:
        client.close()
        launch.send_signal(signal.SIGINT)
        code = launch.wait(timeout=20)
    assert code in (0, 130), log_tail(log)
