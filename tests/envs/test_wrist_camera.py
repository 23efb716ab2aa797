"""The wrist camera: it rides on the gripper in both engines, from one spec, and sees the cube
below the gripper; fixed cameras stay put."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.arm import Arm
from robot_il.envs.backends import make_backend
from robot_il.envs.backends.base import ArmMount, CameraSpec, CubeSpec, SceneSpec
from robot_il.envs.tasks.base import CAMERAS, ELBOW_UP, TOP_DOWN, WRIST_CAMERA, wrist_cameras
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.kinematics import forward_kinematics, inverse_kinematics
from robot_il.envs.ur5e.scene_geometry import camera_axes
from robot_il.envs.ur5e.transforms import homogeneous

from robot_il.errors import ConfigError

BACKENDS = ("mujoco", "pybullet")
HOME = ur5e.HOME_JOINT_POS
SCENE = SceneSpec(cube=CubeSpec(), cameras=(CAMERAS["front"], WRIST_CAMERA))
FAR_AWAY = np.array([3.0, 3.0, 0.02, 1.0, 0.0, 0.0, 0.0])
"""A cube pose outside every camera's view: the empty scene."""
POSES = [
    HOME,
    HOME + np.array([0.4, 0.2, -0.3, 0.3, 0.5, -0.8]),
    HOME + np.array([-0.6, -0.25, 0.5, -0.4, -0.3, 1.2]),
]


@pytest.fixture(scope="module")
def sims():
    made = {name: make_backend(name, SCENE, meshes=False) for name in BACKENDS}
    yield made
    for sim in made.values():
        sim.close()


def _put(sim, joints: np.ndarray, cube: np.ndarray = FAR_AWAY) -> None:
    sim.reset({"": joints}, {"": 0.0}, {"cube": cube})


def _spec_pose(joints: np.ndarray) -> np.ndarray:
    """The wrist camera's world pose from the published kinematics (the flange: no TCP
    offset) and the spec alone; the camera looks along its -z."""
    flange = forward_kinematics(joints, tcp_offset=0.0)
    right, up, forward = camera_axes(WRIST_CAMERA)
    return flange @ homogeneous(np.column_stack([right, up, -forward]), WRIST_CAMERA.pos)


def test_wrist_camera_pose_is_the_spec_on_the_flange_in_both_engines(sims):
    """For the same joints both engines put the wrist camera where the spec says (within
    1 mm and 0.1 deg of the published kinematics, so also of each other)."""
    for joints in POSES:
        expected = _spec_pose(joints)
        for sim in sims.values():
            _put(sim, joints)
            pose = sim.camera_pose("wrist")
            assert np.linalg.norm(pose[:3, 3] - expected[:3, 3]) < 1e-3
            cos = (np.trace(pose[:3, :3].T @ expected[:3, :3]) - 1) / 2
            assert np.degrees(np.arccos(min(cos, 1.0))) < 0.1


def test_each_arm_carries_its_wrist_camera_at_a_turned_and_shifted_mount():
    """Two arms on mounts shifted and turned about z (the world differs from each base frame):
    in both engines each arm's wrist camera sits where its own mount, joints and the spec put
    it (1 mm, 0.1 deg), not at the other arm's or the world origin's."""
    mounts = (ArmMount("left", (0.1, 0.4, 0.05), 0.7), ArmMount("right", (-0.05, -0.45, 0.0), -2.0))
    cameras = wrist_cameras(mounts)
    scene = SceneSpec(arms=mounts, cameras=tuple(cameras.values()))
    joints = {"left": POSES[1], "right": POSES[2]}
    for name in BACKENDS:
        sim = make_backend(name, scene, meshes=False)
        try:
            sim.reset(joints, {"left": 0.0, "right": 0.0}, {})
            for mount in mounts:
                expected = Arm(mount).world_from_base @ _spec_pose(joints[mount.name])
                pose = sim.camera_pose(f"{mount.name}_wrist")
                assert np.linalg.norm(pose[:3, 3] - expected[:3, 3]) < 1e-3, (name, mount.name)
                cos = (np.trace(pose[:3, :3].T @ expected[:3, :3]) - 1) / 2
                assert np.degrees(np.arccos(min(cos, 1.0))) < 0.1, (name, mount.name)
        finally:
            sim.close()


def test_wrist_frame_follows_the_arm_and_fixed_camera_stays(sims):
    """Moving the arm changes the wrist camera's pose and frame; the front camera's pose is
    the world spec's, whatever the arm does."""
    for sim in sims.values():
        _put(sim, POSES[0])
        front, wrist = sim.camera_pose("front"), sim.camera_pose("wrist")
        frame = sim.render("wrist").astype(int)
        _put(sim, POSES[1])
        np.testing.assert_array_equal(sim.camera_pose("front"), front)
        np.testing.assert_allclose(front[:3, 3], CAMERAS["front"].pos)
        assert np.linalg.norm(sim.camera_pose("wrist")[:3, 3] - wrist[:3, 3]) > 0.05
        moved = np.abs(sim.render("wrist").astype(int) - frame).max(axis=2)
        assert (moved > 30).mean() > 0.02  # 4-7% here: much of the view is plain table


def test_cube_below_the_gripper_is_in_the_wrist_view(sims):
    """With the TCP 10 cm above the cube, pointing down, the wrist frame differs from the
    empty scene's where the cube is: hundreds of pixels near the frame's middle columns."""
    cube = np.array([0.5, 0.05, CubeSpec().half_size, 1.0, 0.0, 0.0, 0.0])
    above = homogeneous(TOP_DOWN, cube[:3] + [0.0, 0.0, 0.10])
    joints = inverse_kinematics(above, ELBOW_UP)
    assert joints is not None
    for name, sim in sims.items():
        _put(sim, joints)
        empty = sim.render("wrist").astype(int)
        _put(sim, joints, cube)
        seen = np.abs(sim.render("wrist").astype(int) - empty).max(axis=2) > 30
        rows, cols = np.nonzero(seen)
        assert seen.sum() > 200, name
        assert 24 < cols.mean() < 72, name  # across the frame's middle half
        _put(sim, joints)  # the empty scene renders as before: the difference is the cube
        np.testing.assert_array_equal(sim.render("wrist").astype(int), empty)


def test_each_arm_gets_its_wrist_camera_and_a_missing_arm_is_refused():
    two = (ArmMount("left"), ArmMount("right"))
    cameras = wrist_cameras(two)
    assert sorted(cameras) == ["left_wrist", "right_wrist"]
    assert cameras["left_wrist"].arm == "left" and cameras["left_wrist"].pos == WRIST_CAMERA.pos
    with pytest.raises(ConfigError, match="camera 'left_wrist' rides on arm 'left'"):
        SceneSpec(cameras=(cameras["left_wrist"],))
    SceneSpec(arms=two, cameras=tuple(cameras.values()))  # accepted
    assert CameraSpec("front", (1, 0, 1), (0, 0, 0)).arm is None
