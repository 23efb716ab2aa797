"""eef_delta actions become the joint targets the env itself would set (same clipping, same IK
at the arm's mount, seeded by the measured joints); unreachable deltas keep the previous ones."""

from __future__ import annotations

import numpy as np
from robot_il.envs import make_env

from robot_il.deploy.eef_delta import TcpDeltaConverter

UPRIGHT = np.array([0.0, -np.pi / 2, 0.0, -np.pi / 2, 0.0, 0.0])
"""The arm stretched straight up: the TCP is at the edge of reach, no higher pose exists."""


def test_converter_sets_the_joint_targets_the_env_sets() -> None:
    env = make_env("reach", action_mode="eef_delta")
    try:
        env.reset(seed=3)
        robot = env.unwrapped
        converter = TcpDeltaConverter(robot.arms)
        # beyond the per-step bounds in x and rz: both must clip as the env clips
        for action in ([0.08, -0.02, 0.01, 0.1, 0.0, -0.4, 1.0], [0.0, 0.03, -0.04, 0, 0.2, 0, 0]):
            action = np.array(action)
            measured = robot.backend.joint_pos(robot.arms[0].name)
            joint_action, failed = converter.to_joint_action(action, measured, None)
            robot.step(action.astype(np.float32))
            assert failed == []
            np.testing.assert_allclose(joint_action[:6], robot._targets[0], atol=1e-9)
            assert joint_action[6] == action[6]
            moved = robot.arms[0].tcp_transform(joint_action[:6])[:3, 3]
            start = robot.arms[0].tcp_transform(measured)[:3, 3]
            assert np.abs(moved - start).max() > 0.009  # the arm is really asked to move
    finally:
        env.close()


def test_unreachable_delta_keeps_previous_targets_and_nan_stays_nan() -> None:
    env = make_env("reach", action_mode="eef_delta")
    converter = TcpDeltaConverter(env.unwrapped.arms)
    start = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)
    env.close()
    previous = np.append(UPRIGHT + 0.01, 0.0)
    up = np.array([0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 1.0])
    joint_action, failed = converter.to_joint_action(up, UPRIGHT, previous)
    assert failed == [0]
    np.testing.assert_array_equal(joint_action[:6], previous[:6])
    assert joint_action[6] == 1.0
    _, failed = converter.to_joint_action(up, start, previous)
    assert failed == []  # reachable from a task's start: the failure above is the pose
    nan = up.copy()
    nan[0] = np.nan
    joint_action, _ = converter.to_joint_action(nan, UPRIGHT, previous)
    assert np.isnan(joint_action[:6]).all()  # the safety filter holds on non-finite targets


def test_a_target_out_of_the_workspace_box_is_put_on_it_and_the_rest_kept() -> None:
    """The safety filter holds a command whose tool point leaves its box; an eef_delta action
    relative to the held pose then asks for the same again. Given the box, the converter puts
    the target on it (WORKSPACE_MARGIN inside), keeping the motion along the face."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    from robot_il.deploy.eef_delta import WORKSPACE_MARGIN

    env = make_env("reach", action_mode="eef_delta")
    arm = env.unwrapped.arms[0]
    start = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)
    env.close()
    z = tcp_point(start)[2]  # base frame, as the filter checks the box
    box = ([-0.9, -0.9, z - 0.01], [0.9, 0.9, 1.1])
    press = np.array([0.02, 0.0, -0.03, 0.0, 0.0, 0.0, 0.0])
    free, _ = TcpDeltaConverter([arm]).to_joint_action(press, start, None)
    converter = TcpDeltaConverter([arm], workspace=box)
    joint_action, failed = converter.to_joint_action(press, start, None)
    assert failed == [] and converter.clamped == [0]
    assert tcp_point(free[:6])[2] < z - 0.029  # as the env sets it: through the floor
    moved = np.array(tcp_point(joint_action[:6])) - tcp_point(start)
    np.testing.assert_allclose(moved[2], -0.01 + WORKSPACE_MARGIN, atol=1e-9)
    np.testing.assert_allclose(
        arm.tcp_transform(joint_action[:6])[:2, 3] - arm.tcp_transform(start)[:2, 3],
        press[:2], atol=1e-9,
    )  # fmt: skip
    inside = np.array([0.02, 0.0, -0.005, 0.0, 0.0, 0.0, 0.0])
    joint_action, _ = converter.to_joint_action(inside, start, None)
    assert converter.clamped == []  # a target in the box is the env's
    np.testing.assert_allclose(
        joint_action, TcpDeltaConverter([arm]).to_joint_action(inside, start, None)[0]
    )
