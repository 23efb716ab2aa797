"""The two-arm clearance guard: fuzzed commands never bring the arms' links closer than the
clearance, never pass a joint limit, and an arm that is not in the way still moves."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.arm import Arm
from robot_il.envs.separation import arm_separation
from robot_il.envs.tasks import TASKS
from robot_il.envs.ur5e.description import HOME_JOINT_POS

from robot_il.errors import ConfigError
from robot_il.safety import ClearanceGuard, Intervention, SafetyFilter, SafetyLimits

DT = 0.002
CLEARANCE = 0.05


@pytest.fixture(scope="module")
def bases() -> list[np.ndarray]:
    """World poses of the bimanual_handover arms' bases (0.84 m apart at home)."""
    return [Arm(mount).world_from_base for mount in TASKS["bimanual_handover"]().mounts()]


def filters(events: list) -> list[SafetyFilter]:
    limits = SafetyLimits.ur5e(workspace_lower=None, workspace_upper=None, ramp_duration=0.05)
    return [SafetyFilter(limits, period=DT, on_event=events.append) for _ in range(2)]


def step(pair, guard, targets, measured, t):
    """One control period: each arm's filter, then the guard."""
    commands = []
    for safety, target, q in zip(pair, targets, measured, strict=True):
        safety.watchdog(t, t)
        commands.append(safety.filter(target, q, t).command)
    return guard.check(commands, pair, t, measured)


def crossing_pairs(bases, rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint targets (count, 6) of each arm, stretched (shoulder and elbow near straight),
    whose pairs put the arms' links into each other."""

    def stretched(n: int) -> np.ndarray:
        q = rng.uniform(-np.pi, np.pi, (n, 6))
        q[:, 1], q[:, 2] = rng.uniform(-0.6, 0.3, n), rng.uniform(-0.5, 0.5, n)
        return q

    a, b = stretched(20000), stretched(20000)
    crossing = arm_separation(a, bases[0], b, bases[1]) < 0
    assert crossing.sum() >= count
    return a[crossing][:count], b[crossing][:count]


def test_fuzzed_two_arm_commands_keep_the_clearance_and_the_joint_limits(bases) -> None:
    rng = np.random.default_rng(0)
    events: list = []
    pair = filters(events)
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    limits = pair[0].limits
    crossing = crossing_pairs(bases, rng, 50)
    sent = [HOME_JOINT_POS.copy(), HOME_JOINT_POS.copy()]
    targets = [HOME_JOINT_POS.copy(), HOME_JOINT_POS.copy()]
    history = []
    t = 0.0
    for _ in range(6000):
        t += DT
        for arm in (0, 1):
            kind = rng.integers(60)
            if kind == 0:
                targets[arm] = rng.uniform(-2 * np.pi, 2 * np.pi, 6)  # anywhere, past limits
            elif kind == 1:
                targets[arm] = targets[arm] + rng.uniform(-1.0, 1.0, 6)  # a 1 rad jump
            elif kind in (2, 3, 4):
                targets[arm] = crossing[arm][rng.integers(50)]  # into the other arm
        commanded = [target.copy() for target in targets]
        if rng.random() < 0.02:
            commanded[rng.integers(2)][rng.integers(6)] = np.nan
        sent = step(pair, guard, commanded, sent, t)  # the arms follow their commands
        history.append(np.concatenate(sent))
    history = np.array(history)
    assert np.all(np.isfinite(history))
    lower, upper = np.tile(limits.position_lower, 2), np.tile(limits.position_upper, 2)
    assert np.all(history >= lower) and np.all(history <= upper)
    distance = arm_separation(history[:, :6], bases[0], history[:, 6:], bases[1])
    assert distance.min() >= CLEARANCE - 1e-9, f"arms came {distance.min():.4f} m apart"
    # The guard had work, for both arms, and the arms still moved a lot.
    assert guard.holds[0] > 20 and guard.holds[1] > 20, guard.holds
    assert distance.min() < CLEARANCE + 0.01  # the arms did come up to the clearance
    travel = np.abs(np.diff(history, axis=0)).sum(axis=0)
    assert travel.min() > 1.0, travel
    assert Intervention.CLEARANCE in {event.kind for event in events}


def test_only_the_arm_in_the_way_holds(bases) -> None:
    events: list = []
    pair = filters(events)
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    into_b, reach = (arm[0] for arm in crossing_pairs(bases, np.random.default_rng(1), 1))
    sent = [HOME_JOINT_POS.copy(), HOME_JOINT_POS.copy()]
    t = 0.0
    for _ in range(2000):  # b reaches out while a stays home
        t += DT
        sent = step(pair, guard, [HOME_JOINT_POS, reach], sent, t)
    np.testing.assert_allclose(sent[1], reach, atol=1e-6)
    for _ in range(3000):  # then a reaches into b
        t += DT
        sent = step(pair, guard, [into_b, reach], sent, t)
    distance = arm_separation(sent[0], bases[0], sent[1], bases[1])
    assert CLEARANCE <= distance < CLEARANCE + 0.01  # a stopped at the clearance
    np.testing.assert_allclose(sent[1], reach, atol=1e-6)  # b was never held
    assert guard.holds[1] == 0 and guard.holds[0] > 100
    held = [e.detail for e in events if e.kind == Intervention.CLEARANCE]
    assert held and all(detail.startswith("arm 0 held") for detail in held)
    # Moving a back out is allowed at once.
    for _ in range(2000):
        t += DT
        sent = step(pair, guard, [HOME_JOINT_POS, reach], sent, t)
    np.testing.assert_allclose(sent[0], HOME_JOINT_POS, atol=1e-6)


def test_bad_clearance_is_refused(bases) -> None:
    with pytest.raises(ConfigError, match="clearance must be a finite distance >= 0 m, got nan"):
        ClearanceGuard(bases, float("nan"))
    with pytest.raises(ConfigError, match="needs two arms, got 1"):
        ClearanceGuard(bases[:1])


def test_grippers_may_come_as_close_as_the_gripper_clearance(bases) -> None:
    """A handover brings the two grippers together: with ``gripper_clearance`` 0 the guard
    counts a pose whose only close pairs are gripper to gripper as clear, where the default
    (the grippers keep ``clearance`` too) does not; a link still keeps the full clearance."""
    from robot_il.envs.separation import gripper_allowance

    rng = np.random.default_rng(4)
    a, b = rng.uniform(-np.pi, np.pi, (2, 40000, 6))
    plain = arm_separation(a, bases[0], b, bases[1])
    links = arm_separation(a, bases[0], b, bases[1], gripper_allowance(1.0))
    grippers_close = (plain > 0.005) & (plain < CLEARANCE - 0.02) & (links >= CLEARANCE)
    links_close = (plain > 0.005) & (links < CLEARANCE - 0.02)
    assert grippers_close.any() and links_close.any()
    relaxed = ClearanceGuard(bases, CLEARANCE, gripper_clearance=0.0)
    strict = ClearanceGuard(bases, CLEARANCE)
    i, j = int(np.flatnonzero(grippers_close)[0]), int(np.flatnonzero(links_close)[0])
    assert relaxed.separation(a[i], b[i]) >= CLEARANCE > strict.separation(a[i], b[i])
    assert relaxed.separation(a[j], b[j]) < CLEARANCE
    with pytest.raises(ConfigError, match="gripper_clearance must be a distance in"):
        ClearanceGuard(bases, CLEARANCE, gripper_clearance=0.1)


def handover_pose(arms, setback: float) -> tuple[np.ndarray, np.ndarray]:
    """Both arms' joints at the handover expert's hand-over: the left gripper top-down at
    ``HANDOVER_POINT``, the right one sideways ``setback`` m short of it (the expert: 15 mm)."""
    from robot_il.envs.experts.base import tcp_at, top_down
    from robot_il.envs.experts.bimanual_handover import SIDEWAYS
    from robot_il.envs.tasks.bimanual_handover import HANDOVER_POINT

    left = arms[0].inverse(tcp_at(HANDOVER_POINT, top_down(0.0)), HOME_JOINT_POS)
    right = arms[1].inverse(tcp_at(HANDOVER_POINT - [setback, 0.0, 0.0], SIDEWAYS), HOME_JOINT_POS)
    return left, right


def test_a_handover_cell_lets_only_the_gripper_capsules_overlap(bases) -> None:
    """Two grippers holding one cube overlap as capsules (the expert's hand-over pose: -4.2 cm;
    down to -4.3 cm in its handover episodes): ``gripper_clearance`` -0.05 lets their own pairs
    overlap that much and no more, a pair with a link keeps the full clearance, and the guard
    holds the arm that would take the grippers deeper, naming the pair and its limit."""
    from robot_il.envs.separation import gripper_allowance

    arms = [Arm(mount) for mount in TASKS["bimanual_handover"]().mounts()]
    approach, handover, too_deep = (handover_pose(arms, s) for s in (0.05, 0.015, 0.0))
    links_only = gripper_allowance(1.0)
    for pose, grippers in ((approach, -0.039), (handover, -0.042), (too_deep, -0.0535)):
        assert arm_separation(pose[0], bases[0], pose[1], bases[1]) == pytest.approx(
            grippers, abs=1e-3
        )
        assert arm_separation(pose[0], bases[0], pose[1], bases[1], links_only) >= CLEARANCE
    strict = ClearanceGuard(bases, CLEARANCE)
    cell = ClearanceGuard(bases, CLEARANCE, gripper_clearance=-0.05)
    assert strict.separation(*handover) < CLEARANCE <= cell.separation(*handover)
    assert cell.separation(*too_deep) < CLEARANCE
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-np.pi, np.pi, (2, 20000, 6))
    links = arm_separation(a, bases[0], b, bases[1], links_only)
    i = int(np.flatnonzero((links > 0.0) & (links < CLEARANCE - 0.02))[0])
    assert cell.separation(a[i], b[i]) < CLEARANCE  # a link close to anything still counts

    events: list = []
    guard = ClearanceGuard(bases, CLEARANCE, events.append, gripper_clearance=-0.05)
    pair = filters([])
    step(pair, guard, list(handover), list(handover), 0.0)
    assert guard.held == [False, False]
    sent = guard.check(list(too_deep), pair, DT, list(handover))
    assert guard.held == [False, True]  # the right arm moved in: it alone holds
    assert np.array_equal(sent[1], pair[1].reference_before)
    assert len(events) == 1
    assert "gripper" in events[0].detail and "(< -0.05 m for this pair)" in events[0].detail
    with pytest.raises(ConfigError, match=r"gripper_clearance must be a distance in \[-0.08"):
        ClearanceGuard(bases, CLEARANCE, gripper_clearance=-0.1)


def test_an_arm_moved_by_hand_during_an_estop_keeps_the_clearance_after_the_reset(
    bases,
) -> None:
    """An e-stop reset restarts each filter from the measured pose, wherever a person has
    moved the arm meanwhile (freedrive). The guard once counted each period's steps from the
    filters' previous commands, so that jump went uncounted: its distance bound from before
    the e-stop (0.8 m, both arms at home) stood, and arm 1 drove 10 cm into arm 0 unchecked."""
    events: list = []
    pair = filters(events)
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    home = HOME_JOINT_POS
    sent, t = [home, home], 0.0
    for _ in range(200):
        t += DT
        sent = step(pair, guard, [home, home], sent, t)
    for safety in pair:
        safety.estop()
    for _ in range(10):
        t += DT
        sent = step(pair, guard, [home, home], sent, t)
    # A pose of arm 1 inside arm 0 (at home): the policy's target. On the straight way out
    # of it, the first pose 1 cm beyond the clearance: where a person left arm 1 by hand.
    rng = np.random.default_rng(0)
    poses = rng.uniform(-np.pi, np.pi, (4000, 6))
    poses[:, 1] = rng.uniform(-1.2, 0.3, 4000)
    distance = arm_separation(np.broadcast_to(home, poses.shape), bases[0], poses, bases[1])
    inside, outside = poses[np.argmin(distance)], poses[np.argmax(distance)]
    way_out = inside + np.linspace(0.0, 1.0, 2001)[:, None] * (outside - inside)
    distance = arm_separation(np.broadcast_to(home, way_out.shape), bases[0], way_out, bases[1])
    by_hand = way_out[np.argmax(distance >= CLEARANCE + 0.01)]
    assert distance[0] < -0.05
    for safety in pair:
        safety.reset_estop()
    measured, history = [home, by_hand], []
    for _ in range(400):
        t += DT
        measured = step(pair, guard, [home, inside], measured, t)
        history.append(np.concatenate(measured))
    history = np.array(history)
    distance = arm_separation(history[:, :6], bases[0], history[:, 6:], bases[1])
    assert distance.min() >= CLEARANCE - 1e-9, f"arms came {distance.min():.4f} m apart"
    assert distance.min() < CLEARANCE + 0.005  # arm 1 did come up to the clearance
    assert guard.holds[0] == 0 and guard.holds[1] > 100
    assert any(e.kind == Intervention.CLEARANCE and "arm 1 held" in e.detail for e in events)


def b_reached_out(bases, events: list):
    """Both arms' filters and the guard once arm b has reached out (a pose a stretched a can
    cross) while a stayed home: (filters, guard, a's target into b there, the commands sent,
    the time). Where b stops at its controller, in the tests below."""
    pair = filters(events)
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    into_b, reach = (arm[0] for arm in crossing_pairs(bases, np.random.default_rng(1), 1))
    sent, t = [HOME_JOINT_POS.copy(), HOME_JOINT_POS.copy()], 0.0
    for _ in range(2000):
        t += DT
        sent = step(pair, guard, [HOME_JOINT_POS, reach], sent, t)
    np.testing.assert_allclose(sent[1], reach, atol=1e-6)
    return pair, guard, into_b, sent, t


def test_an_arm_stopped_at_its_controller_is_kept_clear_of_where_it_stopped(bases) -> None:
    """One arm of a two-arm cell stops at its own controller (a protective stop, a stopped
    program, its bridge's e-stop): the policy node does not know, and its commands for that
    arm move on while the arm stays where it stopped. The other arm's commands must keep the
    clearance from where that arm is: a guard of commands alone measured the pair (a's
    command, b's command), clear of each other, and drove a into b."""
    events: list = []
    pair, guard, into_b, sent, t = b_reached_out(bases, events)
    home = HOME_JOINT_POS
    stopped_at = sent[1].copy()  # b stops there; its commands go back home, a's reach into b
    a_at, history = sent[0], []
    for _ in range(3000):
        t += DT
        sent = step(pair, guard, [into_b, home], [a_at, stopped_at], t)
        a_at = sent[0]  # a follows its commands, b does not
        history.append(np.concatenate(sent))
    history = np.array(history)
    told = arm_separation(history[:, :6], bases[0], history[:, 6:], bases[1])
    assert told.min() > CLEARANCE  # by the commands alone a was clear: b's went home
    distance = arm_separation(history[:, :6], bases[0], stopped_at, bases[1])
    assert distance.min() >= CLEARANCE - 1e-9, f"a came {distance.min():.4f} m from b"
    assert distance.min() < CLEARANCE + 0.01  # a came up to where b is and held there
    assert guard.holds[0] > 100 and guard.holds[1] == 0
    assert any(e.kind == Intervention.CLEARANCE and "arm 0 held" in e.detail for e in events)


def test_an_arm_of_unknown_pose_holds_both(bases) -> None:
    """Where an arm's measured joints are not finite, where it is is not known: both hold."""
    events: list = []
    pair = filters([])
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    home = HOME_JOINT_POS
    sent, t = [home.copy(), home.copy()], 0.0
    for _ in range(50):
        t += DT
        sent = step(pair, guard, [home, home], sent, t)
    commands = [home + 0.01, home - 0.01]
    guard.check(commands, pair, t + DT, [home, np.full(6, np.nan)])
    assert guard.held == [True, True]
    assert len(events) == 2 and all("arm 1's measured joints" in e.detail for e in events), events


def test_a_hold_for_where_the_other_arm_is_names_that_pair(bases) -> None:
    """An arm held for coming too close to where the other arm *is* (its commands are clear
    of the other's commands): the event named the closest pair of the two commands, a
    distance above the limit ('0.7 m apart (< 0.05 m)'), and not why the arm held."""
    rng = np.random.default_rng(2)
    home = HOME_JOINT_POS
    near = rng.uniform(-np.pi, np.pi, (20000, 6))
    distance = arm_separation(home, bases[0], near, bases[1])
    stopped_at = near[(distance > 0.01) & (distance < 0.04)][0]
    assert arm_separation(home, bases[0], home, bases[1]) > 0.5  # the commands are clear
    events: list = []
    pair = filters([])
    guard = ClearanceGuard(bases, CLEARANCE, on_event=events.append)
    sent, t = [home.copy(), home.copy()], 0.0
    for _ in range(10):  # both at home, told to stay there
        t += DT
        sent = step(pair, guard, [home, home], sent, t)
    t += DT
    step(pair, guard, [home, home], [home, stopped_at], t)  # b found where it stopped
    assert guard.held[0] or guard.held[1]
    (detail,) = [e.detail for e in events if e.kind == Intervention.CLEARANCE][:1]
    apart = float(detail.split(" m apart")[0].rsplit(" ", 1)[1])
    assert apart < CLEARANCE, detail
    assert "where it is" in detail, detail


def test_a_stopped_arm_s_filter_and_the_guard_keep_both_arms_by_where_it_stopped(bases) -> None:
    """The guard and each arm's filter together, given measured velocities as a node gives
    them: b stops at its controller while its policy target goes home and a's reaches into b.
    b's filter finds it not following and keeps b's commands by where it stopped (so, released,
    it does not travel far on an unchecked path); a holds clear of b."""
    from robot_il.safety.filter import NOT_FOLLOWING_LEAD

    events: list = []
    pair, guard, into_b, sent, t = b_reached_out(bases, events)
    home = HOME_JOINT_POS
    stopped_at, a_at, b_sent, a_path = sent[1].copy(), sent[0], [], []
    a_velocity = np.zeros(6)
    for _ in range(3000):
        t += DT
        commands = []
        for safety, target, q, qd in zip(
            pair, [into_b, home], [a_at, stopped_at], [a_velocity, np.zeros(6)], strict=True
        ):
            safety.watchdog(t, t)
            commands.append(safety.filter(target, q, t, qd_measured=qd).command)
        sent = guard.check(commands, pair, t, [a_at, stopped_at])
        a_velocity, a_at = (sent[0] - a_at) / DT, sent[0]
        b_sent.append(sent[1])
        a_path.append(a_at)
    kinds = [event.kind for event in events]
    assert Intervention.NOT_FOLLOWING in kinds
    b_lead = np.abs(np.array(b_sent) - stopped_at).max(axis=1)
    assert b_lead[-2000:].max() < NOT_FOLLOWING_LEAD + np.pi * 0.15, b_lead.max()
    distance = arm_separation(np.array(a_path), bases[0], stopped_at, bases[1])
    assert distance.min() >= CLEARANCE - 1e-9, distance.min()
    assert guard.holds[0] > 0  # a did reach for b and was held
