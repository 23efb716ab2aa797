"""What every task defines, and the pieces the four tasks share.

A task owns the scene layout (arms, table, cube, bin, cameras), the seeded distribution of
initial states, its extra observation keys, a dense reward for RL and the success test. It talks
to physics only through the ``SimBackend`` protocol, so the same task runs on both engines and
succeeds by the same test.

World frame: z up, the table top at ``TABLE_HEIGHT``; a one-arm scene's UR5e stands at the
origin facing +x.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from robot_il.envs.arm import Arm
from robot_il.envs.backends.base import ArmMount, BinSpec, CameraSpec, SceneSpec, SimBackend

from robot_il.errors import ConfigError

TABLE_HEIGHT = 0.0
"""World z (m) of the table top; the arm bases stand on it."""

HOME_TCP_POSITION = np.array([0.45, 0.0, 0.30])
"""Where a one-arm scene's TCP starts (m, in the arm's base frame), pointing down."""

TOP_DOWN = np.diag([1.0, -1.0, -1.0])
"""Attitude of a TCP pointing straight down (its z axis along world -z) with its x axis, along
which the fingers close, on world +x."""

ELBOW_UP = np.array([np.pi, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
"""Seed for the home IK: elbow up, wrist down, reaching along the base's +x (the DH base frame
points its -x ahead at zero pan, hence the half turn)."""

ARM_KEYS: tuple[str, ...] = ("joint_pos", "joint_vel", "gripper", "eef_pose")
"""Observation keys the env reads from each arm (prefixed ``left_`` / ``right_`` on two arms);
a task's own keys (``Task.task_keys``) come beside them."""

ARM_NOISE_RAD = 0.05
"""Half-width (rad) of the uniform noise added to each home joint at reset."""

CAMERAS: dict[str, CameraSpec] = {
    "front": CameraSpec("front", pos=(1.45, 0.0, 0.95), lookat=(0.25, 0.0, 0.18), fovy_deg=55.0),
    "top": CameraSpec("top", pos=(0.45, 0.0, 1.4), lookat=(0.45, 0.0, 0.0), fovy_deg=60.0),
    "side": CameraSpec("side", pos=(0.35, -1.4, 0.7), lookat=(0.35, 0.0, 0.2), fovy_deg=55.0),
}
"""Fixed cameras every task offers (world frame); sizes are set by the env."""

WRIST_CAMERA = CameraSpec(
    "wrist", pos=(0.0, -0.09, 0.11), lookat=(0.0, 0.0, 0.26), fovy_deg=70.0, arm=""
)
"""The camera every arm's gripper carries, in its flange frame (z the approach axis, x the
fingers' closing axis; the TCP at z 0.16 m): beside the palm, 9 cm off the axis across the
closing direction, looking 10 cm past the fingertips, so the fingers sit at the bottom of the
frame and what lies ahead of the gripper (the cube before a grasp, the bin while carrying) in
its middle."""


def wrist_cameras(arms: tuple[ArmMount, ...]) -> dict[str, CameraSpec]:
    """``WRIST_CAMERA`` on each arm: ``wrist`` in a one-arm scene, ``left_wrist`` and
    ``right_wrist`` on arms named so."""
    names = {mount.name: f"{mount.name}_wrist" if mount.name else "wrist" for mount in arms}
    return {name: replace(WRIST_CAMERA, name=name, arm=arm) for arm, name in names.items()}


@dataclass(frozen=True)
class InitialState:
    """A reset state: joints (6,) rad and gripper closure per arm, free-object poses (7,)."""

    joint_pos: dict[str, np.ndarray]
    gripper: dict[str, float]
    object_poses: dict[str, np.ndarray]


class Task(ABC):
    """One manipulation task; subclasses set ``name``, ``episode_seconds`` and the methods."""

    name: ClassVar[str]
    episode_seconds: ClassVar[float]
    """Default episode length in simulated seconds (the env turns it into control steps)."""
    task_keys: ClassVar[dict[str, tuple[int, ...]]]
    """Extra observation keys and shapes this task adds (float32)."""

    def __init__(self) -> None:
        self.arms = tuple(Arm(mount) for mount in self.mounts())
        self._home = {arm.name: self._home_joints(arm) for arm in self.arms}

    @classmethod
    def mounts(cls) -> tuple[ArmMount, ...]:
        """Where the arms stand; one arm at the origin unless a task says otherwise."""
        return (ArmMount(),)

    @abstractmethod
    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        """The scene to build, with the given cameras."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> InitialState:
        """Draw this episode's initial state and task parameters (targets) from ``rng``."""

    @abstractmethod
    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        """The task's observation keys (``task_keys``) read from the backend."""

    @abstractmethod
    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        """Dense reward and success of the state ``obs`` (the env's full observation)."""

    def markers(self) -> dict[str, np.ndarray]:
        """Visual markers to place after a reset: name -> world position (3,) m."""
        return {}

    def camera_specs(self) -> dict[str, CameraSpec]:
        """Named cameras of this task (default size; the env resizes them): the fixed
        ``CAMERAS`` and a wrist camera on each arm (``wrist_cameras``)."""
        return {**CAMERAS, **wrist_cameras(self.mounts())}

    def noisy_home(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Home joints of every arm with uniform noise of ``ARM_NOISE_RAD``."""
        return {
            arm.name: self._home[arm.name] + rng.uniform(-ARM_NOISE_RAD, ARM_NOISE_RAD, 6)
            for arm in self.arms
        }

    @staticmethod
    def _home_joints(arm: Arm) -> np.ndarray:
        home = np.eye(4)
        home[:3, :3] = TOP_DOWN
        home[:3, 3] = HOME_TCP_POSITION + [0.0, 0.0, TABLE_HEIGHT]
        world_home = arm.world_from_base @ home
        joints = arm.inverse(world_home, ELBOW_UP)
        if joints is None:
            raise ConfigError(f"home pose of arm {arm.name!r} is out of reach")
        return joints


def scene_cameras(task: Task, names: tuple[str, ...], size: tuple[int, int]) -> tuple:
    """The task's cameras ``names`` at ``size`` = (height, width) px. Unknown names, a name
    given twice (each camera is one observation key and one scene camera) and an empty image
    are refused."""
    specs = task.camera_specs()
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise ConfigError(
            f"task {task.name!r} has no camera {unknown[0]!r}; cameras: {', '.join(specs)}"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"camera {twice[0]!r} is asked for twice in {list(names)}")
    height, width = size
    if height < 1 or width < 1:
        raise ConfigError(f"camera image size must be at least 1x1 px, got {height}x{width}")
    return tuple(replace(specs[name], height=height, width=width) for name in names)


def cube_pose(xy: np.ndarray, yaw: float, half_size: float) -> np.ndarray:
    """Pose (7,) of a cube resting on the table at ``xy`` (m) turned by ``yaw`` (rad)."""
    quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    return np.concatenate([[xy[0], xy[1], TABLE_HEIGHT + half_size], quat])


MAX_CUBE_YAW = np.pi / 4
"""A randomly placed cube starts turned by up to this much (rad) about z."""


def random_cube_pose(
    rng: np.random.Generator, low: np.ndarray, high: np.ndarray, half_size: float
) -> np.ndarray:
    """Pose (7,) of a cube resting at an xy drawn uniformly from the box ``[low, high]``
    (m, world) and turned by a yaw drawn uniformly within +/- ``MAX_CUBE_YAW``; draws the xy
    first, then the yaw, so seeded episodes keep their layout."""
    xy = rng.uniform(low, high)
    yaw = rng.uniform(-MAX_CUBE_YAW, MAX_CUBE_YAW)
    return cube_pose(xy, yaw, half_size)


def distance(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    """Euclidean distance (m) between two points of the same length (cheaper than numpy's
    norm for 2 or 3 numbers, which matters at every control step; ``math.dist`` reads a list
    of floats several times faster than an array)."""
    return math.dist(
        a.tolist() if isinstance(a, np.ndarray) else a,
        b.tolist() if isinstance(b, np.ndarray) else b,
    )


def closeness(distance: float, scale: float = 10.0) -> float:
    """Dense shaping in [0, 1]: 1 at distance 0, about 0.5 at ``0.55 / scale`` metres."""
    return 1.0 - math.tanh(scale * distance)


def object_pose(backend: SimBackend, name: str = "cube") -> np.ndarray:
    """A free object's pose (7,) float32 with the quaternion sign fixed (``w >= 0``)."""
    pose = np.array(backend.object_pose(name), dtype=np.float32)
    if pose[3] < 0:
        pose[3:7] = -pose[3:7]
    return pose


def in_bin(position: np.ndarray, bin_spec: BinSpec) -> bool:
    """Whether a point (m, world) lies inside the bin's walls and below their top (plain
    float comparisons: this runs at every control step)."""
    x, y, z = (float(v) for v in position[:3])
    (cx, cy), (hx, hy) = bin_spec.center_xy, bin_spec.inner_half_extent
    return abs(x - cx) < hx and abs(y - cy) < hy and z < TABLE_HEIGHT + bin_spec.wall_height
