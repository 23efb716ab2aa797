"""World-frame kinematics of mounted arms agree with the engines; axis-angle round trips."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs import make_env
from robot_il.envs.spatial import axis_angle_to_matrix, matrix_to_axis_angle, rotation_angle
from robot_il.envs.ur5e.transforms import pose_to_matrix


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_mounted_arm_kinematics_match_the_engine(backend):
    env = make_env("bimanual_handover", backend)
    obs, _ = env.reset(seed=4)
    for arm, prefix in zip(env.unwrapped.arms, env.unwrapped.key_prefixes, strict=True):
        predicted = arm.tcp_transform(obs[prefix + "joint_pos"].astype(np.float64))
        measured = pose_to_matrix(obs[prefix + "eef_pose"].astype(np.float64))
        assert np.linalg.norm(predicted[:3, 3] - measured[:3, 3]) < 1e-3, arm.name
        assert rotation_angle(predicted[:3, :3], measured[:3, :3]) < np.radians(0.5), arm.name
    env.close()


def test_axis_angle_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        axis = rng.normal(size=3)
        rotvec = axis / np.linalg.norm(axis) * rng.uniform(0.0, np.pi - 1e-3)
        rotation = axis_angle_to_matrix(rotvec)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(matrix_to_axis_angle(rotation), rotvec, atol=1e-9)
        assert rotation_angle(np.eye(3), rotation) == pytest.approx(np.linalg.norm(rotvec))
    np.testing.assert_array_equal(matrix_to_axis_angle(np.eye(3)), np.zeros(3))
