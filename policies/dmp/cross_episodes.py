"""Kinematic ``bimanual_cross`` episodes run by DMP controllers, and their scores.

Kinematic: each tick the arms' joints are set to what the controller commands (perfect
tracking), and the capsule separation is measured; no physics. Definitions (the benchmark's,
the README's, the tests'): *collision*: the capsule separation is below 0 at some tick;
*success*: both tools within ``GOAL_TOLERANCE`` of their goals before ``TIME_LIMIT`` and no
collision; *deadlock*: neither; *makespan*: seconds until both tools are within the tolerance
(the time limit where they never are); *min_separation*: the smallest separation (m);
*end_distance*: the farther tool's distance (m) from its goal at the time limit (success
counts the first arrival; this shows an arm that arrived and then drifted away).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.envs.experts.base import tcp_at, top_down
from robot_il.envs.tasks.base import ELBOW_UP
from robot_il.envs.ur5e.kinematics import inverse_kinematics
from robot_il.envs.ur5e.transforms import matrix_to_quat
from robot_il.policies.dmp.bimanual import ArmPrimitives, TwoArmController
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.library import Segment
from robot_il.policies.dmp.primitive import DMP, QuaternionDMP

from robot_il.errors import ConfigError

CONTROL_DT = 0.01
"""Control period of the kinematic episodes, s (100 Hz)."""
DEMO_DT = 0.01
"""Sample period of the expert demonstrations, s."""


def tool_quat(yaw: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) ``wxyz`` of a downward tool turned by ``yaw`` (...,) rad."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([matrix_to_quat(top_down(float(y))) for y in yaw.ravel()]).reshape(
        *yaw.shape, 4
    )


def expert_demonstration(
    arm: str, duration: float = 2.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (T,) s, tool positions (T, 3) m and quaternions (T, 4) of the scripted expert's
    nominal move of ``arm`` (the demonstration its DMPs learn from)."""
    start, crossing, goal = cs.nominal_path(arm)
    times = np.arange(0.0, duration + DEMO_DT / 2, DEMO_DT)
    progress = times / duration
    sign = 1.0 if arm == "left" else -1.0
    yaw = cs.expert_tool_yaw(0.0, sign * cs.NOMINAL_YAW_CHANGE, progress)
    return times, cs.expert_tool_path(start, crossing, goal, progress), tool_quat(yaw)


def expert_primitives(n_bases: int = 50) -> tuple[ArmPrimitives, ArmPrimitives]:
    """Each arm's DMPs learned from its expert demonstration."""
    out = []
    for arm in cs.ARMS:
        times, positions, quats = expert_demonstration(arm)
        out.append(
            ArmPrimitives(
                DMP.fit(positions, times, n_bases, what=f"{arm} tool position"),
                QuaternionDMP.fit(quats, times, n_bases, what=f"{arm} tool orientation"),
            )
        )
    return tuple(out)


def expert_library(segments: list[Segment]) -> list[Segment]:
    """The kinematic benchmark's DMPs (``expert_primitives``, each arm's nominal expert move)
    as a library of one segment per arm, in place of ``segments`` learnt from recorded demos:
    so that physics runs the controllers the kinematic rows measure (a segment retargeted from
    a recorded scene bends its path differently). Retrieval features and gripper come from the
    arm's first recorded segment (with one segment per arm, retrieval always picks it)."""
    out = []
    for arm, primitives in zip(cs.ARMS, expert_primitives(), strict=True):
        recorded = next(s for s in segments if s.arm == arm)
        out.append(
            dataclasses.replace(
                recorded, position=primitives.position, orientation=primitives.orientation
            )
        )
    return out


def start_joints(scenes: cs.CrossScenes) -> np.ndarray:
    """Joints (2, S, 6) rad of each arm at its scene start (elbow up); ``ConfigError`` naming
    the scene and arm whose start is out of reach."""
    joints = np.zeros((2, len(scenes), 6))
    for k, arm in enumerate(cs.ARMS):
        base = cs.world_from_base(arm)
        for i in range(len(scenes)):
            pose = tcp_at(scenes.start[i, k], top_down(scenes.start_yaw[i, k]))
            q = inverse_kinematics(np.linalg.inv(base) @ pose, ELBOW_UP)
            if q is None:
                raise ConfigError(
                    f"scene seed {scenes.seeds[i]}: {arm} arm's start {scenes.start[i, k]} is "
                    "out of reach (IK failed)"
                )
            joints[k, i] = q
    return joints


@dataclass(frozen=True)
class EpisodeScores:
    """Per-scene scores (S,): see the module docstring."""

    collision: np.ndarray
    success: np.ndarray
    deadlock: np.ndarray
    makespan: np.ndarray
    min_separation: np.ndarray
    peak_joint_acceleration: np.ndarray
    end_distance: np.ndarray | None = None
    """(S,) m; None in rows written before it was measured."""

    def summary(self) -> dict[str, float]:
        """The benchmark's row: rates, mean makespan (s), 5th-percentile min separation (m)."""
        return {
            "scenes": int(len(self.collision)),
            "collision_rate": float(self.collision.mean()),
            "success_rate": float(self.success.mean()),
            "deadlock_rate": float(self.deadlock.mean()),
            "makespan": float(self.makespan.mean()),
            "min_separation_p5": float(np.percentile(self.min_separation, 5)),
            "peak_joint_acceleration_p99": float(np.percentile(self.peak_joint_acceleration, 99)),
        } | end_summary(self.end_distance)


def end_summary(end_distance: np.ndarray | None) -> dict[str, float]:
    """Where the arms are at the time limit, from each scene's ``end_distance`` (S,) m: the
    share of scenes with both tools within ``GOAL_TOLERANCE`` of their goals, and the largest
    end distance (m); empty where not measured."""
    if end_distance is None:
        return {}
    return {
        "at_goal_at_end_rate": float((end_distance <= cs.GOAL_TOLERANCE).mean()),
        "end_distance_max": float(end_distance.max()),
    }


def scene_controller(
    scenes: cs.CrossScenes,
    primitives: tuple[ArmPrimitives, ArmPrimitives] | None = None,
    *,
    joints: np.ndarray | None = None,
    delay: np.ndarray | None = None,
    controller_class: type[TwoArmController] = TwoArmController,
    **options: object,
) -> TwoArmController:
    """A ``controller_class`` over ``scenes`` with each arm at its start (``joints``, rad,
    default :func:`start_joints`), the scenes' start and goal poses, durations and ``delay``
    (s, default the scenes' own), and the expert DMPs unless ``primitives`` are given;
    ``options``: the controller's own (``method``, ``params``, ``goal_tolerance``, ...)."""
    return controller_class(
        primitives or expert_primitives(),
        np.stack([cs.world_from_base(arm) for arm in cs.ARMS]),
        start_joints(scenes) if joints is None else joints,
        scenes.start,
        tool_quat(scenes.start_yaw),
        scenes.goal,
        tool_quat(scenes.goal_yaw),
        scenes.duration,
        scenes.delay if delay is None else delay,
        **options,
    )


def run_episodes(
    scenes: cs.CrossScenes,
    method: str,
    params: CouplingParams | None = None,
    primitives: tuple[ArmPrimitives, ArmPrimitives] | None = None,
    joints: np.ndarray | None = None,
    dt: float = CONTROL_DT,
    time_limit: float = cs.TIME_LIMIT,
    controller: TwoArmController | None = None,
    before_tick: Callable[[int], None] | None = None,
) -> EpisodeScores:
    """Run every scene to the time limit under ``method`` and score it. ``controller``: one
    already built for ``scenes`` (e.g. a learned coordinator's), used instead of ``method``;
    ``before_tick(step)`` runs before each tick (where a coordinator decides)."""
    controller = controller or scene_controller(
        scenes, primitives, joints=joints, method=method, params=params,
        goal_tolerance=cs.GOAL_TOLERANCE,
    )  # fmt: skip
    n = len(scenes)
    min_sep = np.full(n, np.inf)
    makespan = np.full(n, time_limit)
    done = np.zeros(n, dtype=bool)
    previous = [controller.joints.copy(), controller.joints.copy()]
    peak_acc = np.zeros(n)
    for step in range(int(round(time_limit / dt))):
        if before_tick is not None:
            before_tick(step)
        controller.tick(dt)
        min_sep = np.minimum(min_sep, controller.separation().distance)
        arrived = controller.arrived().all(axis=0)
        makespan = np.where(arrived & ~done, controller.time, makespan)
        done |= arrived
        acc = (controller.joints - 2 * previous[1] + previous[0]) / dt**2
        if step >= 2:
            peak_acc = np.maximum(peak_acc, np.abs(acc).max(axis=(0, 2)))
        previous = [previous[1], controller.joints.copy()]
    collision = min_sep < 0.0
    success = done & ~collision
    goals = np.stack([p.goal for p in controller.positions])
    end = np.linalg.norm(controller.tool_positions() - goals, axis=-1).max(axis=0)
    return EpisodeScores(
        collision, success, ~collision & ~success, makespan, min_sep, peak_acc, end
    )
