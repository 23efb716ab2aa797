"""The DMP library: reproduction, new goals, phase rate, coupling, orientation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.separation import capsule_distance
from robot_il.envs.spatial import quat_conjugate, quat_exp, quat_log, quat_multiply
from robot_il.policies.dmp import DMP, PoseDMP, QuaternionDMP
from robot_il.policies.dmp.coupling import repulsion

from robot_il.errors import ConfigError, DatasetError

DT = 0.01


def _demonstration() -> tuple[np.ndarray, np.ndarray]:
    """A curved 3-D tool path (m) over 2 s, starting and ending at rest."""
    times = np.arange(0.0, 2.0 + DT / 2, DT)
    s = times / times[-1]
    m = s**3 * (10 - 15 * s + 6 * s**2)
    path = np.stack([0.3 + 0.3 * m, 0.2 * np.sin(np.pi * m), 0.1 + 0.05 * m], axis=1)
    return times, path


def test_dmp_reproduces_its_demonstration_within_5_mm() -> None:
    times, path = _demonstration()
    dmp = DMP.fit(path, times)
    rollout = dmp.rollout(DT, steps=len(times) - 1)
    error = np.linalg.norm(rollout - path, axis=1)
    assert error.max() < 0.005
    # A DMP with no forcing term (the spring alone) misses the curve by centimetres.
    spring = DMP(np.zeros_like(dmp.weights), dmp.centers, dmp.widths, dmp.tau, dmp.start, dmp.goal)
    assert np.linalg.norm(spring.rollout(DT, steps=len(times) - 1) - path, axis=1).max() > 0.05


def test_new_goal_is_reached_and_may_change_while_running() -> None:
    times, path = _demonstration()
    dmp = DMP.fit(path, times)
    new_goal = path[-1] + np.array([0.1, -0.15, 0.05])
    end = dmp.rollout(DT, steps=400, goal=new_goal)[-1]
    assert np.linalg.norm(end - new_goal) < 0.002
    # Switching goals halfway: the arm ends at the later goal.
    state = dmp.begin()
    for _ in range(100):
        dmp.step(state, DT)
    state.goal[:] = new_goal
    for _ in range(300):
        dmp.step(state, DT)
    assert np.linalg.norm(state.y - new_goal) < 0.002


def test_constant_phase_rate_equals_temporal_scaling() -> None:
    times, path = _demonstration()
    dmp = DMP.fit(path, times)
    slowed = dmp.rollout(DT, steps=500, phase_rate=0.5)
    scaled = dmp.rollout(DT, steps=500, tau=2.0 * dmp.tau)
    np.testing.assert_allclose(slowed, scaled, atol=1e-12)
    assert np.linalg.norm(slowed[200] - dmp.rollout(DT, steps=100)[100]) < 1e-3


def test_phase_rate_zero_stops_the_motion_and_it_resumes() -> None:
    times, path = _demonstration()
    dmp = DMP.fit(path, times)
    state = dmp.begin()
    for _ in range(60):
        dmp.step(state, DT)
    held = state.y.copy()
    for _ in range(100):
        dmp.step(state, DT, phase_rate=0.0)
    np.testing.assert_array_equal(state.y, held)
    for _ in range(400):
        dmp.step(state, DT)
    assert np.linalg.norm(state.y - path[-1]) < 0.002


def test_coupling_pushes_approaching_capsules_apart() -> None:
    """A capsule carried by a DMP straight through a fixed capsule collides without the
    repulsive coupling and stays clear with it."""
    times = np.arange(0.0, 2.0 + DT / 2, DT)
    s = times / times[-1]
    path = np.stack([-0.5 + s**3 * (10 - 15 * s + 6 * s**2), 0.01 + 0 * s, 0 * s], axis=1)
    dmp = DMP.fit(path, times)
    fixed_start, fixed_end, radius = np.array([0.0, 0.0, -0.2]), np.array([0.0, 0.0, 0.2]), 0.05

    def closest(gain: float) -> float:
        state = dmp.begin()
        smallest = np.inf
        for _ in range(300):
            point = state.y
            gap = capsule_distance(point, point, radius, fixed_start, fixed_end, radius)
            axis_point = np.array([0.0, 0.0, np.clip(point[2], -0.2, 0.2)])
            away = (point - axis_point) / np.linalg.norm(point - axis_point)
            push = repulsion(np.asarray(gap), away, gain, 0.15)
            dmp.step(state, DT, coupling=push * state.tau**2)
            smallest = min(smallest, float(gap))
        return smallest

    assert closest(0.0) < -0.05
    assert closest(30.0) > 0.0


def test_quaternion_dmp_reproduces_an_orientation_and_reaches_a_new_goal() -> None:
    times, _ = _demonstration()
    s = times / times[-1]
    m = s**3 * (10 - 15 * s + 6 * s**2)
    quats = quat_exp(np.stack([0.6 * m, 0.3 * np.sin(np.pi * m), -0.4 * m], axis=1))
    dmp = QuaternionDMP.fit(quats, times)
    rollout = dmp.rollout(DT, steps=len(times) - 1)
    angle = np.linalg.norm(quat_log(quat_multiply(rollout, quat_conjugate(quats))), axis=1)
    assert angle.max() < np.deg2rad(0.5)
    goal = quat_exp(np.array([0.2, -0.5, 0.9]))
    end = dmp.rollout(DT, steps=400, goal=goal)[-1]
    assert np.linalg.norm(quat_log(quat_multiply(goal, quat_conjugate(end)))) < np.deg2rad(0.5)


def test_primitive_round_trips_through_arrays() -> None:
    times, path = _demonstration()
    dmp = DMP.fit(path, times)
    copy = DMP.from_arrays(dmp.to_arrays("left/"), "left/")
    np.testing.assert_array_equal(copy.rollout(DT, steps=50), dmp.rollout(DT, steps=50))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: np.where(np.arange(len(p))[:, None] == 17, np.nan, p), "NaN/inf values"),
        (lambda p: p[:5], "has 5 samples"),
    ],
)
def test_bad_demonstrations_are_refused_with_one_line(mangle, message) -> None:
    times, path = _demonstration()
    bad = mangle(path)
    with pytest.raises(DatasetError, match=message) as info:
        DMP.fit(bad, times[: len(bad)], what="left tool position")
    assert "\n" not in str(info.value) and "left tool position" in str(info.value)


def _orientation_demonstration(times: np.ndarray) -> np.ndarray:
    """Quaternions (T, 4) ``wxyz`` turning 0.8 rad about a tilted axis, at rest at both ends."""
    s = times / times[-1]
    angle = 0.8 * s**3 * (10 - 15 * s + 6 * s**2)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    start = np.array([0.0, 1.0, 0.0, 0.0])
    return quat_multiply(quat_exp(angle[:, None] * axis), start)


def test_pose_dmp_steps_both_parts_as_their_own_dmps_to_the_bit() -> None:
    """The fused pose step (what the two-arm tick runs) equals stepping the position and
    orientation DMPs on their own, to the bit, through phase rates, a stop, coupling and a new
    goal while running; and the pose state's parts are views that see it move."""
    times, path = _demonstration()
    quats = _orientation_demonstration(times)
    position, orientation = DMP.fit(path, times), QuaternionDMP.fit(quats, times)
    pose = PoseDMP(position, orientation)
    rng = np.random.default_rng(0)
    goals = path[-1] + rng.uniform(-0.05, 0.05, (3, 3))
    state = pose.begin(path[0], quats[0], goals, quats[-1], np.array([2.0, 1.7, 2.4]))
    alone = (
        position.begin(path[0], goals, state.tau),
        orientation.begin(quats[0], quats[-1], state.tau),
    )
    parts = PoseDMP.parts(state)
    for step in range(300):
        rate = rng.uniform(0.0, 1.5, 3) * (step % 50 > 5)  # stops now and then
        push = rng.normal(0.0, 20.0, (3, 3))
        if step == 120:  # a new goal while running, written into the parts
            for moving in (parts[0], alone[0]):
                moving.goal[1] += 0.04
        pose.step(state, DT, rate, push)
        position.step(alone[0], DT, rate, push)
        orientation.step(alone[1], DT, rate)
        for part, single in zip(parts, alone, strict=True):
            for got, expected in zip(part.arrays(), single.arrays(), strict=True):
                np.testing.assert_array_equal(got, expected)
    assert np.abs(state.y[:, 3:] - quats[0]).max() > 0.1  # it turned


def test_pose_dmp_refuses_parts_with_different_bases() -> None:
    times, path = _demonstration()
    quats = _orientation_demonstration(times)
    with pytest.raises(ConfigError, match="same bases and gains, got 50 and 20 bases"):
        PoseDMP(DMP.fit(path, times), QuaternionDMP.fit(quats, times, n_bases=20))


def test_a_state_stepped_by_dmps_of_other_stiffness_uses_each_ones_own_gain() -> None:
    """The cached K 2 log(g conj(q0)) bakes in the gain: a second DMP must not reuse it."""
    times, _ = _demonstration()
    s = times / times[-1]
    quats = quat_exp(np.stack([0.6 * s, 0.3 * np.sin(np.pi * s), -0.4 * s], axis=1))
    soft = QuaternionDMP.fit(quats, times, stiffness=100.0, damping=20.0)
    stiff = QuaternionDMP.fit(quats, times, stiffness=400.0, damping=40.0)
    shared = soft.begin()
    soft.step(shared, DT)
    fresh = shared.copy()
    fresh.derived.clear()
    stiff.step(shared, DT)
    stiff.step(fresh, DT)
    np.testing.assert_array_equal(shared.v, fresh.v)
    np.testing.assert_array_equal(shared.y, fresh.y)
