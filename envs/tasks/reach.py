"""Reach: bring the tool centre point to a random point above the table."""

from __future__ import annotations

import numpy as np
from robot_il.envs.backends.base import CameraSpec, SceneSpec, SimBackend
from robot_il.envs.tasks.base import TABLE_HEIGHT, InitialState, Task, closeness, distance

TARGET_LOW = np.array([0.30, -0.25, TABLE_HEIGHT + 0.08])
TARGET_HIGH = np.array([0.60, 0.25, TABLE_HEIGHT + 0.40])
"""Box (m, world) the target is drawn from, uniformly."""

SUCCESS_RADIUS = 0.02
"""The TCP must be within this distance (m) of the target."""


class Reach(Task):
    """One UR5e, no objects; a visual marker shows the target."""

    name = "reach"
    episode_seconds = 4.0
    task_keys = {"target_pos": (3,)}

    def __init__(self) -> None:
        super().__init__()
        self.target = (TARGET_LOW + TARGET_HIGH) / 2

    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        return SceneSpec(
            arms=self.mounts(), table_height=TABLE_HEIGHT, markers=("target",), cameras=cameras
        )

    def sample(self, rng: np.random.Generator) -> InitialState:
        joints = self.noisy_home(rng)
        self.target = rng.uniform(TARGET_LOW, TARGET_HIGH)
        return InitialState(joints, {"": 0.0}, {})

    def markers(self) -> dict[str, np.ndarray]:
        return {"target": self.target}

    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        return {"target_pos": self.target.astype(np.float32)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        to_target = distance(obs["eef_pose"][:3], obs["target_pos"])
        return closeness(to_target), to_target < SUCCESS_RADIUS
