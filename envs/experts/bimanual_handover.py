"""Handover expert: the left arm picks the cube and presents it midway; the right arm takes it
from the side, and drops it into the bin.

The left gripper holds the cube from above with its fingers on the cube's +-x faces; the right
gripper comes in horizontally along +x with its fingers closing on the free +-y faces, its palm
held back so it clears the left fingers.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs.experts.base import Expert, Waypoint, grasp_yaw, tcp_at, top_down
from robot_il.envs.experts.pick_place import GRIPPER_SETTLE, grasp_waypoints
from robot_il.envs.tasks.base import TABLE_HEIGHT, in_bin
from robot_il.envs.tasks.bimanual_handover import BIN, HANDOVER_POINT
from robot_il.envs.tasks.push import CUBE
from robot_il.envs.ur5e.transforms import rot_z

SIDEWAYS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""Right TCP attitude at the handover: approach (z) along world +x, fingers (x) along world y."""
GRASP_SETBACK = 0.015
"""How far (m) short of the cube's centre the right TCP stops, so its palm clears the left
fingers (the pads still cover the back 25 mm of the cube's y faces)."""
PRE_GRASP = 0.12
"""Distance (m) back along the approach from which the right gripper moves in."""
RETREAT = 0.12
"""Height (m) the left gripper rises after letting go."""
DROP_CLEARANCE = 0.08
"""Height (m) of the cube's bottom above the bin's walls when the right gripper opens. At 0.05
the drop pose (TCP at 0.125 m) lay below the lowest the right arm reaches sideways (0.147 m,
its wrist on the table), so the expert held the cube still for the waypoint's 4 s timeout and
then opened: a release no observation announces, which BC imitated by its training seed."""


class BimanualHandoverExpert(Expert):
    """Three stages: pick and present (left), take over (right), place (right)."""

    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        self._stage = 0
        cube = obs["object_pose"]
        lift = grasp_waypoints("left", cube, carry_height=float(HANDOVER_POINT[2]))
        ready = tcp_at(HANDOVER_POINT - [PRE_GRASP + GRASP_SETBACK, 0.0, 0.0], SIDEWAYS)
        lift[0].poses["right"] = ready
        present = Waypoint({"left": tcp_at(HANDOVER_POINT, top_down(0.0))}, {"left": 1.0})
        return [*lift, present]

    def replan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        cube = obs["object_pose"]
        self._stage += 1
        if self._stage == 1 and cube[2] > TABLE_HEIGHT + 2 * CUBE.half_size:
            return self._take_over(cube)
        if self._stage > 1 or in_bin(cube[:3], BIN):
            return []
        return self.plan(obs)

    def _take_over(self, cube: np.ndarray) -> list[Waypoint]:
        attitude = rot_z(grasp_yaw(cube)) @ SIDEWAYS
        approach = attitude[:, 2]
        grasp = cube[:3].astype(np.float64) - GRASP_SETBACK * approach
        left_up = cube[:3].astype(np.float64) + [0.0, 0.0, RETREAT]
        drop = np.array([*BIN.center_xy, TABLE_HEIGHT + BIN.wall_height + CUBE.half_size])
        drop[2] += DROP_CLEARANCE
        drop -= GRASP_SETBACK * SIDEWAYS[:, 2]
        above_drop = drop + [0.0, 0.0, 0.05]
        hold = {"left": 1.0, "right": 1.0}
        return [
            Waypoint({"right": tcp_at(grasp - PRE_GRASP * approach, attitude)}, {"right": 0.0}),
            Waypoint(
                {"right": tcp_at(grasp, attitude)}, {"right": 0.0}, speed=0.1, tolerance=0.006
            ),
            Waypoint({"right": tcp_at(grasp, attitude)}, hold, settle=GRIPPER_SETTLE),
            Waypoint({}, {"left": 0.0, "right": 1.0}, settle=GRIPPER_SETTLE),
            Waypoint({"left": tcp_at(left_up, top_down(0.0))}, {"left": 0.0}),
            Waypoint({"right": tcp_at(above_drop, SIDEWAYS)}, {"right": 1.0}, speed=0.25),
            Waypoint({"right": tcp_at(drop, SIDEWAYS)}, {"right": 1.0}, tolerance=0.008),
            Waypoint({"right": tcp_at(drop, SIDEWAYS)}, {"right": 0.0}, settle=GRIPPER_SETTLE),
        ]
