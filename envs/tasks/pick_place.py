"""Pick and place: grasp a cube from the table and drop it into a bin."""

from __future__ import annotations

import numpy as np
from robot_il.envs.backends.base import BinSpec, CameraSpec, SceneSpec, SimBackend
from robot_il.envs.tasks.base import (
    TABLE_HEIGHT,
    InitialState,
    Task,
    closeness,
    distance,
    in_bin,
    object_pose,
    random_cube_pose,
)
from robot_il.envs.tasks.push import CUBE

BIN = BinSpec(center_xy=(0.42, -0.25), inner_half_extent=(0.08, 0.08), wall_height=0.05)
BIN_TARGET = np.array([*BIN.center_xy, TABLE_HEIGHT], dtype=np.float32)
"""The ``target_pos`` observation: the bin's floor centre (m, world)."""

CUBE_LOW = np.array([0.35, 0.0])
CUBE_HIGH = np.array([0.58, 0.25])
"""Box (m, world xy) the cube's start is drawn from (clear of the bin)."""

LIFT_HEIGHT = 0.05
"""Height (m) above its resting height at which the cube counts as lifted, for the reward."""


class PickPlace(Task):
    """One UR5e, a cube and a bin; success when the cube rests inside the bin."""

    name = "pick_place"
    episode_seconds = 10.0
    task_keys = {"object_pose": (7,), "target_pos": (3,)}

    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        return SceneSpec(
            arms=self.mounts(), table_height=TABLE_HEIGHT, cube=CUBE, bin=BIN, cameras=cameras
        )

    def sample(self, rng: np.random.Generator) -> InitialState:
        joints = self.noisy_home(rng)
        cube = random_cube_pose(rng, CUBE_LOW, CUBE_HIGH, CUBE.half_size)
        return InitialState(joints, {"": 0.0}, {"cube": cube})

    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        return {"object_pose": object_pose(backend), "target_pos": BIN_TARGET.copy()}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        cube = obs["object_pose"][:3]
        lift = min(max(float(cube[2] - TABLE_HEIGHT - CUBE.half_size) / LIFT_HEIGHT, 0.0), 1.0)
        to_cube = distance(obs["eef_pose"][:3], cube)
        to_bin = distance(cube[:2], obs["target_pos"][:2])
        success = in_bin(cube, BIN)
        reward = 0.25 * closeness(to_cube) + 0.25 * lift + 0.5 * closeness(to_bin) + success
        return float(reward), success
