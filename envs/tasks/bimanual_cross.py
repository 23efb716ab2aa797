"""Bimanual cross: two UR5e carry their tools along paths that cross in the shared middle.

Scene numbers, the scripted path and the definitions live in ``robot_il.envs.cross_scenes``
(the kinematic benchmark draws the same scenes). Each arm may start only after its start
delay; the episode succeeds when both tools are within ``GOAL_TOLERANCE`` of their goals and
the arms' link capsules never touched (``robot_il.envs.separation``). The observation holds
each scene's inputs as the kinematic benchmark's controllers get them: tool goals and yaws,
start delays and move durations (s).
"""

from __future__ import annotations

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.envs.backends.base import ArmMount, CameraSpec, SceneSpec, SimBackend
from robot_il.envs.separation import arm_separation
from robot_il.envs.tasks.base import ELBOW_UP, TABLE_HEIGHT, TOP_DOWN, InitialState, Task, closeness
from robot_il.envs.ur5e.transforms import rot_z

from robot_il.errors import ConfigError


class BimanualCross(Task):
    """Two UR5e side by side (``left`` at +y, ``right`` at -y), no objects."""

    name = "bimanual_cross"
    episode_seconds = cs.TIME_LIMIT
    task_keys = {
        "tool_goals": (6,),
        "tool_goal_yaws": (2,),
        "start_delays": (2,),
        "move_durations": (2,),
        "arm_separation": (1,),
    }

    def __init__(self) -> None:
        super().__init__()
        self.scene_numbers: cs.CrossScenes | None = None
        self.collided = False
        self._bases = [arm.world_from_base for arm in self.arms]

    @classmethod
    def mounts(cls) -> tuple[ArmMount, ...]:
        return cs.MOUNTS

    def scene(self, cameras: tuple[CameraSpec, ...]) -> SceneSpec:
        return SceneSpec(
            arms=self.mounts(),
            table_height=TABLE_HEIGHT,
            markers=tuple(f"goal_{arm}" for arm in cs.ARMS),
            cameras=cameras,
            arm_contacts=True,
        )

    def sample(self, rng: np.random.Generator) -> InitialState:
        scene = cs.draw_scene(rng)
        joints = {}
        for k, arm in enumerate(self.arms):
            pose = np.eye(4)
            pose[:3, :3] = rot_z(scene.start_yaw[0, k]) @ TOP_DOWN
            pose[:3, 3] = scene.start[0, k]
            q = arm.inverse(pose, ELBOW_UP)
            if q is None:
                raise ConfigError(f"bimanual_cross: {arm.name} start {pose[:3, 3]} out of reach")
            joints[arm.name] = q
        self.scene_numbers = scene
        self.collided = False
        return InitialState(joints, {arm.name: 0.0 for arm in self.arms}, {})

    def observe(self, backend: SimBackend) -> dict[str, np.ndarray]:
        scene = self.scene_numbers
        left, right = (backend.joint_pos(arm.name) for arm in self.arms)
        separation = float(arm_separation(left, self._bases[0], right, self._bases[1]))
        self.collided |= separation < 0.0
        return {
            "tool_goals": scene.goal[0].reshape(6).astype(np.float32),
            "tool_goal_yaws": scene.goal_yaw[0].astype(np.float32),
            "start_delays": scene.delay[0].astype(np.float32),
            "move_durations": scene.duration[0].astype(np.float32),
            "arm_separation": np.array([separation], dtype=np.float32),
        }

    def markers(self) -> dict[str, np.ndarray]:
        scene = self.scene_numbers
        return {f"goal_{arm}": scene.goal[0, k] for k, arm in enumerate(cs.ARMS)}

    def evaluate(self, obs: dict[str, np.ndarray]) -> tuple[float, bool]:
        goals = obs["tool_goals"].reshape(2, 3)
        gaps = [
            float(np.linalg.norm(obs[f"{arm}_eef_pose"][:3] - goals[k]))
            for k, arm in enumerate(cs.ARMS)
        ]
        arrived = max(gaps) <= cs.GOAL_TOLERANCE
        reward = 0.5 * closeness(gaps[0]) + 0.5 * closeness(gaps[1]) - float(self.collided)
        return float(reward), bool(arrived and not self.collided)
