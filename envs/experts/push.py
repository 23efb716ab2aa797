"""Push expert: strokes through the cube's centre toward the target, re-aimed after each."""

from __future__ import annotations

import numpy as np
from robot_il.envs.experts.base import Expert, Waypoint, tcp_at, top_down
from robot_il.envs.tasks.base import TABLE_HEIGHT
from robot_il.envs.tasks.push import CUBE

PUSH_HEIGHT = TABLE_HEIGHT + 0.03
"""TCP height (m) while pushing: the pad tips (15 mm below the TCP) just clear the table."""
CLEARANCE = 0.035
"""Gap (m) between the fingers and the cube's face before a stroke starts."""
HOVER = 0.08
"""Height (m) above the push height to travel at between strokes."""
STROKE_SPEED = 0.12
"""TCP speed (m/s) during a stroke: slow enough that the cube does not slide on."""
DONE_RADIUS = 0.012
"""Stop re-pushing when the cube is this close (m) to the target."""
FINGER_REACH = 0.008
"""How far (m) ahead of the TCP the leading closed pad's face is (the fingers close along the
TCP x axis, which the expert points along the push)."""


class PushExpert(Expert):
    """Closed gripper as a pusher; each stroke aims from behind the cube at the target."""

    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        return self._stroke(obs)

    def replan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        cube = obs["object_pose"][:2].astype(np.float64)
        if np.linalg.norm(obs["target_pos"][:2] - cube) < DONE_RADIUS:
            return []
        return self._stroke(obs)

    def _stroke(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        cube = obs["object_pose"][:2].astype(np.float64)
        goal = obs["target_pos"][:2].astype(np.float64)
        direction = goal - cube
        length = float(np.linalg.norm(direction))
        direction = direction / max(length, 1e-9)
        attitude = top_down(float(np.arctan2(direction[1], direction[0])))
        back = CUBE.half_size + CLEARANCE + FINGER_REACH
        start = cube - back * direction
        end = goal - (CUBE.half_size + FINGER_REACH) * direction
        closed = {"": 1.0}
        return [
            Waypoint({"": tcp_at([*start, PUSH_HEIGHT + HOVER], attitude)}, closed),
            Waypoint({"": tcp_at([*start, PUSH_HEIGHT], attitude)}, closed, tolerance=0.006),
            Waypoint(
                {"": tcp_at([*end, PUSH_HEIGHT], attitude)},
                closed,
                speed=STROKE_SPEED,
                settle=0.2,
                tolerance=0.008,
            ),
            Waypoint({"": tcp_at([*end, PUSH_HEIGHT + HOVER], attitude)}, closed),
        ]
