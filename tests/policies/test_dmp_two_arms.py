"""Two arms on DMPs in kinematic bimanual_cross scenes: coupling keeps them apart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from robot_il.envs import cross_scenes as cs
from robot_il.envs.ur5e.description import JOINT_ACC_LIMITS
from robot_il.policies.dmp.bimanual import TwoArmController
from robot_il.policies.dmp.cross_episodes import (
    expert_primitives,
    run_episodes,
    scene_controller,
    start_joints,
    tool_quat,
)

from robot_il.errors import ConfigError


@pytest.fixture(scope="module")
def meeting_scenes() -> cs.CrossScenes:
    """Scenes whose arms start within 0.2 s of each other: their paths meet in the middle."""
    scenes = cs.sample_scenes(range(80))
    close = np.flatnonzero(np.abs(scenes.delay[:, 0] - scenes.delay[:, 1]) < 0.2)[:8]
    return scenes.select(close)


def test_coupled_arms_do_not_collide_where_independent_ones_do(meeting_scenes) -> None:
    primitives = expert_primitives()
    independent = run_episodes(meeting_scenes, "independent", primitives=primitives, dt=0.02)
    coupled = run_episodes(meeting_scenes, "coupled", primitives=primitives, dt=0.02)
    assert independent.collision.mean() >= 0.75
    assert not coupled.collision.any() and coupled.success.all()
    assert np.percentile(coupled.min_separation, 5) >= 0.02
    # Slowing and stopping stay within the joint acceleration limits.
    assert coupled.peak_joint_acceleration.max() <= JOINT_ACC_LIMITS.max()


def test_phase_rate_falls_to_zero_for_the_yielding_arm_only(meeting_scenes) -> None:
    scene = meeting_scenes.select(slice(0, 1))
    scores = run_episodes(scene, "sequential", dt=0.02)
    assert not scores.collision.any() and scores.success.all()
    controller = scene_controller(scene, method="coupled")
    rates = []
    for _ in range(300):
        controller.tick(0.02)
        rates.append(controller.phase_rate[:, 0].copy())
    rates = np.array(rates)
    assert rates.min(axis=0).min() == 0.0  # someone waited, completely
    assert rates.min(axis=0).max() == 1.0  # and the other never slowed
    limit = dataclasses.asdict(controller.params)["phase_rate_limit"]
    assert np.abs(np.diff(rates, axis=0)).max() <= limit * 0.02 + 1e-12


def test_unknown_coupling_method_is_refused(meeting_scenes) -> None:
    with pytest.raises(ConfigError, match="unknown coupling method 'magic'"):
        run_episodes(meeting_scenes.select(slice(0, 1)), "magic")


def test_arms_whose_dmps_differ_in_bases_are_refused(meeting_scenes) -> None:
    """Both arms' DMPs step as one, which needs the same number of bases and gains."""
    left = expert_primitives()[0]
    coarse = expert_primitives(n_bases=20)[1]
    with pytest.raises(
        ConfigError, match=r"same number of bases .* got weights \(50, 3\) and \(20"
    ):
        run_episodes(meeting_scenes.select(slice(0, 1)), "coupled", primitives=(left, coarse))


class AlwaysMeasuring(TwoArmController):
    """The coupled controller without its distance bound: it measures every tick."""

    def _apart(self, distance: float) -> bool:
        return False


def test_skipping_the_separation_pass_while_the_arms_are_proven_apart_changes_nothing(
    meeting_scenes,
) -> None:
    """The coupled tick measures the arms' separation only when the bound from the last
    measurement (``REACH`` m per rad moved) cannot prove them apart; the trajectories are
    bit for bit those of a controller that measures every tick, and the bound did skip."""
    primitives = expert_primitives()
    bases = np.stack([cs.world_from_base(arm) for arm in cs.ARMS])
    scenes = meeting_scenes.select(slice(0, 2))
    args = (
        primitives, bases, start_joints(scenes), scenes.start, tool_quat(scenes.start_yaw),
        scenes.goal, tool_quat(scenes.goal_yaw), scenes.duration, scenes.delay, "coupled",
    )  # fmt: skip
    bounded, measuring = TwoArmController(*args), AlwaysMeasuring(*args)
    skipped, slowest = 0, 1.0
    for _ in range(1500):  # 3 s at 500 Hz: approach, yield, pass
        last = bounded._measured
        bounded.tick(0.002)
        skipped += bounded._measured is last
        measuring.tick(0.002)
        assert np.array_equal(bounded.joints, measuring.joints)
        assert np.array_equal(bounded.phase_rate, measuring.phase_rate)
        slowest = min(slowest, bounded.phase_rate.min())
    assert skipped >= 100 and slowest < 0.5  # the bound skipped, and the arms met and yielded
