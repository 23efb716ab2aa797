"""End-effector delta actions turned into joint targets, as the env turns them.

A policy trained in the env's ``eef_delta`` action mode outputs, per arm, a TCP translation
(3, m) and rotation (3, axis-angle rad), both in the world frame, plus the gripper (1), all
relative to the *measured* TCP pose when the action is applied. A robot driven through the UR
driver's topics takes joint targets, so the deploy node converts each action once, when it
becomes due, with the measured joints of that moment: the same clipping to the env's per-step
bounds and the same IK (:meth:`robot_il.envs.arm.Arm.solve_tcp_delta`, seeded by the measured
joints) as ``RobotEnv.step``. Where IK finds no solution the env keeps the previous target;
so does this converter, and it says which arms failed so that the node can report it.

Given the safety layer's workspace box, the converter moves a TCP target that leaves the box
onto it (``WORKSPACE_MARGIN`` inside) before IK, so the rest of the motion goes on: the filter
holds the arm on any command whose tool point leaves the box, and an eef_delta policy whose
action points out of the box (a push policy pressing into the table, as it learned where the
table stops the fingers) repeats it from the held pose, so the arm stayed held for the rest
of the episode. The env has no box; its table stops only the downward part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTION_MODES = ("joint", "eef_delta")
"""Action modes a deploy node can execute (the env's modes)."""
WORKSPACE_MARGIN = 0.005
"""m: how far inside the workspace box a TCP target is put. The filter moves along a straight
line in joint space, whose tool point bows out of a target's straight path by up to a few
tenths of a mm per step: on the face itself such steps left the box and were held."""


class TcpDeltaConverter:
    """Converts ``(7 * arms,)`` eef_delta actions to joint-mode actions for ``arms``
    (:class:`robot_il.envs.arm.Arm`, world-frame kinematics at each arm's mount).

    ``workspace`` (lower, upper corners, m, in each arm's base frame, the frame in which the
    safety filter checks the tool point) puts each TCP target into that box, shrunk by
    ``WORKSPACE_MARGIN``; None leaves targets as the env sets them."""

    def __init__(
        self,
        arms: Sequence,
        workspace: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        from robot_il.envs.env import MAX_STEP_ROTATION, MAX_STEP_TRANSLATION

        self.arms = list(arms)
        self._bound = np.array([MAX_STEP_TRANSLATION] * 3 + [MAX_STEP_ROTATION] * 3)
        self._box = None
        if workspace is not None:
            lower, upper = (np.asarray(corner, dtype=np.float64) for corner in workspace)
            self._box = (lower + WORKSPACE_MARGIN, upper - WORKSPACE_MARGIN)
        self.clamped: list[int] = []
        """Indices of the arms whose TCP target the last call moved into the workspace box."""

    def to_joint_action(
        self, action: np.ndarray, joint_pos: np.ndarray, previous: np.ndarray | None
    ) -> tuple[np.ndarray, list[int]]:
        """The joint-mode action (6 joint targets rad + gripper per arm) for the eef_delta
        ``action`` applied at the measured ``joint_pos`` (6 per arm, rad), and the indices of
        the arms whose IK failed: those keep their joint targets from ``previous`` (a joint-mode
        action; the measured joints when None). A non-finite delta gives NaN targets, which the
        safety filter holds, as the env refuses such an action. With a workspace box, a TCP
        target outside it is moved onto it first (:attr:`clamped` says for which arms)."""
        action = np.asarray(action, dtype=np.float64)
        joint_pos = np.asarray(joint_pos, dtype=np.float64)
        result = np.empty(7 * len(self.arms))
        failed, self.clamped = [], []
        for a, arm in enumerate(self.arms):
            delta = action[7 * a : 7 * a + 6]
            measured = joint_pos[6 * a : 6 * a + 6]
            result[7 * a + 6] = min(max(float(action[7 * a + 6]), 0.0), 1.0)
            if not np.isfinite(delta).all() or not np.isfinite(measured).all():
                result[7 * a : 7 * a + 6] = np.nan
                continue
            delta = np.clip(delta, -self._bound, self._bound)
            target = arm.tcp_delta_target(measured, delta[:3], delta[3:])
            if self._box is not None:
                in_base = arm.base_from_world @ target
                inside = np.clip(in_base[:3, 3], *self._box)
                if not np.array_equal(inside, in_base[:3, 3]):
                    in_base[:3, 3] = inside
                    target = arm.world_from_base @ in_base
                    self.clamped.append(a)
            joints = arm.inverse(target, measured)
            if joints is None:
                failed.append(a)
                joints = measured if previous is None else previous[7 * a : 7 * a + 6]
            result[7 * a : 7 * a + 6] = joints
        return result, failed
