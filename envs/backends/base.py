"""The contract between a task and a physics engine.

Tasks, experts and the gymnasium env (``robot_il.envs.env``) talk only to this interface, so a
policy trained against one engine runs against the other. Units are SI (metres, radians,
seconds); poses are ``xyz + quaternion wxyz`` in the world frame; the world's z axis points up
and the table top is at ``SceneSpec.table_height``.

An arm is named by its prefix: ``""`` in one-arm scenes, ``"left"`` / ``"right"`` in two-arm
scenes (the same prefix the observation keys and the ROS ``tf_prefix`` use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot_il.errors import ConfigError

PHYSICS_HZ = 500
"""Physics and servo rate: the UR5e controllers run at 500 Hz."""

ARM_STATE_JOINT_POS = slice(0, 6)
ARM_STATE_JOINT_VEL = slice(6, 12)
ARM_STATE_GRIPPER = slice(12, 13)
ARM_STATE_EEF_POSE = slice(13, 20)
ARM_STATE_SIZE = 20
"""Layout of ``SimBackend.arm_state``: where each reading of one arm sits."""


@dataclass(frozen=True)
class ArmMount:
    """Where one UR5e base stands: ``base_pos`` (m, world) and rotation ``base_yaw`` (rad)."""

    name: str = ""
    base_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    base_yaw: float = 0.0


@dataclass(frozen=True)
class CubeSpec:
    """A free cube the grippers can push and grasp."""

    half_size: float = 0.02
    mass: float = 0.1


@dataclass(frozen=True)
class BinSpec:
    """An open box fixed on the table: inner half extents (m) and wall height (m)."""

    center_xy: tuple[float, float] = (0.0, 0.0)
    inner_half_extent: tuple[float, float] = (0.08, 0.08)
    wall_height: float = 0.05


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera looking from ``pos`` at ``lookat`` (m), vertical fov in deg.

    ``arm`` None: fixed in the world, ``pos`` and ``lookat`` in the world frame. An arm's name
    (``""`` in one-arm scenes): the camera rides on that arm's gripper, ``pos`` and ``lookat``
    in its flange frame (z along the tool's approach axis, x the fingers' closing axis), so it
    follows the arm; both engines place it from this one spec (MuJoCo: a camera in the gripper
    body; PyBullet: a view matrix from the gripper link's pose at each render).
    """

    name: str
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    fovy_deg: float = 60.0
    width: int = 96
    height: int = 96
    arm: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """Everything a backend builds: arms with grippers, a table, optional cube and bin.

    ``markers`` are visual-only spheres (no collision), e.g. a reach or push target, moved with
    ``SimBackend.set_marker``.
    """

    arms: tuple[ArmMount, ...] = (ArmMount(),)
    table_height: float = 0.0
    cube: CubeSpec | None = None
    bin: BinSpec | None = None
    markers: tuple[str, ...] = ()
    cameras: tuple[CameraSpec, ...] = field(default_factory=tuple)
    arm_contacts: bool = False
    """Whether the arms collide with each other (MuJoCo: their own contact bits; PyBullet's
    separate bodies always do), for scenes where arms share a workspace."""

    def __post_init__(self) -> None:
        arms = [mount.name for mount in self.arms]
        for camera in self.cameras:
            if camera.arm is not None and camera.arm not in arms:
                raise ConfigError(
                    f"camera {camera.name!r} rides on arm {camera.arm!r}, which this scene "
                    f"does not have; arms: {arms}"
                )


class SimBackend(Protocol):
    """One physics engine running one scene; MuJoCo and PyBullet both implement it.

    The servo is a joint-position controller tracking ``set_joint_targets`` at ``PHYSICS_HZ``
    with the UR5e's velocity and torque limits, so a far target is approached at the joint
    speed limit instead of teleported to.
    """

    scene: SceneSpec
    physics_dt: float

    def arm_contacts(self) -> int:
        """Contact points between two different arms after the last physics step."""
        ...

    def reset(
        self,
        joint_pos: Mapping[str, np.ndarray],
        gripper: Mapping[str, float],
        object_poses: Mapping[str, np.ndarray],
    ) -> None:
        """Put the scene in a state: arm joints (6,) rad at rest, gripper 0 open..1 closed,
        free objects (``"cube"``) at a pose (7,). Targets are set to the same joints."""

    def set_joint_targets(self, arm: str, joint_pos: np.ndarray, gripper: float) -> None:
        """Servo targets: joint positions (6,) rad within the joint limits, gripper in [0, 1]."""

    def step(self, n_substeps: int = 1) -> None:
        """Advance physics by ``n_substeps * physics_dt`` seconds."""

    def joint_pos(self, arm: str) -> np.ndarray:
        """Measured joint positions (6,), rad."""

    def joint_vel(self, arm: str) -> np.ndarray:
        """Measured joint velocities (6,), rad/s."""

    def gripper(self, arm: str) -> float:
        """Measured gripper closure, 0 fully open .. 1 fully closed."""

    def eef_pose(self, arm: str) -> np.ndarray:
        """Tool centre point (between the fingertips) pose (7,) in the world frame, with the
        quaternion's sign fixed to ``w >= 0``."""

    def arm_state(self, arm: str) -> np.ndarray:
        """The four readings above in one fresh array (``ARM_STATE_SIZE``,) float64, laid out
        as ``ARM_STATE_*`` say: joint positions, joint velocities, gripper closure, TCP pose.
        The env reads all of them every control step; one call costs the engines (and
        Python) less than four."""

    def object_pose(self, name: str) -> np.ndarray:
        """Pose (7,) of a free object of the scene, e.g. ``"cube"``."""

    def set_marker(self, name: str, pos: np.ndarray) -> None:
        """Move a visual marker to ``pos`` (3,), world frame."""

    def render(self, camera: str) -> np.ndarray:
        """Offscreen RGB image (H, W, 3) uint8 from a camera of the scene."""

    def camera_pose(self, camera: str) -> np.ndarray:
        """(4, 4) world pose of a camera of the scene as it renders now: columns right, up and
        backward (it looks along its -z, the OpenGL and MuJoCo convention), then position (m)."""

    def close(self) -> None:
        """Free the engine's resources; the backend is unusable afterwards."""
