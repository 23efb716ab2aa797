"""End-effector delta actions turned into joint targets, as the env turns them.

A policy trained in the env's ``eef_delta`` action mode outputs, per arm, a TCP translation
(3, m) and rotation (3, axis-angle rad), both in the world frame, plus the gripper (1), all
relative to the *measured* TCP pose when the action is applied. A robot driven through the UR
driver's topics takes joint targets, so the deploy node converts each action once, when it
becomes due, with the measured joints of that moment: the same clipping to the env's per-step
bounds and the same IK (:meth:`robot_il.envs.arm.Arm.solve_tcp_delta`, seeded by the measured
joints) as ``RobotEnv.step``. Where IK finds no solution the env keeps the previous target;
so does this converter, and it says which arms failed so that the node can report it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTION_MODES = ("joint", "eef_delta")
"""Action modes a deploy node can execute (the env's modes)."""


class TcpDeltaConverter:
    """Converts ``(7 * arms,)`` eef_delta actions to joint-mode actions for ``arms``
    (:class:`robot_il.envs.arm.Arm`, world-frame kinematics at each arm's mount)."""

    def __init__(self, arms: Sequence) -> None:
        from robot_il.envs.env import MAX_STEP_ROTATION, MAX_STEP_TRANSLATION

        self.arms = list(arms)
        self._bound = np.array([MAX_STEP_TRANSLATION] * 3 + [MAX_STEP_ROTATION] * 3)

    def to_joint_action(
        self, action: np.ndarray, joint_pos: np.ndarray, previous: np.ndarray | None
    ) -> tuple[np.ndarray, list[int]]:
        """The joint-mode action (6 joint targets rad + gripper per arm) for the eef_delta
        ``action`` applied at the measured ``joint_pos`` (6 per arm, rad), and the indices of
        the arms whose IK failed: those keep their joint targets from ``previous`` (a joint-mode
        action; the measured joints when None). A non-finite delta gives NaN targets, which the
        safety filter holds, as the env refuses such an action."""
        action = np.asarray(action, dtype=np.float64)
        joint_pos = np.asarray(joint_pos, dtype=np.float64)
        result = np.empty(7 * len(self.arms))
        failed = []
        for a, arm in enumerate(self.arms):
            delta = action[7 * a : 7 * a + 6]
            measured = joint_pos[6 * a : 6 * a + 6]
            result[7 * a + 6] = min(max(float(action[7 * a + 6]), 0.0), 1.0)
            if not np.isfinite(delta).all() or not np.isfinite(measured).all():
                result[7 * a : 7 * a + 6] = np.nan
                continue
            delta = np.clip(delta, -self._bound, self._bound)
            joints = arm.solve_tcp_delta(measured, delta[:3], delta[3:])
            if joints is None:
                failed.append(a)
                joints = measured if previous is None else previous[7 * a : 7 * a + 6]
            result[7 * a : 7 * a + 6] = joints
        return result, failed
