"""Servo targets and input checks both backends share, so the engines move alike.

Each arm has eight servoed joints: its six arm joints (rad) then its two fingers (m of closing
travel). A ``step`` of duration T moves each set point toward its target at velocity
``clip((target - set point) / T, -v_max, v_max)``: the set point arrives at the end of the step
(like a trajectory controller given one waypoint per control period) unless the joint speed
limit (finger speed for fingers) makes it take longer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robot_il.envs.backends.base import SceneSpec
from robot_il.envs.ur5e import description as ur5e
from robot_il.errors import ActionError, ConfigError

SERVOS_PER_ARM = 8


class ServoTargets:
    """Targets (8 per arm, arms in scene order) with their limits, checked and clipped."""

    def __init__(self, scene: SceneSpec) -> None:
        self.arms = tuple(mount.name for mount in scene.arms)
        self._index = {arm: i for i, arm in enumerate(self.arms)}
        travel = ur5e.GRIPPER.finger_travel
        n = len(self.arms)
        self.lower = np.tile(np.r_[ur5e.JOINT_POS_LIMITS[:, 0], 0.0, 0.0], n)
        self.upper = np.tile(np.r_[ur5e.JOINT_POS_LIMITS[:, 1], travel, travel], n)
        speed = ur5e.GRIPPER.finger_speed
        self.max_velocity = np.tile(np.r_[ur5e.JOINT_VEL_LIMITS, speed, speed], n)
        self.target = np.zeros(SERVOS_PER_ARM * n)
        self._velocity = np.zeros(SERVOS_PER_ARM * n)
        self._travel = travel

    def arm_slice(self, arm: str) -> slice:
        """Where an arm's eight servos sit in ``target``."""
        if arm not in self._index:
            raise ConfigError(f"no arm {arm!r} in this scene; arms: {list(self.arms)}")
        start = SERVOS_PER_ARM * self._index[arm]
        return slice(start, start + SERVOS_PER_ARM)

    def set(self, arm: str, joint_pos: np.ndarray, gripper: float) -> None:
        """Targets of one arm: joints (6,) rad clipped to the joint limits, gripper in [0, 1]
        (clipped). Raises ``ActionError`` for a wrong shape or a non-finite value, before
        anything changes."""
        k = self.arm_slice(arm)
        joints = np.asarray(joint_pos, dtype=np.float64)
        if joints.shape != (6,):
            raise ActionError(f"joint targets for arm {arm!r} must have shape (6,), got {joints.shape}")
        closure = float(gripper)
        if not (np.all(np.isfinite(joints)) and np.isfinite(closure)):
            raise ActionError(f"joint targets for arm {arm!r} are not finite: {joints}, {closure}")
        target = self.target[k]
        target[:6] = joints
        target[6:] = min(max(closure, 0.0), 1.0) * self._travel
        np.clip(target, self.lower[k], self.upper[k], out=target)

    def reset(self, joint_pos: Mapping[str, np.ndarray], gripper: Mapping[str, float]) -> None:
        """Targets for a reset; an arm left out starts at ``HOME_JOINT_POS`` with the gripper
        open."""
        unknown = set(joint_pos) - set(self.arms)
        if unknown:
            raise ConfigError(f"no arm {sorted(unknown)} in this scene; arms: {list(self.arms)}")
        for arm in self.arms:
            self.set(arm, joint_pos.get(arm, ur5e.HOME_JOINT_POS), gripper.get(arm, 0.0))

    def setpoint_velocity(self, setpoint: np.ndarray, duration: float) -> np.ndarray:
        """Set-point velocities (8 per arm) that reach the targets in ``duration`` s, within
        the speed limits. The returned array is reused by the next call."""
        velocity = self._velocity
        np.subtract(self.target, setpoint, out=velocity)
        velocity /= duration
        np.clip(velocity, -self.max_velocity, self.max_velocity, out=velocity)
        return velocity


def check_object_names(object_poses: Mapping[str, np.ndarray], known: Mapping[str, object]) -> None:
    """Raise ``ConfigError`` when a reset names an object the scene lacks or a bad pose."""
    for name, pose in object_poses.items():
        if name not in known:
            raise ConfigError(f"no object {name!r} in this scene; objects: {list(known)}")
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ConfigError(f"pose of {name!r} must be 7 finite numbers (xyz, wxyz), got {pose}")
