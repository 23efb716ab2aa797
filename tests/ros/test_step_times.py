"""``StepTimes`` times each ``task/success`` by the step whose ``/clock`` was sent last before
it (DDS source timestamps), whatever order the two topics are processed in."""

from __future__ import annotations

from robot_il.ros.step_times import StepTimes


def test_a_success_is_timed_by_the_clock_sent_before_it_in_any_arrival_order() -> None:
    steps = StepTimes(sim_time=True)
    steps.restart(0)
    steps.add_clock(100, 1.00)
    steps.add_success(110, False)
    # step 2's success processed before its own clock: it waits for a clock sent after it
    steps.add_success(210, True)
    assert steps.timed_successes() == []  # step 1's needs a later clock too
    steps.add_clock(200, 1.05)
    assert steps.timed_successes() == [(1.00, False)]
    # step 3's clock and step 4's clock processed before step 3's success
    steps.add_clock(300, 1.10)
    steps.add_clock(400, 1.15)
    steps.add_success(310, True)
    assert steps.timed_successes() == [(1.05, True), (1.10, True)]
    assert steps.timed_successes() == []  # each message once


def test_an_episode_counts_the_messages_sent_since_its_restart() -> None:
    """The messages of the episode before, even those processed after the restart, are never
    timed; the episode starts at the first clock sent since (the reset's: time stood still)."""
    steps = StepTimes(sim_time=True)
    steps.add_clock(100, 2.00)
    steps.add_success(110, True)
    steps.restart(150)
    assert steps.start_time() is None  # the reset's clock has not come
    steps.add_success(120, False)  # the episode before's, late
    steps.add_clock(200, 2.00)
    steps.add_success(210, False)
    steps.add_clock(300, 2.05)
    assert steps.start_time() == 2.00
    assert steps.timed_successes() == [(2.00, False)]


def test_a_success_sent_before_every_clock_kept_is_dropped() -> None:
    steps = StepTimes(sim_time=True)
    steps.restart(0)
    steps.add_success(50, True)
    steps.add_clock(100, 1.00)
    steps.add_success(110, False)
    steps.add_clock(200, 1.05)
    assert steps.timed_successes() == [(1.00, False)]


def test_in_real_time_a_success_is_timed_by_its_source_timestamp() -> None:
    steps = StepTimes(sim_time=False)
    steps.add_success(1_000_000_000, False)
    steps.restart(2_000_000_000)
    steps.add_success(2_500_000_000, True)
    assert steps.timed_successes() == [(2.5, True)]
