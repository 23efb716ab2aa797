"""Pick-and-place expert: top-down grasp, carry over the bin, drop; retry if it missed."""

from __future__ import annotations

import numpy as np
from robot_il.envs.experts.base import Expert, Waypoint, grasp_yaw, tcp_at, top_down
from robot_il.envs.tasks.base import TABLE_HEIGHT, in_bin
from robot_il.envs.tasks.pick_place import BIN
from robot_il.envs.tasks.push import CUBE

APPROACH = 0.10
"""Height (m) above the grasp point from which the TCP descends."""
CARRY_HEIGHT = TABLE_HEIGHT + 0.20
"""TCP height (m) while carrying the cube."""
DROP_HEIGHT = TABLE_HEIGHT + BIN.wall_height + CUBE.half_size + 0.04
"""TCP height (m) above the bin where the gripper opens."""
GRIPPER_SETTLE = 0.5
"""Seconds to wait for the gripper to close or open."""


def grasp_waypoints(
    arm: str, cube_pose: np.ndarray, carry_height: float = CARRY_HEIGHT
) -> list[Waypoint]:
    """Approach, descend, close on and lift a cube resting on the table (one arm)."""
    attitude = top_down(grasp_yaw(cube_pose))
    centre = cube_pose[:3].astype(np.float64)
    above = centre + [0.0, 0.0, APPROACH]
    lifted = np.array([centre[0], centre[1], carry_height])
    return [
        Waypoint({arm: tcp_at(above, attitude)}, {arm: 0.0}),
        Waypoint({arm: tcp_at(centre, attitude)}, {arm: 0.0}, speed=0.15, tolerance=0.006),
        Waypoint({arm: tcp_at(centre, attitude)}, {arm: 1.0}, settle=GRIPPER_SETTLE),
        Waypoint({arm: tcp_at(lifted, attitude)}, {arm: 1.0}, speed=0.2),
    ]


class PickPlaceExpert(Expert):
    """Grasps the cube, drops it over the bin's centre, and starts again if it is not in."""

    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        pose = obs["object_pose"]
        over_bin = np.array([*BIN.center_xy, CARRY_HEIGHT])
        drop = np.array([*BIN.center_xy, DROP_HEIGHT])
        attitude = top_down(grasp_yaw(pose))
        closed, opened = {"": 1.0}, {"": 0.0}
        return [
            *grasp_waypoints("", pose),
            Waypoint({"": tcp_at(over_bin, attitude)}, closed),
            Waypoint({"": tcp_at(drop, attitude)}, closed, tolerance=0.008),
            Waypoint({"": tcp_at(drop, attitude)}, opened, settle=GRIPPER_SETTLE),
            Waypoint({"": tcp_at(over_bin, attitude)}, opened),
        ]

    def replan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        if in_bin(obs["object_pose"][:3], BIN):
            return []
        return self.plan(obs)
