"""MuJoCo and PyBullet backends: same motion from the same targets, determinism, grasping,
speed limits, rendering and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.backends import make_backend
from robot_il.envs.backends.base import (
    ARM_STATE_EEF_POSE,
    ARM_STATE_GRIPPER,
    ARM_STATE_JOINT_POS,
    ARM_STATE_JOINT_VEL,
    ARM_STATE_SIZE,
    PHYSICS_HZ,
    CameraSpec,
    CubeSpec,
    SceneSpec,
)
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.kinematics import forward_kinematics, inverse_kinematics
from robot_il.envs.ur5e.transforms import homogeneous

from robot_il.errors import ActionError, ConfigError

BACKENDS = ("mujoco", "pybullet")
CONTROL_SUBSTEPS = 25  # 20 Hz control
HOME = ur5e.HOME_JOINT_POS
CUBE_XYZ = np.array([-0.5, -0.13, 0.02])
SCENE = SceneSpec(
    cube=CubeSpec(),
    cameras=(CameraSpec("front", pos=(0.4, -0.9, 0.7), lookat=(-0.4, -0.1, 0.1)),),
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    sim = make_backend(request.param, SCENE, meshes=False)
    yield sim
    sim.close()


def _reset(sim) -> None:
    sim.reset({"": HOME}, {"": 0.0}, {"cube": np.r_[CUBE_XYZ, 1.0, 0.0, 0.0, 0.0]})


def _hold(sim, joints, gripper, seconds: float) -> None:
    sim.set_joint_targets("", joints, gripper)
    for _ in range(round(seconds * PHYSICS_HZ / CONTROL_SUBSTEPS)):
        sim.step(CONTROL_SUBSTEPS)


TARGETS = [
    HOME + np.array([0.4, 0.2, -0.3, 0.3, 0.5, -0.8]),
    HOME + np.array([-0.6, -0.25, 0.5, -0.4, -0.3, 1.2]),
    HOME + np.array([0.2, 0.35, -0.6, 0.9, 0.2, 0.1]),
]


def test_same_targets_reach_same_poses_in_both_engines():
    """One joint-target sequence drives both engines to TCP poses within 1 cm of each other
    (and of the published kinematics at the target)."""
    poses = {}
    for name in BACKENDS:
        sim = make_backend(name, SceneSpec(), meshes=False)
        sim.reset({"": HOME}, {"": 0.0}, {})
        poses[name] = []
        for target in TARGETS:
            _hold(sim, target, 0.0, 1.5)
            poses[name].append(sim.eef_pose(""))
        sim.close()
    for i, target in enumerate(TARGETS):
        a, b = poses["mujoco"][i], poses["pybullet"][i]
        assert np.linalg.norm(a[:3] - b[:3]) < 0.01
        assert np.linalg.norm(a[:3] - forward_kinematics(target)[:3, 3]) < 0.01
        assert abs(abs(a[3:] @ b[3:]) - 1.0) < 1e-3  # same orientation (quaternion sign aside)


def test_same_reset_and_targets_give_identical_trajectories(backend):
    """Bit-identical replays, also after an episode with other contacts in between."""

    def run(cube_xyz: np.ndarray) -> np.ndarray:
        backend.reset({"": HOME}, {"": 0.0}, {"cube": np.r_[cube_xyz, 1.0, 0.0, 0.0, 0.0]})
        down = forward_kinematics(HOME)[:3, :3]
        joints, trace = HOME, []
        for offset, gripper in (
            ([0, 0, 0.1], 0.0),
            ([0, 0, 0], 0.0),
            ([0, 0, 0], 1.0),
            ([0.1, 0, 0.1], 1.0),
        ):
            joints = inverse_kinematics(homogeneous(down, cube_xyz + offset), joints)
            backend.set_joint_targets("", joints, gripper)
            for _ in range(10):
                backend.step(CONTROL_SUBSTEPS)
                trace.append(
                    np.r_[
                        backend.joint_pos(""),
                        backend.joint_vel(""),
                        backend.gripper(""),
                        backend.object_pose("cube"),
                    ]
                )
        return np.array(trace)

    first = run(CUBE_XYZ)
    other = run(CUBE_XYZ + [0.05, -0.07, 0.0])
    again = run(CUBE_XYZ)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first[-1, -5] > CUBE_XYZ[2] + 0.05  # the cube was grasped and lifted: contacts mattered


def test_far_target_respects_speed_limit(backend):
    _reset(backend)
    target = HOME + np.array([2.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    backend.set_joint_targets("", target, 0.0)
    top_speed, first_position = 0.0, None
    for _ in range(40):
        backend.step(CONTROL_SUBSTEPS)
        top_speed = max(top_speed, float(np.max(np.abs(backend.joint_vel("")))))
        if first_position is None:
            first_position = backend.joint_pos("")
    # after one 50 ms step a 2 rad move has barely begun; it ends at the target
    assert abs(first_position[0] - HOME[0]) < np.pi * 0.05
    assert top_speed < 1.1 * np.pi
    np.testing.assert_allclose(backend.joint_pos(""), target, atol=2e-3)


def test_joint_vel_is_the_speed_the_joint_moves_at(backend):
    """Cruising toward a far target, the velocity read after a step is the step's mean
    velocity (position change / duration). A PyBullet motor told only the step's end point
    raced there and coasted, reading about a third of the joint's speed."""
    _reset(backend)
    backend.set_joint_targets("", HOME + np.array([2.0, 0.0, 0.0, 0.0, 0.0, 2.0]), 0.0)
    duration = CONTROL_SUBSTEPS / PHYSICS_HZ
    for _ in range(6):  # accelerate to the speed limit (15 rad/s^2 -> pi rad/s in 0.21 s)
        backend.step(CONTROL_SUBSTEPS)
    for _ in range(4):
        before = backend.joint_pos("")
        backend.step(CONTROL_SUBSTEPS)
        mean_velocity = (backend.joint_pos("") - before) / duration
        assert abs(mean_velocity[0]) > 3.0  # cruising near pi rad/s
        np.testing.assert_allclose(backend.joint_vel(""), mean_velocity, atol=0.05)


def test_pybullet_speed_caps_hold_through_the_substeps():
    """``run_motors``' array calls, which cannot set a speed cap, keep the caps that
    ``command_motors`` set: a joint far behind its set point catches up at its cap."""
    sim = make_backend("pybullet", SceneSpec(), meshes=False)
    sim.reset({"": HOME}, {"": 0.0}, {})
    setpoints = sim.motor_setpoints.copy()
    setpoints[0] += 1.0
    caps = np.full_like(setpoints, 0.05)
    sim.command_motors(setpoints, np.zeros_like(setpoints), caps)
    sim.run_motors(CONTROL_SUBSTEPS)
    assert 0.04 < sim.joint_vel("")[0] <= 0.05 + 1e-6
    sim.close()


def test_gripper_grasps_and_lifts_cube(backend):
    _reset(backend)
    down = forward_kinematics(HOME)[:3, :3]
    joints = HOME

    def move(xyz, gripper, seconds):
        nonlocal joints
        joints = inverse_kinematics(homogeneous(down, xyz), joints)
        _hold(backend, joints, gripper, seconds)

    move(CUBE_XYZ + [0.0, 0.0, 0.12], 0.0, 1.0)
    move(CUBE_XYZ, 0.0, 1.0)
    move(CUBE_XYZ, 1.0, 1.0)
    closure = backend.gripper("")
    # 4 cm cube between pads that open 8.5 cm: each finger stops after 2.25 of 4.25 cm
    assert 0.45 < closure < 0.65
    move(CUBE_XYZ + [0.1, 0.1, 0.2], 1.0, 1.5)
    cube = backend.object_pose("cube")
    assert cube[2] > CUBE_XYZ[2] + 0.15
    assert np.linalg.norm(cube[:3] - backend.eef_pose("")[:3]) < 0.005
    for far in ([0.2, 0.2, 0.25], [-0.1, -0.3, 0.15], [0.1, 0.1, 0.2]):  # fast, long moves
        move(CUBE_XYZ + far, 1.0, 1.2)
    assert np.linalg.norm(backend.object_pose("cube")[:3] - backend.eef_pose("")[:3]) < 0.01
    move(CUBE_XYZ + [0.1, 0.1, 0.2], 0.0, 1.0)  # open: it falls back onto the table
    assert backend.object_pose("cube")[2] < CUBE_XYZ[2] + 0.01


def test_arm_state_holds_the_four_readings(backend):
    """The env reads an arm through ``arm_state`` alone: it must equal the separate readings
    while the arm moves, and its TCP pose must belong to its joints."""
    _reset(backend)
    backend.set_joint_targets("", TARGETS[0], 0.6)
    for _ in range(3):
        backend.step(CONTROL_SUBSTEPS)
        state = backend.arm_state("")
        assert state.shape == (ARM_STATE_SIZE,) and state.dtype == np.float64
        np.testing.assert_array_equal(state[ARM_STATE_JOINT_POS], backend.joint_pos(""))
        np.testing.assert_array_equal(state[ARM_STATE_JOINT_VEL], backend.joint_vel(""))
        assert state[ARM_STATE_GRIPPER][0] == pytest.approx(backend.gripper(""), abs=1e-12)
        np.testing.assert_array_equal(state[ARM_STATE_EEF_POSE], backend.eef_pose(""))
        assert abs(backend.joint_vel("")).max() > 0.05  # it was moving
        np.testing.assert_allclose(  # the pose belongs to the joints read with it
            state[ARM_STATE_EEF_POSE][:3],
            forward_kinematics(state[ARM_STATE_JOINT_POS])[:3, 3],
            atol=2e-3,
        )


def test_render_gives_an_image(backend):
    _reset(backend)
    image = backend.render("front")
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert image.std() > 10.0
    assert not np.array_equal(image[:, :48], image[:, 48:])


def test_bad_targets_are_refused_before_anything_changes(backend):
    _reset(backend)
    backend.step(CONTROL_SUBSTEPS)
    before = backend.joint_pos("")
    with pytest.raises(ActionError):
        backend.set_joint_targets("", np.zeros(5), 0.0)
    with pytest.raises(ActionError):
        backend.set_joint_targets("", np.r_[HOME[:5], np.nan], 0.0)
    with pytest.raises(ConfigError):
        backend.set_joint_targets("left", HOME, 0.0)
    for _ in range(10):
        backend.step(CONTROL_SUBSTEPS)
    np.testing.assert_allclose(backend.joint_pos(""), before, atol=1e-4)


def test_targets_beyond_joint_limits_are_clipped(backend):
    _reset(backend)
    target = HOME.copy()
    target[2] = 5.0  # elbow limit is pi
    _hold(backend, target, 2.0, 1.5)
    assert backend.joint_pos("")[2] == pytest.approx(np.pi, abs=0.01)
    assert backend.gripper("") == pytest.approx(1.0, abs=0.02)


def test_unknown_names_are_clear_errors(backend):
    with pytest.raises(ConfigError, match="camera"):
        backend.render("nope")
    with pytest.raises(ConfigError, match="object"):
        backend.object_pose("sphere")
    with pytest.raises(ConfigError, match="backend"):
        make_backend("gazebo", SCENE)
