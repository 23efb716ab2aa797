"""The two kinematic two-arm scenes the DMP benchmark and the coordinator run: their scenes,
the expert's DMPs, and their scores.

- ``bimanual_cross`` (``robot_il.envs.cross_scenes``): the tools' paths cross in the middle;
- ``bimanual_shared_bin`` (``robot_il.envs.shared_bin_scenes``): both arms drop an object into
  one bin; success also needs each tool to have passed within ``PLACE_TOLERANCE`` of its drop
  point (where its gripper opens).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.envs import shared_bin_scenes as sb
from robot_il.policies.dmp.bimanual import ArmPrimitives, TwoArmController
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import (
    CONTROL_DT,
    DEMO_DT,
    EpisodeScores,
    expert_primitives,
    run_episodes,
    scene_controller,
    tool_quat,
)
from robot_il.policies.dmp.primitive import DMP, QuaternionDMP

from robot_il.errors import ConfigError

SCENE_KINDS = ("bimanual_cross", "bimanual_shared_bin")


def check_kind(kind: str) -> None:
    if kind not in SCENE_KINDS:
        raise ConfigError(f"scene kind {kind!r} unknown; kinds: {', '.join(SCENE_KINDS)}")


def sample_scenes(kind: str, seeds: np.ndarray | range) -> cs.CrossScenes:
    check_kind(kind)
    return (cs.sample_scenes if kind == "bimanual_cross" else sb.sample_scenes)(seeds)


def scene_primitives(kind: str, duration: float = 2.1) -> tuple[ArmPrimitives, ArmPrimitives]:
    """Each arm's DMPs learned from the expert's nominal move in scenes of ``kind``."""
    check_kind(kind)
    if kind == "bimanual_cross":
        return expert_primitives()
    times = np.arange(0.0, duration + DEMO_DT / 2, DEMO_DT)
    out = []
    for arm in cs.ARMS:
        start, drop, goal = sb.nominal_path(arm)
        positions = cs.expert_tool_path(start, drop, goal, times / duration)
        quats = tool_quat(np.zeros(len(times)))
        what = f"shared bin {arm}"
        out.append(
            ArmPrimitives(
                DMP.fit(positions, times, what=what), QuaternionDMP.fit(quats, times, what=what)
            )
        )
    return tuple(out)


def run_scenes(
    kind: str,
    scenes: cs.CrossScenes,
    method: str,
    params: CouplingParams | None = None,
    controller: TwoArmController | None = None,
    before_tick: Callable[[int], None] | None = None,
    dt: float = CONTROL_DT,
) -> EpisodeScores:
    """``cross_episodes.run_episodes`` on scenes of ``kind`` with its expert's DMPs (or the
    given ``controller``); for the shared bin, success also needs each tool to have passed
    within ``PLACE_TOLERANCE`` of its drop point."""
    primitives = scene_primitives(kind)
    if controller is None:
        controller = scene_controller(
            scenes, primitives, method=method, params=params, goal_tolerance=cs.GOAL_TOLERANCE
        )
    closest = np.full((2, len(scenes)), np.inf)
    drops = np.swapaxes(scenes.crossing, 0, 1)  # (2, S, 3)

    def track(step: int) -> None:
        if kind == "bimanual_shared_bin":
            gap = np.linalg.norm(controller.tool_positions() - drops, axis=-1)
            np.minimum(closest, gap, out=closest)
        if before_tick is not None:
            before_tick(step)

    scores = run_episodes(
        scenes, method, params, primitives, controller.joints.copy(), dt,
        controller=controller, before_tick=track,
    )  # fmt: skip
    if kind == "bimanual_cross":
        return scores
    placed = (closest <= sb.PLACE_TOLERANCE).all(axis=0)
    success = scores.success & placed
    return EpisodeScores(
        scores.collision,
        success,
        ~scores.collision & ~success,
        scores.makespan,
        scores.min_separation,
        scores.peak_joint_acceleration,
        scores.end_distance,
    )
