"""Bimanual handover: the left UR5e picks the cube, hands it to the right one, which drops it
into a bin on its side of the table.

The layout forces the handover: with a top-down grasp the right arm cannot reach any start of
the cube (y >= 0.32 m is out of its reach) and the left arm cannot reach above the bin
(y <= -0.32 m is out of its), so a cube in the bin has passed from hand to hand.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs.backends.base import ArmMount, BinSpec, CameraSpec, SceneSpec, SimBackend
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

ARM_OFFSET_Y = 0.55
"""The two bases stand at y = +/- this (m), both facing +x."""

BIN = BinSpec(center_xy=(0.55, -0.45), inner_half_extent=(0.08, 0.08), wall_height=0.05)

CUBE_LOW = np.array([0.38, 0.34])
CUBE_HIGH = np.array([0.55, 0.52])
"""Box (m, world xy) the cube's start is drawn from: within the left arm's reach only."""

HANDOVER_POINT = np.array([0.45, 0.0, TABLE_HEIGHT + 0.25])
"""Where the cube changes hands (m, world), midway between the arms."""


class BimanualHandover(Task):
    """Two UR5e on one table (``left`` at +y, ``right`` at -y), a cube and a bin."""

    name = "bimanual_handover"
    episode_seconds = 20.0
    task_keys = {"object_pose": (7,)}

    @classmethod
    def mounts(cls) -> tuple[ArmMount, ...]:
        return (
            ArmMount("left", base_pos=(0.0, ARM_OFFSET_Y, TABLE_HEIGHT)),
            ArmMount("right", base_pos=(0.0, -ARM_OFFSET_Y, TABLE_HEIGHT)),
        )

    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        return SceneSpec(
            arms=self.mounts(), table_height=TABLE_HEIGHT, cube=CUBE, bin=BIN, cameras=cameras
        )

    def sample(self, rng: np.random.Generator) -> InitialState:
        joints = self.noisy_home(rng)
        cube = random_cube_pose(rng, CUBE_LOW, CUBE_HIGH, CUBE.half_size)
        grippers = {"left": 0.0, "right": 0.0}
        return InitialState(joints, grippers, {"cube": cube})

    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        return {"object_pose": object_pose(backend)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        cube = obs["object_pose"][:3]
        to_left = distance(obs["left_eef_pose"][:3], cube)
        to_right = distance(obs["right_eef_pose"][:3], cube)
        to_handover = distance(cube, HANDOVER_POINT)
        to_bin = distance(cube[:2], BIN.center_xy)
        success = in_bin(cube, BIN)
        reward = (
            0.25 * closeness(to_left)
            + 0.25 * closeness(to_handover)
            + 0.25 * closeness(to_right)
            + 0.5 * closeness(to_bin)
            + success
        )
        return float(reward), success
