"""The numbers the safety layer enforces, in SI units and the arm's base frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_il.errors import ActionError

UR5E_ACCELERATION = 10.0
"""Joint acceleration limit for deployed commands, rad/s^2. Universal Robots publishes none for
servo control; 10 rad/s^2 reaches the 180 deg/s speed limit in about 0.3 s, smooth for a learned
policy. It is below the 15 rad/s^2 the simulated servo can follow
(``robot_il.envs.ur5e.description.JOINT_ACC_LIMITS``), so by default a filtered command is also
a followed one. A cell may raise it: the filter brakes so it could stop on each target, so with
an end-effector-delta policy one step ahead a joint cruises at most ``a * dt``; the two-arm
handover cell (``launch/deploy_two_arm_sim.launch.yaml``) sets 30 so that at its 20 Hz
lock-step period the filter passes the motion the arm makes at its own 15."""

UR5E_WORKSPACE = (np.array([-0.9, -0.9, 0.0]), np.array([0.9, 0.9, 1.1]))
"""Default tool-point box (m, arm base frame): the UR5e's 0.85 m reach around the base, and
never below the surface the base is mounted on (z = 0; the tasks mount arms on the table)."""


def _vector(name: str, values: object, size: int) -> np.ndarray:
    array = np.array(values, dtype=np.float64).reshape(-1)
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        raise ActionError(f"safety limit {name} must be {size} finite numbers, got {values!r}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class SafetyLimits:
    """Limits for one arm; arrays are per joint, in the joint order of the robot.

    ``position_lower``/``position_upper`` (rad), ``velocity`` (rad/s, symmetric) and
    ``acceleration`` (rad/s^2, symmetric) bound every command. ``workspace_lower`` and
    ``workspace_upper`` (m, arm base frame, same frame as the forward kinematics) bound the tool
    point; ``None`` disables the box. ``max_step`` (rad) caps the change of any joint per
    filter call whatever the elapsed time, so a stalled loop cannot catch up in one jump.
    ``max_observation_age`` and ``max_command_age`` (s) are the watchdog's deadlines, and
    ``ramp_duration`` (s) the safe start: the velocity limit grows linearly from 0 to its full
    value over this time after the filter anchors at the measured pose.
    """

    position_lower: np.ndarray
    position_upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    workspace_lower: np.ndarray | None = None
    workspace_upper: np.ndarray | None = None
    max_step: float = 0.05
    max_observation_age: float = 0.1
    max_command_age: float = 0.5
    ramp_duration: float = 1.0
    num_joints: int = field(init=False)

    def __post_init__(self) -> None:
        lower = np.asarray(self.position_lower).reshape(-1)
        size = lower.shape[0]
        object.__setattr__(self, "num_joints", size)
        for name in ("position_lower", "position_upper", "velocity", "acceleration"):
            object.__setattr__(self, name, _vector(name, getattr(self, name), size))
        if np.any(self.position_lower >= self.position_upper):
            raise ActionError("safety limits: every position_lower must be below position_upper")
        if np.any(self.velocity <= 0) or np.any(self.acceleration <= 0):
            raise ActionError("safety limits: velocity and acceleration limits must be positive")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ActionError("safety limits: give both workspace_lower and workspace_upper")
        if self.workspace_lower is not None:
            lo = _vector("workspace_lower", self.workspace_lower, 3)
            hi = _vector("workspace_upper", self.workspace_upper, 3)
            if np.any(lo >= hi):
                raise ActionError("safety limits: workspace_lower must be below workspace_upper")
            object.__setattr__(self, "workspace_lower", lo)
            object.__setattr__(self, "workspace_upper", hi)
        for name in ("max_step", "max_observation_age", "max_command_age", "ramp_duration"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ActionError(f"safety limit {name} must be a positive number, got {value!r}")

    @classmethod
    def ur5e(cls, **overrides: object) -> SafetyLimits:
        """The UR5e's published joint limits (``robot_il.envs.ur5e.description``), with
        :data:`UR5E_ACCELERATION` and :data:`UR5E_WORKSPACE`; keyword arguments override any
        field (``workspace_lower=None, workspace_upper=None`` drops the box)."""
        from robot_il.envs.ur5e import description

        values: dict[str, object] = dict(
            position_lower=description.JOINT_POS_LIMITS[:, 0],
            position_upper=description.JOINT_POS_LIMITS[:, 1],
            velocity=description.JOINT_VEL_LIMITS,
            acceleration=np.full(6, UR5E_ACCELERATION),
            workspace_lower=UR5E_WORKSPACE[0],
            workspace_upper=UR5E_WORKSPACE[1],
        )
        values.update(overrides)
        return cls(**values)

    @property
    def has_workspace(self) -> bool:
        """Whether the tool point is confined to a box."""
        return self.workspace_lower is not None
