"""``sim_robot`` in its own process, driven by a client that knows only the UR driver's topics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from deploy_helpers import COMMANDS, UR_JOINTS, Client, log_tail, node_process, wait_for

pytestmark = pytest.mark.ros


def test_driver_client_reads_joint_states_and_moves_the_simulated_arm(
    ros_context, ros_env, tmp_path
) -> None:
    from builtin_interfaces.msg import Duration
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64, Float64MultiArray
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    log = tmp_path / "sim_robot.log"
    with node_process("sim_robot", {"task": "reach", "seed": 3}, ros_env, log) as sim:
        client = Client(ros_context)
        try:
            states = client.record(JointState, "joint_states", depth=2000)
            success = client.record(Bool, "task/success")
            commands = client.node.create_publisher(
                Float64MultiArray, "forward_position_controller/commands", 10
            )
            trajectory = client.node.create_publisher(
                JointTrajectory, "scaled_joint_trajectory_controller/joint_trajectory", 10
            )
            gripper = client.node.create_publisher(Float64, "gripper/command", 10)
            wait_for(lambda: len(states) > 50, 60, "joint_states", (sim,), (log,))
            wait_for(lambda: success, 10, "task/success", (sim,), (log,))
            names = list(states[-1][1].name)
            assert names[:6] == UR_JOINTS
            start = np.array(states[-1][1].position[:6])

            # Joint-state rate: the controller's 500 Hz (a loaded machine may lag a little).
            count, t0 = len(states), time.monotonic()
            time.sleep(1.0)
            rate = (len(states) - count) / (time.monotonic() - t0)
            assert rate > 200, f"joint_states at {rate:.0f} Hz"  # 500 Hz; slack for load
            stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, m in states[-100:]]
            assert np.all(np.diff(stamps) > 0)

            # forward_position_controller: the arm goes to the commanded joints.
            target = start + np.array([0.3, -0.2, 0.2, 0.0, 0.0, 0.4])
            gripper_index = names.index("gripper_joint")

            def arrived() -> bool:
                position = np.array(states[-1][1].position)
                return bool(
                    np.abs(position[:6] - target).max() <= 0.01 and position[gripper_index] > 0.5
                )

            # Commands stream until the arm is there (a loaded machine slows the simulation).
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline and not arrived():
                commands.publish(Float64MultiArray(data=target.tolist()))
                gripper.publish(Float64(data=1.0))
                time.sleep(0.02)
            reached = np.array(states[-1][1].position)
            np.testing.assert_allclose(reached[:6], target, atol=0.01)
            assert reached[gripper_index] > 0.5  # closed (0 open .. 1 closed)

            # A NaN command is refused by the simulated controller: the arm stays.
            commands.publish(Float64MultiArray(data=[float("nan")] * 6))
            time.sleep(0.3)
            np.testing.assert_allclose(states[-1][1].position[:6], target, atol=0.01)

            # scaled_joint_trajectory_controller: passes through the waypoints in time.
            goal = start + np.array([-0.2, 0.1, -0.1, 0.2, 0.0, 0.0])
            message = JointTrajectory(joint_names=list(reversed(UR_JOINTS)))
            for seconds, q in ((1.0, (target + goal) / 2), (2.0, goal)):
                point = JointTrajectoryPoint(positions=list(reversed(q.tolist())))
                point.time_from_start = Duration(sec=int(seconds), nanosec=0)
                message.points.append(point)
            first = len(states)
            trajectory.publish(message)

            def at_goal() -> bool:
                return bool(np.abs(np.array(states[-1][1].position[:6]) - goal).max() <= 0.01)

            wait_for(at_goal, 10, "the trajectory's last point", (sim,), (log,))
            # On its way it passed the middle waypoint (a loaded machine may lag, not detour).
            path = np.array([m.position[:6] for _, m in states[first:]])
            assert np.linalg.norm(path - (target + goal) / 2, axis=1).min() < 0.05

            # sim/reset starts a new episode: the arm is back near its home pose.
            response = client.call(Trigger, "sim/reset")
            assert response.success, response.message
            time.sleep(0.2)
            after = np.array(states[-1][1].position[:6])
            assert np.linalg.norm(after - goal) > 0.1
            assert np.linalg.norm(after - start) < 0.5
        finally:
            client.close()
    assert sim.returncode == 0, log_tail(log)


def test_reset_first_starts_the_first_reset_on_the_seed(ros_context, ros_env, tmp_path) -> None:
    """A client that resets before every episode (the selection's judge) ran its first episode
    on seed + 1: the selection judged seeds from 10001, not eval's 10000."""
    from robot_il.envs import make_env
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    log = tmp_path / "sim_robot.log"
    params = {"task": "reach", "seed": 7, "reset_first": "true"}
    with node_process("sim_robot", params, ros_env, log) as sim:
        client = Client(ros_context)
        try:
            states = client.record(JointState, "joint_states")
            wait_for(lambda: states, 60, "joint_states", (sim,), (log,))
            assert client.call(Trigger, "sim/reset").message == "episode 0 (seed 7)"
            assert client.call(Trigger, "sim/reset").message == "episode 1 (seed 8)"
        finally:
            client.close()
    assert sim.returncode == 0, log_tail(log)
    env = make_env("reach", "mujoco")
    try:  # the start-up scene is the first episode's (a seed below 0 does not exist)
        home = env.reset(seed=7)[0]["joint_pos"]
    finally:
        env.close()
    assert np.allclose(states[0][1].position[:6], home, atol=1e-6)


def stamp_seconds(message) -> float:
    """A message's header stamp, s."""
    return message.header.stamp.sec + 1e-9 * message.header.stamp.nanosec


def _lock_step_run(context, env, log) -> tuple[float, list[float]]:
    """Drive a lock-step sim_robot with 150 commands, each after the previous step's joint
    state; returns the newest joint state's sim time and the final joint positions."""
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    params = {"task": "reach", "seed": 5, "lock_step": "true", "lock_step_timeout": 10.0}
    with node_process("sim_robot", params, env, log) as sim:
        client = Client(context)
        try:
            states = client.record(JointState, "joint_states", depth=5000)
            clock = client.record(Clock, "/clock", depth=5000)
            wait_for(lambda: states, 60, "first joint state", (sim,), (log,))
            commands = client.publisher(Float64MultiArray, COMMANDS, (sim,), (log,))
            start = np.array(states[-1][1].position[:6])
            for step in range(150):
                # the next command goes once the state of the step before is out (the states
                # announced while time stands still before the first command do not count)
                seen = stamp_seconds(states[-1][1])
                target = start + 0.003 * min(step, 100) * np.array([1, -1, 1, 0, 1, 0])
                commands.publish(Float64MultiArray(data=target.tolist()))
                wait_for(
                    lambda t=seen: stamp_seconds(states[-1][1]) > t,
                    10, "lock-step joint state", (sim,), (log,),
                )  # fmt: skip
            # One physics step (2 ms) per command, no more: the newest state is of t = 0.3 s.
            assert stamp_seconds(states[-1][1]) == pytest.approx(150 * 0.002, abs=1e-9)
            assert clock  # and the time came on /clock
            return stamp_seconds(states[-1][1]), list(states[-1][1].position)
        finally:
            client.close()


def test_lock_step_simulation_is_reproducible(ros_context, ros_env, tmp_path) -> None:
    first_time, first = _lock_step_run(ros_context, ros_env, tmp_path / "a.log")
    second_time, second = _lock_step_run(ros_context, ros_env, tmp_path / "b.log")
    assert first_time == pytest.approx(second_time, abs=1e-9)
    assert first == second  # bit for bit: physics waited for every command
    assert first[0] > 0.2  # and the arm did follow the commands
