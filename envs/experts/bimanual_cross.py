"""Cross expert: each arm follows the scene's scripted tool path, one arm after the other.

The arm whose start delay ends first moves first; the other waits for its own delay and until
the first has arrived, so a demonstration never collides (the scenes are built so that a
parked arm is clear of the other's path). Each path is timed by minimum jerk over the scene's
duration (``robot_il.envs.cross_scenes.expert_tool_path``); its poses go through IK near the
previous joint command.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.envs.experts.base import Expert, Waypoint, top_down


class BimanualCrossExpert(Expert):
    """Tracks the scripted, time-parametrised tool paths (no waypoints)."""

    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        scene = self.task.scene_numbers
        self._scene = scene
        self._time = 0.0
        self._begin = np.full(2, np.inf)
        first = int(np.argmin(scene.delay[0]))
        self._order = (first, 1 - first)
        self._begin[first] = scene.delay[0, first]
        return []

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        scene = self._scene
        first, second = self._order
        done_first = self._time >= self._begin[first] + scene.duration[0, first]
        if done_first and not np.isfinite(self._begin[second]):
            self._begin[second] = max(self._time, scene.delay[0, second])
        for k, command in enumerate(self._commands):
            progress = np.clip((self._time - self._begin[k]) / scene.duration[0, k], 0.0, 1.0)
            if not np.isfinite(self._begin[k]):
                progress = 0.0
            position = cs.expert_tool_path(
                scene.start[0, k], scene.crossing[0, k], scene.goal[0, k], np.asarray(progress)
            )
            yaw = cs.expert_tool_yaw(scene.start_yaw[0, k], scene.goal_yaw[0, k], progress)
            target = np.eye(4)
            target[:3, :3] = top_down(float(yaw))
            target[:3, 3] = position
            joints = self.arms[command.name].inverse(target, command.joints)
            if joints is not None:
                command.tcp, command.joints = target, joints
        self._time += self.dt
        return self._action(obs)
