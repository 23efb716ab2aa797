"""Play one demonstration's DMP segments again, arm by arm, adapted to where the object is.

For tasks with an object (``object_pose``, e.g. ``bimanual_handover``) the library episode whose
object started nearest (horizontally) is replayed: each arm starts its segments at the steps
they started in the demonstration (or when its previous segment has finished), each from the
tool's measured pose. A segment that ended near the object's start (within ``ADAPT_RADIUS``
horizontally, below ``ADAPT_HEIGHT``) is a reach for the object: its goal moves with the
object's offset and turns with the change of grasp yaw (objects with the cube's four-fold
symmetry). The grippers follow the demonstration's commands step by step.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs.experts.base import grasp_yaw
from robot_il.envs.spatial import quat_multiply
from robot_il.envs.ur5e.kinematics import track_pose
from robot_il.policies.dmp.bimanual import _quat_batch_to_matrix
from robot_il.policies.dmp.library import ARMS, Segment

ADAPT_RADIUS = 0.12
"""A segment ending this close (m, horizontally) to the object's start reaches for it."""
ADAPT_HEIGHT = 0.2
"""... and below this height (m above the table)."""
END_PHASE = 0.01
"""A segment is over when its phase has fallen below this."""


class SequencePlayer:
    """Replays one library episode on two arms; see the module docstring.

    ``segments``: the episode's segments; ``object_start`` (7,) the demonstration's initial
    object pose; ``gripper`` (T, 2) its gripper commands per control step; ``bases`` (2, 4, 4)
    the arms' base poses; ``dt`` the control period (s); ``ticks`` DMP steps per control step.
    """

    def __init__(
        self,
        segments: list[Segment],
        object_start: np.ndarray,
        gripper: np.ndarray,
        bases: np.ndarray,
        obs: dict[str, np.ndarray],
        dt: float,
        ticks: int,
    ) -> None:
        self.queue = {
            arm: sorted((s for s in segments if s.arm == arm), key=lambda s: s.span[0])
            for arm in ARMS
        }
        self.gripper = gripper
        self.bases = bases
        self.dt, self.ticks = dt, ticks
        cube = np.asarray(obs["object_pose"], dtype=np.float64)
        self.object_start = object_start
        self.offset = cube[:2] - object_start[:2]
        turn = grasp_yaw(cube) - grasp_yaw(object_start)
        self.turn = np.array([np.cos(turn / 2), 0.0, 0.0, np.sin(turn / 2)])
        self.joints = np.stack([np.asarray(obs[f"{a}_joint_pos"], np.float64) for a in ARMS])
        self.active: dict[str, tuple | None] = {arm: None for arm in ARMS}
        self.step_index = 0

    def _goal(self, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
        goal, quat = segment.position.goal.copy(), segment.orientation.goal.copy()
        near = np.linalg.norm(goal[:2] - self.object_start[:2]) < ADAPT_RADIUS
        if near and goal[2] < ADAPT_HEIGHT:
            goal[:2] += self.offset
            quat = quat_multiply(self.turn, quat)
        return goal, quat

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Joint targets and gripper commands (14,) for this control step."""
        t = self.step_index
        for k, arm in enumerate(ARMS):
            queue = self.queue[arm]
            if self.active[arm] is None and queue and t >= queue[0].span[0]:
                segment = queue.pop(0)
                pose = np.asarray(obs[f"{arm}_eef_pose"], dtype=np.float64)
                goal, quat = self._goal(segment)
                self.active[arm] = (
                    segment,
                    segment.position.begin(pose[:3], goal),
                    segment.orientation.begin(pose[3:7], quat),
                )
            if self.active[arm] is None:
                continue
            segment, position, orientation = self.active[arm]
            for _ in range(self.ticks):
                segment.position.step(position, self.dt / self.ticks)
                segment.orientation.step(orientation, self.dt / self.ticks)
            base = self.bases[k]
            target = base[:3, :3].T @ (position.y - base[:3, 3])
            rotation = base[:3, :3].T @ _quat_batch_to_matrix(orientation.y)
            self.joints[k] = track_pose(self.joints[k], target, rotation, iterations=2)[0]
            if position.x < END_PHASE:
                self.active[arm] = None
        command = self.gripper[min(t, len(self.gripper) - 1)]
        self.step_index += 1
        return np.concatenate([self.joints[0], command[:1], self.joints[1], command[1:]]).astype(
            np.float32
        )
