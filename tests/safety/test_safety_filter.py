"""The safety filter: nothing unsafe passes; an e-stop stops within one control period, and
every other hold stops at the acceleration limit."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from robot_il.errors import ActionError
from robot_il.safety import Intervention, SafetyEvent, SafetyFilter, SafetyLimits
from robot_il.safety.events import IMMEDIATE_STOPS

DT = 0.002  # 500 Hz, the UR5e servo rate
VELOCITY = np.full(6, np.pi)
ACCELERATION = np.full(6, 8.0)
HOME = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])


def ur5e_like_limits(**overrides: object) -> SafetyLimits:
    """UR5e joint ranges (elbow +-pi, others +-2pi) and 180 deg/s, with test-sized deadlines."""
    values = dict(
        position_lower=[-2 * np.pi, -2 * np.pi, -np.pi, -2 * np.pi, -2 * np.pi, -2 * np.pi],
        position_upper=[2 * np.pi, 2 * np.pi, np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi],
        velocity=VELOCITY,
        acceleration=ACCELERATION,
        max_step=0.05,
        max_observation_age=0.01,
        max_command_age=0.05,
        ramp_duration=0.2,
    )
    values.update(overrides)
    return SafetyLimits(**values)


def point_fk(q: np.ndarray) -> np.ndarray:
    """A stand-in kinematics for box tests: the tool point is the first three joints (m)."""
    pose = np.eye(4)
    pose[:3, 3] = q[:3]
    return pose


class Clock:
    """Drives a filter at a fixed period, feeding the watchdog with fresh observations."""

    def __init__(self, safety: SafetyFilter, start: float = 10.0) -> None:
        self.safety, self.t = safety, start

    def step(self, q_cmd, q_measured, *, observe: bool = True, dt: float = DT, **kw):
        self.t += dt
        if observe:
            self.safety.watchdog(self.t, self.t)
        return self.safety.filter(q_cmd, q_measured, self.t, **kw)


def started(limits: SafetyLimits | None = None, fk=None, at: np.ndarray = HOME, **kw):
    """A filter past its safe start at pose ``at``, and its clock."""
    safety = SafetyFilter(limits or ur5e_like_limits(), fk, **kw)
    clock = Clock(safety)
    for _ in range(int(safety.limits.ramp_duration / DT) + 2):
        clock.step(at, at)
    return safety, clock


def test_first_call_anchors_at_the_measured_pose_and_ramps_up() -> None:
    safety = SafetyFilter(ur5e_like_limits())
    clock = Clock(safety)
    far = HOME + 1.0
    first = clock.step(far, HOME)
    np.testing.assert_array_equal(first.command, HOME)
    assert Intervention.SAFE_START in first.interventions
    previous, speeds = first.command, []
    for _ in range(int(0.2 / DT)):
        out = clock.step(far, HOME)
        speeds.append(np.max(np.abs(out.command - previous)) / DT)
        previous = out.command
    # During the ramp the allowed speed grows linearly from 0 to the limit; never above it.
    elapsed = DT * np.arange(1, len(speeds) + 1)
    assert np.all(np.array(speeds) <= np.pi * elapsed / 0.2 + 1e-6)
    assert speeds[5] < 0.2 and speeds[-1] > 1.0


def braking(commands: list[np.ndarray], before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The velocities (rad/s, one row per call at ``DT``) of ``commands`` following
    ``before``, and their changes (rad/s): what a controlled stop is judged by."""
    velocity = np.diff(np.vstack([before, *commands]), axis=0) / DT
    return velocity, np.diff(velocity, axis=0)


def cruising(clock: Clock, target: np.ndarray, calls: int) -> tuple[np.ndarray, np.ndarray]:
    """Drive ``clock``'s filter towards ``target`` for ``calls`` periods; the last two
    commands (rad), the arm at each (it follows exactly)."""
    commands = [clock.safety.reference]
    for _ in range(calls):
        commands.append(clock.step(target, commands[-1]).command)
    return commands[-2], commands[-1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_command_stops_at_the_acceleration_limit_then_resumes(bad: float) -> None:
    safety, clock = started()
    before, moving = cruising(clock, HOME + 0.3, 20)
    speed = (moving - before) / DT
    assert np.max(np.abs(speed)) > 0.2, "the arm should be moving"
    poisoned = HOME + 0.3
    poisoned[3] = bad
    stop = [clock.step(poisoned, moving) for _ in range(int(np.max(np.abs(speed)) / 8.0 / DT) + 3)]
    assert all(out.held and out.interventions == [Intervention.NONFINITE_COMMAND] for out in stop)
    commands = [out.command for out in stop]
    assert np.all(np.isfinite(commands))
    velocity, change = braking(commands, moving)
    # slowing along the same straight path in joint space, by the limit (8 rad/s^2) at most
    np.testing.assert_allclose(velocity[0] / np.linalg.norm(velocity[0]),
                               speed / np.linalg.norm(speed), atol=1e-9)  # fmt: skip
    assert np.all(np.abs(np.diff(np.vstack([speed, velocity]), axis=0)) <= 8.0 * DT + 1e-9)
    np.testing.assert_array_equal(commands[-1], commands[-2])  # at rest
    resumed = clock.step(HOME + 0.3, commands[-1])
    assert not resumed.held
    # Going on from rest: the first step is bounded by the acceleration limit.
    assert np.max(np.abs(resumed.command - commands[-1])) <= 8.0 * DT * DT + 1e-12


def test_nonfinite_measurement_holds_and_a_start_waits_for_a_finite_one() -> None:
    """A NaN joint reading when the filter (re)starts is a hold, never an exception: the
    policy node's control thread once died on the ActionError raised here after an e-stop
    reset, and the node went on looking alive while sending nothing."""
    safety, clock = started()
    measured = HOME.copy()
    measured[0] = np.nan
    out = clock.step(HOME + 0.1, measured)
    assert out.held and Intervention.NONFINITE_MEASUREMENT in out.interventions
    held = out.command
    # Restarts (an e-stop reset, a device fault cleared) with NaN readings: nothing to send,
    # as the filter has no pose to start from (the pose it held may be far from the arm's).
    safety.estop()
    clock.step(HOME + 0.1, HOME)
    safety.reset_estop()
    safety.set_fault("gripper: link lost")
    safety.set_fault(None)
    for _ in range(3):
        out = clock.step(HOME + 0.1, measured)
        assert out.command is None and out.held
        assert out.interventions == [Intervention.NONFINITE_MEASUREMENT]
    # The first finite reading anchors the start there, wherever the arm now is.
    moved = HOME + 0.2
    out = clock.step(HOME + 0.1, moved)
    np.testing.assert_array_equal(out.command, moved)
    assert Intervention.SAFE_START in out.interventions and not np.array_equal(held, moved)
    # A filter that never started waits the same way.
    fresh = SafetyFilter(ur5e_like_limits())
    fresh.watchdog(0.0, 0.0)
    out = fresh.filter(HOME, measured, 0.0)
    assert out.command is None and out.interventions == [Intervention.NONFINITE_MEASUREMENT]
    assert fresh.reference is None
    np.testing.assert_array_equal(fresh.filter(HOME, HOME, DT).command, HOME)


def test_wrong_shapes_are_one_line_errors() -> None:
    safety, clock = started()
    with pytest.raises(ActionError, match="commanded joints have shape"):
        clock.step(np.zeros(7), HOME)
    with pytest.raises(ActionError, match="measured joints have shape"):
        clock.step(HOME, np.zeros(5))


def test_target_beyond_a_joint_limit_stops_at_the_limit() -> None:
    limits = ur5e_like_limits()
    safety, clock = started(limits)
    target = HOME.copy()
    target[2] = 4.0  # elbow limit is pi
    outs = [clock.step(target, HOME) for _ in range(1500)]
    elbow = np.array([o.command[2] for o in outs])
    assert np.all(elbow <= np.pi)
    assert elbow[-1] == pytest.approx(np.pi, abs=1e-6)
    assert Intervention.POSITION_LIMIT in outs[0].interventions


def test_a_one_radian_jump_is_spread_over_many_periods_within_all_limits() -> None:
    safety, clock = started()
    target = HOME.copy()
    target[0] += 1.0
    commands = [HOME] + [clock.step(target, HOME).command for _ in range(1000)]
    commands = np.array(commands)
    velocity = np.diff(commands, axis=0) / DT
    acceleration = np.diff(velocity, axis=0) / DT
    assert np.max(np.abs(np.diff(commands, axis=0))) <= np.pi * DT + 1e-9
    assert np.max(np.abs(velocity)) <= np.pi + 1e-6
    assert np.max(np.abs(acceleration)) <= 8.0 + 1e-6
    # It gets there (1 rad at <= pi rad/s and 8 rad/s^2 takes about 0.7 s), without overshoot.
    assert commands[-1, 0] == pytest.approx(target[0], abs=1e-6)
    assert np.max(commands[:, 0]) <= target[0] + 1e-3
    np.testing.assert_allclose(commands[:, 1:], np.tile(HOME[1:], (len(commands), 1)))


def test_a_late_call_moves_no_further_than_max_step_or_two_periods() -> None:
    unbounded = ur5e_like_limits(max_observation_age=10.0)
    safety, clock = started(unbounded)
    for _ in range(400):  # cruise at full speed
        clock.step(HOME + 3.0, HOME)
    before = safety.reference
    out = clock.step(HOME + 3.0, HOME, dt=1.0)
    assert np.max(np.abs(out.command - before)) <= 0.05 + 1e-12
    assert Intervention.MAX_STEP in out.interventions

    safety, clock = started(unbounded, period=DT)
    for _ in range(400):
        clock.step(HOME + 3.0, HOME)
    before = safety.reference
    out = clock.step(HOME + 3.0, HOME, dt=1.0)
    assert np.max(np.abs(out.command - before)) <= np.pi * 2 * DT + 1e-9


def test_stale_observations_stop_the_arm_at_the_acceleration_limit() -> None:
    """A hold that is no emergency (stale observations here; late inference, a non-finite
    command or measurement, a device fault alike) stops like a servo would be asked to: the
    command slows at the acceleration limit along its path and rests where that takes it
    (v^2 / 2a on), instead of stopping in one period (pi rad/s in 2 ms asked 1,570 rad/s^2)."""
    safety, clock = started()
    before, moving = cruising(clock, HOME + 1.5, 150)
    speed = np.max(np.abs(moving - before)) / DT
    assert speed > 1.0, "the arm should move fast"
    # Observations stop; the first call past max_observation_age (10 ms = 5 periods) stops.
    outputs = [clock.step(HOME + 1.5, HOME, observe=False) for _ in range(250)]
    ages = [(i + 1) * DT for i in range(len(outputs))]  # (the fifth is 10 ms old, give or take)
    assert not any(out.held for age, out in zip(ages, outputs, strict=True) if age < 0.01 - 1e-9)
    assert all(Intervention.STALE_OBSERVATION in out.interventions for out in outputs[5:])
    commands = [out.command for out in outputs]
    velocity, change = braking(commands, moving)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9)
    held_speed = np.max(np.abs(velocity[5:]), axis=1)
    assert np.all(np.diff(held_speed) <= 1e-12) and held_speed[-1] == 0.0
    # at rest after speed / a (and a period), the travel of a stop from that speed on
    rest = int(np.argmax(held_speed == 0.0)) + 5
    assert rest * DT <= 0.01 + held_speed[0] / 8.0 + 2 * DT
    travel = np.max(np.abs(commands[-1] - commands[4]))
    assert travel == pytest.approx(held_speed[0] ** 2 / (2 * 8.0), rel=0.05)
    assert all(np.array_equal(c, commands[-1]) for c in commands[rest:])
    # Fresh observations again: motion goes on.
    assert not clock.step(HOME + 1.5, HOME).held


def test_a_short_stale_gap_slows_the_arm_and_it_goes_on_at_the_acceleration_limit() -> None:
    """A joint state a few periods late (a loaded computer) slowed the arm a little; the
    command never stops dead and never speeds back up faster than the limit."""
    safety, clock = started()
    before, moving = cruising(clock, HOME + 1.5, 150)
    commands = [clock.step(HOME + 1.5, HOME, observe=False).command for _ in range(8)]
    commands += [clock.step(HOME + 1.5, HOME).command for _ in range(20)]
    velocity, change = braking(commands, moving)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9)
    assert np.min(np.max(np.abs(velocity), axis=1)) > 0.9 * np.max(np.abs(moving - before)) / DT


def test_the_arm_brakes_before_the_workspace_box_instead_of_running_into_it() -> None:
    """A target beyond the box's wall: the arm slowed within the acceleration limit only for
    the target, reached the wall at speed (2.7 rad/s here) and the box check stopped it there
    in one period. It now brakes for the wall, coming to rest a micrometre short of it."""
    box = ur5e_like_limits(workspace_lower=[-0.5, -0.5, 0.0], workspace_upper=[0.5, 0.5, 0.8])
    inside = np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    safety, clock = started(box, point_fk, at=inside)
    outs = [clock.step(inside + [0.9, 0, 0, 0, 0, 0], inside) for _ in range(800)]
    commands = [out.command for out in outs]
    velocity, change = braking(commands, inside)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9)
    assert max(c[0] for c in commands) <= 0.5 and commands[-1][0] > 0.4999
    assert np.max(np.abs(velocity)) > 1.5, "it should have gone fast on the way"
    assert np.all(velocity[-100:] == 0.0)  # at rest by the wall, held by the braking
    # said from the braking's first step on, every step after it, at rest by the wall too
    said = [Intervention.WORKSPACE in out.interventions for out in outs]
    first = said.index(True)
    assert all(said[first:]) and np.all(velocity[first - 1 : first + 1, 0] > 1.5)


def test_the_arm_brakes_for_a_wall_its_tool_point_swings_towards() -> None:
    """The base joint swings the UR5e's tool point round on an arc that meets the box's wall
    more and more steeply. Braking reckoned from the straight line through the next step came
    too late, and the box check stopped the arm at the wall from 1.1 rad/s in one period; the
    wall's crossing is now found along the arc, and the arm stops at the limit, a micrometre
    short of it."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    box = ur5e_like_limits(workspace_lower=[-0.9, -0.9, 0.0], workspace_upper=[-0.2, 0.9, 1.0])
    safety = SafetyFilter(box, tool_point=tcp_point, log_events=False)
    clock = Clock(safety)
    outs = [clock.step(HOME + [3.0, 0, 0, 0, 0, 0], HOME) for _ in range(1000)]
    velocity, change = braking([out.command for out in outs], HOME)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9)
    assert np.max(np.abs(velocity)) > 2.0, "it should have swung fast on the way"
    tool_x = [tcp_point(out.command)[0] for out in outs]
    assert max(tool_x) <= -0.2 and tool_x[-1] > -0.2 - 1e-5
    assert np.all(velocity[-100:] == 0.0)


def test_a_controlled_stop_never_leaves_the_workspace_box() -> None:
    """Observations stop while the arm heads for the wall at speed, on kinematics whose tool
    point curves out (x = q0 + 2 q0^2): the controlled stop stays in the box, slowing at the
    acceleration limit (the braking for the wall found the curve)."""

    def curving_fk(q: np.ndarray) -> np.ndarray:
        pose = point_fk(q)
        pose[0, 3] = q[0] + 2.0 * q[0] ** 2
        return pose

    box = ur5e_like_limits(workspace_lower=[-0.5, -0.5, 0.0], workspace_upper=[0.5, 0.5, 0.8])
    inside = np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    safety, clock = started(box, curving_fk, at=inside)
    command = inside
    while command[0] + 2.0 * command[0] ** 2 < 0.45:
        command = clock.step(inside + [0.9, 0, 0, 0, 0, 0], inside).command
    stop = [clock.step(inside + [0.9, 0, 0, 0, 0, 0], inside, observe=False) for _ in range(200)]
    tool_x = [out.command[0] + 2.0 * out.command[0] ** 2 for out in stop]
    assert max(tool_x) <= 0.5 and all(out.held for out in stop[5:])
    assert np.array_equal(stop[-1].command, stop[-2].command)
    _, change = braking([out.command for out in stop], command)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9)


def test_a_tool_point_poking_out_between_the_brakings_checks_is_held_at_the_box() -> None:
    """Kinematics whose tool point pokes 10 cm out of the box over 4 mrad of joint motion,
    narrower than the braking's search spacing: whether the search sees it or not, and in a
    controlled stop too, the tool point never leaves the box (the box check holds at once)."""

    def poking_fk(q: np.ndarray) -> np.ndarray:
        pose = point_fk(q)
        pose[0, 3] = q[0] + 0.3 * np.exp(-(((q[0] - 0.3) / 0.002) ** 2))
        return pose

    box = ur5e_like_limits(workspace_lower=[-0.5, -0.5, 0.0], workspace_upper=[0.5, 0.5, 0.8])
    inside = np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    for observed_until in (0.24, 1.0):  # a controlled stop into the bump; tracking into it
        safety, clock = started(box, poking_fk, at=inside)
        outs, command = [], inside
        for _ in range(600):
            outs.append(
                clock.step(
                    inside + [0.9, 0, 0, 0, 0, 0], inside, observe=command[0] < observed_until
                )
            )
            command = outs[-1].command
        assert max(poking_fk(out.command)[0, 3] for out in outs) <= 0.5
        assert outs[-1].held and np.array_equal(outs[-1].command, outs[-2].command)


@pytest.mark.parametrize("ahead", [3600.0, 0.02, np.nan])
def test_an_observation_stamped_ahead_of_now_is_not_recorded_and_holds(ahead: float) -> None:
    """One joint state stamped an hour ahead (an unsynced driver clock) once kept the
    observations "fresh" for that hour: the stream could stop and the arm kept moving."""
    safety, clock = started()
    assert not safety.watchdog(clock.t + DT + ahead, clock.t + DT)
    out = clock.step(HOME + 0.5, HOME, observe=False)
    assert out.held and out.interventions == [Intervention.STALE_OBSERVATION]
    assert "ahead of now" in out.events[0].detail
    # The joint states then stop coming: the arm stays where it was.
    for _ in range(1000):
        assert clock.step(HOME + 0.5, HOME, observe=False).held
    np.testing.assert_array_equal(safety.reference, HOME)
    # Observations stamped within the age of now count again (one a little ahead as now's).
    assert safety.watchdog(clock.t + DT + 0.005, clock.t + DT)
    assert not clock.step(HOME + 0.5, HOME, observe=False).held
    assert clock.step(HOME + 0.5, HOME, observe=False, dt=0.0101).held


def test_estop_sources_are_released_one_by_one() -> None:
    """A protective stop's recovery releases its own latch, never an operator's e-stop."""
    safety, clock = started()
    safety.estop()
    safety.estop("protective_stop")
    out = clock.step(HOME + 0.3, HOME)
    assert out.held and out.events[0].detail == "e-stop latched by operator, protective_stop"
    safety.reset_estop("protective_stop")
    assert safety.estopped and safety.estop_sources == {"operator"}
    assert clock.step(HOME + 0.3, HOME).held
    safety.reset_estop("emergency_stop")  # not latched: nothing changes
    assert clock.step(HOME + 0.3, HOME).held
    safety.reset_estop()
    restart = clock.step(HOME + 0.3, HOME + 0.01)
    assert not restart.held and Intervention.SAFE_START in restart.interventions


def test_a_reset_with_nothing_latched_still_restarts_from_the_measured_pose() -> None:
    """A stop the filter did not see (a safeguard stop, a program stopped on the pendant),
    the arm moved by hand, then ``safety/reset_estop`` to start safely: the filter must
    start from where the arm is, not carry on from its old reference."""
    safety, clock = started()
    for _ in range(100):
        clock.step(HOME + 0.3, HOME)
    moved = HOME - 0.4
    safety.reset_estop()
    out = clock.step(HOME + 0.3, moved)
    assert Intervention.SAFE_START in out.interventions
    assert np.max(np.abs(out.command - moved)) <= safety.limits.max_step


def test_a_reset_from_another_thread_during_a_call_restarts_at_the_next() -> None:
    """The policy node's ``safety/reset_estop`` runs on an executor thread while its control
    thread is inside ``filter``: the restart cleared the reference under the call, which then
    failed on it (a TypeError in the control loop), or wrote its command over the restart.
    Here the reset comes from inside the call (the tool point's kinematics), at that instant."""
    box = ur5e_like_limits(workspace_lower=[-9.0, -9.0, -9.0], workspace_upper=[9.0, 9.0, 9.0])
    resets = []

    def tool_point(q):
        if resets:
            resets.pop()()
        return q[:3]

    safety, clock = started(box, tool_point=tool_point)
    resets.append(safety.reset_estop)
    during = clock.step(HOME + 0.3, HOME)
    assert not safety.started and Intervention.SAFE_START not in during.interventions
    moved = HOME - 0.4
    after = clock.step(HOME + 0.3, moved)
    assert Intervention.SAFE_START in after.interventions
    assert np.max(np.abs(after.command - moved)) <= safety.limits.max_step


def lagging_arm(safety: SafetyFilter, clock: Clock, target: np.ndarray, lag: int):
    """Drive towards ``target`` with the arm's measured pose trailing the command by ``lag``
    periods (a servo's lag); returns the commands and the measured pose and velocity."""
    commands = [safety.reference]
    for _ in range(400):
        measured = commands[max(0, len(commands) - lag)]
        commands.append(clock.step(target, measured).command)
    measured = commands[-lag]
    return commands, measured, (measured - commands[-lag - 1]) / DT


def test_a_reset_during_motion_ramps_from_the_command_the_arm_follows() -> None:
    """``safety/reset_estop`` with nothing latched while the arm moved at full speed: the
    measured pose trails the command by the servo's lag (0.1 s: 0.31 rad at pi rad/s), and
    the restart jumped the command back to it in one period, past ``max_step`` and the
    acceleration limit, reversing the arm. Given the measured velocity, the restart sees the
    arm following its reference and ramps down from there within every limit."""
    safety, clock = started()
    commands, measured, velocity = lagging_arm(safety, clock, HOME + 5.0, lag=50)
    assert velocity[0] == pytest.approx(np.pi) and commands[-1][0] - measured[0] > 0.3
    safety.reset_estop()
    restarted = [clock.step(HOME + 5.0, measured, qd_measured=velocity)]
    assert Intervention.SAFE_START in restarted[0].interventions
    restarted += [clock.step(HOME + 5.0, measured) for _ in range(300)]
    path = np.array([commands[-1], *(out.command for out in restarted)])
    speeds = np.diff(path, axis=0) / DT
    assert np.all(speeds > 0), "the command never goes back"
    assert np.max(np.abs(np.diff(speeds, axis=0))) <= ACCELERATION[0] * DT + 1e-9
    assert speeds[0, 0] == pytest.approx(np.pi, abs=0.05) and speeds[:, 0].min() < np.pi - 1  # ramp


def test_a_new_filter_goes_on_from_the_command_the_arm_follows() -> None:
    """A new episode (``policy/reset``, a hand-back, a checkpoint switch) gets a fresh filter:
    it anchored at the measured pose, which trails a moving command by the servo's lag, so a
    reset at 1.3 rad/s over ROS 2 jumped the command 0.028 rad back in one period (0.3 rad
    at full speed). Continued from the filter before, it goes on from that filter's command;
    the node sends nothing until the new episode's first action, so the command paused
    meanwhile and starts from rest (carried on at its speed, it jumped a capped step of
    two periods after the pause)."""
    before, clock = started(period=DT)
    commands, measured, velocity = lagging_arm(before, clock, HOME + 5.0, lag=50)
    assert commands[-1][0] - measured[0] > 0.3
    safety = SafetyFilter(before.limits, period=DT)
    safety.continue_from(before)
    clock.safety = safety
    # 20 ms of nothing sent (no action yet this episode), then the first action
    restarted = [clock.step(HOME + 5.0, measured, dt=10 * DT, qd_measured=velocity)]
    assert Intervention.SAFE_START in restarted[0].interventions
    restarted += [clock.step(HOME + 5.0, measured) for _ in range(300)]
    path = np.array([commands[-1], *(out.command for out in restarted)])
    speeds = np.diff(path, axis=0) / DT
    assert np.all(speeds >= 0), "the command never goes back"
    assert np.max(np.abs(np.diff(speeds, axis=0))) <= ACCELERATION[0] * DT + 1e-9
    assert speeds[-1, 0] > 1.0  # and it moves on, ramped up
    # an arm at rest away from that command (a simulator's reset moved it) starts where it is
    safety = SafetyFilter(before.limits, period=DT)
    safety.continue_from(before)
    clock.safety = safety
    out = clock.step(HOME + 5.0, HOME, qd_measured=np.zeros(6))
    np.testing.assert_array_equal(out.command, HOME)


def test_a_new_filter_slows_the_arm_until_the_first_action_comes() -> None:
    """While a new episode begun during motion has no action yet, the node filters none: the
    new filter, moving as the one before (``moving`` tells the node so), goes on from that
    command slowing at the acceleration limit, and the first action takes over from the
    speed it has slowed to (the command standing still meanwhile asked the servo to stop in
    one period)."""
    before, clock = started(period=DT)
    commands, measured, velocity = lagging_arm(before, clock, HOME + 5.0, lag=50)
    safety = SafetyFilter(before.limits, period=DT)
    safety.continue_from(before)
    clock.safety = safety
    assert safety.moving and not safety.started
    waiting = [clock.step(None, measured, qd_measured=velocity) for _ in range(10)]
    acting = [clock.step(HOME + 5.0, measured) for _ in range(100)]
    path = np.array([commands[-2], commands[-1], *(out.command for out in waiting + acting)])
    speeds = np.diff(path, axis=0) / DT
    assert np.all(np.abs(np.diff(speeds, axis=0)) <= ACCELERATION[0] * DT + 1e-9)
    assert speeds[11, 0] < speeds[0, 0] and speeds[11, 0] > 0.5 * speeds[0, 0]  # slowed, on
    assert not SafetyFilter(before.limits).moving  # a filter that never started: no


def test_a_restart_of_an_arm_at_rest_away_from_the_reference_starts_where_it_is() -> None:
    """Stopped by something the filter did not see while its command went on (a program
    stopped on the pendant): the arm is at rest, far behind the reference; the measured
    velocity says so, and the restart anchors at the arm, not at the command."""
    safety, clock = started()
    commands, _, _ = lagging_arm(safety, clock, HOME + 5.0, lag=50)
    safety.reset_estop()
    out = clock.step(HOME + 5.0, HOME, qd_measured=np.zeros(6))
    np.testing.assert_array_equal(out.command, HOME)
    with pytest.raises(ActionError, match="velocities have shape"):
        clock.step(HOME, HOME, qd_measured=np.zeros(5))


def test_an_arm_stopped_at_its_controller_is_followed_by_its_commands() -> None:
    """A protective stop the filter does not see: the arm stands still while the policy's
    target runs on. Within the tracking lag of standing still far from its command the filter
    starts again from where the arm is, and from then on its commands stay by the arm, so
    that the arm, released, does not travel to a command that ran on meanwhile; an arm that
    follows again (here from the stop) goes on to the target."""
    from robot_il.safety.filter import NOT_FOLLOWING_LEAD

    safety, clock = started()
    target = HOME + np.array([2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    commands, measured, velocity = lagging_arm(safety, clock, target, lag=50)
    assert velocity[0] > 1.0  # moving at speed when it stops
    stopped_at, outputs = measured.copy(), []
    for _ in range(int(3.0 / DT)):  # 3 s stopped, the target unchanged
        outputs.append(clock.step(target, stopped_at, qd_measured=np.zeros(6)))
    lead = np.array([np.abs(out.command - stopped_at).max() for out in outputs])
    restarts = [
        i for i, out in enumerate(outputs) if Intervention.NOT_FOLLOWING in out.interventions
    ]
    assert restarts and restarts[0] * DT <= 0.25 + 0.05, restarts[:3]
    assert lead[restarts[0]] == 0.0  # started again where the arm is
    # from then on the command leads the arm by no more than the lead it may keep plus what
    # it travels, at full speed, during the dwell that tells a stop from a servo starting late
    assert lead[restarts[0] :].max() < NOT_FOLLOWING_LEAD + np.pi * 0.15 + 1e-6, lead.max()
    assert len(restarts) > 3  # it keeps starting again while the arm stands
    moving = outputs[-1].command
    for _ in range(int(2.0 / DT)):  # released: the arm follows its commands again
        moving = clock.step(target, moving, qd_measured=np.full(6, 0.5)).command
    np.testing.assert_allclose(moving, target, atol=1e-6)


@pytest.mark.parametrize("acceleration", [8.0, 30.0])
def test_an_arm_that_follows_with_a_servo_lag_never_counts_as_stopped(acceleration) -> None:
    """A servo trails its command by its lookahead (up to 0.2 s: 0.63 rad at full speed), and
    an arm starting from rest moves only after it, as a pure delay here (a real servo smooths
    and starts at once): neither is an arm that stopped following, at the default acceleration
    limit nor at a handover cell's 30 rad/s^2."""
    safety, clock = started(ur5e_like_limits(acceleration=np.full(6, acceleration)))
    commands, lag = [safety.reference], 100
    events = []
    for target in (HOME + 2.0, HOME - 1.0, HOME):
        for _ in range(1500):
            measured = commands[max(0, len(commands) - lag)]
            before = commands[max(0, len(commands) - lag - 1)]
            out = clock.step(target, measured, qd_measured=(measured - before) / DT)
            commands.append(out.command)
            events += out.interventions
    assert Intervention.NOT_FOLLOWING not in events
    np.testing.assert_allclose(commands[-1], HOME, atol=1e-6)


@pytest.mark.parametrize("reported", ["none", "nan"])
def test_an_arm_whose_driver_reports_no_velocity_is_not_taken_for_stopped(reported) -> None:
    """A driver whose joint states carry no velocities (the observation then reports zeros)
    or NaN ones: the arm at full speed trails its command by 0.31 rad (a 0.1 s lag). Taken
    for an arm standing still, it was found not following and the command jumped back to
    the measured pose behind it, reversing the arm, every 0.1 s of the motion."""
    safety, clock = started()
    qd = np.zeros(6) if reported == "none" else np.full(6, np.nan)
    commands, lag, events = [safety.reference], 50, []
    for _ in range(1500):
        measured = commands[max(0, len(commands) - lag)]
        out = clock.step(HOME + 2.0, measured, qd_measured=qd)
        commands.append(out.command)
        events += out.interventions
    assert Intervention.NOT_FOLLOWING not in events
    assert np.diff(np.array(commands)[:, 0]).min() > -1e-5, "the command never goes back"
    np.testing.assert_allclose(commands[-1], np.clip(HOME + 2.0, -np.pi, np.pi), atol=1e-6)


def test_no_observation_ever_means_hold() -> None:
    safety = SafetyFilter(ur5e_like_limits())
    out = safety.filter(HOME + 0.1, HOME, 1.0)
    assert out.held and Intervention.STALE_OBSERVATION in out.interventions
    assert safety.watchdog(0.995, 1.0) and not safety.watchdog(0.9, 1.0)


def test_an_observation_stamped_by_another_clock_says_so() -> None:
    """A node on wall time reading a simulator's stamps (use_sim_time on one side only) held,
    saying only that the observation was 1.8e9 s old."""
    safety = SafetyFilter(ur5e_like_limits())
    safety.watchdog(12.0, 12.0)
    safety.filter(HOME, HOME, 12.0)
    safety.watchdog(12.002, 1.8e9)
    out = safety.filter(HOME, HOME, 1.8e9)
    (stale,) = (e for e in out.events if e.kind == Intervention.STALE_OBSERVATION)
    assert "another clock" in stale.detail and "use_sim_time" in stale.detail
    fresh, clock = started()
    late = clock.step(HOME, HOME, observe=False, dt=0.05)
    (stale,) = (e for e in late.events if e.kind == Intervention.STALE_OBSERVATION)
    assert "another clock" not in stale.detail


def test_late_inference_holds() -> None:
    safety, clock = started()
    out = clock.step(HOME + 0.2, HOME, command_stamp=clock.t + DT - 0.06)
    assert out.held and out.interventions == [Intervention.LATE_COMMAND]
    assert not clock.step(HOME + 0.2, HOME, command_stamp=clock.t).held


def test_estop_during_motion_stops_in_one_period_latches_and_restarts_safely() -> None:
    safety, clock = started()
    for _ in range(150):
        previous, moving = safety.reference, clock.step(HOME + 1.0, HOME)
    assert np.max(np.abs(moving.command - previous)) / DT > 1.0, "the arm should move fast"
    safety.estop()
    stopped = clock.step(HOME + 1.0, HOME)
    np.testing.assert_array_equal(stopped.command, moving.command)
    assert stopped.held and Intervention.ESTOP in stopped.interventions
    for target in (HOME + 1.0, HOME - 1.0, np.full(6, np.nan)):
        out = clock.step(target, HOME)
        np.testing.assert_array_equal(out.command, moving.command)
    assert safety.estopped
    # Reset: the arm was moved meanwhile (say, by hand); the filter restarts from where it is.
    moved = HOME + 0.05
    safety.reset_estop()
    restart = clock.step(HOME + 1.0, moved)
    np.testing.assert_array_equal(restart.command, moved)
    assert Intervention.SAFE_START in restart.interventions


def test_workspace_box_stops_the_arm_at_its_wall_and_lets_an_outside_start_come_back() -> None:
    box = ur5e_like_limits(workspace_lower=[-0.5, -0.5, 0.0], workspace_upper=[0.5, 0.5, 0.8])
    inside = np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    safety, clock = started(box, point_fk, at=inside)
    outs = [clock.step(inside + [0.9, 0, 0, 0, 0, 0], inside) for _ in range(600)]
    assert all(o.command[0] <= 0.5 for o in outs)
    assert Intervention.WORKSPACE in outs[-1].interventions and outs[-1].held
    assert outs[-1].command[0] > 0.49 and np.array_equal(outs[-1].command, outs[-2].command)

    outside = np.array([0.7, 0.0, 0.4, 0.0, 0.0, 0.0])
    safety, clock = started(box, point_fk, at=outside)
    back = clock.step(inside, outside)
    assert not back.held and back.command[0] < 0.7
    further = clock.step(outside + [0.2, 0, 0, 0, 0, 0], outside)
    assert further.held and Intervention.WORKSPACE in further.interventions


def test_a_tool_point_that_is_not_a_number_is_never_inside_the_box() -> None:
    """Kinematics that give NaN (a broken calibration, a bad transform) hold at the workspace
    check, as the numpy filter did: NaN is never inside the box."""

    def nan_beyond(q: np.ndarray) -> np.ndarray:  # the tool point is NaN past x = 0.05 m
        pose = point_fk(q)
        pose[0, 3] = np.nan if q[0] > 0.05 else q[0]
        return pose

    box = ur5e_like_limits(workspace_lower=[-1.0, -3.0, -3.0], workspace_upper=[1.0, 3.0, 3.0])
    safety, clock = started(box, nan_beyond)
    outs = [clock.step(HOME + [0.2, 0, 0, 0, 0, 0], HOME) for _ in range(300)]
    assert max(o.command[0] for o in outs) <= 0.05
    assert outs[-1].held and Intervention.WORKSPACE in outs[-1].interventions
    # braked for the NaN ahead, as for a wall: at rest short of it, never a one-period stop
    velocity, change = braking([o.command for o in outs], HOME)
    assert np.all(np.abs(change) <= 8.0 * DT + 1e-9) and np.all(velocity[-50:] == 0.0)


def test_events_are_reported_once_per_onset_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[SafetyEvent] = []
    safety, clock = started(on_event=seen.append)
    seen.clear()
    with caplog.at_level(logging.WARNING, logger="robot_il.safety"):
        for _ in range(3):
            clock.step(np.full(6, np.nan), HOME)
        clock.step(HOME, HOME)
        clock.step(np.full(6, np.nan), HOME)
    assert [e.kind for e in seen] == [Intervention.NONFINITE_COMMAND] * 2
    assert safety.counts[Intervention.NONFINITE_COMMAND] == 4
    assert sum("nonfinite_command" in r.getMessage() for r in caplog.records) == 2
    assert Intervention.NONFINITE_COMMAND == "nonfinite_command"


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ActionError, match="below"):
        ur5e_like_limits(position_lower=[1.0] * 6, position_upper=[0.0] * 6)
    with pytest.raises(ActionError, match="positive"):
        ur5e_like_limits(velocity=[0.0] * 6)
    with pytest.raises(ActionError, match="both"):
        ur5e_like_limits(workspace_lower=[0, 0, 0])
    with pytest.raises(ActionError, match="max_step"):
        ur5e_like_limits(max_step=float("nan"))
    with pytest.raises(ActionError, match="forward kinematics"):
        SafetyFilter(ur5e_like_limits(workspace_lower=[0, 0, 0], workspace_upper=[1, 1, 1]))


def test_adversarial_stream_never_lets_anything_unsafe_through() -> None:
    """Random targets, 1 rad jumps, NaNs, late stamps, stalled calls, observation gaps,
    e-stops and device faults: every command is finite, within the position limits, the
    velocity limit, the acceleration limit (except at an e-stop or the box, which stop at once,
    and at a safe start), max_step and the workspace box."""
    rng, faults = np.random.default_rng(0), np.random.default_rng(1)
    limits = ur5e_like_limits(workspace_lower=[-0.6, -0.6, -0.3], workspace_upper=[0.6, 0.6, 0.9])
    start = np.array([0.0, 0.0, 0.3, -1.0, 1.0, 0.0])
    safety, clock = started(limits, point_fk, at=start)
    commands, times, restarted = [safety.reference], [clock.t], [True]
    target = start.copy()
    for step in range(6000):
        kind = rng.integers(150)
        if kind == 0:
            target = target + rng.uniform(-1.0, 1.0, 6)  # jumps of up to 1 rad
        elif kind == 1:
            target = rng.uniform(-7.0, 7.0, 6)  # anywhere, limits included
        q_cmd = target.copy()
        if rng.random() < 0.02:
            q_cmd[rng.integers(6)] = rng.choice([np.nan, np.inf, -np.inf])
        dt = 0.3 if rng.random() < 0.003 else DT  # a stalled control loop
        stamp = clock.t + dt - (0.2 if rng.random() < 0.01 else 0.0)
        observe = step % 500 > 12  # observation gaps of 26 ms
        if rng.random() < 0.001:
            safety.estop()
        if safety.estopped and rng.random() < 0.01:
            safety.reset_estop()
        fault = faults.random()  # a stream of its own: the others' draws stay as they were
        if fault < 0.001:
            safety.set_fault("gripper: link lost")  # a lost gripper holds, then restarts
        elif fault < 0.01:
            safety.set_fault(None)
        out = clock.step(q_cmd, commands[-1], observe=observe, command_stamp=stamp, dt=dt)
        commands.append(out.command)
        times.append(clock.t)
        stopped_at_once = np.array_equal(out.command, commands[-2]) and any(
            kind in IMMEDIATE_STOPS for kind in out.interventions
        )  # (the workspace event also marks braking for the box's wall, at the limit)
        restarted.append(stopped_at_once or Intervention.SAFE_START in out.interventions)
    commands, dts = np.array(commands), np.diff(times)[:, None]
    assert np.all(np.isfinite(commands))
    assert np.all(commands >= limits.position_lower) and np.all(commands <= limits.position_upper)
    steps = np.diff(commands, axis=0)
    assert np.all(np.abs(steps) <= np.minimum(np.pi * dts, 0.05) + 1e-9)
    velocity = steps / dts
    moving = ~np.array(restarted[2:])
    dv = np.diff(velocity, axis=0)[moving]
    assert np.all(np.abs(dv) <= 8.0 * dts[1:][moving] + 1e-6)
    points = commands[:, :3]
    assert np.all(points >= limits.workspace_lower - 1e-9)
    assert np.all(points <= limits.workspace_upper + 1e-9)
    # The stream exercised every intervention but the non-finite measurement, the arm not
    # following (this arm follows exactly; both have tests of their own) and the inter-arm
    # clearance, which is the two-arm guard's.
    unseen = {
        Intervention.NONFINITE_MEASUREMENT,
        Intervention.NOT_FOLLOWING,
        Intervention.CLEARANCE,
    }
    assert set(safety.counts) == set(Intervention) - unseen


def test_ur5e_limits_come_from_the_description_and_its_kinematics_guard_the_table() -> None:
    from robot_il.envs.ur5e.description import HOME_JOINT_POS, JOINT_POS_LIMITS
    from robot_il.envs.ur5e.kinematics import forward_kinematics

    limits = SafetyLimits.ur5e(max_observation_age=10.0)
    np.testing.assert_array_equal(limits.position_upper, JOINT_POS_LIMITS[:, 1])
    assert limits.velocity[0] == pytest.approx(np.pi) and limits.has_workspace
    assert not SafetyLimits.ur5e(workspace_lower=None, workspace_upper=None).has_workspace
    safety, clock = started(limits, forward_kinematics, at=HOME_JOINT_POS)
    # Lowering the shoulder drives the tool down into the table: it stops above z = 0.
    target = HOME_JOINT_POS + np.array([0.0, 0.8, 0.0, 0.0, 0.0, 0.0])
    outs = [clock.step(target, HOME_JOINT_POS) for _ in range(1000)]
    heights = np.array([forward_kinematics(o.command)[2, 3] for o in outs])
    assert heights.min() >= 0.0 and heights.min() < 0.01
    assert Intervention.WORKSPACE in outs[-1].interventions


def test_event_summary_prints_each_kind_once_then_counts_per_window() -> None:
    from robot_il.safety.events import EventSummary

    summary = EventSummary(window=1.0)
    toggles = [("workspace", "ws first"), ("stale_observation", "stale first")]
    toggles += [("workspace", "ws again")] * 40 + [("stale_observation", "stale again")] * 7
    assert summary.lines(toggles[:2], now=0.0) == ["ws first", "stale first"]
    assert summary.lines(toggles[2:30], now=0.5) == []
    assert summary.lines(toggles[30:], now=1.0) == [
        "safety events in the last 1.0 s: stale_observation x7, workspace x40"
    ]
    assert summary.lines([], now=2.5) == []  # a quiet window prints nothing
    assert summary.lines([("estop", "estop first")], now=2.6) == ["estop first"]


def test_a_clock_stepping_back_during_the_safe_start_holds_still() -> None:
    """Times before the anchor (a system clock set back) ramp from zero, not below: the
    filter once scaled by a negative factor there and sent NaN for joints without error."""
    safety = SafetyFilter(ur5e_like_limits(), period=DT)
    safety.watchdog(10.0, 10.0)
    safety.filter(HOME, HOME, 10.0)  # anchored at t = 10 s
    safety.filter(None, HOME, 9.99)  # no command yet, the clock stepped back
    target = HOME + [0.1, 0, 0, 0, 0, 0]
    out = safety.filter(target, HOME, 9.995)
    assert np.isfinite(out.command).all()
    np.testing.assert_array_equal(out.command, HOME)
    safety.watchdog(10.1, 10.1)
    out = safety.filter(target, HOME, 10.1)  # past the anchor the ramp moves it towards target
    assert HOME[0] < out.command[0] < target[0]
    np.testing.assert_array_equal(out.command[1:], HOME[1:])
