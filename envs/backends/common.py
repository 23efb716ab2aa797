"""Servo targets and input checks both backends share, so the engines move alike.

Each arm has eight servoed joints: its six arm joints (rad) then its two fingers (m of closing
travel). Like a robot controller's trajectory generator, a ``step`` of duration T moves each
arm's set points toward their targets along a straight line in joint space, all joints of the
arm arriving together, at one rate chosen per step: fast enough to arrive by the end of the
step, but no joint faster than its speed limit, faster than a stop at its acceleration limit
allows (so it brakes into the target), or faster than its previous speed plus its
acceleration limit times T. The fingers form a second such group. So a target within one
step's reach (a policy's small move) is reached at the end of the step, and a far one is
approached with a trapezoidal, synchronised velocity profile that never passes the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar

import numpy as np
from robot_il.envs.backends.base import SceneSpec
from robot_il.envs.ur5e import description as ur5e

from robot_il.errors import ActionError, ConfigError

SERVOS_PER_ARM = 8

_Item = TypeVar("_Item")


def scene_item(items: Mapping[str, _Item], kind: str, name: str) -> _Item:
    """``items[name]``, the scene's ``kind`` (arm, object, marker, camera) of that name, or a
    ``ConfigError`` listing the ones the scene has."""
    if name not in items:
        raise ConfigError(f"no {kind} {name!r} in this scene; {kind}s: {list(items)}")
    return items[name]


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
        accel = ur5e.GRIPPER.finger_acceleration
        self.max_acceleration = np.tile(np.r_[ur5e.JOINT_ACC_LIMITS, accel, accel], n)
        self.target = np.zeros(SERVOS_PER_ARM * n)
        self._arm_views = {}  # arm -> views: joint targets, finger targets, joint limits
        for i, arm in enumerate(self.arms):
            k = SERVOS_PER_ARM * i
            self._arm_views[arm] = (
                self.target[k : k + 6],
                self.target[k + 6 : k + 8],
                self.lower[k : k + 6],
                self.upper[k : k + 6],
            )
        # Constants and scratch buffers of ``setpoint_velocity``, which runs once per control
        # step on both engines: kept here so the hot path allocates nothing and calls as few
        # numpy functions as it can (each costs about a microsecond on 8-16 numbers).
        self._two_acceleration = 2.0 * self.max_acceleration
        self._step_acceleration = self.max_acceleration.copy()  # max_acceleration * duration
        self._step_duration = 1.0
        # servo groups, each moving at one rate: arm 0 joints, arm 0 fingers, arm 1 joints, ...
        self._group_starts = (SERVOS_PER_ARM * np.arange(n)[:, None] + [0, 6]).ravel()
        self._group_of_servo = np.repeat(np.arange(2 * n), np.tile([6, 2], n))
        self._velocity = np.zeros(SERVOS_PER_ARM * n)
        self._error = np.zeros(SERVOS_PER_ARM * n)
        self._distance = np.zeros(SERVOS_PER_ARM * n)
        self._rate = np.zeros(SERVOS_PER_ARM * n)
        self._speed = np.zeros(SERVOS_PER_ARM * n)
        self._travel = travel

    def arm_slice(self, arm: str) -> slice:
        """Where an arm's eight servos sit in ``target``."""
        start = SERVOS_PER_ARM * scene_item(self._index, "arm", arm)
        return slice(start, start + SERVOS_PER_ARM)

    def set(self, arm: str, joint_pos: np.ndarray, gripper: float) -> None:
        """Targets of one arm: joints (6,) rad clipped to the joint limits, gripper in [0, 1]
        (clipped). Raises ``ActionError`` for a wrong shape or a non-finite value, before
        anything changes."""
        views = self._arm_views.get(arm)  # one lookup: this runs every control step
        if views is None:
            scene_item(self._arm_views, "arm", arm)  # raises, naming the arms
        joints = np.asarray(joint_pos, dtype=np.float64)
        if joints.shape != (6,):
            raise ActionError(
                f"joint targets for arm {arm!r} must have shape (6,), got {joints.shape}"
            )
        closure = float(gripper)
        # one sum finds a NaN or inf anywhere; only a sum that overflows needs the full check
        if not math.isfinite(float(np.add.reduce(joints)) + closure) and not (
            math.isfinite(closure) and np.isfinite(joints).all()
        ):
            raise ActionError(f"joint targets for arm {arm!r} are not finite: {joints}, {closure}")
        arm_joints, fingers, lower, upper = views
        np.maximum(joints, lower, out=arm_joints)  # np.clip, without its Python-level wrapper
        np.minimum(arm_joints, upper, out=arm_joints)
        fingers[:] = min(max(closure, 0.0), 1.0) * self._travel

    def reset(self, joint_pos: Mapping[str, np.ndarray], gripper: Mapping[str, float]) -> None:
        """Targets for a reset; an arm left out starts at ``HOME_JOINT_POS`` with the gripper
        open."""
        unknown = set(joint_pos) - set(self.arms)
        if unknown:
            raise ConfigError(f"no arm {sorted(unknown)} in this scene; arms: {list(self.arms)}")
        for arm in self.arms:
            self.set(arm, joint_pos.get(arm, ur5e.HOME_JOINT_POS), gripper.get(arm, 0.0))
        self._velocity[:] = 0.0

    def setpoint_velocity(self, setpoint: np.ndarray, duration: float) -> np.ndarray:
        """Set-point velocities (8 per arm) for the next ``duration`` s, by the rules of the
        module docstring. The returned array is reused (and remembered) by the next call.

        Per servo at distance d from its target the allowed speed is
        ``min(v_max, sqrt(2 a_max d), |v_prev| + a_max T)``; dividing by d gives the rate at
        which that servo could close its error, and each group moves at its slowest servo's
        rate (at most 1/T, arriving at the end of the step)."""
        error, distance, rate, speed = self._error, self._distance, self._rate, self._speed
        velocity = self._velocity
        if duration != self._step_duration:
            np.multiply(self.max_acceleration, duration, out=self._step_acceleration)
            self._step_duration = duration
        np.subtract(self.target, setpoint, out=error)
        np.absolute(error, out=distance)
        distance += 1e-12
        np.multiply(distance, self._two_acceleration, out=rate)
        np.sqrt(rate, out=rate)  # braking: the fastest speed that still stops at the target
        np.minimum(rate, self.max_velocity, out=rate)
        np.absolute(velocity, out=speed)
        speed += self._step_acceleration  # accelerating: previous speed + a_max T
        np.minimum(rate, speed, out=rate)
        rate /= distance
        group_rate = np.minimum.reduceat(rate, self._group_starts)
        np.minimum(group_rate, 1.0 / duration, out=group_rate)
        np.multiply(error, group_rate[self._group_of_servo], out=velocity)
        return velocity


def check_object_names(object_poses: Mapping[str, np.ndarray], known: Mapping[str, object]) -> None:
    """Raise ``ConfigError`` when a reset names an object the scene lacks or a bad pose."""
    for name, pose in object_poses.items():
        scene_item(known, "object", name)
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ConfigError(f"pose of {name!r} must be 7 finite numbers (xyz, wxyz), got {pose}")
