"""Push: slide a cube across the table to a target point."""

from __future__ import annotations

import numpy as np
from robot_il.envs.backends.base import CameraSpec, CubeSpec, SceneSpec, SimBackend
from robot_il.envs.tasks.base import (
    TABLE_HEIGHT,
    InitialState,
    Task,
    closeness,
    distance,
    object_pose,
    random_cube_pose,
)

CUBE = CubeSpec(half_size=0.025, mass=0.1)

CUBE_LOW = np.array([0.40, -0.15])
CUBE_HIGH = np.array([0.55, 0.15])
"""Box (m, world xy) the cube's start is drawn from."""

WORKSPACE_LOW = np.array([0.30, -0.30])
WORKSPACE_HIGH = np.array([0.65, 0.30])
"""The target stays inside this box (m, world xy)."""

PUSH_DISTANCE = (0.10, 0.18)
"""Range (m) of the distance from the cube's start to the target."""

SUCCESS_RADIUS = 0.03
"""The cube's centre must be within this distance (m, in xy) of the target."""


class Push(Task):
    """One UR5e and a cube; a visual marker shows where the cube must go."""

    name = "push"
    episode_seconds = 10.0
    task_keys = {"object_pose": (7,), "target_pos": (3,)}

    def __init__(self) -> None:
        super().__init__()
        self.target = np.array([0.5, 0.0, TABLE_HEIGHT + CUBE.half_size])

    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        return SceneSpec(
            arms=self.mounts(),
            table_height=TABLE_HEIGHT,
            cube=CUBE,
            markers=("target",),
            cameras=cameras,
        )

    def sample(self, rng: np.random.Generator) -> InitialState:
        joints = self.noisy_home(rng)
        cube = random_cube_pose(rng, CUBE_LOW, CUBE_HIGH, CUBE.half_size)
        while True:
            angle = rng.uniform(-np.pi, np.pi)
            goal = cube[:2] + rng.uniform(*PUSH_DISTANCE) * np.array([np.cos(angle), np.sin(angle)])
            if np.all(goal >= WORKSPACE_LOW) and np.all(goal <= WORKSPACE_HIGH):
                break
        self.target = np.array([goal[0], goal[1], TABLE_HEIGHT + CUBE.half_size])
        return InitialState(joints, {"": 0.0}, {"cube": cube})

    def markers(self) -> dict[str, np.ndarray]:
        return {"target": self.target}

    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        return {"object_pose": object_pose(backend), "target_pos": self.target.astype(np.float32)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        cube = obs["object_pose"][:3]
        to_target = distance(cube[:2], obs["target_pos"][:2])
        to_cube = distance(obs["eef_pose"][:3], cube)
        reward = 0.25 * closeness(to_cube) + closeness(to_target)
        return reward, to_target < SUCCESS_RADIUS
